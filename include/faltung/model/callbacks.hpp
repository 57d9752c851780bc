#pragma once
// Callbacks for Sequential::fit, as in Keras: EarlyStopping, ModelCheckpoint and LambdaCallback
// (a user's own function per batch and per epoch). A callback sees the training through
// TrainingState, which also lets it stop training and snapshot or restore the weights without
// knowing the model's scalar type.

#include <algorithm>
#include <any>
#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "faltung/config.hpp"
#include "faltung/model/history.hpp"

namespace faltung {

/// What the model offers its callbacks, independent of the scalar type.
class ModelAccess {
 public:
  virtual ~ModelAccess() = default;
  virtual std::any snapshot_weights() const = 0;
  virtual void restore_weights(const std::any& snapshot) = 0;
  virtual void save(const std::string& path) const = 0;
};

/// Metrics by Keras name: "loss", "accuracy", "val_loss", "val_accuracy", "lr".
using Logs = std::map<std::string, double>;

struct TrainingState {
  int epoch = 0;                  ///< 0-based current epoch
  int epochs = 0;                 ///< epochs requested
  std::size_t batch = 0;          ///< 0-based batch within the epoch (in on_batch_end)
  std::size_t batches = 0;        ///< batches per epoch
  Logs logs;                      ///< batch: running means of the epoch; epoch end: the epoch's metrics
  bool stop_training = false;     ///< set to true to stop after the current batch
  std::string stop_reason;        ///< why, for History::stop_reason
  History* history = nullptr;
  ModelAccess* model = nullptr;
};

class Callback {
 public:
  virtual ~Callback() = default;
  virtual void on_train_begin(TrainingState&) {}
  virtual void on_epoch_begin(TrainingState&) {}
  virtual void on_batch_end(TrainingState&) {}
  virtual void on_epoch_end(TrainingState&) {}
  virtual void on_train_end(TrainingState&) {}

  /// Called by fit before anything else, with the names the logs will hold at the end of each
  /// epoch ("loss", "accuracy", "val_loss", "val_accuracy", "lr"; the val_ ones only with
  /// validation data). A callback that reads a metric not among them throws here, before any
  /// training, rather than at the end of the first epoch.
  virtual void check_metrics(const std::vector<std::string>& metrics) const { (void)metrics; }
};

namespace detail {
/// Keras's "auto" mode: accuracies improve upwards, losses downwards.
inline bool higher_is_better(const std::string& monitor) { return monitor.find("acc") != std::string::npos; }

[[noreturn]] inline void fail_unavailable_metric(const char* who, const std::string& monitor,
                                                 const std::vector<std::string>& available) {
  std::string known;
  for (const std::string& m : available) known += (known.empty() ? "" : ", ") + m;
  fail(who, ": monitored metric '", monitor, "' is not available (available: ", known, ")",
       monitor.rfind("val_", 0) == 0 ? "; 'val_*' metrics need validation data (validation_split or validation "
                                       "x and y)"
                                     : "");
}

/// Throws, naming the callback, when `monitor` is not among the metrics fit will report.
inline void check_monitored(const char* who, const std::string& monitor, const std::vector<std::string>& metrics) {
  if (std::find(metrics.begin(), metrics.end(), monitor) == metrics.end()) fail_unavailable_metric(who, monitor, metrics);
}

/// The monitored metric's value in the epoch's logs.
inline double monitored(const TrainingState& s, const std::string& monitor, const char* who) {
  auto it = s.logs.find(monitor);
  if (it == s.logs.end()) {
    std::vector<std::string> available;
    for (const auto& kv : s.logs) available.push_back(kv.first);
    fail_unavailable_metric(who, monitor, available);
  }
  return it->second;
}
}  // namespace detail

/// Stops training when the monitored metric has stopped improving.
class EarlyStopping : public Callback {
 public:
  /// Metric to watch. Default "val_loss". Accuracies are maximised, losses minimised.
  EarlyStopping& monitor(std::string m) { monitor_ = std::move(m); return *this; }
  /// Smallest change that counts as an improvement. Default 0.
  EarlyStopping& min_delta(double d) { min_delta_ = std::abs(d); return *this; }
  /// Epochs without improvement before stopping. Default 0 (stop at the first non-improvement).
  EarlyStopping& patience(int p) { patience_ = p; return *this; }
  /// Restore the weights of the best epoch when training ends. Default false, as in Keras.
  EarlyStopping& restore_best_weights(bool on) { restore_best_ = on; return *this; }

  int stopped_epoch() const { return stopped_epoch_; }
  int best_epoch() const { return best_epoch_; }

  void check_metrics(const std::vector<std::string>& metrics) const override {
    detail::check_monitored("EarlyStopping", monitor_, metrics);
  }

  void on_train_begin(TrainingState&) override {
    wait_ = 0;
    stopped_epoch_ = -1;
    best_epoch_ = -1;
    best_ = detail::higher_is_better(monitor_) ? -std::numeric_limits<double>::infinity()
                                               : std::numeric_limits<double>::infinity();
    best_weights_.reset();
  }

  void on_epoch_end(TrainingState& s) override {
    const double value = detail::monitored(s, monitor_, "EarlyStopping");
    const bool better = detail::higher_is_better(monitor_) ? value - min_delta_ > best_ : value + min_delta_ < best_;
    if (better) {
      best_ = value;
      best_epoch_ = s.epoch;
      wait_ = 0;
      if (restore_best_ && s.model) best_weights_ = s.model->snapshot_weights();
      return;
    }
    if (++wait_ >= patience_) {  // Keras: patience 3 stops after 3 epochs without improvement
      stopped_epoch_ = s.epoch;
      s.stop_training = true;
      s.stop_reason = "early stopping: " + monitor_ + " did not improve for " + std::to_string(wait_) +
                      " epoch(s); best " + std::to_string(best_) + " at epoch " + std::to_string(best_epoch_ + 1);
    }
  }

  void on_train_end(TrainingState& s) override {
    if (s.history && best_epoch_ >= 0) s.history->best_epoch = best_epoch_;
    if (restore_best_ && best_weights_.has_value() && s.model) s.model->restore_weights(best_weights_);
  }

 private:
  std::string monitor_ = "val_loss";
  double min_delta_ = 0;
  int patience_ = 0;
  bool restore_best_ = false;
  int wait_ = 0, stopped_epoch_ = -1, best_epoch_ = -1;
  double best_ = 0;
  std::any best_weights_;
};

/// Saves the model to a file at the end of an epoch: every epoch, or only when the monitored
/// metric improved (save_best_only, the default here). Saving is atomic (io/model_file.hpp).
class ModelCheckpoint : public Callback {
 public:
  explicit ModelCheckpoint(std::string path) : path_(std::move(path)) {}
  ModelCheckpoint& monitor(std::string m) { monitor_ = std::move(m); return *this; }
  /// Default true: save only when the monitored metric improves.
  ModelCheckpoint& save_best_only(bool on) { best_only_ = on; return *this; }

  void check_metrics(const std::vector<std::string>& metrics) const override {
    if (best_only_) detail::check_monitored("ModelCheckpoint", monitor_, metrics);
  }

  void on_train_begin(TrainingState&) override {
    best_ = detail::higher_is_better(monitor_) ? -std::numeric_limits<double>::infinity()
                                               : std::numeric_limits<double>::infinity();
  }
  void on_epoch_end(TrainingState& s) override {
    if (!s.model) return;
    if (best_only_) {
      const double value = detail::monitored(s, monitor_, "ModelCheckpoint");
      const bool better = detail::higher_is_better(monitor_) ? value > best_ : value < best_;
      if (!better) return;
      best_ = value;
      if (s.history) s.history->best_epoch = s.epoch;
    }
    s.model->save(path_);
    ++saves_;
  }
  int saves() const { return saves_; }

 private:
  std::string path_;
  std::string monitor_ = "val_loss";
  bool best_only_ = true;
  double best_ = 0;
  int saves_ = 0;
};

/// A user's own functions, called after each batch and after each epoch.
class LambdaCallback : public Callback {
 public:
  using Function = std::function<void(TrainingState&)>;
  LambdaCallback& on_batch_end(Function f) { batch_end_ = std::move(f); return *this; }
  LambdaCallback& on_epoch_end(Function f) { epoch_end_ = std::move(f); return *this; }
  LambdaCallback& on_epoch_begin(Function f) { epoch_begin_ = std::move(f); return *this; }
  void on_batch_end(TrainingState& s) override { if (batch_end_) batch_end_(s); }
  void on_epoch_end(TrainingState& s) override { if (epoch_end_) epoch_end_(s); }
  void on_epoch_begin(TrainingState& s) override { if (epoch_begin_) epoch_begin_(s); }

 private:
  Function batch_end_, epoch_end_, epoch_begin_;
};

}  // namespace faltung
