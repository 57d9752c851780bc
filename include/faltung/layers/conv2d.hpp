#pragma once
// Conv2D: a 2-D convolution over NCHW images, y = f(conv(x, W) + b).
//   x (N, C, H, W)   W "kernel" (filters, C, KH, KW)   b "bias" (filters)   y (N, filters, OH, OW)
// Output size and padding follow kernels/geometry.hpp ('valid', 'same' as in Keras, or explicit).
// The arithmetic lives in kernels/conv2d.hpp; this layer holds the parameters, the workspaces
// and the fused activation:
//   forward   y = f(conv(x, W) + b)
//   backward  dz = f'(z) * dy (through y)   dW += corr(x, dz)   db += sum dz   dx = conv^T(dz, W)

#include <memory>
#include <sstream>
#include <string>

#include "faltung/initializers.hpp"
#include "faltung/kernels/activation.hpp"
#include "faltung/kernels/conv2d.hpp"
#include "faltung/layers/layer.hpp"

FALTUNG_BEGIN_NAMESPACE

struct Conv2DOptions {
  Conv2DOptions(std::size_t filters, std::size_t kernel_size)
      : filters_(filters), kernel_h_(kernel_size), kernel_w_(kernel_size) {}
  /// Output channels. Required, positive.
  Conv2DOptions& filters(std::size_t v) { filters_ = v; return *this; }
  /// Square window k x k, or kh x kw. Required.
  Conv2DOptions& kernel_size(std::size_t k) { kernel_h_ = kernel_w_ = k; return *this; }
  Conv2DOptions& kernel_size(std::size_t kh, std::size_t kw) { kernel_h_ = kh; kernel_w_ = kw; return *this; }
  /// Step of the window. Default: 1.
  Conv2DOptions& stride(std::size_t s) { stride_h_ = stride_w_ = s; return *this; }
  Conv2DOptions& stride(std::size_t sh, std::size_t sw) { stride_h_ = sh; stride_w_ = sw; return *this; }
  /// Valid (default, as in Keras) or Same.
  Conv2DOptions& padding(Padding p) { padding_ = p; pad_h_ = pad_w_ = 0; return *this; }
  /// Explicit zero padding of ph rows and pw columns on each side (PyTorch's padding=(ph, pw)).
  Conv2DOptions& padding(std::size_t ph, std::size_t pw) { padding_ = Padding::Explicit; pad_h_ = ph; pad_w_ = pw; return *this; }
  /// Activation applied to the output. Default: linear (none).
  Conv2DOptions& activation(Activation a) { activation_ = a; return *this; }
  /// Whether to add a bias per filter. Default: true.
  Conv2DOptions& use_bias(bool v) { use_bias_ = v; return *this; }
  /// Initialiser of the kernel. Default: Glorot-uniform. The bias starts at zero.
  Conv2DOptions& kernel_initializer(Initializer v) { kernel_initializer_ = v; return *this; }

  std::size_t filters_, kernel_h_, kernel_w_, stride_h_ = 1, stride_w_ = 1;
  Padding padding_ = Padding::Valid;
  std::size_t pad_h_ = 0, pad_w_ = 0;
  Activation activation_;
  bool use_bias_ = true;
  Initializer kernel_initializer_ = Initializer::GlorotUniform;
};

template <class T>
class Conv2D : public Layer<T> {
 public:
  explicit Conv2D(Conv2DOptions options) : options_(options) {
    FALTUNG_CHECK(options_.filters_ > 0, "Conv2D: filters must be positive");
    FALTUNG_CHECK(options_.kernel_h_ > 0 && options_.kernel_w_ > 0, "Conv2D: kernel size must be positive");
    FALTUNG_CHECK(options_.stride_h_ > 0 && options_.stride_w_ > 0, "Conv2D: stride must be positive");
    detail::check_activation("Conv2D", options_.activation_);
  }

  std::string type() const override { return "Conv2D"; }
  std::string default_name() const override { return "conv2d"; }
  const Conv2DOptions& options() const { return options_; }

  Shape output_shape(const Shape& in) const override {
    const kernels::Conv2DParams p = params_for(in, 0);
    kernels::check_conv2d_sizes(p, "Conv2D");
    return Shape{options_.filters_, p.h.out, p.w.out};
  }

  std::size_t parameter_count_for(const Shape& in) const override {
    FALTUNG_CHECK(in.rank() == 3, "Conv2D expects a per-sample input (channels, height, width), got ", in);
    const std::size_t f = options_.filters_;
    const char* what = "Conv2D: the kernel's size (filters x channels x kernel height x kernel width)";
    const std::size_t kernel =
        checked_mul(checked_mul(checked_mul(f, in[0], what), options_.kernel_h_, what), options_.kernel_w_, what);
    return checked_add(kernel, options_.use_bias_ ? f : 0, "Conv2D: the parameter count");
  }

  void build(const Shape& in, Random& rng) override {
    Layer<T>::build(in, rng);
    const std::size_t c = in[0], kh = options_.kernel_h_, kw = options_.kernel_w_, f = options_.filters_;
    kernel_ = Parameter<T>("kernel", Shape{f, c, kh, kw});
    initialize(kernel_.value, options_.kernel_initializer_, c * kh * kw, f * kh * kw, rng);
    if (options_.use_bias_) bias_ = Parameter<T>("bias", Shape{f});
  }

  /// The kernels' parameters for a batch of `batch` samples of the input shape the layer was
  /// built for.
  kernels::Conv2DParams params(std::size_t batch) const { return params_for(this->input_shape_, batch); }
  /// The kernel (filters, C, KH, KW), and the bias (filters), null without one.
  Parameter<T>& kernel() { return kernel_; }
  const Parameter<T>& kernel() const { return kernel_; }
  Parameter<T>* bias() { return options_.use_bias_ ? &bias_ : nullptr; }
  const Parameter<T>* bias() const { return options_.use_bias_ ? &bias_ : nullptr; }
  /// Where backward adds dW (filters, C, KH, KW) and db (filters): null for what is not
  /// needed. A frozen parameter's gradient is not (see layer.hpp), except that db is computed in
  /// dW's pass over the batch, so a frozen kernel under a trainable bias still gets its dW.
  T* kernel_grad_target() {
    return kernel_.trainable || (options_.use_bias_ && bias_.trainable) ? kernel_.grad.data() : nullptr;
  }
  T* bias_grad_target() { return options_.use_bias_ && bias_.trainable ? bias_.grad.data() : nullptr; }

  std::vector<Parameter<T>*> parameters() override { return this->appended_parameters(); }
  void append_parameters(std::vector<Parameter<T>*>& out) override {
    out.push_back(&kernel_);
    if (options_.use_bias_) out.push_back(&bias_);
  }

  std::string spec() const override {
    std::ostringstream os;
    os << "conv:" << options_.filters_ << ':' << options_.kernel_h_;
    if (options_.kernel_w_ != options_.kernel_h_) os << 'x' << options_.kernel_w_;
    if (options_.stride_h_ != 1 || options_.stride_w_ != 1) {
      os << ":s" << options_.stride_h_;
      if (options_.stride_w_ != options_.stride_h_) os << 'x' << options_.stride_w_;
    }
    if (options_.padding_ == Padding::Same) os << ":same";
    if (options_.padding_ == Padding::Explicit) {
      os << ":p" << options_.pad_h_;
      if (options_.pad_w_ != options_.pad_h_) os << 'x' << options_.pad_w_;
    }
    if (!options_.activation_.is_linear()) os << ':' << activation_spec(options_.activation_);
    if (!options_.use_bias_) os << ":nobias";
    if (options_.kernel_initializer_ != Initializer::GlorotUniform) os << ':' << to_string(options_.kernel_initializer_);
    return os.str();
  }

  std::unique_ptr<Layer<T>> clone() const override { return std::make_unique<Conv2D<T>>(*this); }

 protected:
  void forward_impl(const Tensor<T>& x, Tensor<T>& y) override { apply(x, y, workspace_); }
  void infer_impl(const Tensor<T>& x, Tensor<T>& y, LayerWorkspace<T>& ws) const override { apply(x, y, ws.buffer); }

  void release_training_state() override {
    Layer<T>::release_training_state();
    dz_ = Tensor<T>();
    workspace_ = Tensor<T>();
  }

  void backward_impl(const Tensor<T>& x, const Tensor<T>& y, const Tensor<T>& dy, Tensor<T>& dx) override {
    const kernels::Conv2DParams p = params_for(this->input_shape_, x.dim(0));
    // ReLU's derivative is fused into the kernel's per-sample loop (it reads y); other
    // activations take a pass of their own into dz_.
    const bool fused_relu = options_.activation_.kind == ActivationKind::ReLU;
    const T* dz = dy.data();
    if (!options_.activation_.is_linear() && !fused_relu) {
      dz_.resize(dy.shape());
      kernels::activation_backward(options_.activation_, y.data(), dy.data(), dz_.data(), p.batch, p.out_channels,
                                   p.out_pixels());
      dz = dz_.data();
    }
    kernels::conv2d_backward(p, x.data(), kernel_.value.data(), y.data(), dz, fused_relu, kernel_grad_target(),
                             bias_grad_target(), this->input_grad_needed() ? dx.data() : nullptr, workspace_);
  }

 private:
  /// The forward pass with the convolution's buffers in `workspace`: forward passes the layer's
  /// own, infer the caller's.
  void apply(const Tensor<T>& x, Tensor<T>& y, Tensor<T>& workspace) const {
    const kernels::Conv2DParams p = params_for(this->input_shape_, x.dim(0));
    y.resize(this->output_shape_.with_batch(p.batch));
    // ReLU is fused into the convolution's store; other activations take a pass of their own.
    const bool fused_relu = options_.activation_.kind == ActivationKind::ReLU;
    kernels::conv2d_forward(p, x.data(), kernel_.value.data(), options_.use_bias_ ? bias_.value.data() : nullptr,
                            y.data(), workspace, fused_relu);
    if (!fused_relu)
      kernels::activation_forward(options_.activation_, y.data(), y.data(), p.batch, p.out_channels, p.out_pixels());
  }

  kernels::Conv2DParams params_for(const Shape& in, std::size_t batch) const {
    FALTUNG_CHECK(in.rank() == 3, "Conv2D expects a per-sample input (channels, height, width), got ", in);
    kernels::Conv2DParams p;
    p.batch = batch;
    p.in_channels = in[0];
    p.out_channels = options_.filters_;
    p.h = window_axis(in[1], options_.kernel_h_, options_.stride_h_, options_.padding_, options_.pad_h_, "Conv2D height");
    p.w = window_axis(in[2], options_.kernel_w_, options_.stride_w_, options_.padding_, options_.pad_w_, "Conv2D width");
    return p;
  }

  Conv2DOptions options_;
  Parameter<T> kernel_, bias_;
  Tensor<T> dz_;         // (N, filters, OH, OW) gradient before an activation other than ReLU
  Tensor<T> workspace_;  // im2col buffers and per-thread partial sums, see kernels/conv2d.hpp
};

FALTUNG_END_NAMESPACE
