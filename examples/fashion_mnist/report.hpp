#pragma once
// Reports: results.md of one run, and sweep.md / sweep.csv / sweep_val_accuracy.svg comparing
// the runs of a sweep.

#include <cmath>
#include <cstddef>
#include <cstdio>
#include <faltung/data/fashion_mnist.hpp>
#include <faltung/text.hpp>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <ostream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "plots.hpp"
#include "result.hpp"

namespace fmnist {

namespace detail {
inline std::string fixed(double v, int decimals) {
  if (!std::isfinite(v)) return "-";
  std::ostringstream os;
  os << std::fixed << std::setprecision(decimals) << v;
  return os.str();
}

using faltung::detail::group_digits;

/// Text for a Markdown table cell: '|' escaped, in backticks when asked.
inline std::string md_cell(const std::string& s, bool code = false) {
  std::string out;
  for (char c : s) out += c == '|' ? std::string("\\|") : std::string(1, c);
  return code ? "`" + out + "`" : out;
}

/// A CSV field, quoted when it holds a comma, quote or newline (RFC 4180).
inline std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

inline std::ofstream open_for_writing(const std::string& path) {
  std::ofstream out(path);
  if (!out) throw std::runtime_error("cannot write '" + path + "'");
  return out;
}

inline void check_written(const std::ofstream& out, const std::string& path) {
  if (!out.good()) throw std::runtime_error("writing '" + path + "' failed");
}
}  // namespace detail

/// results.md: the configuration, the per-epoch metrics, the test results per class, and the
/// plots (as images, so the file renders with them on GitHub or in an editor's preview).
inline void write_results_md(const RunResult& r, const std::string& path) {
  using detail::fixed;
  std::ofstream out = detail::open_for_writing(path);
  const Config& c = r.config;
  const faltung::History& h = r.history;
  out << "# Fashion-MNIST" << (c.name.empty() ? "" : ": " + c.name) << "\n\n";
  out << "| | |\n|---|---|\n";
  out << "| architecture | `" << r.spec << "` |\n";
  out << "| parameters | " << detail::group_digits(r.parameters) << " |\n";
  out << "| optimizer | " << r.optimizer << " |\n";
  out << "| batch size | " << c.batch << " |\n";
  out << "| epochs | " << h.epochs() << " of " << c.epochs << " |\n";
  out << "| training images | " << r.train_samples << " |\n";
  out << "| validation | " << r.validation << " |\n";
  out << "| seed | " << c.seed << " |\n";
  out << "| training time | " << fixed(r.fit_seconds, 1) << " s (" << fixed(r.seconds_per_epoch(), 1)
      << " s per epoch) |\n";
  out << "| **test accuracy** | **" << fixed(r.test.accuracy, 4) << "** (loss " << fixed(r.test.loss, 4) << ", "
      << r.test_samples << " images) |\n";
  if (r.best_val_epoch() >= 0)
    out << "| best validation accuracy | " << fixed(r.best_val_accuracy(), 4) << " (epoch " << r.best_val_epoch() + 1
        << ") |\n";
  if (!h.stop_reason.empty()) out << "| stopped | " << detail::md_cell(h.stop_reason) << " |\n";
  out << "\nCommand line: `fashion_mnist " << describe(c) << "`\n";

  out << "\n## Training curves\n\n![training curves](curves.svg)\n\n";
  out << "| epoch | loss | accuracy | val_loss | val_accuracy | learning rate | seconds |\n";
  out << "|---:|---:|---:|---:|---:|---:|---:|\n";
  auto at = [](const std::vector<double>& v, std::size_t i) { return i < v.size() ? v[i] : std::nan(""); };
  for (std::size_t i = 0; i < h.epochs(); ++i) {
    std::ostringstream lr;
    lr << std::setprecision(4) << at(h.learning_rate, i);
    out << "| " << i + 1 << " | " << fixed(at(h.loss, i), 4) << " | " << fixed(at(h.accuracy, i), 4) << " | "
        << fixed(at(h.val_loss, i), 4) << " | " << fixed(at(h.val_accuracy, i), 4) << " | " << lr.str() << " | "
        << fixed(at(h.seconds, i), 1) << " |\n";
  }

  out << "\n## Test set, per class\n\n![confusion matrix](confusion_matrix.svg)\n\n";
  out << "| class | correct | accuracy | most often mistaken for |\n|---|---:|---:|---|\n";
  const auto& names = faltung::FashionMnist::class_names();
  for (std::size_t t = 0; t < r.confusion.size(); ++t) {
    std::size_t total = 0, worst = t, worst_count = 0;
    for (std::size_t p = 0; p < r.confusion[t].size(); ++p) {
      total += r.confusion[t][p];
      if (p != t && r.confusion[t][p] > worst_count) worst = p, worst_count = r.confusion[t][p];
    }
    out << "| " << (t < names.size() ? names[t] : std::to_string(t)) << " | " << r.confusion[t][t] << " / " << total
        << " | " << fixed(total ? double(r.confusion[t][t]) / double(total) : std::nan(""), 3) << " | ";
    if (worst_count) out << (worst < names.size() ? names[worst] : std::to_string(worst)) << " (" << worst_count << ")";
    out << " |\n";
  }
  out << "\n## Predictions\n\n![predictions](predictions.svg)\n\n";
  out << "Files: ";
  for (std::size_t i = 0; i < r.files.size(); ++i) out << (i ? ", " : "") << '`' << r.files[i] << '`';
  out << "\n";
  detail::check_written(out, path);
}

/// The end of a run on the terminal: test results and where the outputs are.
inline void print_run_summary(const RunResult& r, std::ostream& os) {
  using detail::fixed;
  os << "\nTest loss: " << fixed(r.test.loss, 4) << " - test accuracy: " << fixed(r.test.accuracy, 4) << " ("
     << r.test_samples << " images)\n";
  if (r.best_val_epoch() >= 0)
    os << "Best validation accuracy: " << fixed(r.best_val_accuracy(), 4) << " at epoch " << r.best_val_epoch() + 1
       << "\n";
  os << "Training took " << fixed(r.fit_seconds, 1) << " s (" << fixed(r.seconds_per_epoch(), 1) << " s per epoch)\n";
  os << "Outputs in " << r.out_dir << "/: ";
  for (std::size_t i = 0; i < r.files.size(); ++i) os << (i ? ", " : "") << r.files[i];
  os << "\n";
}

/// sweep.csv: one row per run, raw numbers.
inline void write_sweep_csv(const std::vector<RunResult>& runs, const std::string& path) {
  std::ofstream out = detail::open_for_writing(path);
  out << "name,architecture,optimizer,lr,decay,momentum,batch,epochs_run,epochs,train_images,parameters,"
         "best_val_accuracy,best_val_epoch,test_accuracy,test_loss,seconds_per_epoch,total_seconds,status\n";
  out << std::setprecision(6);
  for (const RunResult& r : runs) {
    const Config& c = r.config;
    out << detail::csv_field(c.name) << ',' << detail::csv_field(r.spec.empty() ? c.arch : r.spec) << ',' << c.optimizer
        << ',' << c.learning_rate() << ',' << c.decay << ',' << c.momentum << ',' << c.batch << ','
        << r.history.epochs() << ',' << c.epochs << ',' << r.train_samples << ',' << r.parameters << ',';
    auto num = [&](double v) {
      if (std::isfinite(v)) out << v;
    };
    num(r.best_val_accuracy());
    out << ',';
    if (r.best_val_epoch() >= 0) out << r.best_val_epoch() + 1;
    out << ',';
    num(r.failed() ? std::nan("") : r.test.accuracy);
    out << ',';
    num(r.failed() ? std::nan("") : r.test.loss);
    out << ',';
    num(r.seconds_per_epoch());
    out << ',';
    num(r.fit_seconds);
    out << ',' << detail::csv_field(r.failed() ? "failed: " + r.error : "ok") << '\n';
  }
  detail::check_written(out, path);
}

/// The comparison table in Markdown (sweep.md, and printed at the end of a sweep).
inline std::string sweep_table_md(const std::vector<RunResult>& runs) {
  using detail::fixed;
  std::ostringstream out;
  out << "| run | architecture | optimizer | lr | batch | epochs | parameters | best val acc (epoch) | test acc | "
         "s / epoch |\n";
  out << "|---|---|---|---:|---:|---:|---:|---:|---:|---:|\n";
  std::size_t best = runs.size();
  for (std::size_t i = 0; i < runs.size(); ++i)
    if (!runs[i].failed() && (best == runs.size() || runs[i].test.accuracy > runs[best].test.accuracy)) best = i;
  for (std::size_t i = 0; i < runs.size(); ++i) {
    const RunResult& r = runs[i];
    const Config& c = r.config;
    std::ostringstream lr;
    lr << c.learning_rate();
    if (c.decay > 0) lr << ", decay " << c.decay;
    if (c.momentum > 0) lr << ", mom. " << c.momentum;
    out << "| " << detail::md_cell(c.name) << " | " << detail::md_cell(r.spec.empty() ? c.arch : r.spec, true) << " | "
        << c.optimizer << " | " << lr.str() << " | " << c.batch << " | " << r.history.epochs();
    if (r.history.epochs() != std::size_t(c.epochs)) out << " of " << c.epochs;
    out << " | " << detail::group_digits(r.parameters) << " | ";
    if (r.best_val_epoch() >= 0)
      out << fixed(r.best_val_accuracy(), 4) << " (" << r.best_val_epoch() + 1 << ")";
    else
      out << "-";
    out << " | ";
    if (r.failed())
      out << "failed: " << detail::md_cell(r.error);
    else if (i == best)
      out << "**" << fixed(r.test.accuracy, 4) << "**";
    else
      out << fixed(r.test.accuracy, 4);
    out << " | " << fixed(r.seconds_per_epoch(), r.seconds_per_epoch() < 10 ? 2 : 1) << " |\n";
  }
  return out.str();
}

/// sweep.md, sweep.csv and sweep_val_accuracy.svg in `dir`; returns the file names.
inline std::vector<std::string> write_sweep_reports(const std::vector<RunResult>& runs, const std::string& dir,
                                                    const std::string& sweep_file) {
  namespace fs = std::filesystem;
  std::vector<std::string> files;
  {
    const std::string path = (fs::path(dir) / "sweep.md").string();
    std::ofstream out = detail::open_for_writing(path);
    out << "# Fashion-MNIST sweep\n\n"
        << runs.size() << " runs from `" << sweep_file << "`, trained one after another; each run's outputs are in "
        << "its own directory. The best test accuracy is in bold.\n\n"
        << sweep_table_md(runs) << "\n![validation accuracy of every run](sweep_val_accuracy.svg)\n\n"
        << "## Configurations\n\n";
    for (const RunResult& r : runs)
      out << "- [" << r.config.name << "](" << r.config.name << "/results.md): `" << describe(r.config) << "`\n";
    detail::check_written(out, path);
    files.push_back("sweep.md");
  }
  write_sweep_csv(runs, (fs::path(dir) / "sweep.csv").string());
  files.push_back("sweep.csv");

  std::vector<NamedCurve> curves;
  bool any_validation = false;
  for (const RunResult& r : runs) any_validation = any_validation || !r.history.val_accuracy.empty();
  for (const RunResult& r : runs) {
    if (r.history.epochs() == 0) continue;
    curves.push_back({r.config.name, any_validation ? r.history.val_accuracy : r.history.accuracy});
  }
  overlay_curves_svg(curves,
                     any_validation ? "Validation accuracy per run" : "Training accuracy per run (no validation data)",
                     any_validation ? "validation accuracy" : "training accuracy")
      .save((fs::path(dir) / "sweep_val_accuracy.svg").string());
  files.push_back("sweep_val_accuracy.svg");
  return files;
}

}  // namespace fmnist
