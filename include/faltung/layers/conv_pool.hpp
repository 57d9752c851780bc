#pragma once
// ConvPool: a Conv2D and the MaxPool2D right after it, run as one layer.
//   x (N, C, H, W)   y (N, filters, PH, PW): the pool's output
//   forward   y = pool(f(conv(x, W) + b))                 f: ReLU or none
//   backward  dz = f'(.) * unpool(dy)   dW += corr(x, dz)   db += sum dz   dx = conv^T(dz, W)
//
// An optimisation that no other layer knows about: Sequential::build rewrites its execution list
// (ConvPool::fuse), and the user's layer list, summary(), spec(), parameters and model files
// still show the two layers as written. A ConvPool refers to the two layers, which stay in the
// model's layer list, and holds no weights of its own.
//
// The convolution runs with the pool fused into its kernels (kernels::FusedMaxPool): each
// sample's output is pooled while it is in cache, and its gradient unpooled there, so the
// full-size convolution output (four times the pooled one for a 2x2 pool) never goes to
// memory. Plane for plane it is the pool's own arithmetic, so the numbers are bitwise those of
// the two layers run one after the other (tests/test_model.cpp, FusedConvolutionAndPool).

#include <cstdint>
#include <memory>
#include <string>
#include <typeinfo>
#include <vector>

#include "faltung/kernels/conv2d.hpp"
#include "faltung/layers/conv2d.hpp"
#include "faltung/layers/layer.hpp"
#include "faltung/layers/max_pool2d.hpp"

namespace faltung {

template <class T>
class ConvPool : public Layer<T> {
 public:
  /// The pair as one ConvPool, or null when it cannot run fused: `first` must be exactly a
  /// Conv2D (a class derived from it may compute something else) with a ReLU or no activation
  /// (the fused backward reads the ReLU's gate from the pooled output), `second` exactly a
  /// MaxPool2D, both built.
  static std::unique_ptr<Layer<T>> fuse(Layer<T>& first, Layer<T>& second) {
    if (typeid(first) != typeid(Conv2D<T>) || typeid(second) != typeid(MaxPool2D<T>)) return nullptr;
    auto& conv = static_cast<Conv2D<T>&>(first);
    auto& pool = static_cast<MaxPool2D<T>&>(second);
    const ActivationKind f = conv.options().activation_.kind;
    if ((f != ActivationKind::ReLU && f != ActivationKind::Linear) || !conv.built() || !pool.built()) return nullptr;
    return std::unique_ptr<Layer<T>>(new ConvPool<T>(conv, pool));
  }

  std::string type() const override { return "ConvPool"; }
  std::string default_name() const override { return "conv_pool"; }
  Shape output_shape(const Shape& in) const override { return pool_->output_shape(conv_->output_shape(in)); }

  /// The convolution's parameters (the pool has none).
  std::vector<Parameter<T>*> parameters() override { return conv_->parameters(); }
  void append_parameters(std::vector<Parameter<T>*>& out) override { conv_->append_parameters(out); }

  std::string spec() const override { return conv_->spec() + "," + pool_->spec(); }

  /// A ConvPool refers to two layers of one model; a copied model makes its own (Sequential's
  /// copy plans its execution afresh), so copying one is a mistake.
  std::unique_ptr<Layer<T>> clone() const override {
    detail::fail("ConvPool '", this->name_, "' refers to the layers of one model and is not copied");
  }

 protected:
  void forward_impl(const Tensor<T>& x, Tensor<T>& y) override {
    const kernels::Conv2DParams p = conv_->params(x.dim(0));
    y.resize(this->output_shape_.with_batch(p.batch));
    argmax_.resize(y.size());  // grows once, then reused: capacity is kept
    kernels::FusedMaxPool<T> pool;
    pool.p = pool_->params(p.batch);
    pool.out = y.data();
    pool.argmax = argmax_.data();
    kernels::conv2d_forward(p, x.data(), conv_->kernel().value.data(), bias_value(), static_cast<T*>(nullptr),
                            workspace_, relu(), &pool);
  }

  void backward_impl(const Tensor<T>& x, const Tensor<T>& y, const Tensor<T>& dy, Tensor<T>& dx) override {
    const kernels::Conv2DParams p = conv_->params(x.dim(0));
    kernels::FusedMaxPool<T> pool;
    pool.p = pool_->params(p.batch);
    pool.argmax = argmax_.data();
    pool.y = y.data();
    pool.dy = dy.data();
    kernels::conv2d_backward(p, x.data(), conv_->kernel().value.data(), static_cast<const T*>(nullptr),
                             static_cast<const T*>(nullptr), relu(), conv_->kernel_grad_target(),
                             conv_->bias_grad_target(), this->input_grad_needed() ? dx.data() : nullptr, workspace_,
                             &pool);
  }

 private:
  ConvPool(Conv2D<T>& conv, MaxPool2D<T>& pool) : conv_(&conv), pool_(&pool) {
    this->set_name(conv.name() + "+" + pool.name());
    this->input_shape_ = conv.input_shape();
    this->output_shape_ = output_shape(conv.input_shape());
    this->built_ = true;
    this->set_input_grad_needed(conv.input_grad_needed());
  }

  bool relu() const { return conv_->options().activation_.kind == ActivationKind::ReLU; }
  const T* bias_value() const {
    const Parameter<T>* bias = conv_->bias();
    return bias ? bias->value.data() : nullptr;
  }

  Conv2D<T>* conv_;
  MaxPool2D<T>* pool_;
  std::vector<std::int32_t> argmax_;  // (N, filters, PH, PW) winning pixel of each window
  Tensor<T> workspace_;               // the convolution's, see kernels/conv2d.hpp
};

}  // namespace faltung
