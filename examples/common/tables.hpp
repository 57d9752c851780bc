#pragma once
// What the tabular examples (tabular, regression) share: their common options, getting a
// training and a test table (from one CSV split by a seed, from two CSVs, or from a generator),
// standardising them with the training statistics, building and timing a model, and printing a
// result table.

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <faltung/data/csv.hpp>
#include <faltung/data/standard_scaler.hpp>
#include <faltung/data/train_test_split.hpp>
#include <faltung/faltung.hpp>
#include <iomanip>
#include <iostream>
#include <ostream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/cli.hpp"

namespace faltung_examples {

/// The options both tabular examples take.
struct TableOptions {
  std::string csv, test_csv;  ///< the data (test_csv empty: csv is split)
  std::string label;          ///< the label (target) column: a name or a 0-based index
  bool header = true;          ///< the first row (after skip_lines) names the columns
  std::size_t skip_lines = 0;  ///< lines before the header (or the data) to skip
  double test_fraction = 0.2;
  std::vector<std::string> models;  ///< which models to train, by short name
  std::string mlp;                  ///< the MLP's hidden layers; the head is added
  int epochs = 20;
  std::size_t batch = 32;  ///< Keras's default
  double lr = 1e-3;        ///< Adam's learning rate
  std::uint64_t seed = 42;  ///< initialisation, shuffling and the split
  int threads = 0;
  int verbose = 0;
};

/// Adds the TableOptions to `app`. label_option names the label ("--label", "--target");
/// model_names are the accepted --models.
inline void add_table_options(CLI::App& app, TableOptions& o, const std::string& label_option,
                              const std::vector<std::string>& model_names) {
  using cli::quiet;
  std::string models;
  for (const std::string& m : model_names) models += (models.empty() ? "" : ", ") + m;
  app.add_option("--csv", o.csv, "A CSV file with a header row (split into training and test data unless --test-csv)")
      ->option_text("FILE");
  app.add_option("--test-csv", o.test_csv, "The test data, a CSV file with the same columns as --csv")
      ->option_text("FILE")
      ->needs(app.get_option("--csv"));
  app.add_option(label_option, o.label, "The column to predict: a name, or a 0-based index (-1: the last)")
      ->option_text("COLUMN");
  app.add_flag("!--no-header", o.header, "The CSV files have no header row: the columns are named 0, 1, ...");
  app.add_option("--skip-lines", o.skip_lines, "Lines to skip at the top of the CSV files (a preamble); default 0")
      ->check(quiet(cli::whole_in(0, 1e9)));
  app.add_option("--test-fraction", o.test_fraction, "The share of the rows held out for testing; default 0.2")
      ->check(quiet(cli::number(0, 0.9, false, true, "a fraction in (0, 0.9]")));
  app.add_option("--models", o.models, "Which models to train: " + models + " (default all)")
      ->delimiter(',')
      ->check(CLI::IsMember(model_names));
  app.add_option("--mlp", o.mlp, "The MLP's hidden layers in the architecture language; default " + o.mlp)
      ->option_text("SPEC");
  app.add_option("--epochs", o.epochs, "Passes over the training data; default " + std::to_string(o.epochs))
      ->check(quiet(cli::whole_in(1, 100000)));
  app.add_option("--batch", o.batch, "Batch size; default 32 (Keras's default)")->check(quiet(cli::whole_in(1, 1 << 20)));
  app.add_option("--lr", o.lr, "Adam's learning rate; default 0.001")->check(quiet(cli::positive()));
  app.add_option("--seed", o.seed, "Seeds initialisation, shuffling and the split; default 42");
  app.add_option("--threads", o.threads, "Threads (0: every core, or OMP_NUM_THREADS)")
      ->check(quiet(cli::whole_in(0, 4096)));
  app.add_option("--verbose", o.verbose, "0 quiet, 1 progress bar, 2 a line per epoch; default 0")
      ->check(quiet(cli::whole_in(0, 2)));
}

/// Checks what CLI11 cannot: combinations and the architecture. Throws std::invalid_argument.
inline void validate(const TableOptions& o, const std::string& label_option) {
  if (!o.csv.empty() && o.label.empty()) throw std::invalid_argument("--csv needs " + label_option + " COLUMN");
  if (o.csv.empty() && !o.label.empty()) throw std::invalid_argument(label_option + " needs --csv FILE");
  if (o.models.empty()) throw std::invalid_argument("--models: name at least one model");
  try {
    faltung::parse_architecture(o.mlp, "--mlp");
  } catch (const faltung::Error& e) {
    throw std::invalid_argument(e.what());
  }
}

namespace detail {
/// Makes `test`'s class indices mean what they mean in `train` (each file sorts its own classes,
/// and a class may be missing from one of them); a test class the training data never shows is
/// an error, since no model trained on it can predict it.
inline void align_classes(const faltung::TabularData<float>& train, faltung::TabularData<float>& test,
                          const std::string& test_name) {
  std::vector<float> index(test.class_names.size());
  for (std::size_t k = 0; k < test.class_names.size(); ++k) {
    std::size_t j = 0;
    while (j < train.class_names.size() && train.class_names[j] != test.class_names[k]) ++j;
    if (j == train.class_names.size())
      throw faltung::Error(test_name + ": class '" + test.class_names[k] + "' of the test data is not in the training data");
    index[k] = float(j);
  }
  for (float& y : test.y) y = index[std::size_t(y)];
  test.class_names = train.class_names;
}
}  // namespace detail

/// The --threads of an example's options: o.table.threads (the tabular examples) or o.threads.
template <class Options>
auto threads_option(const Options& o) -> decltype(int(o.table.threads)) {
  return o.table.threads;
}
template <class Options>
auto threads_option(const Options& o) -> decltype(int(o.threads)) {
  return o.threads;
}

/// Parses the command line into `o` (CLI11, then `validate`) and sets the thread count. Returns
/// -1 to go on, or the exit status when the program is done: 0 after --help, 2 after a bad
/// option (printed).
template <class Options>
int parse_command_line(CLI::App& app, Options& o, void (*validate)(const Options&), int argc, char** argv) {
  try {
    app.parse(argc, argv);
    validate(o);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  } catch (const std::invalid_argument& e) {
    std::cerr << "error: " << e.what() << "\nRun with --help for the options.\n";
    return 2;
  }
  if (threads_option(o) > 0) faltung::set_num_threads(threads_option(o));
  return -1;
}

/// The training and test tables of the options; `generate` makes the whole table when there is no
/// CSV. categorical: read the label as class names (classification). Throws faltung::Error for a
/// bad file, and when the two files' columns differ.
template <class Generate>
faltung::TrainTestSplit<float> load_tables(const TableOptions& source, bool categorical, Generate&& generate) {
  if (source.csv.empty()) return faltung::train_test_split(generate(), source.test_fraction, source.seed);
  const auto options = faltung::CsvOptions()
                           .label(source.label)
                           .categorical_label(categorical)
                           .header(source.header)
                           .skip_lines(source.skip_lines);
  faltung::TabularData<float> all = faltung::load_csv<float>(source.csv, options);
  if (source.test_csv.empty()) return faltung::train_test_split(all, source.test_fraction, source.seed);
  faltung::TrainTestSplit<float> split;
  split.train = std::move(all);
  split.test = faltung::load_csv<float>(source.test_csv, options);
  if (split.test.feature_names != split.train.feature_names)
    throw faltung::Error("'" + source.test_csv + "' has other feature columns than '" + source.csv + "'");
  if (categorical) detail::align_classes(split.train, split.test, "'" + source.test_csv + "'");
  return split;
}

/// Standardises both tables' features with the training table's statistics.
inline void standardize(faltung::TrainTestSplit<float>& split) {
  faltung::StandardScaler<float> scaler;
  scaler.fit(split.train.x);
  scaler.transform(split.train.x);
  scaler.transform(split.test.x);
}

/// A model for `features` inputs: the hidden layers of `hidden` (empty: none), then Dense(outputs),
/// linear (the loss applies the sigmoid or softmax). Not compiled.
inline faltung::Sequential<float> make_model(const std::string& hidden, std::size_t features, std::size_t outputs,
                                             std::uint64_t seed) {
  faltung::Sequential<float> net(seed);
  if (!hidden.empty()) faltung::add_layers(net, hidden, "--mlp");
  net.add<faltung::Dense>(faltung::DenseOptions(outputs));
  net.build({features});
  return net;
}

/// "MLP 20-64-32-1" for a stack of Dense layers; `plain` for a single one (no hidden layers).
inline std::string describe_model(faltung::Sequential<float>& net, const std::string& plain) {
  if (net.size() == 1) return plain;
  std::ostringstream name;
  name << "MLP " << net.input_shape()[0];
  for (std::size_t i = 0; i < net.size(); ++i)
    if (net.layer(i).type() == "Dense") name << '-' << net.layer(i).output_shape()[0];
  return name.str();
}

/// A fit and its wall time: what the lecture's "training time" column measures.
struct TimedFit {
  faltung::History history;
  double seconds = 0;
  std::size_t steps = 0;  ///< gradient steps taken
};

/// Trains `net` on `train` with the options' epochs, batch size and verbosity; a fit stopped by a
/// non-finite loss is an error naming `name`.
inline TimedFit timed_fit(faltung::Sequential<float>& net, const faltung::TabularData<float>& train,
                          const TableOptions& o, const std::string& name, std::ostream& log) {
  if (o.verbose) log << "Training " << name << " (" << net.spec() << ")\n";
  const auto options = faltung::FitOptions().epochs(o.epochs).batch_size(o.batch).verbose(o.verbose).output(log);
  TimedFit t;
  const auto start = std::chrono::steady_clock::now();
  t.history = net.fit(train.x, train.y, options);
  t.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (!t.history.stop_reason.empty()) throw faltung::Error(name + ": " + t.history.stop_reason);
  t.steps = (train.size() + o.batch - 1) / o.batch * t.history.epochs();
  return t;
}

/// "1.23 s" or "456 ms": a duration as the lecture's table writes it.
inline std::string format_seconds(double s) {
  std::ostringstream os;
  if (s < 1)
    os << std::fixed << std::setprecision(0) << s * 1000 << " ms";
  else
    os << std::fixed << std::setprecision(s < 10 ? 2 : 1) << s << " s";
  return os.str();
}

inline std::string format_fixed(double v, int digits) {
  std::ostringstream os;
  os << std::fixed << std::setprecision(digits) << v;
  return os.str();
}

/// A Markdown table: the header row, the separator, then the rows.
inline std::string markdown_table(const std::vector<std::string>& header,
                                  const std::vector<std::vector<std::string>>& rows) {
  std::ostringstream os;
  const auto row = [&](const std::vector<std::string>& cells) {
    os << '|';
    for (const std::string& c : cells) os << ' ' << c << " |";
    os << '\n';
  };
  row(header);
  os << '|';
  for (std::size_t i = 0; i < header.size(); ++i) os << "---|";
  os << '\n';
  for (const auto& r : rows) row(r);
  return os.str();
}

}  // namespace faltung_examples
