#pragma once
// Trainer<T>: how a Sequential model learns. It holds what compile() fixes (the Loss<T>, the
// optimizer, the metrics) and runs the training loop; Sequential holds one and forwards its
// Keras-style compile / fit / train_on_batch / evaluate to it, so this file is the whole of
// training, top to bottom:
//
//   fit        split off the validation data; per epoch: shuffle, then per batch gather the
//              rows, snapshot the weights (NaN policy), train_on_batch, report; then validate,
//              record the History and let the callbacks stop the run. With BackupAndRestore,
//              it resumes from a checkpoint after the callbacks' on_train_begin and writes one
//              after their on_epoch_end (io/training_state.hpp).
//   train_on_batch  forward in training mode, loss and its gradient, zero the grads, backward,
//              one optimizer step.
//   evaluate   forward in inference mode over batches, mean loss and accuracy.
//
// With FitOptions().distributed(comm) the same loop runs on every process of comm, each on its
// share of every batch (distributed_step; the pieces and the semantics are in
// distributed/data_parallel.hpp); evaluate then takes its share of the rows too.
//
// The batch and loss-gradient buffers are kept across batches, so the steady
// state allocates nothing. Each step runs at the configured thread count or at one thread,
// whichever the trainer measures to be faster (model/adaptive_threads.hpp).

#include <algorithm>
#include <any>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <exception>
#include <memory>
#include <numeric>
#include <ostream>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "faltung/config.hpp"
#include "faltung/distributed/communicator.hpp"
#include "faltung/distributed/data_parallel.hpp"
#include "faltung/io/model_file.hpp"
#include "faltung/io/training_state.hpp"
#include "faltung/kernels/activation.hpp"
#include "faltung/losses/loss.hpp"
#include "faltung/model/adaptive_threads.hpp"
#include "faltung/model/batch_rows.hpp"
#include "faltung/model/callbacks.hpp"
#include "faltung/model/history.hpp"
#include "faltung/model/progress.hpp"
#include "faltung/optimizers/optimizer.hpp"
#include "faltung/tensor.hpp"

FALTUNG_BEGIN_NAMESPACE

template <class T>
class Sequential;

/// Options of Sequential::fit, with Keras's defaults.
struct FitOptions {
  /// Passes over the training data. Default 1.
  FitOptions& epochs(int v) { epochs_ = v; return *this; }
  /// Samples per gradient step. Default 32. The last batch of an epoch may be smaller.
  FitOptions& batch_size(std::size_t v) { batch_size_ = v; return *this; }
  /// Reshuffle the training samples before each epoch. Default true.
  FitOptions& shuffle(bool v) { shuffle_ = v; return *this; }
  /// Hold out this fraction of the samples for validation, taken from the END of x and y before
  /// any shuffling, as Keras does. Default 0. Ignored when validation data is given.
  FitOptions& validation_split(double v) { validation_split_ = v; return *this; }
  /// 0 silent; 1 a progress bar (one line per epoch when output is not a terminal); 2 one line per epoch.
  FitOptions& verbose(int v) { verbose_ = v; return *this; }
  /// Where progress goes. Default std::cout.
  FitOptions& output(std::ostream& os) { output_ = &os; return *this; }
  /// Stop when a batch's loss is NaN or infinite, keeping the weights of the last finite-loss
  /// batch. Default true.
  FitOptions& terminate_on_nan(bool v) { terminate_on_nan_ = v; return *this; }
  /// Let the trainer run each step at the configured thread count or at one thread, whichever
  /// it measures to be faster (model/adaptive_threads.hpp). Default true (and
  /// set_adaptive_threads(false) turns it off for the process); the results are the same bits.
  FitOptions& adaptive_threads(bool v) { adaptive_threads_ = v; return *this; }
  /// Adds a callback (copied): .callback(EarlyStopping().patience(3))
  template <class C, class = std::enable_if_t<std::is_base_of<Callback, std::decay_t<C>>::value>>
  FitOptions& callback(C&& c) {
    callbacks_.push_back(std::make_shared<std::decay_t<C>>(std::forward<C>(c)));
    return *this;
  }
  /// Adds callbacks the caller keeps a handle to (to read them after training).
  FitOptions& callbacks(std::vector<std::shared_ptr<Callback>> cs) {
    callbacks_.insert(callbacks_.end(), cs.begin(), cs.end());
    return *this;
  }
  /// Data-parallel training over the processes of `comm` (e.g. MpiCommunicator,
  /// distributed/mpi.hpp), which must outlive fit: every process calls fit with the same model and
  /// data; batch_size is the global batch, of which each process computes its share, and the
  /// result is one process's training with that batch (to rounding; distributed/data_parallel.hpp).
  /// Validation is shared out too. Only rank 0 prints and saves (checkpoints). Default: none.
  FitOptions& distributed(Communicator& comm) { comm_ = &comm; return *this; }

  int epochs_ = 1;
  std::size_t batch_size_ = 32;
  bool shuffle_ = true;
  double validation_split_ = 0;
  int verbose_ = 1;
  std::ostream* output_ = &std::cout;
  bool terminate_on_nan_ = true;
  bool adaptive_threads_ = true;
  std::vector<std::shared_ptr<Callback>> callbacks_;
  Communicator* comm_ = nullptr;
};

/// What evaluate() returns: `auto [loss, accuracy] = net.evaluate(x, y);`
struct Evaluation {
  double loss = 0;
  double accuracy = 0;  ///< NaN when the loss has no accuracy (mean squared error)
};

/// What train_on_batch() returns: the batch's mean loss, and its right and judged predictions
/// (accuracy = correct / predictions; correct is 0 without an accuracy metric).
struct BatchResult {
  double loss;
  std::size_t correct, predictions;
};

template <class T>
class Trainer {
 public:
  Trainer() = default;
  Trainer(const Trainer& other) { *this = other; }
  /// Copies the loss, the metrics and the optimizer with its state; no buffers.
  Trainer& operator=(const Trainer& other) {
    if (this == &other) return *this;
    loss_ = other.loss_ ? other.loss_->clone() : nullptr;
    report_accuracy_ = other.report_accuracy_;
    optimizer_ = other.optimizer_ ? other.optimizer_->clone() : nullptr;
    return *this;
  }
  Trainer(Trainer&&) noexcept = default;
  Trainer& operator=(Trainer&&) noexcept = default;

  /// Fixes the loss and the optimizer. The loss is a struct of losses/ (SparseCrossEntropy{}) or
  /// a Loss<T>. metrics: {"accuracy"} or {} (the loss is always reported).
  template <class L, class O>
  void compile(const L& loss, const O& optimizer, std::vector<std::string> metrics = {"accuracy"}) {
    static_assert(std::is_base_of<Optimizer<T>, O>::value, "compile: the optimizer must be an Optimizer<T> of the model's T");
    for (const std::string& m : metrics)
      FALTUNG_CHECK(m == "accuracy" || m == "acc", "compile: unknown metric '", m, "' (known: accuracy)");
    std::unique_ptr<Loss<T>> l;
    if constexpr (std::is_base_of<Loss<T>, L>::value)
      l = loss.clone();
    else
      l = std::make_unique<detail::LossOf<T, L>>(loss);
    report_accuracy_ = l->has_accuracy() && !metrics.empty();
    loss_ = std::move(l);
    optimizer_ = std::make_unique<O>(optimizer);
  }
  bool compiled() const { return optimizer_ != nullptr; }
  Optimizer<T>& optimizer() {
    FALTUNG_CHECK(optimizer_, "Sequential: compile the model first");
    return *optimizer_;
  }
  /// The compiled loss.
  const Loss<T>& loss() const {
    FALTUNG_CHECK(loss_, "Sequential: compile the model first");
    return *loss_;
  }
  /// What turns the model's outputs into probabilities (Linear before compile).
  Activation output_activation() const { return loss_ ? loss_->output_activation() : Activation(); }

  /// Trains `model` on x (N, input...) and y (targets, first dimension N); with val_x and val_y
  /// (both or neither), reports val_loss / val_accuracy on them after each epoch.
  History fit(Sequential<T>& model, const Tensor<T>& x, const Tensor<T>& y, const Tensor<T>* val_x,
              const Tensor<T>* val_y, const FitOptions& o) {
    // Distributed, the processes first compare what they were given: the checks below then pass
    // or fail alike on every one, and none is left waiting for another that failed alone.
    if (o.comm_) check_ranks_agree(model, *o.comm_, x, y, val_x, o);
    FALTUNG_CHECK(compiled(), "Sequential::fit: compile the model first");
    FALTUNG_CHECK(model.built(), "Sequential::fit: build the model first");
    FALTUNG_CHECK(x.rank() >= 1 && y.rank() >= 1 && x.dim(0) == y.dim(0), "Sequential::fit: ", x.rank() ? x.dim(0) : 0,
                  " samples in x but ", y.rank() ? y.dim(0) : 0, " in y");
    FALTUNG_CHECK(o.epochs_ >= 0, "Sequential::fit: epochs must not be negative");
    detail::check_batch_size("Sequential::fit", o.batch_size_);
    FALTUNG_CHECK(o.validation_split_ >= 0 && o.validation_split_ < 1, "Sequential::fit: validation_split must be in [0, 1), got ",
                  o.validation_split_);
    if (val_x)
      FALTUNG_CHECK(val_x->rank() >= 1 && val_y->rank() >= 1 && val_x->dim(0) == val_y->dim(0) && val_x->dim(0) > 0,
                    "Sequential::fit: validation data has ", val_x->rank() ? val_x->dim(0) : 0, " samples in x and ",
                    val_y->rank() ? val_y->dim(0) : 0, " in y");

    // Keras takes the validation split from the end, before shuffling.
    const std::size_t n_all = x.dim(0);
    std::size_t n_train = n_all, val_first = 0, val_count = 0;
    const Tensor<T>* vx = val_x;
    const Tensor<T>* vy = val_y;
    if (val_x) {
      val_count = val_x->dim(0);
    } else if (o.validation_split_ > 0) {
      val_count = std::size_t(double(n_all) * o.validation_split_);
      FALTUNG_CHECK(val_count > 0 && val_count < n_all, "Sequential::fit: validation_split ", o.validation_split_,
                    " of ", n_all, " samples leaves ", val_count, " for validation and ", n_all - val_count,
                    " for training");
      n_train = n_all - val_count;
      val_first = n_train;
      vx = &x;
      vy = &y;
    }
    FALTUNG_CHECK(n_train > 0, "Sequential::fit: no training samples");

    // Every callback's needs before any training: a metric that will not be there fails now,
    // not at the end of the first epoch with the epoch's History lost.
    const std::vector<std::string> metrics = epoch_metrics(vx != nullptr);
    for (std::size_t i = 0; i < o.callbacks_.size(); ++i) {
      FALTUNG_CHECK(o.callbacks_[i] != nullptr, "Sequential::fit: callback ", i, " is null");
      o.callbacks_[i]->check_metrics(metrics);
    }

    Communicator* comm = o.comm_;
    if (comm) broadcast_model_state(model, *comm);  // rank 0's weights, shuffles, dropout streams
    const bool rank0 = !comm || comm->rank() == 0;

    History history;
    Access access(model, rank0);
    TrainingState state;
    state.epochs = o.epochs_;
    state.batches = (n_train + o.batch_size_ - 1) / o.batch_size_;
    state.history = &history;
    state.model = &access;
    ProgressBar bar(*o.output_, rank0 ? o.verbose_ : 0, is_terminal(*o.output_));
    std::vector<std::size_t> order(n_train);
    std::iota(order.begin(), order.end(), std::size_t(0));
    std::vector<Tensor<T>> last_good;  // weights before the latest step, restored on a non-finite loss

    for (auto& c : o.callbacks_) c->on_train_begin(state);
    int first_epoch = 0;
    const bool resuming = !state.checkpoint_dir.empty() && checkpoint_exists(state.checkpoint_dir);
    if (comm) resume_check(*comm, "checkpoint to resume from (1: found in " + state.checkpoint_dir + ")", resuming);
    if (resuming) {
      // Distributed, every process reads the checkpoint (rank 0 alone writes it: the directory
      // must be shared, or copied to every machine); a failure on any one stops them all.
      std::exception_ptr error;
      try {
        first_epoch = resume(model, state.checkpoint_dir, n_train, o, order, history);
      } catch (...) {
        if (!comm) throw;
        error = std::current_exception();
      }
      if (comm) {
        double sums[4] = {0, 0, 0, error ? 1.0 : 0.0};
        detail::sum_or_rethrow(*comm, sums, error, "Sequential::fit (resuming)");
        resume_check(*comm, "number of epochs done in the checkpoint", std::uint64_t(first_epoch));
        broadcast_model_state(model, *comm);
      }
    }
    if (!history.stop_reason.empty()) state.stop_training = true;  // the checkpointed run had stopped
    for (int epoch = first_epoch; epoch < o.epochs_ && !state.stop_training; ++epoch) {
      const auto start = std::chrono::steady_clock::now();
      state.epoch = epoch;
      for (auto& c : o.callbacks_) c->on_epoch_begin(state);
      if (o.shuffle_) model.random().shuffle(order);
      bar.start_epoch(epoch, o.epochs_, state.batches);
      double loss_sum = 0;
      std::size_t seen = 0, correct = 0, predictions = 0;
      for (std::size_t b = 0; b < state.batches; ++b) {
        const std::size_t first = b * o.batch_size_, m = std::min(o.batch_size_, n_train - first);
        // This process's rows of the batch; a process with none (a batch smaller than the number
        // of processes) runs the batch's first row as a stand-in that counts for nothing.
        const detail::Share share = comm ? detail::share_of(m, comm->rank(), comm->size()) : detail::Share{0, m};
        const std::size_t at = first + share.first, rows = std::max<std::size_t>(share.count, 1);
        detail::gather_rows(x, order, share.count ? at : first, rows, batch_x_);
        detail::gather_rows(y, order, share.count ? at : first, rows, batch_y_);
        if (o.terminate_on_nan_) snapshot_into(model, last_good);
        BatchResult r{};
        try {
          r = comm ? distributed_step(model, batch_x_, batch_y_, share, m, *comm)
                   : train_step(model, batch_x_, batch_y_, o.adaptive_threads_);
        } catch (const TargetError& e) {
          throw e.with_row(order[at + e.row()], "y");  // the batch's row is no use to anyone
        }
        // A finite loss can still come with a step that overflows the weights, and the next
        // batch's snapshot would then hold nothing good; so the weights are checked too.
        if (o.terminate_on_nan_ && (!std::isfinite(r.loss) || !weights_finite(model))) {
          restore_from(model, last_good);
          std::ostringstream msg;
          msg << "fit: ";
          if (std::isfinite(r.loss))
            msg << "the step at epoch " << epoch + 1 << ", batch " << b + 1 << " of " << state.batches
                << " made the weights non-finite";
          else
            msg << "the loss became " << (std::isnan(r.loss) ? "NaN" : "infinite") << " at epoch " << epoch + 1
                << ", batch " << b + 1 << " of " << state.batches;
          msg << "; training stopped and the weights from before that batch were kept (a lower learning rate, "
              << "or checking the inputs for NaN, usually helps)";
          history.stop_reason = msg.str();
          bar.message("\n" + msg.str());
          state.batch = b;
          state.stop_training = true;
          break;
        }
        loss_sum += r.loss * double(m);
        seen += m;
        correct += r.correct;
        predictions += r.predictions;
        state.batch = b;
        state.logs = running_logs(loss_sum, seen, correct, predictions);
        bar.update(b + 1, to_pairs(state.logs));
        for (auto& c : o.callbacks_) c->on_batch_end(state);
        if (state.stop_training) break;
      }
      if (seen == 0) break;  // stopped on the first batch: no epoch to report

      Logs logs = running_logs(loss_sum, seen, correct, predictions);
      history.loss.push_back(logs["loss"]);
      if (report_accuracy_) history.accuracy.push_back(logs["accuracy"]);
      if (vx) {
        const Evaluation e = evaluate(model, *vx, *vy, val_first, val_count, std::max<std::size_t>(o.batch_size_, 256),
                                      val_x ? "val_y" : "y", comm);
        logs["val_loss"] = e.loss;
        history.val_loss.push_back(e.loss);
        if (report_accuracy_) {
          logs["val_accuracy"] = e.accuracy;
          history.val_accuracy.push_back(e.accuracy);
        }
      }
      logs["lr"] = optimizer_->learning_rate();
      history.learning_rate.push_back(logs["lr"]);
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      history.seconds.push_back(seconds);
      state.logs = logs;
      bar.finish_epoch(seconds, to_pairs(logs, false));
      for (auto& c : o.callbacks_) c->on_epoch_end(state);
      if (state.stop_training && history.stop_reason.empty()) {
        history.stop_reason = state.stop_reason.empty() ? "stopped by a callback" : state.stop_reason;
        bar.message(history.stop_reason);
      }
      if (rank0 && !state.checkpoint_dir.empty()) save_checkpoint(model, state.checkpoint_dir, progress(epoch + 1, o, order, history));
    }
    for (auto& c : o.callbacks_) c->on_train_end(state);
    model.set_training(false);
    if (comm) detail::set_dropout_first_row(model, 0);
    return history;
  }

  /// One gradient step on the batch (x, y): forward in training mode, loss, backward, optimizer
  /// step. No step on a non-finite loss: the caller decides what to do about it. A bad target is a
  /// TargetError naming its row of the batch (fit names the row of the data set).
  /// With `adapt` (and set_adaptive_threads on), at the thread count adapt_threads_ chooses.
  BatchResult train_step(Sequential<T>& model, const Tensor<T>& x, const Tensor<T>& y, bool adapt = true) {
    FALTUNG_CHECK(compiled(), "Sequential::train_on_batch: compile the model first");
    const detail::AdaptiveStep threads(adapt_threads_, adapt && faltung::adaptive_threads(), x.rank() ? x.dim(0) : 0);
    model.set_training(true);
    const Tensor<T>& out = model.forward(x);
    const double loss = double(loss_->value_and_gradient(out, y, loss_grad_));
    BatchResult r{loss, report_accuracy_ ? loss_->correct(out, y) : 0, loss_->predictions(out)};
    if (!std::isfinite(loss)) return r;
    model.zero_grad();
    model.backward(loss_grad_);
    optimizer_->step(model.step_parameters());
    return r;
  }

  /// train_step, for a batch that is the whole data: a bad target is named by its row of y.
  BatchResult train_on_batch(Sequential<T>& model, const Tensor<T>& x, const Tensor<T>& y) {
    try {
      return train_step(model, x, y);
    } catch (const TargetError& e) {
      throw e.with_row(e.row(), "y");
    }
  }

  /// Loss and accuracy over the samples [first, first + count) of (x, y), in inference mode. A bad
  /// target is named by its row in y, which errors call `y_name`. With a communicator, every
  /// process evaluates its share of the rows and all report the same totals.
  Evaluation evaluate(Sequential<T>& model, const Tensor<T>& x, const Tensor<T>& y, std::size_t first,
                      std::size_t count, std::size_t batch_size, const char* y_name = "y",
                      Communicator* comm = nullptr) {
    FALTUNG_CHECK(compiled(), "Sequential::evaluate: compile the model first");
    FALTUNG_CHECK(x.rank() >= 1 && y.rank() >= 1 && x.dim(0) == y.dim(0), "Sequential::evaluate: ", x.dim(0),
                  " samples in x but ", y.rank() ? y.dim(0) : 0, " in y");
    FALTUNG_CHECK(count > 0, "Sequential::evaluate: no samples");
    detail::check_batch_size("Sequential::evaluate", batch_size);
    model.set_training(false);
    const detail::Share share = comm ? detail::share_of(count, comm->rank(), comm->size()) : detail::Share{0, count};
    double sums[4] = {0, 0, 0, 0};  // loss * rows, correct, predictions; processes that failed
    std::exception_ptr error;
    try {
      const std::size_t end = first + share.first + share.count;
      for (std::size_t b = first + share.first; b < end; b += batch_size) {
        const std::size_t m = std::min(batch_size, end - b);
        detail::slice_rows(x, b, m, batch_x_);
        detail::slice_rows(y, b, m, batch_y_);
        const Tensor<T>& out = model.forward(batch_x_);
        try {
          sums[0] += double(loss_->value(out, batch_y_)) * double(m);
          if (loss_->has_accuracy()) sums[1] += double(loss_->correct(out, batch_y_));
        } catch (const TargetError& e) {
          throw e.with_row(b + e.row(), y_name);
        }
        sums[2] += double(loss_->predictions(out));
      }
    } catch (...) {
      if (!comm) throw;
      error = std::current_exception();
      sums[3] = 1;
    }
    if (comm) detail::sum_or_rethrow(*comm, sums, error, "Sequential::evaluate");
    Evaluation e;
    e.loss = sums[0] / double(count);
    e.accuracy = loss_->has_accuracy() && sums[2] > 0 ? sums[1] / sums[2] : std::nan("");
    return e;
  }

 private:
  // The model as callbacks see it.
  class Access : public ModelAccess {
   public:
    Access(Sequential<T>& m, bool writes_files) : m_(m), writes_files_(writes_files) {}
    std::any snapshot_weights() const override {
      std::vector<Tensor<T>> w;
      for (Parameter<T>* p : m_.parameters()) w.push_back(p->value);
      return w;
    }
    void restore_weights(const std::any& snapshot) override {
      const auto& w = std::any_cast<const std::vector<Tensor<T>>&>(snapshot);
      auto params = m_.parameters();
      FALTUNG_CHECK(w.size() == params.size(), "restore_weights: snapshot of another model");
      for (std::size_t i = 0; i < w.size(); ++i) params[i]->value = w[i];
    }
    void save(const std::string& path) const override {
      if (writes_files_) faltung::save_model(m_, path);  // in distributed training, rank 0 alone
    }
    double learning_rate() const override { return m_.optimizer().base_learning_rate(); }
    void set_learning_rate(double lr) override { m_.optimizer().set_learning_rate(lr); }

   private:
    Sequential<T>& m_;
    bool writes_files_;
  };

  // Checkpoints (BackupAndRestore; io/training_state.hpp).

  /// What a checkpoint after `epochs_done` epochs holds besides the model and optimizer.
  static TrainingProgress progress(int epochs_done, const FitOptions& o, const std::vector<std::size_t>& order,
                                   const History& history) {
    TrainingProgress p;
    p.epoch = epochs_done;
    p.batch_size = o.batch_size_;
    p.shuffle = o.shuffle_;
    p.order.assign(order.begin(), order.end());
    p.history = history;
    for (const auto& c : o.callbacks_)
      if (!c->state_name().empty()) p.callbacks.push_back({c->state_name(), c->state()});
    return p;
  }

  /// Restores the checkpoint in `dir` into the model, the sample order, the history and the
  /// callbacks, after checking that it was made by a fit like this one. Returns the epoch to
  /// continue with.
  int resume(Sequential<T>& model, const std::string& dir, std::size_t n_train, const FitOptions& o,
             std::vector<std::size_t>& order, History& history) {
    Checkpoint<T> c = read_checkpoint<T>(dir);
    const TrainingProgress& p = c.progress;
    auto refuse = [&](const auto&... what) {
      detail::fail("Sequential::fit: cannot resume from '", c.state_path, "': ", what...);
    };
    if (p.order.size() != n_train)
      refuse("it was made training on ", p.order.size(), " samples, this fit trains on ", n_train);
    if (p.batch_size != o.batch_size_)
      refuse("it was made with batch size ", p.batch_size, ", this fit has ", o.batch_size_);
    if (p.shuffle != o.shuffle_)
      refuse("it was made with shuffle ", p.shuffle ? "on" : "off", ", this fit has it ", o.shuffle_ ? "on" : "off");
    std::string saved, mine;
    for (const CallbackState& s : p.callbacks) saved += (saved.empty() ? "" : ", ") + s.name;
    std::vector<Callback*> stateful;
    for (const auto& cb : o.callbacks_)
      if (!cb->state_name().empty()) {
        stateful.push_back(cb.get());
        mine += (mine.empty() ? "" : ", ") + cb->state_name();
      }
    if (saved != mine)
      refuse("it holds the states of the callbacks (", saved.empty() ? "none" : saved, "), this fit has (",
             mine.empty() ? "none" : mine, "): resuming needs the same callbacks in the same order");
    for (std::size_t i = 0; i < stateful.size(); ++i) {
      try {
        stateful[i]->set_state(p.callbacks[i].values);
      } catch (const Error& e) {
        refuse(e.what());
      }
    }
    restore_checkpoint(model, c);
    order.assign(p.order.begin(), p.order.end());
    history = p.history;
    return p.epoch;
  }

  // Distributed training (distributed/data_parallel.hpp): every process must have the same model,
  // data sizes and options, or all fail here with the same error.
  void check_ranks_agree(Sequential<T>& model, Communicator& comm, const Tensor<T>& x, const Tensor<T>& y,
                         const Tensor<T>* val_x, const FitOptions& o) {
    std::ostringstream text;
    text << model.spec() << " on input " << model.input_shape();
    if (compiled()) text << ", loss " << loss_->name() << ", " << optimizer_->config();
    const auto rows = [](const Tensor<T>* t) { return std::uint64_t(t && t->rank() ? t->dim(0) : 0); };
    std::uint64_t split = 0;
    static_assert(sizeof split == sizeof o.validation_split_, "validation_split is compared as 64 bits");
    std::memcpy(&split, &o.validation_split_, sizeof split);
    detail::check_ranks_agree(comm, "Sequential::fit (distributed)", text.str(),
                              {{"state of the model (built, compiled)", (model.built() ? 1u : 0u) + (compiled() ? 2u : 0u)},
                               {"number of parameters", model.built() ? model.parameter_count() : 0},
                               {"number of trainable parameters", model.built() ? model.trainable_parameter_count() : 0},
                               {"optimizer's step count", compiled() ? std::uint64_t(optimizer_->iterations()) : 0},
                               {"number of samples in x", rows(&x)},
                               {"number of samples in y", rows(&y)},
                               {"number of validation samples given", rows(val_x)},
                               {"values per sample of x", x.rank() ? detail::row_size(x) : 0},
                               {"values per sample of y", y.rank() ? detail::row_size(y) : 0},
                               {"batch size", o.batch_size_},
                               {"number of epochs", std::uint64_t(std::int64_t(o.epochs_))},
                               {"validation_split (its bits)", split},
                               {"shuffle option", o.shuffle_ ? 1u : 0u},
                               {"terminate_on_nan option", o.terminate_on_nan_ ? 1u : 0u},
                               {"number of callbacks", o.callbacks_.size()}});
  }

  // Resuming a distributed fit: every process must find the same checkpoint.
  static void resume_check(Communicator& comm, const std::string& what, std::uint64_t value) {
    detail::check_ranks_agree(comm, "Sequential::fit (distributed, resuming)", std::string(),
                              {{what.c_str(), value}});
  }

  // One step of distributed training on this process's `share` of a batch of `rows` rows, which
  // (x, y) hold (one stand-in row when the share is empty). The loss gradient of each row is
  // scaled to 1 / rows, as in the whole batch's mean, and the dropout masks are those of the
  // share's rows in the whole batch; the summed gradients are then the whole batch's. Returns the
  // whole batch's result, the same on every process; an error on any process stops every one.
  BatchResult distributed_step(Sequential<T>& model, const Tensor<T>& x, const Tensor<T>& y, detail::Share share,
                               std::size_t rows, Communicator& comm) {
    FALTUNG_CHECK(compiled(), "Sequential::fit: compile the model first");
    model.set_training(true);
    detail::set_dropout_first_row(model, share.first);
    double sums[4] = {0, 0, 0, 0};  // loss * rows, correct, predictions; processes that failed
    std::exception_ptr error;
    try {
      const Tensor<T>& out = model.forward(x);
      if (share.count) {
        sums[0] = double(loss_->value_and_gradient(out, y, loss_grad_)) * double(share.count);
        sums[1] = report_accuracy_ ? double(loss_->correct(out, y)) : 0.0;
        sums[2] = double(loss_->predictions(out));
        if (share.count != rows) loss_grad_.as_vector() *= T(double(share.count) / double(rows));
      }
    } catch (...) {
      error = std::current_exception();
      sums[3] = 1;
    }
    detail::sum_or_rethrow(comm, sums, error, "Sequential::fit");
    const BatchResult r{sums[0] / double(rows), std::size_t(sums[1]), std::size_t(sums[2])};
    if (!std::isfinite(r.loss)) return r;  // on every process alike: the sum carries the NaN
    model.zero_grad();
    if (share.count) model.backward(loss_grad_);
    reducer_.sum(model.step_parameters(), comm);
    optimizer_->step(model.step_parameters());
    return r;
  }

  /// The names in the logs at the end of an epoch, in Keras's order.
  std::vector<std::string> epoch_metrics(bool validation) const {
    std::vector<std::string> m = {"loss"};
    if (report_accuracy_) m.push_back("accuracy");
    if (validation) m.push_back("val_loss");
    if (validation && report_accuracy_) m.push_back("val_accuracy");
    m.push_back("lr");
    return m;
  }

  Logs running_logs(double loss_sum, std::size_t seen, std::size_t correct, std::size_t predictions) const {
    Logs logs;
    logs["loss"] = seen ? loss_sum / double(seen) : 0.0;
    if (report_accuracy_) logs["accuracy"] = predictions ? double(correct) / double(predictions) : 0.0;
    return logs;
  }

  // Keras's order: loss, accuracy, val_loss, val_accuracy (lr is not shown).
  static std::vector<std::pair<std::string, double>> to_pairs(const Logs& logs, bool training_only = true) {
    std::vector<std::pair<std::string, double>> v;
    for (const char* k : {"loss", "accuracy", "val_loss", "val_accuracy"}) {
      auto it = logs.find(k);
      if (it != logs.end() && (!training_only || std::string(k).rfind("val_", 0) != 0)) v.emplace_back(k, it->second);
    }
    return v;
  }

  // The NaN policy: the weights before the latest step, restored when it made anything non-finite.
  static bool weights_finite(Sequential<T>& model) {
    for (Parameter<T>* p : model.step_parameters())
      if (!p->value.as_vector().allFinite()) return false;
    return true;
  }
  static void snapshot_into(Sequential<T>& model, std::vector<Tensor<T>>& w) {
    const auto& params = model.step_parameters();
    w.resize(params.size());
    for (std::size_t i = 0; i < params.size(); ++i) w[i] = params[i]->value;  // reuses w's memory
  }
  static void restore_from(Sequential<T>& model, const std::vector<Tensor<T>>& w) {
    const auto& params = model.step_parameters();
    for (std::size_t i = 0; i < params.size() && i < w.size(); ++i) params[i]->value = w[i];
  }

  std::unique_ptr<Loss<T>> loss_;
  bool report_accuracy_ = false;
  std::unique_ptr<Optimizer<T>> optimizer_;
  Tensor<T> loss_grad_, batch_x_, batch_y_;
  GradientReducer<T> reducer_;  // distributed training's fused gradient buffer
  AdaptiveThreads adapt_threads_;  // the thread count of each training step
};

FALTUNG_END_NAMESPACE
