#pragma once
// A numerical gradient checker for any Layer<T>, built in or a user's own.
//
// It takes the scalar L = sum(y * r) for a fixed random r, so dL/dy = r, and compares what
// backward() reports for dL/dx and dL/dparam with central differences (L(v + h) - L(v - h)) / 2h.
// Use double: in float the differences drown in rounding. The layer must be built, and its
// forward must be a fixed function of x (for Dropout in training, call repeat_mask(true)).
//
//   Conv2D<double> conv(Conv2DOptions(4, 3).padding(Same));
//   Random rng(1);
//   conv.build({2, 5, 5}, rng);
//   GradCheckResult r = gradcheck(conv, random_tensor<double>({3, 2, 5, 5}, rng));
//   EXPECT_TRUE(r.ok) << r.report;

#include <algorithm>
#include <cmath>
#include <sstream>
#include <string>

#include "faltung/layers/layer.hpp"

FALTUNG_BEGIN_NAMESPACE

struct GradCheckOptions {
  double step = 1e-6;                ///< h of the central difference
  double abs_tolerance = 1e-6;       ///< |analytic - numeric| <= abs + rel * max(|analytic|, |numeric|)
  double rel_tolerance = 1e-5;
  std::size_t max_checks = 200000;   ///< check at most this many elements per tensor (evenly spread)
  bool check_input = true;           ///< also check dL/dx (off for a first layer without input gradient)
  std::uint64_t seed = 7;            ///< seed of the random r
};

struct GradCheckResult {
  bool ok = true;
  double max_abs_error = 0;       ///< largest |analytic - numeric| seen
  std::size_t checked = 0;        ///< elements compared
  std::string report;             ///< the first mismatches, naming tensor and index
};

/// A tensor of the given shape with values uniform in [lo, hi).
template <class T>
Tensor<T> random_tensor(const Shape& shape, Random& rng, double lo = -1.0, double hi = 1.0) {
  Tensor<T> t(shape);
  for (T& v : t) v = T(rng.uniform(lo, hi));
  return t;
}

template <class T>
GradCheckResult gradcheck(Layer<T>& layer, const Tensor<T>& x, const GradCheckOptions& options = {}) {
  FALTUNG_CHECK(layer.built(), "gradcheck: build the layer first");
  Random rng(options.seed);
  Tensor<T> input = x, y, dx;
  layer.forward(input, y);
  const Tensor<T> r = random_tensor<T>(y.shape(), rng);

  auto objective = [&](const Tensor<T>& in) {
    Tensor<T> out;
    layer.forward(in, out);
    double sum = 0;
    for (std::size_t i = 0; i < out.size(); ++i) sum += double(out[i]) * double(r[i]);
    return sum;
  };

  // Analytic gradients, from the forward at x itself.
  for (Parameter<T>* p : layer.parameters()) p->zero_grad();
  layer.forward(input, y);
  layer.backward(input, y, r, dx);

  GradCheckResult result;
  std::ostringstream report;
  std::size_t reported = 0;
  auto compare = [&](const std::string& what, Tensor<T>& value, const Tensor<T>& analytic) {
    const std::size_t stride = std::max<std::size_t>(1, value.size() / options.max_checks);
    for (std::size_t i = 0; i < value.size(); i += stride) {
      const T saved = value[i];
      value[i] = T(double(saved) + options.step);
      const double plus = objective(input);
      value[i] = T(double(saved) - options.step);
      const double minus = objective(input);
      value[i] = saved;
      const double numeric = (plus - minus) / (2 * options.step);
      const double a = double(analytic[i]);
      const double err = std::abs(a - numeric);
      result.max_abs_error = std::max(result.max_abs_error, err);
      ++result.checked;
      if (!(err <= options.abs_tolerance + options.rel_tolerance * std::max(std::abs(a), std::abs(numeric)))) {
        result.ok = false;
        if (reported++ < 10)
          report << layer.type() << ' ' << what << '[' << i << "]: analytic " << a << ", numeric " << numeric << '\n';
      }
    }
  };

  if (options.check_input) {
    FALTUNG_CHECK(dx.shape() == input.shape(), "gradcheck: backward wrote dx of shape ", dx.shape(),
                  " for input ", input.shape());
    compare("input", input, dx);
  }
  for (Parameter<T>* p : layer.parameters()) {
    const Tensor<T> analytic = p->grad;
    compare(p->name, p->value, analytic);
  }
  if (reported > 10) report << "... " << (reported - 10) << " more mismatches\n";
  result.report = report.str();
  return result;
}

FALTUNG_END_NAMESPACE
