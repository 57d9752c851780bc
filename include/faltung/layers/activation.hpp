#pragma once
// Activation layers: ReLU, LeakyReLU, Sigmoid, Tanh, Softmax, and the general ActivationLayer
// they are. The arithmetic is in kernels/activation.hpp, shared with the `activation` option of
// Dense and Conv2D. Softmax normalises over axis 1: the features of a (N, F) input, the channels
// of a (N, C, H, W) one.

#include <memory>
#include <string>

#include "faltung/kernels/activation.hpp"
#include "faltung/layers/layer.hpp"

FALTUNG_BEGIN_NAMESPACE

template <class T>
class ActivationLayer : public Layer<T> {
 public:
  explicit ActivationLayer(Activation f) : f_(f) { detail::check_activation(ActivationLayer::type().c_str(), f_); }

  std::string type() const override {
    switch (f_.kind) {
      case ActivationKind::ReLU: return "ReLU";
      case ActivationKind::LeakyReLU: return "LeakyReLU";
      case ActivationKind::Sigmoid: return "Sigmoid";
      case ActivationKind::Tanh: return "Tanh";
      case ActivationKind::Softmax: return "Softmax";
      case ActivationKind::Linear: return "Activation";
    }
    return "Activation";
  }
  std::string default_name() const override { return f_.name(); }
  const Activation& activation() const { return f_; }

  Shape output_shape(const Shape& in) const override {
    FALTUNG_CHECK(in.rank() >= 1, type(), ": input must have at least one dimension");
    return in;
  }

  std::string spec() const override { return activation_spec(f_); }
  std::unique_ptr<Layer<T>> clone() const override { return std::make_unique<ActivationLayer<T>>(*this); }

 protected:
  void forward_impl(const Tensor<T>& x, Tensor<T>& y) override { apply(x, y); }
  void infer_impl(const Tensor<T>& x, Tensor<T>& y, LayerWorkspace<T>&) const override { apply(x, y); }

  void backward_impl(const Tensor<T>& x, const Tensor<T>& y, const Tensor<T>& dy, Tensor<T>& dx) override {
    if (!this->input_grad_needed()) return;
    std::size_t outer, axis, inner;
    layout(x.shape(), outer, axis, inner);
    kernels::activation_backward(f_, y.data(), dy.data(), dx.data(), outer, axis, inner);
  }

 private:
  void apply(const Tensor<T>& x, Tensor<T>& y) const {
    y.resize(x.shape());
    std::size_t outer, axis, inner;
    layout(x.shape(), outer, axis, inner);
    kernels::activation_forward(f_, x.data(), y.data(), outer, axis, inner);
  }

  static void layout(const Shape& s, std::size_t& outer, std::size_t& axis, std::size_t& inner) {
    outer = s[0];
    axis = s[1];
    inner = outer * axis == 0 ? 0 : s.numel() / (outer * axis);
  }
  Activation f_;
};

template <class T>
struct ReLU : ActivationLayer<T> {
  ReLU() : ActivationLayer<T>(ActivationKind::ReLU) {}
};
template <class T>
struct LeakyReLU : ActivationLayer<T> {
  /// alpha: the slope for negative inputs, positive. Default 0.3, as in Keras.
  explicit LeakyReLU(double alpha = 0.3) : ActivationLayer<T>(Activation(ActivationKind::LeakyReLU, alpha)) {}
};
template <class T>
struct Sigmoid : ActivationLayer<T> {
  Sigmoid() : ActivationLayer<T>(ActivationKind::Sigmoid) {}
};
template <class T>
struct Tanh : ActivationLayer<T> {
  Tanh() : ActivationLayer<T>(ActivationKind::Tanh) {}
};
template <class T>
struct Softmax : ActivationLayer<T> {
  Softmax() : ActivationLayer<T>(ActivationKind::Softmax) {}
};

FALTUNG_END_NAMESPACE
