#pragma once
// The tabular example's pieces: its options, the data, the two models and the result table.
// main.cpp only parses the command line and prints; the tests run these pieces on small data.

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <faltung/faltung.hpp>
#include <fstream>
#include <ostream>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/cli.hpp"
#include "common/tables.hpp"

namespace tabular {

/// The command line.
struct Options {
  faltung_examples::TableOptions table = defaults();
  // The generated set of the lecture, when there is no --csv.
  std::size_t samples = 50000, features = 20;
  /// The generated set's seed. With its 2 informative features in 4 clusters, make_classification
  /// puts the clusters on the corners of a square, and the seed decides whether the two classes
  /// face each other (a line separates them) or sit crosswise (an XOR, which no linear model
  /// learns). Seed 7 gives the first kind, as the lecture's set was (its logistic regression
  /// reached 0.938); seed 42 the second.
  std::uint64_t data_seed = 7;
  std::string write_csv_dir;  ///< write train.csv and test.csv there and stop
  std::string results;        ///< write the table as CSV here

  static faltung_examples::TableOptions defaults() {
    faltung_examples::TableOptions t;
    t.models = {"logreg", "mlp"};
    t.mlp = "dense:64:relu,dense:32:relu";
    t.epochs = 20;
    return t;
  }
};

inline void add_options(CLI::App& app, Options& o) {
  using faltung_examples::cli::quiet;
  using faltung_examples::cli::whole_in;
  faltung_examples::add_table_options(app, o.table, "--label", {"logreg", "mlp"});
  app.add_option("--samples", o.samples, "Rows of the generated set (without --csv); default 50000")
      ->check(quiet(whole_in(10, 1e9)));
  app.add_option("--features", o.features, "Columns of the generated set; default 20")->check(quiet(whole_in(4, 100000)));
  app.add_option("--data-seed", o.data_seed, "Seed of the generated set; default 7 (see the notes below)");
  app.add_option("--write-csv", o.write_csv_dir,
                 "Write the training and test data (before standardisation) to DIR/train.csv and DIR/test.csv, and stop")
      ->option_text("DIR");
  app.add_option("--results", o.results, "Also write the table as CSV to FILE")->option_text("FILE");
}

inline void validate(const Options& o) { faltung_examples::validate(o.table, "--label"); }

/// The data: the CSV file(s) or the generated set, split, not yet standardised.
inline faltung::TrainTestSplit<float> load_data(const Options& o) {
  faltung::TrainTestSplit<float> split = faltung_examples::load_tables(o.table, true, [&] {
    return faltung::make_classification<float>(
        faltung::MakeClassificationOptions().samples(o.samples).features(o.features).seed(o.data_seed));
  });
  if (split.train.num_classes() < 2)
    throw faltung::Error("the label '" + split.train.label_name + "' has only one class in the training data: " +
                         "nothing to classify");
  return split;
}

/// One row of the table.
struct Result {
  std::string model;  ///< what it is, in words
  double accuracy = 0;
  double seconds = 0;  ///< the fit alone
  std::size_t steps = 0;
  int epochs = 0;
};

/// Trains and tests one model (`which`: "logreg" or "mlp") on standardised data. The head is
/// Dense(1) for two classes (its sigmoid is in BinaryCrossEntropy) and Dense(K) for K classes
/// (the softmax in SparseCrossEntropy: multinomial logistic regression without hidden layers).
inline Result train_and_test(const std::string& which, const faltung::TrainTestSplit<float>& data, const Options& o,
                             std::ostream& log) {
  const auto& t = o.table;
  const std::size_t classes = data.train.num_classes();
  faltung::Sequential<float> net = faltung_examples::make_model(which == "mlp" ? t.mlp : "", data.train.num_features(),
                                                                classes == 2 ? 1 : classes, t.seed);
  if (classes == 2)
    net.compile(faltung::BinaryCrossEntropy{}, faltung::Adam<float>(faltung::AdamOptions(t.lr)));
  else
    net.compile(faltung::SparseCrossEntropy{}, faltung::Adam<float>(faltung::AdamOptions(t.lr)));
  Result r;
  r.model = faltung_examples::describe_model(net, "logistic regression");
  const auto fit = faltung_examples::timed_fit(net, data.train, t, r.model, log);
  r.seconds = fit.seconds;
  r.steps = fit.steps;
  r.epochs = int(fit.history.epochs());
  r.accuracy = net.evaluate(data.test.x, data.test.y).accuracy;
  return r;
}

/// The lecture's table: model, accuracy, training time; and the time per step.
inline std::string results_table(const std::vector<Result>& results, std::size_t batch) {
  std::vector<std::vector<std::string>> rows;
  for (const Result& r : results)
    rows.push_back({"faltung " + r.model + " (" + std::to_string(r.epochs) + " epochs)",
                    faltung_examples::format_fixed(r.accuracy, 4), faltung_examples::format_seconds(r.seconds),
                    faltung_examples::format_fixed(r.seconds / double(std::max<std::size_t>(r.steps, 1)) * 1e6, 1)});
  return faltung_examples::markdown_table(
      {"model", "accuracy", "training time", "us per step (batch " + std::to_string(batch) + ")"}, rows);
}

/// The table as CSV, for scripts (compare_baselines.py): framework,model,accuracy,seconds,epochs,steps,threads.
inline void write_results_csv(const std::string& path, const std::vector<Result>& results, int threads) {
  std::ofstream out(path);
  if (!out) throw std::runtime_error("cannot write '" + path + "'");
  out << "framework,model,accuracy,seconds,epochs,steps,threads\n";
  out.precision(9);
  for (const Result& r : results)
    out << "faltung," << r.model << ',' << r.accuracy << ',' << r.seconds << ',' << r.epochs << ',' << r.steps << ','
        << threads << '\n';
  if (!out.good()) throw std::runtime_error("writing '" + path + "' failed");
}

}  // namespace tabular
