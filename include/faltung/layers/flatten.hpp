#pragma once
// Flatten: (N, C, H, W) -> (N, C*H*W), in row-major order (channel, then row, then column).
// Note that Keras flattens channels-last images in (row, column, channel) order; weights of a
// Dense after Flatten are therefore not interchangeable with a Keras model's.

#include <memory>
#include <string>

#include "faltung/kernels/copy.hpp"
#include "faltung/layers/layer.hpp"

FALTUNG_BEGIN_NAMESPACE

template <class T>
class Flatten : public Layer<T> {
 public:
  Flatten() = default;
  std::string type() const override { return "Flatten"; }
  std::string default_name() const override { return "flatten"; }

  Shape output_shape(const Shape& in) const override { return Shape{in.numel()}; }

  std::string spec() const override { return "flatten"; }
  std::unique_ptr<Layer<T>> clone() const override { return std::make_unique<Flatten<T>>(*this); }

 protected:
  void forward_impl(const Tensor<T>& x, Tensor<T>& y) override { apply(x, y); }
  void infer_impl(const Tensor<T>& x, Tensor<T>& y, LayerWorkspace<T>&) const override { apply(x, y); }

  void backward_impl(const Tensor<T>&, const Tensor<T>&, const Tensor<T>& dy, Tensor<T>& dx) override {
    if (!this->input_grad_needed()) return;
    kernels::parallel_copy(dy.data(), dy.size(), dx.data());
  }

 private:
  void apply(const Tensor<T>& x, Tensor<T>& y) const {
    y.resize(this->output_shape_.with_batch(x.dim(0)));
    kernels::parallel_copy(x.data(), x.size(), y.data());
  }
};

FALTUNG_END_NAMESPACE
