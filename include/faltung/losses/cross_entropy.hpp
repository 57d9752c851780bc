#pragma once
// Categorical cross-entropy, with integer labels (SparseCrossEntropy) or one-hot / soft targets
// (CategoricalCrossEntropy). The contract common to every loss is in losses/loss.hpp.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <string>

#include "faltung/kernels/activation.hpp"
#include "faltung/losses/loss.hpp"
#include "faltung/tensor.hpp"

FALTUNG_BEGIN_NAMESPACE

/// Cross-entropy of integer class labels against logits (Keras's
/// SparseCategoricalCrossentropy(from_logits=True); PyTorch's CrossEntropyLoss).
///
///   pred    (N, C) logits: the last Dense layer's output, no softmax in front of the loss.
///   target  (N) or (N, 1) class indices stored as T: 0, 1, ..., C-1.
///   loss    mean over rows of  logsumexp(pred[i, :]) - pred[i, target[i]].
///   grad    (softmax(pred[i, :]) - onehot(target[i])) / N.
///
/// A label that is not an integer in [0, C) is a faltung::Error naming its row and value.
/// The log-sum-exp is shifted by the row maximum, so logits like 1000 and -1000 give finite
/// losses and gradients.
struct SparseCrossEntropy {
  /// The class name, which starts every error message.
  static constexpr const char* type_name = "SparseCrossEntropy";
  static constexpr bool has_accuracy = true;
  std::string name() const { return "sparse_categorical_crossentropy"; }

  /// What turns the network's output into probabilities, for Sequential::predict.
  Activation output_activation() const { return ActivationKind::Softmax; }

  template <class T>
  T operator()(const Tensor<T>& pred, const Tensor<T>& target,
               detail::non_deduced_t<Tensor<T>>* grad = nullptr) const {
    const std::size_t n = check(pred, target);
    const std::size_t c = pred.dim(1);
    if (grad) grad->resize(pred.shape());
    const T inv_n = T(1) / T(n);
    double total = 0;
    for (std::size_t i = 0; i < n; ++i) {
      const T* z = pred.data() + i * c;  // row i of (N, C)
      const std::size_t y = static_cast<std::size_t>(target[i]);  // check() vetted it
      const T m = detail::row_max(z, c);
      T* g = grad ? grad->data() + i * c : nullptr;
      const T sum = g ? detail::shifted_exp(z, c, m, g) : detail::shifted_exp_sum(z, c, m);
      // (m - z[y]) first: at logits near 1000 the small log(sum) would vanish in m + log(sum).
      total += double((m - z[y]) + std::log(sum));
      if (g) {
        const T scale = inv_n / sum;
        for (std::size_t j = 0; j < c; ++j) g[j] *= scale;
        g[y] -= inv_n;
      }
    }
    return T(total / double(n));
  }

  /// Rows whose largest logit is at the labelled class.
  template <class T>
  std::size_t correct(const Tensor<T>& pred, const Tensor<T>& target) const {
    const std::size_t n = check(pred, target);
    const std::size_t c = pred.dim(1);
    std::size_t hits = 0;
    for (std::size_t i = 0; i < n; ++i)
      hits += detail::row_argmax(pred.data() + i * c, c) == static_cast<std::size_t>(target[i]);
    return hits;
  }

  template <class T>
  std::size_t predictions(const Tensor<T>& pred) const {
    return pred.rank() == 0 ? 0 : pred.dim(0);
  }

 private:
  /// Returns N after checking pred (N, C) against target (N) or (N, 1) and every label, all
  /// before anything is computed: a bad label leaves no half-written gradient behind.
  template <class T>
  static std::size_t check(const Tensor<T>& pred, const Tensor<T>& target) {
    const std::size_t n = detail::loss_batch_size(type_name, pred, target);
    detail::check_class_scores(type_name, pred, target);
    const bool fits = (target.rank() == 1 && target.dim(0) == n) ||
                      (target.rank() == 2 && target.dim(0) == n && target.dim(1) == 1);
    FALTUNG_CHECK(fits, type_name, ": predictions ", pred.shape(), " need targets (", n, ") or (", n,
                  ", 1) of class indices, got ", target.shape());
    for (std::size_t i = 0; i < n; ++i) detail::class_index(type_name, target[i], i, pred.dim(1));
    return n;
  }
};

/// Cross-entropy against one-hot (or soft) targets, as Keras's CategoricalCrossentropy.
///
///   pred    (N, C): probabilities (from_logits == false, Keras's default: a Softmax layer in
///           front) or logits (from_logits == true).
///   target  (N, C): one-hot rows, or any non-negative rows (label smoothing).
///
/// from_logits == true:  loss_i = sum_j t_ij * (logsumexp(z_i) - z_ij),
///                       grad   = (softmax(z_i) * sum_j t_ij - t_i) / N.
/// from_logits == false: as Keras, each row is first scaled to sum to 1 (q = p / sum p) and then
///                       clipped to [epsilon, 1 - epsilon] with epsilon = 1e-7, so a probability
///                       of exactly 0 costs -log(1e-7) instead of infinity:
///                       loss_i = -sum_j t_ij * log(clip(q_ij)). The gradient is that of this
///                       expression, the scaling included; it is zero through a clipped q.
/// Targets of 0 contribute nothing, even against a logit of -infinity (0 * inf is not NaN here).
struct CategoricalCrossEntropy {
  /// The class name, which starts every error message.
  static constexpr const char* type_name = "CategoricalCrossEntropy";
  static constexpr bool has_accuracy = true;
  /// The clipping bound for probabilities (Keras's backend epsilon).
  static constexpr double epsilon = 1e-7;

  /// from_logits: false (the default, as Keras) when pred holds probabilities, true for logits.
  CategoricalCrossEntropy() = default;
  explicit CategoricalCrossEntropy(bool from_logits) : from_logits_(from_logits) {}

  bool from_logits() const { return from_logits_; }
  std::string name() const { return "categorical_crossentropy"; }

  /// What turns the network's output into probabilities, for Sequential::predict.
  Activation output_activation() const { return from_logits() ? ActivationKind::Softmax : ActivationKind::Linear; }

  template <class T>
  T operator()(const Tensor<T>& pred, const Tensor<T>& target,
               detail::non_deduced_t<Tensor<T>>* grad = nullptr) const {
    const std::size_t n = check(pred, target);
    const std::size_t c = pred.dim(1);
    if (grad) grad->resize(pred.shape());
    double total = 0;
    for (std::size_t i = 0; i < n; ++i) {
      const T* p = pred.data() + i * c;  // row i of (N, C)
      const T* t = target.data() + i * c;
      T* g = grad ? grad->data() + i * c : nullptr;
      total += double(from_logits_ ? logits_row(p, t, c, n, g) : probabilities_row(p, t, c, n, g));
    }
    return T(total / double(n));
  }

  /// Rows whose largest prediction is at the target's largest entry.
  template <class T>
  std::size_t correct(const Tensor<T>& pred, const Tensor<T>& target) const {
    const std::size_t n = check(pred, target);
    const std::size_t c = pred.dim(1);
    std::size_t hits = 0;
    for (std::size_t i = 0; i < n; ++i)
      hits += detail::row_argmax(pred.data() + i * c, c) == detail::row_argmax(target.data() + i * c, c);
    return hits;
  }

  template <class T>
  std::size_t predictions(const Tensor<T>& pred) const {
    return pred.rank() == 0 ? 0 : pred.dim(0);
  }

 private:
  template <class T>
  static std::size_t check(const Tensor<T>& pred, const Tensor<T>& target) {
    const std::size_t n = detail::loss_batch_size(type_name, pred, target);
    detail::check_class_scores(type_name, pred, target);
    detail::check_same_shape(type_name, pred, target);
    return n;
  }

  /// One row from logits z; returns its loss and, if g is not null, writes its gradient.
  template <class T>
  static T logits_row(const T* z, const T* t, std::size_t c, std::size_t n, T* g) {
    const T m = detail::row_max(z, c);
    const T sum = g ? detail::shifted_exp(z, c, m, g) : detail::shifted_exp_sum(z, c, m);
    const T log_sum = std::log(sum);
    T loss = 0, t_sum = 0;
    for (std::size_t j = 0; j < c; ++j) {
      t_sum += t[j];
      if (t[j] != T(0)) loss += t[j] * ((m - z[j]) + log_sum);
    }
    if (g) {
      const T inv_n = T(1) / T(n);
      const T scale = t_sum / sum;
      for (std::size_t j = 0; j < c; ++j) g[j] = (g[j] * scale - t[j]) * inv_n;
    }
    return loss;
  }

  /// One row from probabilities p, Keras's way: scale to sum 1, clip, log.
  template <class T>
  static T probabilities_row(const T* p, const T* t, std::size_t c, std::size_t n, T* g) {
    const T lo = T(epsilon), hi = T(1) - T(epsilon);
    T sum = 0;
    for (std::size_t j = 0; j < c; ++j) sum += p[j];
    T loss = 0;
    T g_dot_q = 0;  // sum_j dL/dq_j * q_j, the part of the gradient that flows through `sum`
    for (std::size_t j = 0; j < c; ++j) {
      const T q = p[j] / sum;
      const T clipped = std::min(std::max(q, lo), hi);
      if (t[j] != T(0)) loss -= t[j] * std::log(clipped);
      if (g) {
        // The clip passes the gradient on its closed interval, as TensorFlow's and PyTorch's do.
        const T dq = (q >= lo && q <= hi) ? -t[j] / clipped : T(0);
        g[j] = dq;
        g_dot_q += dq * q;
      }
    }
    if (g) {
      // q_j = p_j / sum  =>  dL/dp_k = (dL/dq_k - sum_j dL/dq_j q_j) / sum.
      const T scale = T(1) / (sum * T(n));
      for (std::size_t j = 0; j < c; ++j) g[j] = (g[j] - g_dot_q) * scale;
    }
    return loss;
  }

  bool from_logits_ = false;
};

FALTUNG_END_NAMESPACE
