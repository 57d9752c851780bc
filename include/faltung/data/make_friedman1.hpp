#pragma once
// make_friedman1: Friedman's first regression problem (J. Friedman, "Multivariate adaptive
// regression splines", 1991; scikit-learn's make_friedman1), a standard test of non-linear
// regression:
//
//   x ~ uniform in [0, 1]^F, F >= 5
//   y = 10 sin(pi x1 x2) + 20 (x3 - 0.5)^2 + 10 x4 + 5 x5 + noise * N(0, 1)
//
// Only the first five features matter; the others are noise the model must learn to ignore. y
// lies in about [0, 30] with a variance of about 24, so with noise 1 the best possible R^2 is
// about 1 - 1/24 = 0.96, and a linear model reaches about 0.75.

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>

#include "faltung/config.hpp"
#include "faltung/data/tabular.hpp"
#include "faltung/random.hpp"
#include "faltung/tensor.hpp"

FALTUNG_BEGIN_NAMESPACE

struct MakeFriedman1Options {
  /// Rows N. Default 100.
  MakeFriedman1Options& samples(std::size_t v) { samples_ = v; return *this; }
  /// Columns, at least 5; the ones after the fifth are noise. Default 10.
  MakeFriedman1Options& features(std::size_t v) { features_ = v; return *this; }
  /// The standard deviation of the Gaussian noise added to y. Default 1 (scikit-learn's default is 0).
  MakeFriedman1Options& noise(double v) { noise_ = v; return *this; }
  /// Seeds every draw. Default 42.
  MakeFriedman1Options& seed(std::uint64_t v) { seed_ = v; return *this; }

  std::size_t samples_ = 100, features_ = 10;
  double noise_ = 1.0;
  std::uint64_t seed_ = 42;
};

/// Friedman's first regression problem (see the top of this header). The features are named
/// "x1", "x2", ..., the target "y".
template <class T>
TabularData<T> make_friedman1(const MakeFriedman1Options& o) {
  const std::size_t n = o.samples_, f = o.features_;
  FALTUNG_CHECK(n > 0, "make_friedman1: samples must be positive");
  FALTUNG_CHECK(f >= 5, "make_friedman1: need at least 5 features, got ", f);
  FALTUNG_CHECK(n <= std::numeric_limits<std::size_t>::max() / sizeof(T) / f, "make_friedman1: ", n, " x ", f,
                " values overflow the address space");
  FALTUNG_CHECK(std::isfinite(o.noise_) && o.noise_ >= 0, "make_friedman1: noise must be finite and not negative, got ",
                o.noise_);
  TabularData<T> d;
  d.x.resize(Shape{n, f});
  d.y.resize(Shape{n, 1});
  for (std::size_t j = 1; j <= f; ++j) d.feature_names.push_back("x" + std::to_string(j));
  d.label_name = "y";
  // x and the noise from streams of their own: the noise level changes y, never x.
  Random rng = stream_random(o.seed_, 0), noise = stream_random(o.seed_, 1);
  const double pi = 3.14159265358979323846;
  for (std::size_t i = 0; i < n; ++i) {
    T* x = d.x.data() + i * f;
    for (std::size_t j = 0; j < f; ++j) x[j] = T(rng.uniform());
    // From the stored values, so that y is exactly the function of the x a model sees.
    const double x1 = x[0], x2 = x[1], x3 = x[2], x4 = x[3], x5 = x[4];
    const double y = 10 * std::sin(pi * x1 * x2) + 20 * (x3 - 0.5) * (x3 - 0.5) + 10 * x4 + 5 * x5;
    d.y[i] = T(y + (o.noise_ > 0 ? o.noise_ * noise.normal() : 0.0));
  }
  return d;
}

FALTUNG_END_NAMESPACE
