#pragma once
// Binary cross-entropy from logits. The contract common to every loss is in losses/loss.hpp.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <string>

#include "faltung/kernels/activation.hpp"
#include "faltung/losses/loss.hpp"
#include "faltung/tensor.hpp"

FALTUNG_BEGIN_NAMESPACE

/// Binary cross-entropy of logits against targets in [0, 1] (Keras's
/// BinaryCrossentropy(from_logits=True); PyTorch's BCEWithLogitsLoss).
///
///   pred    (N, ...) logits z: no sigmoid in front of the loss.
///   target  the same shape: labels 0 or 1, or soft labels in between.
///   loss    mean over every element of  max(z, 0) - z * y + log(1 + exp(-|z|)),
///           which is -y log(sigmoid(z)) - (1 - y) log(1 - sigmoid(z)) written so that no
///           exponent is positive: logits of +-1000 give finite losses. For (N, K) multi-label
///           targets this is Keras's mean over the last axis, then over the batch.
///   grad    (sigmoid(z) - y) / numel.
/// Accuracy counts elements, as Keras's binary_accuracy: logit > 0 (probability > 0.5) against
/// label >= 0.5.
struct BinaryCrossEntropy {
  /// The class name, which starts every error message.
  static constexpr const char* type_name = "BinaryCrossEntropy";
  static constexpr bool has_accuracy = true;
  std::string name() const { return "binary_crossentropy"; }

  /// What turns the network's output into probabilities, for Sequential::predict.
  Activation output_activation() const { return ActivationKind::Sigmoid; }

  template <class T>
  T operator()(const Tensor<T>& pred, const Tensor<T>& target,
               detail::non_deduced_t<Tensor<T>>* grad = nullptr) const {
    check(pred, target);
    const std::size_t size = pred.size();
    if (grad) grad->resize(pred.shape());
    const T* z = pred.data();
    const T* y = target.data();
    T* g = grad ? grad->data() : nullptr;
    const T inv_size = T(1) / T(size);
    double total = 0;
    for (std::size_t k = 0; k < size; ++k) {
      const T e = std::exp(-std::abs(z[k]));  // in (0, 1]: never overflows
      total += double(std::max(z[k], T(0)) - z[k] * y[k] + std::log1p(e));
      if (g) {
        const T sigmoid = z[k] >= T(0) ? T(1) / (T(1) + e) : e / (T(1) + e);
        g[k] = (sigmoid - y[k]) * inv_size;
      }
    }
    return T(total / double(size));
  }

  /// Elements whose sign of the logit agrees with the label.
  template <class T>
  std::size_t correct(const Tensor<T>& pred, const Tensor<T>& target) const {
    check(pred, target);
    std::size_t hits = 0;
    for (std::size_t k = 0; k < pred.size(); ++k) hits += (pred[k] > T(0)) == (target[k] >= T(0.5));
    return hits;
  }

  template <class T>
  std::size_t predictions(const Tensor<T>& pred) const {
    return pred.size();
  }

 private:
  template <class T>
  static void check(const Tensor<T>& pred, const Tensor<T>& target) {
    detail::loss_batch_size(type_name, pred, target);
    detail::check_same_shape(type_name, pred, target);
  }
};

FALTUNG_END_NAMESPACE
