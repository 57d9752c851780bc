// Losses: gradients against central differences, values and gradients against PyTorch
// (tests/reference/make_loss_reference.py writes reference/loss_reference.inc), extreme logits,
// NaN inputs, error messages, and the accuracy counts.

#include <gtest/gtest.h>

#include <cmath>
#include <cstddef>
#include <limits>
#include <string>
#include <vector>

#include "faltung/losses/losses.hpp"
#include "faltung/random.hpp"
#include "reference/loss_reference.inc"

using namespace faltung;

#include "test_support.hpp"

namespace {

using faltung::test::contains;
using faltung::test::error_of;

Shape shape_of(const std::vector<std::size_t>& dims) {
  Shape s;
  for (std::size_t d : dims) s.push_back(d);
  return s;
}

template <class T>
Tensor<T> tensor_of(const std::vector<std::size_t>& dims, const std::vector<double>& values) {
  Tensor<T> t(shape_of(dims));
  for (std::size_t k = 0; k < values.size(); ++k) t[k] = T(values[k]);
  return t;
}

Tensor<double> uniform(const Shape& shape, Random& rng, double lo, double hi) {
  Tensor<double> t(shape);
  for (double& v : t) v = rng.uniform(lo, hi);
  return t;
}

/// Random class indices in [0, classes), as a (N) tensor.
Tensor<double> labels(std::size_t n, std::size_t classes, Random& rng) {
  Tensor<double> t(Shape{n});
  for (double& v : t) v = double(rng.uniform_int(classes));
  return t;
}

/// Rows that sum to 1: one-hot when `soft` is false, random distributions otherwise.
Tensor<double> distributions(std::size_t n, std::size_t c, bool soft, Random& rng) {
  Tensor<double> t(Shape{n, c});
  for (std::size_t i = 0; i < n; ++i) {
    if (!soft) {
      t[i * c + rng.uniform_int(c)] = 1.0;
      continue;
    }
    double sum = 0;
    for (std::size_t j = 0; j < c; ++j) sum += t[i * c + j] = rng.uniform(0.0, 1.0);
    for (std::size_t j = 0; j < c; ++j) t[i * c + j] /= sum;
  }
  return t;
}

/// The loss's gradient against central differences of the loss itself, element by element.
template <class Loss>
void check_gradient(const Loss& loss, Tensor<double> pred, const Tensor<double>& target) {
  SCOPED_TRACE(loss.name() + " on predictions " + pred.shape().to_string());
  Tensor<double> grad;
  const double value = loss(pred, target, &grad);
  ASSERT_EQ(grad.shape(), pred.shape());
  EXPECT_EQ(loss(pred, target, nullptr), value) << "the loss must not depend on whether a gradient is wanted";
  const double h = 1e-6;
  for (std::size_t k = 0; k < pred.size(); ++k) {
    const double x = pred[k];
    pred[k] = x + h;
    const double plus = loss(pred, target, nullptr);
    pred[k] = x - h;
    const double minus = loss(pred, target, nullptr);
    pred[k] = x;
    const double numeric = (plus - minus) / (2 * h);
    EXPECT_NEAR(grad[k], numeric, 1e-7 * std::max(1.0, std::abs(numeric))) << "element " << k;
  }
}

/// The loss and gradient of a PyTorch reference case, in T.
template <class T, class Loss>
void check_reference(const Loss& loss, const loss_reference::Case& c, double tolerance) {
  SCOPED_TRACE(loss.name() + (sizeof(T) == sizeof(float) ? " (float)" : " (double)"));
  const Tensor<T> pred = tensor_of<T>(c.pred_shape, c.pred);
  const Tensor<T> target = tensor_of<T>(c.target_shape, c.target);
  Tensor<T> grad;
  const T value = loss(pred, target, &grad);
  EXPECT_NEAR(double(value), c.loss, tolerance * std::max(1.0, std::abs(c.loss)));
  ASSERT_EQ(grad.shape(), pred.shape());
  for (std::size_t k = 0; k < grad.size(); ++k) EXPECT_NEAR(double(grad[k]), c.grad[k], tolerance) << "element " << k;
}

template <class Loss>
void check_reference_both(const Loss& loss, const loss_reference::Case& c) {
  check_reference<double>(loss, c, 1e-12);
  check_reference<float>(loss, c, 1e-5);
}



// ---------------------------------------------------------------------------------------------
// Gradients against central differences

TEST(LossGradient, SparseCrossEntropy) {
  Random rng(1);
  for (auto [n, c] : {std::pair<std::size_t, std::size_t>{1, 3}, {4, 5}, {7, 10}}) {
    Tensor<double> target = labels(n, c, rng);
    check_gradient(SparseCrossEntropy{}, uniform(Shape{n, c}, rng, -3, 3), target);
    target.reshape(Shape{n, 1});  // the (N, 1) label column that a CSV loader gives
    check_gradient(SparseCrossEntropy{}, uniform(Shape{n, c}, rng, -10, 10), target);
  }
}

TEST(LossGradient, CategoricalCrossEntropyFromLogits) {
  Random rng(2);
  for (auto [n, c] : {std::pair<std::size_t, std::size_t>{1, 2}, {3, 4}, {6, 7}})
    for (bool soft : {false, true})
      check_gradient(CategoricalCrossEntropy(true), uniform(Shape{n, c}, rng, -4, 4), distributions(n, c, soft, rng));
}

TEST(LossGradient, CategoricalCrossEntropyFromProbabilities) {
  // Unnormalised positive rows, away from the clip: the gradient includes Keras's scaling.
  Random rng(3);
  for (auto [n, c] : {std::pair<std::size_t, std::size_t>{1, 2}, {2, 3}, {5, 4}})
    for (bool soft : {false, true})
      check_gradient(CategoricalCrossEntropy{}, uniform(Shape{n, c}, rng, 0.1, 1.0), distributions(n, c, soft, rng));
}

TEST(LossGradient, BinaryCrossEntropy) {
  Random rng(4);
  for (const Shape& s : {Shape{5, 1}, Shape{3, 4}, Shape{2, 3, 4}}) {
    Tensor<double> hard = uniform(s, rng, 0, 1);
    for (double& v : hard) v = v > 0.5 ? 1.0 : 0.0;
    check_gradient(BinaryCrossEntropy{}, uniform(s, rng, -5, 5), hard);
    check_gradient(BinaryCrossEntropy{}, uniform(s, rng, -5, 5), uniform(s, rng, 0, 1));
  }
}

TEST(LossGradient, MeanSquaredError) {
  Random rng(5);
  for (const Shape& s : {Shape{4, 1}, Shape{3, 5}, Shape{2, 3, 2, 2}})
    check_gradient(MeanSquaredError{}, uniform(s, rng, -2, 2), uniform(s, rng, -2, 2));
}

// ---------------------------------------------------------------------------------------------
// Values and gradients against PyTorch

TEST(LossReference, SparseCrossEntropy) {
  check_reference_both(SparseCrossEntropy{}, loss_reference::sparse);
  check_reference_both(SparseCrossEntropy{}, loss_reference::sparse_extreme);
}

TEST(LossReference, CategoricalCrossEntropy) {
  check_reference_both(CategoricalCrossEntropy(true), loss_reference::categorical_logits);
  check_reference_both(CategoricalCrossEntropy(true), loss_reference::categorical_logits_extreme);
  check_reference_both(CategoricalCrossEntropy{}, loss_reference::categorical_probabilities);
  check_reference_both(CategoricalCrossEntropy(false), loss_reference::categorical_probabilities_clipped);
}

TEST(LossReference, BinaryCrossEntropy) {
  check_reference_both(BinaryCrossEntropy{}, loss_reference::binary);
  check_reference_both(BinaryCrossEntropy{}, loss_reference::binary_extreme);
}

TEST(LossReference, MeanSquaredError) {
  check_reference_both(MeanSquaredError{}, loss_reference::mse);
  check_reference_both(MeanSquaredError{}, loss_reference::mse_rank4);
}

TEST(LossReference, SparseAndCategoricalAgreeOnOneHotTargets) {
  Random rng(6);
  const Tensor<double> logits = uniform(Shape{5, 4}, rng, -3, 3);
  const Tensor<double> target = labels(5, 4, rng);
  Tensor<double> one_hot(Shape{5, 4});
  for (std::size_t i = 0; i < 5; ++i) one_hot[i * 4 + std::size_t(target[i])] = 1.0;
  Tensor<double> g_sparse, g_categorical;
  const double sparse = SparseCrossEntropy{}(logits, target, &g_sparse);
  const double categorical = CategoricalCrossEntropy(true)(logits, one_hot, &g_categorical);
  EXPECT_NEAR(sparse, categorical, 1e-14);
  for (std::size_t k = 0; k < 20; ++k) EXPECT_NEAR(g_sparse[k], g_categorical[k], 1e-15);
}

// ---------------------------------------------------------------------------------------------
// Stability, NaN, reuse of the gradient tensor

TEST(LossStability, ExtremeLogitsStayFiniteInFloat) {
  // Naive softmax overflows at exp(89) in float; the shifted form does not.
  const Tensor<float> logits(Shape{2, 3}, {1000.f, -1000.f, 0.f, 88.f, 89.f, 3.0e4f});
  const Tensor<float> target(Shape{2}, {0.f, 1.f});
  Tensor<float> grad;
  const float loss = SparseCrossEntropy{}(logits, target, &grad);
  EXPECT_TRUE(std::isfinite(loss));
  EXPECT_NEAR(loss, (0.f + (3.0e4f - 89.f)) / 2.f, 1e-2f);
  for (float g : grad) EXPECT_TRUE(std::isfinite(g));
  EXPECT_NEAR(grad[5], 0.5f, 1e-6f);  // softmax puts all of row 1 on class 2

  const Tensor<float> z(Shape{2, 1}, {1.0e4f, -1.0e4f});
  const Tensor<float> y(Shape{2, 1}, {0.f, 0.f});
  Tensor<float> bce_grad;
  EXPECT_NEAR(BinaryCrossEntropy{}(z, y, &bce_grad), 5000.f, 1e-2f);
  EXPECT_NEAR(bce_grad[0], 0.5f, 1e-7f);
  EXPECT_NEAR(bce_grad[1], 0.0f, 1e-7f);

  // A probability of exactly 0 for the true class costs -log(1e-7), not infinity.
  const Tensor<float> probs(Shape{1, 2}, {1.f, 0.f});
  const Tensor<float> one_hot(Shape{1, 2}, {0.f, 1.f});
  EXPECT_NEAR(CategoricalCrossEntropy{}(probs, one_hot, nullptr), -std::log(1e-7f), 1e-3f);
}

TEST(LossStability, LargeLogitsKeepTheirDigitsInFloat) {
  // Float's spacing at 1000 is 6e-5: computing (1000 + log(sum)) - 1000 would lose four digits
  // of a loss of 0.31; (max - z[label]) + log(sum) keeps them.
  const Tensor<float> logits(Shape{2, 2}, {1000.f, 999.f, -999.f, -1000.f});
  const Tensor<float> target(Shape{2}, {0.f, 0.f});
  EXPECT_NEAR(SparseCrossEntropy{}(logits, target), std::log1p(std::exp(-1.0)), 1e-6);
  const Tensor<float> one_hot(Shape{2, 2}, {1.f, 0.f, 1.f, 0.f});
  EXPECT_NEAR(CategoricalCrossEntropy(true)(logits, one_hot), std::log1p(std::exp(-1.0)), 1e-6);
}

TEST(LossStability, ZeroTargetAgainstMinusInfinityCostsNothing) {
  // A masked class (logit -inf) with target 0 is 0 * inf in the textbook formula; it is skipped.
  const double inf = std::numeric_limits<double>::infinity();
  const Tensor<double> logits(Shape{1, 3}, {0.0, -inf, 0.0});
  const Tensor<double> target(Shape{1, 3}, {1.0, 0.0, 0.0});
  Tensor<double> grad;
  EXPECT_NEAR(CategoricalCrossEntropy(true)(logits, target, &grad), std::log(2.0), 1e-15);
  EXPECT_NEAR(grad[0], -0.5, 1e-15);
  EXPECT_EQ(grad[1], 0.0);
  EXPECT_NEAR(SparseCrossEntropy{}(logits, Tensor<double>(Shape{1}, {2.0})), std::log(2.0), 1e-15);
}

TEST(LossStability, NanPredictionGivesNanLossWithoutThrowing) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  Tensor<double> logits(Shape{2, 3}, {0.1, nan, 0.3, 1.0, 2.0, 3.0});
  Tensor<double> grad;
  double loss = 0;
  EXPECT_NO_THROW(loss = SparseCrossEntropy{}(logits, Tensor<double>(Shape{2}, {0, 1}), &grad));
  EXPECT_TRUE(std::isnan(loss));
  logits[0] = nan;  // NaN as the first element too, where the row maximum starts
  EXPECT_TRUE(std::isnan(SparseCrossEntropy{}(logits, Tensor<double>(Shape{2}, {0, 1}), &grad)));
  const Tensor<double> soft(Shape{2, 3}, {0, 1, 0, 1, 0, 0});
  EXPECT_TRUE(std::isnan(CategoricalCrossEntropy(true)(logits, soft, &grad)));
  EXPECT_TRUE(std::isnan(CategoricalCrossEntropy(false)(logits, soft, &grad)));
  EXPECT_TRUE(std::isnan(BinaryCrossEntropy{}(logits, soft, &grad)));
  EXPECT_TRUE(std::isnan(MeanSquaredError{}(logits, soft, &grad)));
}

TEST(LossStability, GradientTensorIsResizedAndOverwritten) {
  Random rng(7);
  const Tensor<double> logits = uniform(Shape{3, 4}, rng, -2, 2);
  const Tensor<double> target = labels(3, 4, rng);
  Tensor<double> fresh, reused(Shape{5, 7}, 123.0);  // larger and full of garbage
  SparseCrossEntropy{}(logits, target, &fresh);
  SparseCrossEntropy{}(logits, target, &reused);
  ASSERT_EQ(reused.shape(), logits.shape());
  for (std::size_t k = 0; k < fresh.size(); ++k) EXPECT_EQ(fresh[k], reused[k]);
  Tensor<double> bce(Shape{1}, 9.0);
  BinaryCrossEntropy{}(logits, logits, &bce);
  EXPECT_EQ(bce.shape(), logits.shape());
}

// ---------------------------------------------------------------------------------------------
// Errors

TEST(LossErrors, ShapeMismatchNamesBothShapes) {
  const Tensor<double> p410(Shape{4, 10}), t43(Shape{4, 3}), p49(Shape{4, 9}), t4(Shape{4}), p41(Shape{4, 1});
  std::string e = error_of([&] { SparseCrossEntropy{}(p410, t43, nullptr); });
  EXPECT_TRUE(contains(e, "(4, 10)") && contains(e, "(4, 3)")) << e;
  e = error_of([&] { SparseCrossEntropy{}(p410, Tensor<double>(Shape{5}), nullptr); });
  EXPECT_TRUE(contains(e, "(4, 10)") && contains(e, "(5)")) << e;
  e = error_of([&] { SparseCrossEntropy{}(t4, t4, nullptr); });  // predictions without classes
  EXPECT_TRUE(contains(e, "(N, C)") && contains(e, "(4)")) << e;
  e = error_of([&] { CategoricalCrossEntropy{}(p410, p49, nullptr); });
  EXPECT_TRUE(contains(e, "(4, 10)") && contains(e, "(4, 9)")) << e;
  e = error_of([&] { BinaryCrossEntropy{}(p41, t4, nullptr); });
  EXPECT_TRUE(contains(e, "(4, 1)") && contains(e, "(4)")) << e;
  e = error_of([&] { MeanSquaredError{}(Tensor<double>(Shape{2, 3}), Tensor<double>(Shape{3, 2}), nullptr); });
  EXPECT_TRUE(contains(e, "MeanSquaredError") && contains(e, "(2, 3)") && contains(e, "(3, 2)")) << e;
  e = error_of([&] { MeanSquaredError{}.correct(Tensor<double>(Shape{2, 3}), Tensor<double>(Shape{3, 2})); });
  EXPECT_TRUE(contains(e, "(3, 2)")) << e;
  e = error_of([&] { BinaryCrossEntropy{}(Tensor<double>(Shape{0, 1}), Tensor<double>(Shape{0, 1}), nullptr); });
  EXPECT_TRUE(contains(e, "empty")) << e;
}

TEST(LossErrors, BadLabelsNameRowAndValue) {
  const Tensor<float> logits(Shape{3, 10});
  std::string e = error_of([&] { SparseCrossEntropy{}(logits, Tensor<float>(Shape{3}, {1.f, 9.f, 10.f}), nullptr); });
  EXPECT_TRUE(contains(e, "row 2") && contains(e, " 10,") && contains(e, "[0, 10)")) << e;
  e = error_of([&] { SparseCrossEntropy{}(logits, Tensor<float>(Shape{3, 1}, {-1.f, 0.f, 0.f}), nullptr); });
  EXPECT_TRUE(contains(e, "row 0") && contains(e, "-1")) << e;
  e = error_of([&] { SparseCrossEntropy{}(logits, Tensor<float>(Shape{3}, {0.f, 1.5f, 0.f}), nullptr); });
  EXPECT_TRUE(contains(e, "row 1") && contains(e, "1.5")) << e;
  e = error_of([&] {
    SparseCrossEntropy{}(logits, Tensor<float>(Shape{3}, {0.f, 0.f, std::numeric_limits<float>::quiet_NaN()}), nullptr);
  });
  EXPECT_TRUE(contains(e, "row 2") && contains(e, "nan")) << e;
  e = error_of([&] { SparseCrossEntropy{}.correct(logits, Tensor<float>(Shape{3}, {0.f, 11.f, 0.f})); });
  EXPECT_TRUE(contains(e, "row 1") && contains(e, "11")) << e;
  EXPECT_NO_THROW(SparseCrossEntropy{}(logits, Tensor<float>(Shape{3}, {0.f, 9.f, 5.f}), nullptr));
  // Labels are checked before anything is written.
  Tensor<float> grad(Shape{1}, 7.f);
  EXPECT_THROW(SparseCrossEntropy{}(logits, Tensor<float>(Shape{3}, {0.f, 1.f, 12.f}), &grad), Error);
  EXPECT_EQ(grad.shape(), Shape{1});
  EXPECT_EQ(grad[0], 7.f);
}

// ---------------------------------------------------------------------------------------------
// Accuracy counts and names

TEST(LossAccuracy, SparseCountsArgmaxAgainstLabel) {
  const Tensor<double> logits(Shape{4, 3}, {0.1, 0.9, 0.0,    // argmax 1
                                            2.0, -1.0, 1.0,   // argmax 0
                                            0.5, 0.5, 0.4,    // tie: the first, 0
                                            -3.0, -2.0, -1.0});  // argmax 2
  EXPECT_EQ(SparseCrossEntropy{}.correct(logits, Tensor<double>(Shape{4}, {1, 0, 0, 2})), 4u);
  EXPECT_EQ(SparseCrossEntropy{}.correct(logits, Tensor<double>(Shape{4}, {1, 2, 1, 2})), 2u);
  EXPECT_EQ(SparseCrossEntropy{}.correct(logits, Tensor<double>(Shape{4, 1}, {0, 1, 2, 0})), 0u);
  EXPECT_EQ(SparseCrossEntropy{}.predictions(logits), 4u);
}

TEST(LossAccuracy, CategoricalCountsArgmaxAgainstArgmax) {
  const Tensor<double> probs(Shape{3, 3}, {0.2, 0.7, 0.1, 0.5, 0.3, 0.2, 0.1, 0.1, 0.8});
  const Tensor<double> target(Shape{3, 3}, {0, 1, 0, 0, 0, 1, 0.1, 0.1, 0.8});
  EXPECT_EQ(CategoricalCrossEntropy{}.correct(probs, target), 2u);
  EXPECT_EQ(CategoricalCrossEntropy(true).correct(probs, target), 2u);
  EXPECT_EQ(CategoricalCrossEntropy{}.predictions(probs), 3u);
}

TEST(LossAccuracy, BinaryCountsSignOfLogitAgainstLabel) {
  const Tensor<float> logits(Shape{5, 1}, {2.f, -1.f, 0.f, -3.f, 0.1f});
  const Tensor<float> labels01(Shape{5, 1}, {1.f, 0.f, 1.f, 0.6f, 0.5f});
  // right, right, wrong (a logit of 0 is probability 0.5: predicted 0), wrong (0.6 is 1), right.
  EXPECT_EQ(BinaryCrossEntropy{}.correct(logits, labels01), 3u);
  EXPECT_EQ(BinaryCrossEntropy{}.predictions(Tensor<float>(Shape{4, 3})), 12u);
}

TEST(LossAccuracy, MeanSquaredErrorHasNone) {
  static_assert(!MeanSquaredError::has_accuracy, "MSE has no accuracy");
  static_assert(SparseCrossEntropy::has_accuracy && CategoricalCrossEntropy::has_accuracy &&
                    BinaryCrossEntropy::has_accuracy,
                "the classification losses have one");
  const Tensor<double> x(Shape{2, 2}, {1, 2, 3, 4});
  EXPECT_EQ(MeanSquaredError{}.correct(x, x), 0u);
}

TEST(LossNames, AreKerasNames) {
  EXPECT_EQ(SparseCrossEntropy{}.name(), "sparse_categorical_crossentropy");
  EXPECT_EQ(CategoricalCrossEntropy{}.name(), "categorical_crossentropy");
  EXPECT_EQ(BinaryCrossEntropy{}.name(), "binary_crossentropy");
  EXPECT_EQ(MeanSquaredError{}.name(), "mean_squared_error");
  EXPECT_FALSE(CategoricalCrossEntropy{}.from_logits());  // Keras's default: probabilities
  EXPECT_TRUE(CategoricalCrossEntropy(true).from_logits());
}

}  // namespace
