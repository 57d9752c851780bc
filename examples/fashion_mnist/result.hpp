#pragma once
// What one training run produced: its configuration, history, test results and files.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <faltung/model/history.hpp>
#include <faltung/model/sequential.hpp>
#include <string>
#include <vector>

#include "options.hpp"

namespace fmnist {

/// What a run produced, for its report and a sweep's comparison.
struct RunResult {
  Config config;
  std::string spec;       ///< canonical architecture
  std::string optimizer;  ///< the optimizer's config(), e.g. "Adam(lr=0.001, ...)"
  std::size_t parameters = 0;
  std::size_t train_samples = 0, validation_samples = 0;
  std::string validation;  ///< where validation data came from, in words
  faltung::History history;
  faltung::Evaluation test;
  std::size_t test_samples = 0;
  double fit_seconds = 0;
  std::string out_dir;
  std::vector<std::vector<std::size_t>> confusion;  ///< [true][predicted] on the test set
  std::vector<std::string> files;                   ///< written into out_dir
  std::string error;                                ///< non-empty when the run failed

  bool failed() const { return !error.empty(); }
  double seconds_per_epoch() const {
    const auto& s = history.seconds;
    if (s.empty()) return std::nan("");
    double sum = 0;
    for (double v : s) sum += v;
    return sum / double(s.size());
  }
  /// 0-based epoch of the best validation accuracy, -1 without validation.
  int best_val_epoch() const {
    const auto& v = history.val_accuracy;
    if (v.empty()) return -1;
    return int(std::max_element(v.begin(), v.end()) - v.begin());
  }
  double best_val_accuracy() const {
    const int e = best_val_epoch();
    return e < 0 ? std::nan("") : history.val_accuracy[std::size_t(e)];
  }
};

}  // namespace fmnist
