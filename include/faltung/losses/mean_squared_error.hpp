#pragma once
// Mean squared error. The contract common to every loss is in losses/loss.hpp.

#include <cstddef>
#include <string>

#include "faltung/kernels/activation.hpp"
#include "faltung/losses/loss.hpp"
#include "faltung/tensor.hpp"

FALTUNG_BEGIN_NAMESPACE

/// Mean squared error, for regression (Keras's MeanSquaredError, PyTorch's MSELoss).
///
///   pred, target  the same shape (N, ...).
///   loss          mean over every element of (pred - target)^2: Keras's mean over the last
///                 axis and then over the batch, which is the same number.
///   grad          2 (pred - target) / numel.
/// There is no accuracy: correct() returns 0 and has_accuracy is false.
struct MeanSquaredError {
  /// The class name, which starts every error message.
  static constexpr const char* type_name = "MeanSquaredError";
  static constexpr bool has_accuracy = false;
  std::string name() const { return "mean_squared_error"; }

  /// The output is the prediction itself.
  Activation output_activation() const { return ActivationKind::Linear; }

  template <class T>
  T operator()(const Tensor<T>& pred, const Tensor<T>& target,
               detail::non_deduced_t<Tensor<T>>* grad = nullptr) const {
    check(pred, target);
    const std::size_t size = pred.size();
    if (grad) grad->resize(pred.shape());
    const T* p = pred.data();
    const T* t = target.data();
    T* g = grad ? grad->data() : nullptr;
    const T two_over_size = T(2) / T(size);
    double total = 0;
    for (std::size_t k = 0; k < size; ++k) {
      const T d = p[k] - t[k];
      total += double(d * d);
      if (g) g[k] = d * two_over_size;
    }
    return T(total / double(size));
  }

  template <class T>
  std::size_t correct(const Tensor<T>& pred, const Tensor<T>& target) const {
    check(pred, target);
    return 0;
  }

  template <class T>
  std::size_t predictions(const Tensor<T>& pred) const {
    return pred.rank() == 0 ? 0 : pred.dim(0);
  }

 private:
  template <class T>
  static void check(const Tensor<T>& pred, const Tensor<T>& target) {
    detail::loss_batch_size(type_name, pred, target);
    detail::check_same_shape(type_name, pred, target);
  }
};

FALTUNG_END_NAMESPACE
