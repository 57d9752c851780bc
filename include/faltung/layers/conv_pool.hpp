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

FALTUNG_BEGIN_NAMESPACE

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

  /// The execution list of a layer list: the layers in order, each pair that fuse() accepts
  /// replaced by its ConvPool, which `rewritten` owns. Sequential and InferenceModel run their
  /// layers this way.
  static void plan(const std::vector<std::unique_ptr<Layer<T>>>& layers, std::vector<Layer<T>*>& execution,
                   std::vector<std::unique_ptr<Layer<T>>>& rewritten) {
    execution.clear();
    rewritten.clear();
    for (std::size_t i = 0; i < layers.size(); ++i) {
      std::unique_ptr<Layer<T>> pair;
      if (i + 1 < layers.size()) pair = fuse(*layers[i], *layers[i + 1]);
      if (pair) {
        rewritten.push_back(std::move(pair));
        execution.push_back(rewritten.back().get());
        ++i;
      } else {
        execution.push_back(layers[i].get());
      }
    }
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
  void forward_impl(const Tensor<T>& x, Tensor<T>& y) override { apply(x, y, argmax_, workspace_); }
  void infer_impl(const Tensor<T>& x, Tensor<T>& y, LayerWorkspace<T>& ws) const override {
    apply(x, y, ws.argmax, ws.buffer);
  }

  void release_training_state() override {
    Layer<T>::release_training_state();
    std::vector<std::int32_t>().swap(argmax_);
    workspace_ = Tensor<T>();
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

  /// The fused forward pass, with the pool's winners in `argmax` and the convolution's buffers in
  /// `workspace`: forward passes the layer's own, infer the caller's.
  void apply(const Tensor<T>& x, Tensor<T>& y, std::vector<std::int32_t>& argmax, Tensor<T>& workspace) const {
    const Conv2D<T>& conv = *conv_;
    const kernels::Conv2DParams p = conv.params(x.dim(0));
    y.resize(this->output_shape_.with_batch(p.batch));
    argmax.resize(y.size());  // grows once, then reused: capacity is kept
    kernels::FusedMaxPool<T> pool;
    pool.p = pool_->params(p.batch);
    pool.out = y.data();
    pool.argmax = argmax.data();
    kernels::conv2d_forward(p, x.data(), conv.kernel().value.data(), bias_value(), static_cast<T*>(nullptr),
                            workspace, relu(), &pool);
  }

  bool relu() const { return conv_->options().activation_.kind == ActivationKind::ReLU; }
  const T* bias_value() const {
    const Parameter<T>* bias = static_cast<const Conv2D<T>&>(*conv_).bias();
    return bias ? bias->value.data() : nullptr;
  }

  Conv2D<T>* conv_;
  MaxPool2D<T>* pool_;
  std::vector<std::int32_t> argmax_;  // (N, filters, PH, PW) winning pixel of each window
  Tensor<T> workspace_;               // the convolution's, see kernels/conv2d.hpp
};

FALTUNG_END_NAMESPACE
