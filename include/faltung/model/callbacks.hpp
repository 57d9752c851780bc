#pragma once
// Callbacks for Sequential::fit, as in Keras: EarlyStopping, ModelCheckpoint, LambdaCallback (a
// user's own function per batch and per epoch), the per-epoch learning-rate callbacks
// ReduceLROnPlateau and LearningRateScheduler, and BackupAndRestore (a checkpoint every epoch,
// from which an interrupted fit resumes). A callback sees the training through TrainingState,
// which also lets it stop training, change the learning rate, and snapshot or restore the
// weights without knowing the model's scalar type.
//
// A callback whose behaviour depends on earlier epochs (a patience counter, the best value so
// far) names its state and gives it as numbers (state_name, state, set_state): a checkpoint
// saves it, so that a resumed fit continues as the uninterrupted one would have.

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

FALTUNG_BEGIN_NAMESPACE

/// What the model offers its callbacks, independent of the scalar type.
class ModelAccess {
 public:
  virtual ~ModelAccess() = default;
  virtual std::any snapshot_weights() const = 0;
  virtual void restore_weights(const std::any& snapshot) = 0;
  virtual void save(const std::string& path) const = 0;
  /// The optimizer's base learning rate (before its schedule), and setting it: what Keras's
  /// callbacks read and write as `optimizer.lr`.
  virtual double learning_rate() const = 0;
  virtual void set_learning_rate(double lr) = 0;
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
  /// Set by BackupAndRestore in on_train_begin. After every callback's on_train_begin, fit
  /// resumes from the checkpoint in this directory when there is one; after every callback's
  /// on_epoch_end, it writes a checkpoint there (io/training_state.hpp). Both come after all the
  /// callbacks, so that the checkpoint holds every callback's state of the same moment.
  std::string checkpoint_dir;
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

  /// For checkpoints: the name under which a callback with state saves it ("ReduceLROnPlateau"),
  /// or empty for one without (the default). A checkpoint holds the states of a fit's callbacks
  /// with a name, in order, and resuming requires callbacks of the same names in the same order.
  virtual std::string state_name() const { return {}; }
  /// The state as numbers (counters are exact in a double), read after on_epoch_end.
  virtual std::vector<double> state() const { return {}; }
  /// Restores a state(), after on_train_begin. Throws for a state of the wrong size.
  virtual void set_state(const std::vector<double>& state) { (void)state; }
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

/// Whether `value` improves on `best` by more than min_delta (>= 0), upwards or downwards.
inline bool improves(double value, double best, double min_delta, bool higher_is_better) {
  return higher_is_better ? value - min_delta > best : value + min_delta < best;
}

/// Throws, naming the callback, unless `state` has `n` numbers.
inline void check_state_size(const char* who, const std::vector<double>& state, std::size_t n) {
  FALTUNG_CHECK(state.size() == n, who, ": a saved state of ", state.size(), " numbers (expected ", n, ")");
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
    if (detail::improves(value, best_, min_delta_, detail::higher_is_better(monitor_))) {
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

  /// The counters and the best value. Not the best weights of restore_best_weights: after a
  /// resume, they are restored only when the best epoch comes after it.
  std::string state_name() const override { return "EarlyStopping"; }
  std::vector<double> state() const override { return {double(wait_), best_, double(best_epoch_)}; }
  void set_state(const std::vector<double>& state) override {
    detail::check_state_size("EarlyStopping", state, 3);
    wait_ = int(state[0]);
    best_ = state[1];
    best_epoch_ = int(state[2]);
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
      if (!detail::improves(value, best_, 0, detail::higher_is_better(monitor_))) return;
      best_ = value;
      if (s.history) s.history->best_epoch = s.epoch;
    }
    s.model->save(path_);
    ++saves_;
  }
  int saves() const { return saves_; }

  std::string state_name() const override { return "ModelCheckpoint"; }
  std::vector<double> state() const override { return {best_}; }
  void set_state(const std::vector<double>& state) override {
    detail::check_state_size("ModelCheckpoint", state, 1);
    best_ = state[0];
  }

 private:
  std::string path_;
  std::string monitor_ = "val_loss";
  bool best_only_ = true;
  double best_ = 0;
  int saves_ = 0;
};

/// Keras's ReduceLROnPlateau: multiplies the learning rate by `factor` when the monitored metric
/// has not improved for `patience` epochs. At the end of each epoch:
///   in cooldown (counter > 0): count it down and reset the wait;
///   improved (by more than min_delta): remember the value, reset the wait;
///   else, out of cooldown: wait += 1, and at wait >= patience, if lr > min_lr:
///       lr = max(lr * factor, min_lr), cooldown counter = cooldown, wait = 0.
/// Its state (wait, cooldown counter, best value) is part of a checkpoint; the rate itself is
/// the optimizer's.
class ReduceLROnPlateau : public Callback {
 public:
  /// Metric to watch. Default "val_loss".
  ReduceLROnPlateau& monitor(std::string m) { monitor_ = std::move(m); return *this; }
  /// What the rate is multiplied by, in [0, 1). Default 0.1.
  ReduceLROnPlateau& factor(double f) {
    FALTUNG_CHECK(f >= 0 && f < 1, "ReduceLROnPlateau: factor must be in [0, 1) (a factor >= 1 would not reduce), got ", f);
    factor_ = f;
    return *this;
  }
  /// Epochs without improvement before the rate drops, >= 0. Default 10.
  ReduceLROnPlateau& patience(int p) {
    FALTUNG_CHECK(p >= 0, "ReduceLROnPlateau: patience must be >= 0, got ", p);
    patience_ = p;
    return *this;
  }
  /// Smallest change that counts as an improvement, finite and >= 0. Default 1e-4.
  ReduceLROnPlateau& min_delta(double d) {
    FALTUNG_CHECK(std::isfinite(d) && d >= 0, "ReduceLROnPlateau: min_delta must be finite and >= 0, got ", d);
    min_delta_ = d;
    return *this;
  }
  /// Epochs after a drop during which the wait does not count, >= 0. Default 0.
  ReduceLROnPlateau& cooldown(int c) {
    FALTUNG_CHECK(c >= 0, "ReduceLROnPlateau: cooldown must be >= 0, got ", c);
    cooldown_ = c;
    return *this;
  }
  /// The rate never drops below this, finite and >= 0. Default 0.
  ReduceLROnPlateau& min_lr(double lr) {
    FALTUNG_CHECK(std::isfinite(lr) && lr >= 0, "ReduceLROnPlateau: min_lr must be finite and >= 0, got ", lr);
    min_lr_ = lr;
    return *this;
  }
  /// "min", "max", or "auto" (the default: maximise a metric whose name contains "acc").
  ReduceLROnPlateau& mode(std::string m) {
    FALTUNG_CHECK(m == "auto" || m == "min" || m == "max", "ReduceLROnPlateau: mode must be auto, min or max, got '", m,
                  "'");
    mode_ = std::move(m);
    return *this;
  }

  /// The number of drops of the rate in the latest fit.
  int reductions() const { return reductions_; }

  void check_metrics(const std::vector<std::string>& metrics) const override {
    detail::check_monitored("ReduceLROnPlateau", monitor_, metrics);
  }

  void on_train_begin(TrainingState&) override {
    best_ = maximise() ? -std::numeric_limits<double>::infinity() : std::numeric_limits<double>::infinity();
    wait_ = cooldown_counter_ = reductions_ = 0;
  }

  void on_epoch_end(TrainingState& s) override {
    const double value = detail::monitored(s, monitor_, "ReduceLROnPlateau");
    if (cooldown_counter_ > 0) {
      --cooldown_counter_;
      wait_ = 0;
    }
    if (detail::improves(value, best_, min_delta_, maximise())) {
      best_ = value;
      wait_ = 0;
    } else if (cooldown_counter_ == 0 && ++wait_ >= patience_ && s.model) {
      const double lr = s.model->learning_rate();
      if (lr > min_lr_) {
        s.model->set_learning_rate(std::max(lr * factor_, min_lr_));
        cooldown_counter_ = cooldown_;
        wait_ = 0;
        ++reductions_;
      }
    }
  }

  std::string state_name() const override { return "ReduceLROnPlateau"; }
  std::vector<double> state() const override {
    return {double(wait_), double(cooldown_counter_), best_, double(reductions_)};
  }
  void set_state(const std::vector<double>& state) override {
    detail::check_state_size("ReduceLROnPlateau", state, 4);
    wait_ = int(state[0]);
    cooldown_counter_ = int(state[1]);
    best_ = state[2];
    reductions_ = int(state[3]);
  }

 private:
  bool maximise() const { return mode_ == "max" || (mode_ == "auto" && detail::higher_is_better(monitor_)); }

  std::string monitor_ = "val_loss";
  double factor_ = 0.1;
  int patience_ = 10;
  double min_delta_ = 1e-4;
  int cooldown_ = 0;
  double min_lr_ = 0;
  std::string mode_ = "auto";
  int wait_ = 0, cooldown_counter_ = 0, reductions_ = 0;
  double best_ = 0;
};

/// Keras's LearningRateScheduler: at the beginning of each epoch, the rate becomes
/// schedule(epoch, lr), epoch counted from 0 (across a resume) and lr the current rate.
///   LearningRateScheduler([](int epoch, double lr) { return epoch < 10 ? lr : lr * 0.9; })
/// The schedule must give a finite rate >= 0. It keeps no state of its own: the rate is the
/// optimizer's, which a checkpoint holds.
class LearningRateScheduler : public Callback {
 public:
  using Schedule = std::function<double(int epoch, double lr)>;
  explicit LearningRateScheduler(Schedule schedule) : schedule_(std::move(schedule)) {
    FALTUNG_CHECK(bool(schedule_), "LearningRateScheduler: the schedule is an empty function");
  }

  void on_epoch_begin(TrainingState& s) override {
    if (!s.model) return;
    const double lr = s.model->learning_rate();
    const double next = schedule_(s.epoch, lr);
    FALTUNG_CHECK(std::isfinite(next) && next >= 0, "LearningRateScheduler: the schedule gave ", next,
                  " for epoch ", s.epoch, " (0-based) and rate ", lr, "; a rate must be finite and >= 0");
    s.model->set_learning_rate(next);
  }

 private:
  Schedule schedule_;
};

/// Keras's BackupAndRestore: writes a checkpoint (io/training_state.hpp: the weights, the
/// optimizer's state, the random generators, the epoch, the History and the callbacks' states)
/// into `dir` at the end of every epoch, and, when `dir` already holds one at the start of fit,
/// resumes from it: the fit continues after the last saved epoch and ends with bitwise the
/// weights of an uninterrupted one (same seed, same threads, same data and options). Unlike
/// Keras's, the checkpoint is kept when training ends. The directory must exist.
class BackupAndRestore : public Callback {
 public:
  explicit BackupAndRestore(std::string dir) : dir_(std::move(dir)) {
    FALTUNG_CHECK(!dir_.empty(), "BackupAndRestore: the directory is empty");
  }
  const std::string& dir() const { return dir_; }
  void on_train_begin(TrainingState& s) override { s.checkpoint_dir = dir_; }

 private:
  std::string dir_;
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

FALTUNG_END_NAMESPACE
