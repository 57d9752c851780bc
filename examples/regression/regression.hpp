#pragma once
// The regression example's pieces: options, data, the two models (linear regression and an MLP,
// both trained on the mean squared error), the metrics and the plot. main.cpp parses and prints;
// the tests run these pieces on small data.

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <faltung/data/make_friedman1.hpp>
#include <faltung/faltung.hpp>
#include <ostream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/cli.hpp"
#include "common/svg_plot.hpp"
#include "common/tables.hpp"

namespace regression {

struct Options {
  faltung_examples::TableOptions table = defaults();
  // Friedman's first problem, when there is no --csv.
  std::size_t samples = 10000, features = 10;
  double noise = 1.0;
  std::uint64_t data_seed = 42;
  std::string plot = "regression.svg";  ///< predictions against targets; empty: none

  static faltung_examples::TableOptions defaults() {
    faltung_examples::TableOptions t;
    t.models = {"linear", "mlp"};
    t.mlp = "dense:64:relu,dense:64:relu";
    t.epochs = 40;
    return t;
  }
};

inline void add_options(CLI::App& app, Options& o) {
  using faltung_examples::cli::quiet;
  using faltung_examples::cli::real_in;
  using faltung_examples::cli::whole_in;
  faltung_examples::add_table_options(app, o.table, "--target", {"linear", "mlp"});
  app.add_option("--samples", o.samples, "Rows of the generated set (without --csv); default 10000")
      ->check(quiet(whole_in(10, 1e9)));
  app.add_option("--features", o.features, "Columns of the generated set, at least 5; default 10")
      ->check(quiet(whole_in(5, 100000)));
  app.add_option("--noise", o.noise, "Standard deviation of the generated set's noise; default 1")
      ->check(quiet(real_in(0, 1e6, "a number >= 0")));
  app.add_option("--data-seed", o.data_seed, "Seed of the generated set; default 42");
  app.add_option("--plot", o.plot, "Where the SVG plot of predictions against targets goes; default regression.svg")
      ->option_text("FILE");
}

inline void validate(const Options& o) { faltung_examples::validate(o.table, "--target"); }

/// The data: the CSV file(s) or Friedman's problem, split, not yet standardised.
inline faltung::TrainTestSplit<float> load_data(const Options& o) {
  return faltung_examples::load_tables(o.table, false, [&] {
    return faltung::make_friedman1<float>(
        faltung::MakeFriedman1Options().samples(o.samples).features(o.features).noise(o.noise).seed(o.data_seed));
  });
}

/// Root mean squared error and the coefficient of determination of predictions against targets.
struct Metrics {
  double rmse = 0;
  /// 1 - SS_res / SS_tot (scikit-learn's r2_score): 1 is perfect, 0 is no better than predicting
  /// the mean, below 0 worse. NaN when the targets are all equal.
  double r2 = 0;
};

inline Metrics regression_metrics(const std::vector<double>& pred, const std::vector<double>& target) {
  if (pred.size() != target.size() || pred.empty())
    throw std::invalid_argument("regression_metrics: need as many predictions as targets, and some");
  double mean = 0;
  for (double t : target) mean += t;
  mean /= double(target.size());
  double ss_res = 0, ss_tot = 0;
  for (std::size_t i = 0; i < pred.size(); ++i) {
    ss_res += (pred[i] - target[i]) * (pred[i] - target[i]);
    ss_tot += (target[i] - mean) * (target[i] - mean);
  }
  Metrics m;
  m.rmse = std::sqrt(ss_res / double(pred.size()));
  m.r2 = ss_tot > 0 ? 1 - ss_res / ss_tot : std::nan("");
  return m;
}

struct Result {
  std::string model;
  Metrics test;
  double seconds = 0;
  std::size_t steps = 0;
  int epochs = 0;
  std::vector<double> predictions;  ///< on the test set, in the target's units
};

/// Trains and tests one model ("linear" or "mlp") on standardised features. The target is
/// standardised for training too (the mean squared error of a target in the thousands would
/// otherwise need another learning rate), and the predictions are turned back into its units.
inline Result train_and_test(const std::string& which, const faltung::TrainTestSplit<float>& data, const Options& o,
                             std::ostream& log) {
  const auto& t = o.table;
  faltung::StandardScaler<float> target_scaler;
  faltung::TabularData<float> train = data.train;
  target_scaler.fit_transform(train.y);

  faltung::Sequential<float> net =
      faltung_examples::make_model(which == "mlp" ? t.mlp : "", train.num_features(), 1, t.seed);
  net.compile(faltung::MeanSquaredError{}, faltung::Adam<float>(faltung::AdamOptions(t.lr)), {});
  Result r;
  r.model = faltung_examples::describe_model(net, "linear regression");
  const auto fit = faltung_examples::timed_fit(net, train, t, r.model, log);
  r.seconds = fit.seconds;
  r.steps = fit.steps;
  r.epochs = int(fit.history.epochs());

  faltung::Tensor<float> pred = net.predict(data.test.x);
  target_scaler.inverse_transform(pred);
  r.predictions.assign(pred.begin(), pred.end());
  r.test = regression_metrics(r.predictions, std::vector<double>(data.test.y.begin(), data.test.y.end()));
  return r;
}

inline std::string results_table(const std::vector<Result>& results) {
  std::vector<std::vector<std::string>> rows;
  for (const Result& r : results)
    rows.push_back({"faltung " + r.model + " (" + std::to_string(r.epochs) + " epochs)",
                    faltung_examples::format_fixed(r.test.rmse, 4), faltung_examples::format_fixed(r.test.r2, 4),
                    faltung_examples::format_seconds(r.seconds)});
  return faltung_examples::markdown_table({"model", "test RMSE", "test R^2", "training time"}, rows);
}

/// Each model's test predictions against the targets, one colour per model, with the diagonal
/// where a perfect model's points would lie.
inline faltung_examples::svg::SvgDocument predictions_svg(const std::vector<Result>& results,
                                                         const std::vector<double>& targets, const std::string& title) {
  namespace svg = faltung_examples::svg;
  std::vector<svg::Series> series;
  double lo = targets.empty() ? 0 : *std::min_element(targets.begin(), targets.end());
  double hi = targets.empty() ? 1 : *std::max_element(targets.begin(), targets.end());
  for (std::size_t k = 0; k < results.size(); ++k) {
    svg::Series s;
    std::ostringstream label;
    label << results[k].model << ": R^2 " << faltung_examples::format_fixed(results[k].test.r2, 3);
    s.label = label.str();
    s.x = targets;
    s.y = results[k].predictions;
    s.line = false;
    s.color = svg::palette(k);
    for (double p : s.y)
      if (std::isfinite(p)) lo = std::min(lo, p), hi = std::max(hi, p);
    series.push_back(std::move(s));
  }
  svg::Series diagonal;
  diagonal.label = "perfect prediction";
  diagonal.x = diagonal.y = {lo, hi};
  diagonal.color = "#555555";
  diagonal.dashed = true;
  diagonal.markers = false;
  series.push_back(diagonal);
  svg::LineChartOptions opt;
  opt.title = title;
  opt.x_label = "target";
  opt.y_label = "prediction";
  opt.integer_x = false;
  opt.width = 640;
  opt.height = 600;
  return svg::line_chart(series, opt);
}

}  // namespace regression
