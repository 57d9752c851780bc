// fashion_mnist: train a CNN on Fashion-MNIST from the command line, as in the lecture's case
// study, and write its history, model, plots and report. With --sweep, train several
// configurations one after another and compare them.
//
//   fashion_mnist                          the default CNN, about 0.92 test accuracy
//   fashion_mnist --preset notebook        the lecture notebook's network and settings
//   fashion_mnist --arch conv:16:3:same:relu,pool:2,flatten,dense:10 --epochs 3
//   fashion_mnist --sweep runs.txt --out sweep_out
//   fashion_mnist --predict fashion_mnist_out/model.faltung shirt.jpg boot.png
//   fashion_mnist --checkpoint-dir ckpt     (interrupted)   then   fashion_mnist --resume ckpt
//   mpirun -np 2 fashion_mnist --threads 1   data-parallel over 2 processes (with faltung::mpi)
//
// The pieces: options.hpp (command line, presets, sweep files), run.hpp (one run), report.hpp
// (results.md, sweep tables), plots.hpp and ../common/svg_plot.hpp (the SVG plots), predict.hpp
// (your own pictures; only with stb_image, FALTUNG_EXAMPLE_HAS_IMAGE).

#include <CLI/CLI.hpp>
#include <chrono>
#include <faltung/faltung.hpp>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "options.hpp"
#include "report.hpp"
#include "run.hpp"
#if FALTUNG_EXAMPLE_HAS_IMAGE
#include "predict.hpp"
#endif
#if FALTUNG_EXAMPLE_HAS_MPI
#include <faltung/distributed/mpi.hpp>
#endif

namespace {

using fmnist::Config;
using fmnist::ConfigError;

/// The processes of a run started by mpirun; null for a plain run (and without faltung::mpi).
faltung::Communicator* processes = nullptr;
bool writes_files() { return !processes || processes->rank() == 0; }

/// A problem with the data (missing, unreadable): exit status 3.
struct DataError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

faltung::FashionMnist load_data(const Config& c) {
  const std::string dir = c.data_dir.empty() ? faltung::default_fashion_mnist_dir() : c.data_dir;
  const std::string install_hint =
      "  Install it with:  sudo apt-get install dataset-fashion-mnist\n"
      "  or pass --data DIR, a directory with train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz,\n"
      "  t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz (from github.com/zalandoresearch/fashion-mnist).";
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec))
    throw DataError("Fashion-MNIST not found: '" + dir + "' is not a directory.\n" + install_hint);
  std::cout << "Loading Fashion-MNIST from " << dir << " ... " << std::flush;
  const auto start = std::chrono::steady_clock::now();
  try {
    faltung::FashionMnist data = faltung::load_fashion_mnist(dir);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::cout << data.train.size() << " training and " << data.test.size() << " test images (" << std::fixed
              << std::setprecision(1) << s << " s)\n"
              << std::defaultfloat << std::setprecision(6);
    return data;
  } catch (const faltung::Error& e) {
    std::cout << "failed\n";
    // A missing file gets the installation hint; a damaged one its own message only.
    const std::string what = e.what();
    throw DataError("cannot load Fashion-MNIST: " + what +
                    (what.find("cannot open") != std::string::npos ? "\n" + install_hint : std::string()));
  }
}

/// Builds the model of `c` to check its architecture before any data is loaded.
faltung::Sequential<float> checked_model(const Config& c, const std::string& source) {
  try {
    return fmnist::build_model(c, source);
  } catch (const faltung::Error& e) {
    // The parser's messages start with the source; the model's own (a shape that does not fit)
    // get it put in front.
    const std::string what = e.what();
    throw ConfigError(what.rfind(source, 0) == 0 ? what : source + ": " + what);
  }
}

int run_single(const Config& c) {
  faltung::Sequential<float> net = checked_model(c, "--arch");
  if (c.summary_only) {
    std::cout << "Architecture: " << net.spec() << "\n";
    net.summary(std::cout);
    return 0;
  }
  const faltung::FashionMnist data = load_data(c);
  if (writes_files()) fmnist::make_directory(c.out);  // fail now, not after training
  const fmnist::RunResult r = fmnist::train_and_report(c, data, c.out, std::cout, processes);
  fmnist::print_run_summary(r, std::cout);
  return 0;
}

int run_sweep(const Config& base) {
  const std::vector<fmnist::SweepLine> lines = fmnist::parse_sweep_file(base.sweep, base);
  // Every architecture is checked before the first run starts, so that a typo on the last line
  // does not wait for the runs before it.
  std::cout << "Sweep of " << lines.size() << " runs from " << base.sweep << ":\n";
  for (const fmnist::SweepLine& l : lines) {
    faltung::Sequential<float> net = checked_model(l.config, base.sweep + ":" + std::to_string(l.line) + ": --arch");
    std::cout << "  " << l.config.name << " (" << fmnist::detail::group_digits(net.parameter_count())
              << " parameters): " << fmnist::describe(l.config) << "\n";
    if (base.summary_only) {
      net.summary(std::cout);
      std::cout << "\n";
    }
  }
  if (base.summary_only) return 0;
  const faltung::FashionMnist data = load_data(base);
  if (writes_files()) fmnist::make_directory(base.out);

  std::vector<fmnist::RunResult> results;
  int failures = 0;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const Config& c = lines[i].config;
    std::cout << "\n=== Run " << i + 1 << "/" << lines.size() << ": " << c.name << " ===\n";
    const std::string dir = fmnist::join_path(base.out, c.name);
    try {
      results.push_back(fmnist::train_and_report(c, data, dir, std::cout, processes));
      fmnist::print_run_summary(results.back(), std::cout);
    } catch (const std::exception& e) {
      // One failed run (a NaN is not a failure: fit stops and reports it) does not lose the others.
      ++failures;
      fmnist::RunResult r;
      r.config = c;
      r.out_dir = dir;
      r.error = e.what();
      results.push_back(r);
      std::cerr << "error: run '" << c.name << "' failed: " << e.what() << "\n";
    }
    // The comparison so far, rewritten after each run: a long sweep can be read while it runs.
    if (writes_files()) fmnist::write_sweep_reports(results, base.out, base.sweep);
  }
  if (!writes_files()) return failures ? 1 : 0;
  const std::vector<std::string> files = fmnist::write_sweep_reports(results, base.out, base.sweep);
  std::cout << "\n" << fmnist::sweep_table_md(results) << "\nSweep outputs in " << base.out << "/: ";
  for (std::size_t i = 0; i < files.size(); ++i) std::cout << (i ? ", " : "") << files[i];
  std::cout << ", and one directory per run\n";
  return failures ? 1 : 0;
}

/// --predict MODEL IMAGE...: 0 when every picture was classified, 3 when the model or a picture
/// could not be read.
int run_predict(const Config& c) {
#if FALTUNG_EXAMPLE_HAS_IMAGE
  try {
    const std::vector<std::string> pictures(c.predict.begin() + 1, c.predict.end());
    return fmnist::classify_pictures(c.predict.front(), pictures, c.out, std::cout, std::cerr) ? 3 : 0;
  } catch (const faltung::Error& e) {
    throw DataError(e.what());
  }
#else
  (void)c;
  throw ConfigError("--predict reads pictures with stb_image, and this fashion_mnist was built without it: "
                    "install libstb-dev (Debian) and configure again");
#endif
}

const char* footer() {
  return R"(Examples:
  fashion_mnist                                   the default CNN (0.92 on the test set)
  fashion_mnist --train-size 5000 --epochs 2      a quick try
  fashion_mnist --preset notebook                 the lecture notebook's network and settings
  fashion_mnist --preset notebook --epochs 5      ... with explicit options overriding the preset
  fashion_mnist --arch conv:16:3:same:relu,pool:2,flatten,dense:64:relu,dense:10 --summary-only
  fashion_mnist --sweep runs.txt --out sweep_out
  fashion_mnist --predict fashion_mnist_out/model.faltung shirt.jpg boot.png    your own pictures
  fashion_mnist --checkpoint-dir ckpt             a checkpoint after every epoch; if interrupted,
  fashion_mnist --resume ckpt                     ... continue where it stopped (same options)

Architecture language (--arch), layers separated by commas:
  conv:FILTERS:KERNEL[:same|valid|pN][:sN][:ACTIVATION]   e.g. conv:32:3:same:relu, conv:64:5x5:s2
  pool:SIZE[:sN][:same]                                   e.g. pool:2
  drop:RATE   flatten   dense:UNITS[:ACTIVATION]           e.g. drop:0.25, dense:128:relu
  relu | leaky_relu[=ALPHA] | sigmoid | tanh | softmax    an activation layer
  End with dense:10 and no softmax: the loss takes logits.

Sweep file (--sweep FILE): one run per line, with the training options above and an optional
name first; '#' starts a comment; the command line's options apply to every line, a line's own
options override them. For example:
  name=small  --arch conv:16:3:same:relu,pool:2,flatten,dense:10 --epochs 5
  name=keras  --epochs 10
  name=sgd    --optimizer sgd --lr 0.05 --momentum 0.9

Outputs (--out): history.csv, model.faltung, curves.svg, confusion_matrix.svg, predictions.svg,
results.md; for a sweep one such directory per run and sweep.md, sweep.csv, sweep_val_accuracy.svg;
for --predict picture_predictions.svg.

Exit status: 0 done, 1 a failure while training or writing, 2 a bad option, architecture or sweep
file, 3 the data (or --predict's model or a picture) is missing or unreadable.)";
}

}  // namespace

/// Under mpirun, a failure that only this process may have met (its data missing, a disk full on
/// rank 0) ends every process of the job instead of leaving the others waiting for it.
int finish(int status) {
#if FALTUNG_EXAMPLE_HAS_MPI
  if (status != 0 && processes && processes->size() > 1) static_cast<faltung::MpiCommunicator*>(processes)->abort(status);
#endif
  return status;
}

int main(int argc, char** argv) {
#if FALTUNG_EXAMPLE_HAS_MPI
  // Started by mpirun: train on every process, print on rank 0 (the others' std::cout goes
  // nowhere). Started alone: as before, MPI untouched.
  std::unique_ptr<faltung::MpiEnvironment> mpi;
  std::unique_ptr<faltung::MpiCommunicator> world;
  std::ostream quiet(nullptr);
  if (faltung::MpiEnvironment::launched()) {
    mpi = std::make_unique<faltung::MpiEnvironment>(&argc, &argv);
    world = std::make_unique<faltung::MpiCommunicator>();
    if (world->size() > 1) processes = world.get();
    if (world->rank() != 0) std::cout.rdbuf(quiet.rdbuf());
  }
#endif
  CLI::App app("Train a convolutional network on Fashion-MNIST and plot the results (faltung " +
                   std::string(FALTUNG_VERSION_STRING) + ")",
               "fashion_mnist");
  app.footer(footer());
  app.get_formatter()->column_width(34);
  Config parsed;
  fmnist::add_training_options(app, parsed);
  fmnist::add_program_options(app, parsed);
  Config c;
  try {
    c = fmnist::parse_command_line(app, parsed, argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help prints the help and gives 0; a bad option prints CLI11's message, and gives 2 like
    // every other usage error here.
    return app.exit(e) == 0 ? 0 : 2;
  } catch (const ConfigError& e) {
    std::cerr << "error: " << e.what() << "\nRun with --help for the options.\n";
    return 2;
  }
  // Errors name the process that met them when there are several.
  const std::string error = processes ? "error (rank " + std::to_string(processes->rank()) + "): " : "error: ";
  try {
    if (c.threads > 0) faltung::set_num_threads(c.threads);
    if (!c.predict.empty()) return run_predict(c);
    return finish(c.sweep.empty() ? run_single(c) : run_sweep(c));
  } catch (const ConfigError& e) {
    std::cerr << error << e.what() << "\n";
    return finish(2);
  } catch (const DataError& e) {
    std::cerr << error << e.what() << "\n";
    return finish(3);
  } catch (const std::exception& e) {
    std::cerr << error << e.what() << "\n";
    return finish(1);
  }
}
