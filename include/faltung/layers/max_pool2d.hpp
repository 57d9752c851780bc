#pragma once
// MaxPool2D: the maximum over each window of each channel.
//   x (N, C, H, W)   y (N, C, OH, OW)
// Backward sends each output's gradient to the input pixel that won its window (argmax_, kept
// from forward) and zero to the rest. Geometry follows kernels/geometry.hpp; the stride defaults
// to the pool size, as in Keras.

#include <cstdint>
#include <limits>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "faltung/kernels/pool2d.hpp"
#include "faltung/layers/layer.hpp"

FALTUNG_BEGIN_NAMESPACE

struct MaxPool2DOptions {
  MaxPool2DOptions(std::size_t pool_size) : pool_h_(pool_size), pool_w_(pool_size) {}  // NOLINT: MaxPool2D(2)
  /// Window size, p x p or ph x pw. Required.
  MaxPool2DOptions& pool_size(std::size_t p) { pool_h_ = pool_w_ = p; return *this; }
  MaxPool2DOptions& pool_size(std::size_t ph, std::size_t pw) { pool_h_ = ph; pool_w_ = pw; return *this; }
  /// Step of the window. Default (0): the pool size.
  MaxPool2DOptions& stride(std::size_t s) { stride_h_ = stride_w_ = s; return *this; }
  MaxPool2DOptions& stride(std::size_t sh, std::size_t sw) { stride_h_ = sh; stride_w_ = sw; return *this; }
  /// Valid (default) or Same.
  MaxPool2DOptions& padding(Padding p) {
    FALTUNG_CHECK(p != Padding::Explicit, "MaxPool2D: padding is 'valid' or 'same'");
    padding_ = p;
    return *this;
  }

  std::size_t stride_h() const { return stride_h_ ? stride_h_ : pool_h_; }
  std::size_t stride_w() const { return stride_w_ ? stride_w_ : pool_w_; }

  std::size_t pool_h_, pool_w_, stride_h_ = 0, stride_w_ = 0;
  Padding padding_ = Padding::Valid;
};

template <class T>
class MaxPool2D : public Layer<T> {
 public:
  explicit MaxPool2D(MaxPool2DOptions options) : options_(options) {
    FALTUNG_CHECK(options_.pool_h_ > 0 && options_.pool_w_ > 0, "MaxPool2D: pool size must be positive");
  }

  std::string type() const override { return "MaxPool2D"; }
  std::string default_name() const override { return "max_pooling2d"; }
  const MaxPool2DOptions& options() const { return options_; }

  Shape output_shape(const Shape& in) const override {
    const kernels::Pool2DParams p = params_for(in, 0);
    return Shape{in[0], p.h.out, p.w.out};
  }

  /// The kernels' parameters for a batch of `batch` samples of the input shape the layer was
  /// built for.
  kernels::Pool2DParams params(std::size_t batch) const { return params_for(this->input_shape_, batch); }

  std::string spec() const override {
    std::ostringstream os;
    os << "pool:" << options_.pool_h_;
    if (options_.pool_w_ != options_.pool_h_) os << 'x' << options_.pool_w_;
    if (options_.stride_h() != options_.pool_h_ || options_.stride_w() != options_.pool_w_) {
      os << ":s" << options_.stride_h();
      if (options_.stride_w() != options_.stride_h()) os << 'x' << options_.stride_w();
    }
    if (options_.padding_ == Padding::Same) os << ":same";
    return os.str();
  }

  std::unique_ptr<Layer<T>> clone() const override { return std::make_unique<MaxPool2D<T>>(*this); }

 protected:
  void forward_impl(const Tensor<T>& x, Tensor<T>& y) override { apply(x, y, argmax_); }
  void infer_impl(const Tensor<T>& x, Tensor<T>& y, LayerWorkspace<T>& ws) const override { apply(x, y, ws.argmax); }

  void release_training_state() override {
    Layer<T>::release_training_state();
    std::vector<std::int32_t>().swap(argmax_);
  }

  void backward_impl(const Tensor<T>& x, const Tensor<T>&, const Tensor<T>& dy, Tensor<T>& dx) override {
    if (!this->input_grad_needed()) return;
    const kernels::Pool2DParams p = params_for(this->input_shape_, x.dim(0));
    kernels::max_pool2d_backward(p, dy.data(), argmax_.data(), dx.data());
  }

 private:
  /// The forward pass, the winning pixels into `argmax`: forward keeps them for backward, infer
  /// writes them into the caller's workspace.
  void apply(const Tensor<T>& x, Tensor<T>& y, std::vector<std::int32_t>& argmax) const {
    const kernels::Pool2DParams p = params_for(this->input_shape_, x.dim(0));
    y.resize(this->output_shape_.with_batch(p.batch));
    argmax.resize(y.size());  // grows once, then reused: capacity is kept
    kernels::max_pool2d_forward(p, x.data(), y.data(), argmax.data());
  }

  kernels::Pool2DParams params_for(const Shape& in, std::size_t batch) const {
    FALTUNG_CHECK(in.rank() == 3, "MaxPool2D expects a per-sample input (channels, height, width), got ", in);
    kernels::Pool2DParams p;
    p.batch = batch;
    p.channels = in[0];
    p.h = window_axis(in[1], options_.pool_h_, options_.stride_h(), options_.padding_, 0, "MaxPool2D height");
    p.w = window_axis(in[2], options_.pool_w_, options_.stride_w(), options_.padding_, 0, "MaxPool2D width");
    // argmax_ keeps the winning pixel's index in its plane as an int32 (half the memory of a
    // size_t, and the SIMD 2x2 kernel computes it in 32-bit lanes).
    const std::size_t plane = checked_mul(in[1], in[2], "MaxPool2D: the input plane (height x width)");
    FALTUNG_CHECK(plane <= std::size_t(std::numeric_limits<std::int32_t>::max()), "MaxPool2D: an input plane of ",
                  in[1], " x ", in[2], " = ", plane, " pixels is more than ", std::numeric_limits<std::int32_t>::max(),
                  ", the most its int32 argmax can index");
    return p;
  }

  MaxPool2DOptions options_;
  std::vector<std::int32_t> argmax_;  // (N, C, OH, OW) winning pixel of each window
};

FALTUNG_END_NAMESPACE
