#pragma once
// The loss contract: Loss<T>, what a compiled model holds; the loss structs every scalar type
// shares; and the helpers the losses share.
//
// A loss is a plain struct (not a template, so users write `SparseCrossEntropy{}`) with:
//
//   template <class T> T operator()(const Tensor<T>& pred, const Tensor<T>& target,
//                                   Tensor<T>* grad = nullptr) const;
//       The mean loss over the batch. pred is (N, ...), N > 0. When grad is not null it is
//       resized to pred's shape and receives d(returned loss)/d(pred): the 1/N of the mean (or
//       1/numel where the loss is a mean over every element) is already in it, so the caller
//       feeds it straight into the last layer's backward. Shapes that do not fit, and bad class
//       labels, are a faltung::Error that names both shapes, or the row and the label. A NaN or
//       infinity in pred is not an error: the loss comes out non-finite, and the training loop
//       decides what to do about it.
//
//   template <class T> std::size_t correct(const Tensor<T>& pred, const Tensor<T>& target) const;
//       How many of the batch's predictions are right, for an "accuracy" metric.
//   template <class T> std::size_t predictions(const Tensor<T>& pred) const;
//       How many predictions correct() judges in the batch: accuracy = sum(correct) /
//       sum(predictions). N for the categorical losses, every element for binary cross-entropy.
//   static constexpr bool has_accuracy;
//       false where accuracy means nothing (mean squared error); correct() then returns 0.
//   std::string name() const;
//       Keras's name of the loss: "sparse_categorical_crossentropy", ...
//   Activation output_activation() const;
//       What turns the network's output into the probabilities the loss compares: Softmax for
//       cross-entropy from logits, Sigmoid for binary cross-entropy, Linear where the output is
//       the prediction itself (mean squared error, probabilities already).
//
// Sequential::compile turns such a struct into a Loss<T> of the model's scalar type
// (detail::LossOf below); a user's own loss may also derive from Loss<T> directly.
//
// Losses accumulate the batch sum in double whatever T is: a float sum over a large batch
// would lose the digits that a validation loss compares.

#include <cmath>
#include <cstddef>
#include <memory>
#include <sstream>
#include <string>
#include <utility>

#include "faltung/config.hpp"
#include "faltung/kernels/activation.hpp"
#include "faltung/tensor.hpp"

FALTUNG_BEGIN_NAMESPACE

/// A target the loss cannot use, in a known row of the batch (a label that is not a class index).
/// The message names that row; fit and evaluate, which know where each row of the batch came
/// from, rethrow it naming the row of the data set instead (with_row).
class TargetError : public Error {
 public:
  TargetError(std::string before_row, std::size_t row, std::string after_row)
      : Error(before_row + std::to_string(row) + after_row),
        before_(std::move(before_row)),
        after_(std::move(after_row)),
        row_(row) {}
  /// The row of the batch.
  std::size_t row() const { return row_; }
  /// The same error naming row `row` of `where` instead: with_row(17, "y") says "label in row 17
  /// of y is ...".
  TargetError with_row(std::size_t row, const std::string& where) const {
    return TargetError(before_, row, " of " + where + after_);
  }

 private:
  std::string before_, after_;
  std::size_t row_;
};

/// A loss for one scalar type, as a model holds it. See the top of this file for the meaning of
/// each member; the structs of losses/ are adapted to it by detail::LossOf.
template <class T>
class Loss {
 public:
  virtual ~Loss() = default;

  /// The mean loss over the batch pred (N, ...) against target.
  virtual T value(const Tensor<T>& pred, const Tensor<T>& target) const = 0;
  /// The same mean loss, and grad (resized to pred's shape) = d(loss)/d(pred), the 1/N of the
  /// mean included: what the last layer's backward receives.
  virtual T value_and_gradient(const Tensor<T>& pred, const Tensor<T>& target, Tensor<T>& grad) const = 0;

  /// Whether accuracy means anything for this loss; correct() is 0 where it does not.
  virtual bool has_accuracy() const = 0;
  /// How many of the batch's predictions are right, and how many are judged.
  virtual std::size_t correct(const Tensor<T>& pred, const Tensor<T>& target) const = 0;
  virtual std::size_t predictions(const Tensor<T>& pred) const = 0;

  /// What turns the network's output into probabilities (Sequential::predict applies it).
  virtual Activation output_activation() const = 0;
  /// Keras's name: "sparse_categorical_crossentropy", "binary_crossentropy", ...
  virtual std::string name() const = 0;

  /// A copy, for copying a compiled model.
  virtual std::unique_ptr<Loss<T>> clone() const = 0;
};

namespace detail {

/// Loss<T> from a loss struct of losses/ (or a user's struct with the same members).
template <class T, class L>
class LossOf final : public Loss<T> {
 public:
  explicit LossOf(const L& loss) : loss_(loss) {}

  T value(const Tensor<T>& pred, const Tensor<T>& target) const override { return loss_(pred, target, nullptr); }
  T value_and_gradient(const Tensor<T>& pred, const Tensor<T>& target, Tensor<T>& grad) const override {
    return loss_(pred, target, &grad);
  }
  bool has_accuracy() const override { return L::has_accuracy; }
  std::size_t correct(const Tensor<T>& pred, const Tensor<T>& target) const override {
    return loss_.correct(pred, target);
  }
  std::size_t predictions(const Tensor<T>& pred) const override { return loss_.predictions(pred); }
  Activation output_activation() const override { return loss_.output_activation(); }
  std::string name() const override { return loss_.name(); }
  std::unique_ptr<Loss<T>> clone() const override { return std::make_unique<LossOf>(*this); }

 private:
  L loss_;
};

/// T, in a context that template argument deduction ignores (C++20's std::type_identity_t):
/// the gradient pointer takes its type from pred, so `loss(pred, target, nullptr)` compiles.
template <class T>
struct NonDeduced {
  using type = T;
};
template <class T>
using non_deduced_t = typename NonDeduced<T>::type;

/// The batch size N = pred.dim(0); an empty batch has no mean.
template <class T>
std::size_t loss_batch_size(const char* loss, const Tensor<T>& pred, const Tensor<T>& target) {
  FALTUNG_CHECK(pred.rank() >= 1 && pred.dim(0) > 0 && pred.size() > 0, loss,
                ": need a non-empty batch, got predictions ", pred.shape(), " and targets ", target.shape());
  return pred.dim(0);
}

template <class T>
void check_same_shape(const char* loss, const Tensor<T>& pred, const Tensor<T>& target) {
  FALTUNG_CHECK(pred.shape() == target.shape(), loss, ": predictions ", pred.shape(), " and targets ",
                target.shape(), " must have the same shape");
}

/// pred must be (N, C) with C >= 1: one row of class scores per sample.
template <class T>
void check_class_scores(const char* loss, const Tensor<T>& pred, const Tensor<T>& target) {
  FALTUNG_CHECK(pred.rank() == 2 && pred.dim(1) > 0, loss, ": predictions must be (N, C) class scores, got ",
                pred.shape(), " (targets ", target.shape(), ")");
}

/// The class index a label stands for; a label that is not an integer in [0, classes) is an error
/// naming its row, because a wrong label file otherwise trains silently into nonsense.
template <class T>
std::size_t class_index(const char* loss, T label, std::size_t row, std::size_t classes) {
  if (!(std::isfinite(label) && label == std::floor(label) && label >= T(0) && label < T(classes))) {
    std::ostringstream after;
    after << " is " << label << ", not a class index in [0, " << classes << ")";
    throw TargetError(std::string(loss) + ": label in row ", row, after.str());
  }
  return static_cast<std::size_t>(label);
}

/// The largest element of row[0, n). A NaN first element makes the result NaN, and a NaN later
/// one is caught by the sum of exponentials: either way the loss becomes NaN, never a crash.
template <class T>
T row_max(const T* row, std::size_t n) {
  T m = row[0];
  for (std::size_t j = 1; j < n; ++j)
    if (row[j] > m) m = row[j];
  return m;
}

/// Index of the first largest element of row[0, n) (ties go to the lower index, like numpy).
template <class T>
std::size_t row_argmax(const T* row, std::size_t n) {
  std::size_t best = 0;
  for (std::size_t j = 1; j < n; ++j)
    if (row[j] > row[best]) best = j;
  return best;
}

/// Writes exp(z[j] - max z) into e[j] and returns their sum. Shifting by the maximum keeps every
/// exponent <= 0, so logits of +-1000 neither overflow nor all underflow: the sum is >= 1.
template <class T>
T shifted_exp(const T* z, std::size_t n, T max_z, T* e) {
  T sum = 0;
  for (std::size_t j = 0; j < n; ++j) {
    e[j] = std::exp(z[j] - max_z);
    sum += e[j];
  }
  return sum;
}

/// The same sum without storing the exponentials (the loss alone, no gradient wanted).
template <class T>
T shifted_exp_sum(const T* z, std::size_t n, T max_z) {
  T sum = 0;
  for (std::size_t j = 0; j < n; ++j) sum += std::exp(z[j] - max_z);
  return sum;
}

}  // namespace detail
FALTUNG_END_NAMESPACE
