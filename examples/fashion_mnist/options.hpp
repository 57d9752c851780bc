#pragma once
// The example's configuration: its command-line options (CLI11), the presets, and the sweep
// file, whose every line is a set of the same options.
//
// Precedence, highest first:
//   1. options written on a sweep line
//   2. options given on the command line
//   3. the preset's values (--preset, from the sweep line or else the command line)
//   4. the defaults below
// So `fashion_mnist --sweep runs.txt --epochs 1` tries every line of runs.txt for one epoch,
// unless a line sets --epochs itself.

#include <CLI/CLI.hpp>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <functional>
#include <limits>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <faltung/io/training_state.hpp>
#include <faltung/text.hpp>

#include "common/cli.hpp"

namespace fmnist {

/// The default network: the small CNN of the Keras examples with lighter dropout (0.2, 0.2,
/// 0.3 instead of 0.25, 0.25, 0.5), which converges faster: 0.92 on the test set after 10
/// epochs in batches of 32, where the Keras rates give 0.911.
inline const char* default_arch() {
  return "conv:32:3:same:relu,pool:2,drop:0.2,conv:64:3:same:relu,pool:2,drop:0.2,flatten,dense:128:relu,"
         "drop:0.3,dense:10";
}

/// The lecture notebook's network.
inline const char* notebook_arch() {
  return "conv:128:3:same:relu,pool:2,drop:0.5,conv:64:3:same:relu,pool:2,flatten,dense:512:relu,drop:0.5,"
         "dense:256:relu,drop:0.5,dense:10";
}

/// A wrong option value or combination: main prints it and exits with status 2.
class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Everything one training run needs, and what the command line asks of the program.
struct Config {
  // What to train (also allowed on sweep lines).
  std::string name;                                      ///< run name (sweep): a directory name
  std::string arch = default_arch();                     ///< the network, in the architecture language
  std::string optimizer = "adam";                        ///< sgd | adam | rmsprop | adagrad
  double lr = std::numeric_limits<double>::quiet_NaN();  ///< NaN: the optimizer's default
  double decay = 0;                                      ///< Keras time decay: lr / (1 + decay * step)
  double momentum = 0;                                   ///< sgd and rmsprop
  std::size_t batch = 32;
  int epochs = 10;
  std::size_t train_size = 0;     ///< the first N training images; 0: all 60000
  double validation_split = 0.1;  ///< the last fraction of the training images
  bool validate_on_test = false;  ///< validate on the test set instead of a split
  int patience = 0;               ///< early stopping on val_loss; 0: off
  std::uint64_t seed = 42;
  std::string preset;  ///< "" or "notebook"

  // What the program does (command line only).
  std::string data_dir;  ///< "": faltung::default_fashion_mnist_dir()
  std::string out = "fashion_mnist_out";
  int threads = 0;  ///< 0: OpenMP's default (every core, or OMP_NUM_THREADS)
  int verbose = 1;
  bool summary_only = false;
  std::string sweep;
  std::vector<std::string> predict;  ///< --predict MODEL IMAGE...: the model file, then the pictures
  std::string checkpoint_dir;        ///< --checkpoint-dir: a checkpoint there after every epoch
  std::string resume;                ///< --resume: continue from the checkpoint there (and keep writing it)

  /// Where the checkpoints go: --resume's directory or --checkpoint-dir's; "" for none.
  const std::string& checkpoints() const { return resume.empty() ? checkpoint_dir : resume; }

  /// The long names of the options given explicitly (on the command line or the sweep line),
  /// which a preset must not override.
  std::set<std::string> explicit_options;

  bool is_explicit(const std::string& option) const { return explicit_options.count(option) > 0; }

  /// The learning rate actually used: --lr, or the optimizer's default (Keras's).
  double learning_rate() const {
    if (std::isfinite(lr)) return lr;
    return optimizer == "sgd" ? 0.01 : 0.001;
  }
};

/// The options a sweep line may set (and their order in --help).
inline const std::vector<std::string>& training_option_names() {
  // clang-format off
  static const std::vector<std::string> names = {
      "--name", "--arch", "--optimizer", "--lr", "--decay", "--momentum", "--batch", "--epochs", "--train-size",
      "--validation-split", "--validate-on-test", "--patience", "--seed", "--preset"};
  // clang-format on
  return names;
}

/// The options only the command line may set.
inline const std::vector<std::string>& program_option_names() {
  static const std::vector<std::string> names = {"--data",         "--out",   "--threads", "--verbose",
                                                 "--summary-only", "--sweep", "--predict",
                                                 "--checkpoint-dir", "--resume"};
  return names;
}

namespace detail {
// The validators every example shares (common/cli.hpp).
using faltung_examples::cli::number;
using faltung_examples::cli::positive;
using faltung_examples::cli::quiet;
using faltung_examples::cli::real_in;
using faltung_examples::cli::whole_in;
}  // namespace detail

/// Adds the training options, bound to `c`, to `app`.
inline void add_training_options(CLI::App& app, Config& c) {
  using detail::quiet;
  const std::string group = "Training (also on sweep lines)";
  app.add_option("--name", c.name, "Name of the run, in titles and as a sweep's subdirectory")
      ->type_name("NAME")
      ->group(group);
  app.add_option("--arch", c.arch,
                 "The network in the architecture language (see below). Default: a small CNN, "
                 "conv:32:3:same:relu,pool:2,drop:0.2,conv:64:3:same:relu,pool:2,drop:0.2,flatten,"
                 "dense:128:relu,drop:0.3,dense:10")
      ->type_name("SPEC")
      ->group(group);
  app.add_option("--optimizer", c.optimizer, "The optimizer")
      ->check(quiet(CLI::IsMember({"sgd", "adam", "rmsprop", "adagrad"})))
      ->type_name("sgd|adam|rmsprop|adagrad")
      ->capture_default_str()
      ->group(group);
  app.add_option("--lr", c.lr, "Learning rate (default: 0.001, or 0.01 for sgd)")
      ->check(detail::positive())
      ->type_name("RATE")
      ->group(group);
  app.add_option("--decay", c.decay, "Learning-rate time decay: step t uses lr / (1 + decay * t)")
      ->check(detail::real_in(0, 1e300, "a number >= 0"))
      ->type_name("D")
      ->capture_default_str()
      ->group(group);
  app.add_option("--momentum", c.momentum, "Momentum of sgd and rmsprop, in [0, 1)")
      ->check(detail::number(0, 1 - 1e-9, false, false, "a number in [0, 1)"))
      ->type_name("M")
      ->capture_default_str()
      ->group(group);
  app.add_option("--batch", c.batch, "Batch size")
      ->check(detail::whole_in(1, 1 << 20))
      ->type_name("N")
      ->capture_default_str()
      ->group(group);
  app.add_option("--epochs", c.epochs, "Passes over the training data")
      ->check(detail::whole_in(1, 100000))
      ->type_name("N")
      ->capture_default_str()
      ->group(group);
  app.add_option("--train-size", c.train_size, "Train on the first N training images only (0: all 60000)")
      ->check(detail::whole_in(0, 1e15))
      ->type_name("N")
      ->capture_default_str()
      ->group(group);
  app.add_option("--validation-split", c.validation_split,
                 "Fraction of the training images, taken from the end, held out for validation, in [0, 0.9] "
                 "(0: none)")
      ->check(detail::real_in(0, 0.9, "a fraction in [0, 0.9]"))
      ->type_name("F")
      ->capture_default_str()
      ->group(group);
  app.add_flag("--validate-on-test", c.validate_on_test,
               "Validate on the test set instead of a split of the training images (as the notebook does)")
      ->group(group);
  app.add_option("--patience", c.patience,
                 "Early stopping: stop when val_loss has not improved for N epochs, and keep the best "
                 "weights (0: off)")
      ->check(detail::whole_in(0, 100000))
      ->type_name("N")
      ->capture_default_str()
      ->group(group);
  app.add_option("--seed", c.seed, "Seed of every random draw: initialisation, dropout, shuffling")
      ->type_name("N")
      ->capture_default_str()
      ->group(group);
  app.add_option("--preset", c.preset,
                 "Start from a preset; explicit options override its values. notebook: the lecture "
                 "notebook (its network, batch 256, Adam 1e-3 with decay 1e-3/30, 30 epochs, the test set "
                 "as validation data)")
      ->check(quiet(CLI::IsMember({"notebook"})))
      ->type_name("notebook")
      ->group(group);
}

/// Adds the options only the command line has.
inline void add_program_options(CLI::App& app, Config& c) {
  using detail::quiet;
  const std::string group = "Program";
  app.add_option("--data", c.data_dir,
                 "Directory with the four Fashion-MNIST files (default: $FALTUNG_FASHION_MNIST_DIR, else "
                 "/usr/share/datasets/fashion-mnist)")
      ->type_name("DIR")
      ->group(group);
  app.add_option("--out", c.out, "Directory for the outputs (created)")
      ->type_name("DIR")
      ->capture_default_str()
      ->group(group);
  app.add_option("--threads", c.threads, "Threads of the kernels (0: every core, or OMP_NUM_THREADS)")
      ->check(detail::whole_in(0, 4096))
      ->type_name("N")
      ->capture_default_str()
      ->group(group);
  app.add_option("--verbose", c.verbose, "0 silent, 1 progress bar, 2 one line per epoch")
      ->check(detail::whole_in(0, 2))
      ->type_name("0|1|2")
      ->capture_default_str()
      ->group(group);
  app.add_flag("--summary-only", c.summary_only, "Print the model summary and exit")->group(group);
  app.add_option("--sweep", c.sweep,
                 "Train the configurations of FILE one after another, one per line (see below), and "
                 "compare them")
      ->type_name("FILE")
      ->group(group);
  app.add_option("--predict", c.predict,
                 "Classify pictures of your own (PNG, JPEG, BMP, PGM) with a saved model: print each one's three "
                 "likeliest classes and draw them all in OUT/picture_predictions.svg")
      ->expected(2, -1)
      ->type_name("MODEL IMAGE...")
      ->group(group);
  app.add_option("--checkpoint-dir", c.checkpoint_dir,
                 "Write a checkpoint into DIR (created) at the end of every epoch: model.faltung and "
                 "training_state.faltung (optimizer state, random generators, epoch, history), from which "
                 "--resume DIR continues an interrupted run")
      ->type_name("DIR")
      ->group(group);
  app.add_option("--resume", c.resume,
                 "Continue an interrupted run from the checkpoint in DIR (written by --checkpoint-dir), "
                 "with the same training options, up to --epochs; it ends with the weights the "
                 "uninterrupted run would have had. Checkpoints keep going to DIR")
      ->type_name("DIR")
      ->group(group);
}

/// Records which options were given in the latest parse of `app`.
inline void record_explicit(const CLI::App& app, Config& c) {
  for (const auto* names : {&training_option_names(), &program_option_names()})
    for (const std::string& n : *names) {
      try {
        if (app.count(n) > 0) c.explicit_options.insert(n);
      } catch (const CLI::OptionNotFound&) {
        // a sweep line's parser has no program options
      }
    }
}

/// Sets every option of the preset `c.preset` that was not given explicitly. Throws ConfigError
/// for an unknown preset.
inline void apply_preset(Config& c) {
  if (c.preset.empty()) return;
  if (c.preset != "notebook") throw ConfigError("unknown preset '" + c.preset + "' (known: notebook)");
  auto set = [&](const char* option, const std::function<void()>& apply) {
    if (!c.is_explicit(option)) apply();
  };
  set("--arch", [&] { c.arch = notebook_arch(); });
  set("--optimizer", [&] { c.optimizer = "adam"; });
  set("--lr", [&] { c.lr = 1e-3; });
  set("--decay", [&] { c.decay = 1e-3 / 30; });
  set("--batch", [&] { c.batch = 256; });
  set("--epochs", [&] { c.epochs = 30; });
  // The notebook validates on the test set, unless a split is asked for.
  if (!c.is_explicit("--validation-split")) c.validate_on_test = true;
}

/// Checks combinations the per-option validators cannot see. Throws ConfigError.
inline void validate(const Config& c) {
  if (c.arch.empty()) throw ConfigError("--arch: the architecture is empty");
  if (c.momentum > 0 && c.optimizer != "sgd" && c.optimizer != "rmsprop")
    throw ConfigError("--momentum applies to --optimizer sgd and rmsprop only, not " + c.optimizer);
  if (c.patience > 0 && !c.validate_on_test && c.validation_split <= 0)
    throw ConfigError("--patience needs validation data: set --validation-split above 0 or --validate-on-test");
  if (!c.name.empty()) {
    for (char ch : c.name)
      if (!(std::isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '_' || ch == '.'))
        throw ConfigError("run name '" + c.name + "': use only letters, digits, '-', '_' and '.'");
    if (c.name == "." || c.name == "..") throw ConfigError("run name '" + c.name + "' is not a directory name");
  }
}

/// --checkpoint-dir and --resume: one run's checkpoints, in one directory. Throws ConfigError.
inline void validate_checkpoints(const Config& c) {
  if (!c.sweep.empty() && !c.checkpoints().empty())
    throw ConfigError(std::string(c.resume.empty() ? "--checkpoint-dir" : "--resume") +
                      " applies to a single run, not to --sweep");
  if (!c.resume.empty()) {
    if (!c.checkpoint_dir.empty() && c.checkpoint_dir != c.resume)
      throw ConfigError("--resume " + c.resume + " keeps writing its checkpoints there: --checkpoint-dir " +
                        c.checkpoint_dir + " cannot be another directory");
    if (!faltung::checkpoint_exists(c.resume))
      throw ConfigError("--resume: '" + c.resume + "' holds no checkpoint (" +
                        faltung::checkpoint_state_path(c.resume) + " is missing); --checkpoint-dir " + c.resume +
                        " writes one");
  } else if (!c.checkpoint_dir.empty() && faltung::checkpoint_exists(c.checkpoint_dir)) {
    throw ConfigError("--checkpoint-dir: '" + c.checkpoint_dir + "' already holds a checkpoint: continue it with --resume " +
                      c.checkpoint_dir + ", or choose another directory");
  }
}

/// --predict uses a saved model: every option about training or the data is a mistake beside it.
inline void validate_predict(const Config& c) {
  for (const auto* names : {&training_option_names(), &program_option_names()})
    for (const std::string& n : *names)
      if (c.is_explicit(n) && n != "--predict" && n != "--out" && n != "--threads")
        throw ConfigError("--predict classifies pictures with a saved model: " + n +
                          " does not apply (only --out and --threads do)");
}

/// Parses the command line into a Config (the preset applied, validated). CLI11's own errors
/// (--help included) are thrown as CLI::Error for main to hand to app.exit(); others as ConfigError.
inline Config parse_command_line(CLI::App& app, Config& c, int argc, const char* const* argv) {
  app.parse(argc, argv);
  record_explicit(app, c);
  if (!c.predict.empty()) {
    validate_predict(c);
    return c;
  }
  validate_checkpoints(c);
  if (!c.sweep.empty()) {
    // The sweep's lines are resolved and validated one by one, with the command line as their
    // base (see parse_sweep).
    return c;
  }
  Config resolved = c;
  apply_preset(resolved);
  validate(resolved);
  return resolved;
}

/// One configuration of a sweep file.
struct SweepLine {
  int line = 0;   ///< 1-based line number (of the first physical line)
  Config config;  ///< base + the line's options, preset applied, validated
};

namespace detail {
inline std::string trim(const std::string& s) { return std::string(faltung::detail::trim(s)); }

/// The line without its comment: '#' at the start or after whitespace, outside quotes.
inline std::string strip_comment(const std::string& s) {
  char quote = 0;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char ch = s[i];
    if (quote) {
      if (ch == quote) quote = 0;
    } else if (ch == '"' || ch == '\'') {
      quote = ch;
    } else if (ch == '#' && (i == 0 || s[i - 1] == ' ' || s[i - 1] == '\t')) {
      return s.substr(0, i);
    }
  }
  return s;
}
}  // namespace detail

/// Parses one sweep line (comment already removed, not empty) on top of `base`, the command
/// line's configuration before its preset. `where` prefixes errors ("runs.txt:3").
inline Config parse_sweep_line(const std::string& text, const Config& base, const std::string& where) {
  Config c = base;
  std::string rest = detail::trim(text);
  // "name=NAME" first: the run's name.
  if (rest.rfind("name=", 0) == 0) {
    const auto end = rest.find_first_of(" \t");
    c.name = rest.substr(5, end == std::string::npos ? std::string::npos : end - 5);
    c.explicit_options.insert("--name");
    rest = end == std::string::npos ? "" : detail::trim(rest.substr(end));
    if (c.name.empty()) throw ConfigError(where + ": 'name=' needs a name");
  }
  CLI::App app("sweep line");
  app.allow_extras(false);
  std::string preset_before = c.preset;
  c.preset.clear();
  add_training_options(app, c);
  try {
    app.parse(rest, false);
  } catch (const CLI::ExtrasError& e) {
    throw ConfigError(where + ": " + e.what() +
                      " (a sweep line takes 'name=NAME' and the training options: --arch, --optimizer, --lr, "
                      "--decay, --momentum, --batch, --epochs, --train-size, --validation-split, "
                      "--validate-on-test, --patience, --seed, --preset)");
  } catch (const CLI::Error& e) {
    throw ConfigError(where + ": " + e.what());
  }
  record_explicit(app, c);
  if (c.preset.empty()) c.preset = preset_before;
  try {
    apply_preset(c);
    validate(c);
  } catch (const ConfigError& e) {
    throw ConfigError(where + ": " + e.what());
  }
  return c;
}

/// Reads a sweep file: one configuration per line; blank lines and '#' comments are skipped;
/// a line ending in '\' continues on the next (an architecture may break after a comma). Runs
/// without a name get run1, run2, ... by position. Names must be unique. Throws ConfigError
/// naming the file and line.
inline std::vector<SweepLine> parse_sweep(std::istream& in, const Config& base, const std::string& file) {
  std::vector<SweepLine> lines;
  std::string physical, logical;
  int number = 0, first = 0;
  auto finish = [&] {
    const std::string text = detail::trim(logical);
    logical.clear();
    if (text.empty()) return;
    SweepLine s;
    s.line = first;
    s.config = parse_sweep_line(text, base, file + ":" + std::to_string(first));
    lines.push_back(std::move(s));
  };
  while (std::getline(in, physical)) {
    ++number;
    if (logical.empty()) first = number;
    std::string t = detail::trim(detail::strip_comment(physical));
    if (!t.empty() && t.back() == '\\') {
      // Continued: a space separates options, but an architecture broken after a comma or
      // colon is joined without one.
      t = detail::trim(t.substr(0, t.size() - 1));
      logical += t;
      if (!t.empty() && t.back() != ',' && t.back() != ':') logical += ' ';
      continue;
    }
    logical += t;
    finish();
  }
  finish();
  if (lines.empty()) throw ConfigError(file + ": no configurations (one per line, e.g. 'name=small --epochs 5')");
  std::set<std::string> names;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    Config& c = lines[i].config;
    if (!c.is_explicit("--name") || c.name.empty()) c.name = "run" + std::to_string(i + 1);
    if (!names.insert(c.name).second)
      throw ConfigError(file + ":" + std::to_string(lines[i].line) + ": the run name '" + c.name +
                        "' is used twice; give each line its own name=NAME");
  }
  return lines;
}

inline std::vector<SweepLine> parse_sweep_file(const std::string& path, const Config& base) {
  std::ifstream in(path);
  if (!in) throw ConfigError("--sweep: cannot open '" + path + "'");
  return parse_sweep(in, base, path);
}

/// The options of a configuration as a command line (the non-default ones), for reports.
inline std::string describe(const Config& c) {
  std::ostringstream os;
  os << "--arch " << c.arch << " --optimizer " << c.optimizer << " --lr " << c.learning_rate();
  if (c.decay > 0) os << " --decay " << c.decay;
  if (c.momentum > 0) os << " --momentum " << c.momentum;
  os << " --batch " << c.batch << " --epochs " << c.epochs;
  if (c.train_size) os << " --train-size " << c.train_size;
  if (c.validate_on_test)
    os << " --validate-on-test";
  else
    os << " --validation-split " << c.validation_split;
  if (c.patience) os << " --patience " << c.patience;
  os << " --seed " << c.seed;
  return os.str();
}

}  // namespace fmnist
