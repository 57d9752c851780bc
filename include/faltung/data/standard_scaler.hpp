#pragma once
// StandardScaler<T>: standardisation of features, fitted on the training data and then applied,
// unchanged, to every other set (scikit-learn's StandardScaler):
//
//   StandardScaler<float> scaler;
//   scaler.fit(split.train.x);         // the mean and standard deviation of each training column
//   scaler.transform(split.train.x);   // (x - mean) / std, in place
//   scaler.transform(split.test.x);    // the TRAINING statistics: the test set stays unseen
//
// Fitting on all the data before splitting would let the test set leak into the model's inputs.
// The standard deviation is the population one (divided by N, as scikit-learn); a constant
// column gets a scale of 1, so it becomes zeros instead of NaN. Sums are taken in double.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

#include "faltung/config.hpp"
#include "faltung/tensor.hpp"

FALTUNG_BEGIN_NAMESPACE

template <class T>
class StandardScaler {
 public:
  /// Computes each column's mean and standard deviation from x (N, F), N > 0. Throws
  /// faltung::Error for another shape or for a NaN or infinity (naming its row and column).
  StandardScaler& fit(const Tensor<T>& x) {
    FALTUNG_CHECK(x.rank() == 2 && x.dim(0) > 0 && x.dim(1) > 0,
                  "StandardScaler::fit: need (N, F) features with N, F > 0, got ", x.shape());
    const std::size_t n = x.dim(0), f = x.dim(1);
    check_finite("fit", x);
    // Two passes (mean, then squared deviations): one pass of sum and sum of squares loses
    // every digit for a column like 1e8 + small noise.
    std::vector<double> mean(f, 0.0), var(f, 0.0);
    for (std::size_t i = 0; i < n; ++i)
      for (std::size_t j = 0; j < f; ++j) mean[j] += double(x[i * f + j]);
    for (double& m : mean) m /= double(n);
    for (std::size_t i = 0; i < n; ++i)
      for (std::size_t j = 0; j < f; ++j) {
        const double d = double(x[i * f + j]) - mean[j];
        var[j] += d * d;
      }
    mean_ = mean;
    scale_.resize(f);
    for (std::size_t j = 0; j < f; ++j) {
      const double sd = std::sqrt(var[j] / double(n));
      // A column whose spread is rounding noise relative to its size is constant.
      scale_[j] = sd > 1e-12 * std::max(1.0, std::abs(mean[j])) ? sd : 1.0;
    }
    return *this;
  }

  /// x = (x - mean) / scale, in place, with the fitted statistics. x must have the fitted
  /// number of columns and finite values.
  void transform(Tensor<T>& x) const {
    check_fitted_shape("transform", x);
    check_finite("transform", x);
    const std::size_t n = x.dim(0), f = x.dim(1);
    for (std::size_t i = 0; i < n; ++i)
      for (std::size_t j = 0; j < f; ++j) x[i * f + j] = T((double(x[i * f + j]) - mean_[j]) / scale_[j]);
  }
  /// A standardised copy of x.
  Tensor<T> transformed(const Tensor<T>& x) const {
    Tensor<T> y = x;
    transform(y);
    return y;
  }
  /// fit(x), then transform(x).
  void fit_transform(Tensor<T>& x) { fit(x).transform(x); }

  /// x = x * scale + mean: back to the original units (a regression target's predictions).
  void inverse_transform(Tensor<T>& x) const {
    check_fitted_shape("inverse_transform", x);
    const std::size_t n = x.dim(0), f = x.dim(1);
    for (std::size_t i = 0; i < n; ++i)
      for (std::size_t j = 0; j < f; ++j) x[i * f + j] = T(double(x[i * f + j]) * scale_[j] + mean_[j]);
  }

  bool fitted() const { return !mean_.empty(); }
  /// The fitted means, one per column.
  const std::vector<double>& mean() const { return mean_; }
  /// The fitted standard deviations, one per column (1 for a constant column).
  const std::vector<double>& scale() const { return scale_; }

 private:
  void check_fitted_shape(const char* what, const Tensor<T>& x) const {
    FALTUNG_CHECK(fitted(), "StandardScaler::", what, ": call fit() first");
    FALTUNG_CHECK(x.rank() == 2 && x.dim(1) == mean_.size(), "StandardScaler::", what, ": fitted on ", mean_.size(),
                  " columns, got ", x.shape());
  }
  static void check_finite(const char* what, const Tensor<T>& x) {
    const std::size_t f = x.dim(1);
    for (std::size_t k = 0; k < x.size(); ++k)
      FALTUNG_CHECK(std::isfinite(x[k]), "StandardScaler::", what, ": row ", k / f, ", column ", k % f, " is ", x[k],
                    "; standardisation needs finite values");
  }

  std::vector<double> mean_, scale_;
};

FALTUNG_END_NAMESPACE
