#pragma once
// Sequential<T>: a stack of layers trained as one model, with Keras's interface.
//
//   Sequential<float> net;
//   net.add<Conv2D>(Conv2DOptions(32, 3).padding(Same).activation(ActivationKind::ReLU))
//      .add<MaxPool2D>(2).add<Flatten>().add<Dense>(10);
//   net.build({1, 28, 28});
//   net.compile(SparseCrossEntropy{}, Adam<float>());
//   History h = net.fit(x, y, FitOptions().epochs(10).batch_size(64).validation_split(0.1));
//
// One batch flows through it like this (train_on_batch): forward through each layer of the
// execution list into outputs_[i]; the loss gives dL/d(output); backward runs the list in
// reverse, ping-ponging the gradient between two buffers and adding into each parameter's grad;
// the optimizer steps. All buffers are kept across batches, so the steady state allocates nothing.
//
// The execution list is the user's layers, rewritten once where two layers run faster as one:
// a Conv2D directly followed by a MaxPool2D becomes a ConvPool (layers/conv_pool.hpp), with
// bitwise the same numbers. Everything the user sees (layer(i), summary, spec, parameters,
// model files) is the layer list as written.
//
// Sequential has value semantics: copying one copies every layer and its weights.

#include <algorithm>
#include <any>
#include <chrono>
#include <cmath>
#include <functional>
#include <iomanip>
#include <iostream>
#include <memory>
#include <numeric>
#include <ostream>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "faltung/io/model_file.hpp"
#include "faltung/kernels/activation.hpp"
#include "faltung/kernels/copy.hpp"
#include "faltung/layers/conv_pool.hpp"
#include "faltung/layers/layer.hpp"
#include "faltung/model/callbacks.hpp"
#include "faltung/model/history.hpp"
#include "faltung/model/progress.hpp"
#include "faltung/optimizers/optimizer.hpp"
#include "faltung/random.hpp"
#include "faltung/tensor.hpp"

namespace faltung {

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

  int epochs_ = 1;
  std::size_t batch_size_ = 32;
  bool shuffle_ = true;
  double validation_split_ = 0;
  int verbose_ = 1;
  std::ostream* output_ = &std::cout;
  bool terminate_on_nan_ = true;
  std::vector<std::shared_ptr<Callback>> callbacks_;
};

/// What evaluate() returns: `auto [loss, accuracy] = net.evaluate(x, y);`
struct Evaluation {
  double loss = 0;
  double accuracy = 0;  ///< NaN when the loss has no accuracy (mean squared error)
};

namespace detail {
/// The compiled loss, with its scalar type fixed: any loss struct of losses/ fits.
template <class T>
struct CompiledLoss {
  std::string name;
  bool has_accuracy = false;
  Activation output;  // what turns the network's output into probabilities for predict()
  std::function<T(const Tensor<T>&, const Tensor<T>&, Tensor<T>*)> compute;
  std::function<std::size_t(const Tensor<T>&, const Tensor<T>&)> correct;
  std::function<std::size_t(const Tensor<T>&)> predictions;
};

template <class L, class = void>
struct loss_output_activation {
  static Activation get(const L&) { return ActivationKind::Linear; }
};
template <class L>
struct loss_output_activation<L, std::void_t<decltype(std::declval<const L&>().output_activation())>> {
  static Activation get(const L& l) { return l.output_activation(); }
};
}  // namespace detail

template <class T>
class Sequential {
 public:
  using Scalar = T;

  explicit Sequential(std::uint64_t seed = 42) : rng_(seed), seed_(seed) {}

  Sequential(const Sequential& other) { *this = other; }
  Sequential& operator=(const Sequential& other) {
    if (this == &other) return *this;
    layers_.clear();
    for (const auto& l : other.layers_) layers_.push_back(l->clone());
    input_shape_ = other.input_shape_;
    built_ = other.built_;
    report_accuracy_ = other.report_accuracy_;
    rng_ = other.rng_;
    seed_ = other.seed_;
    name_counts_ = other.name_counts_;
    loss_ = other.loss_;
    optimizer_ = other.optimizer_ ? other.optimizer_->clone() : nullptr;
    plan_execution();  // a ConvPool refers to this model's own layers
    return *this;
  }
  Sequential(Sequential&&) noexcept = default;
  Sequential& operator=(Sequential&&) noexcept = default;

  // -------------------------------------------------------------------------------------------
  // Building

  /// Appends a layer of a template kind: net.add<Dense>(128), net.add<Conv2D>(Conv2DOptions(32, 3)).
  template <template <class> class L, class... Args>
  Sequential& add(Args&&... args) {
    return add(std::unique_ptr<Layer<T>>(new L<T>(std::forward<Args>(args)...)));
  }
  /// Appends a layer object: net.add(Dense<float>(10)), or a user's own Layer<T>.
  template <class L, class = std::enable_if_t<std::is_base_of<Layer<T>, std::decay_t<L>>::value>>
  Sequential& add(L&& layer) {
    return add(std::unique_ptr<Layer<T>>(new std::decay_t<L>(std::forward<L>(layer))));
  }
  Sequential& add(std::unique_ptr<Layer<T>> layer) {
    FALTUNG_CHECK(layer != nullptr, "Sequential::add: null layer");
    if (layer->name().empty()) {
      const std::string stem = layer->default_name();
      const int k = name_counts_[stem]++;
      layer->set_name(k == 0 ? stem : stem + "_" + std::to_string(k));
    }
    layers_.push_back(std::move(layer));
    plan_execution();
    return *this;
  }

  /// Removes the last layer (to replace a trained network's head in transfer learning).
  Sequential& pop() {
    FALTUNG_CHECK(!layers_.empty(), "Sequential::pop: the model has no layers");
    layers_.pop_back();
    plan_execution();
    return *this;
  }

  /// Infers every shape from the per-sample input shape, e.g. {1, 28, 28}, and initialises the
  /// layers not built yet. Layers already built (a trained base) keep their weights; their
  /// input shape must not change. A shape that does not fit names both layers and both shapes.
  void build(const Shape& input_shape) {
    FALTUNG_CHECK(!layers_.empty(), "Sequential::build: the model has no layers");
    Shape shape = input_shape;
    for (std::size_t i = 0; i < layers_.size(); ++i) {
      Layer<T>& l = *layers_[i];
      const std::string from = i == 0 ? std::string("the input") : "'" + layers_[i - 1]->name() + "' (" + layers_[i - 1]->type() + ")";
      Shape out;
      try {
        out = l.output_shape(shape);
      } catch (const Error& e) {
        detail::fail("Sequential::build: layer ", i, " '", l.name(), "' (", l.type(), ") cannot take the output of ",
                     from, " of shape ", shape, ": ", e.what());
      }
      if (l.built()) {
        FALTUNG_CHECK(l.input_shape() == shape, "Sequential::build: layer ", i, " '", l.name(), "' (", l.type(),
                      ") was built for input ", l.input_shape(), " but ", from, " now gives ", shape);
      } else {
        l.build(shape, rng_);
      }
      l.set_input_grad_needed(i > 0);
      shape = out;
    }
    input_shape_ = input_shape;
    built_ = true;
    plan_execution();
  }

  bool built() const { return built_; }
  const Shape& input_shape() const { return input_shape_; }
  Shape output_shape() const { return layers_.empty() ? input_shape_ : layers_.back()->output_shape(); }
  std::size_t size() const { return layers_.size(); }
  Layer<T>& layer(std::size_t i) {
    FALTUNG_CHECK(i < layers_.size(), "Sequential::layer: index ", i, " out of range (", layers_.size(), " layers)");
    return *layers_[i];
  }
  Layer<T>& layer(const std::string& name) {
    for (auto& l : layers_)
      if (l->name() == name) return *l;
    detail::fail("Sequential::layer: no layer named '", name, "'");
  }

  /// The layers as forward() and backward() run them: the layer list with each Conv2D that a
  /// MaxPool2D directly follows run together with it as one ConvPool (named "conv2d+max_pooling2d").
  /// For profiling; the list is made again whenever the layers change.
  const std::vector<Layer<T>*>& execution() const { return execution_; }

  /// Every parameter in layer order (kernel, then bias, of each layer).
  std::vector<Parameter<T>*> parameters() {
    std::vector<Parameter<T>*> all;
    for (auto& l : layers_) l->append_parameters(all);
    return all;
  }
  std::size_t parameter_count() {
    std::size_t n = 0;
    for (Parameter<T>* p : parameters()) n += p->value.size();
    return n;
  }
  std::size_t trainable_parameter_count() {
    std::size_t n = 0;
    for (Parameter<T>* p : parameters()) n += p->trainable ? p->value.size() : 0;
    return n;
  }
  void zero_grad() {
    for (Parameter<T>* p : step_parameters()) p->zero_grad();
  }
  /// Freezes (false) or unfreezes every layer from `first` to `last` (exclusive).
  void set_trainable(bool on, std::size_t first = 0, std::size_t last = std::size_t(-1)) {
    for (std::size_t i = first; i < std::min(last, layers_.size()); ++i) layers_[i]->set_trainable(on);
  }

  void set_training(bool on) {
    for (auto& l : layers_) l->set_training(on);
  }

  /// The model in the architecture language: "conv:32:3:same:relu,pool:2,flatten,dense:10".
  std::string spec() const {
    std::string s;
    for (const auto& l : layers_) s += (s.empty() ? "" : ",") + l->spec();
    return s;
  }

  /// Writes the architecture and weights to `path` atomically (faltung/io/model_file.hpp).
  void save(const std::string& path) { faltung::save_model(*this, path); }
  /// Loads weights saved from a model of the same architecture and input shape; checks
  /// everything before changing anything. To rebuild a model from a file, use load_model.
  void load_weights(const std::string& path) { faltung::load_weights(*this, path); }

  /// The random generator every initialisation, dropout mask and shuffle draws from.
  Random& random() { return rng_; }
  std::uint64_t seed() const { return seed_; }

  // -------------------------------------------------------------------------------------------
  // Forward and backward

  /// Runs x (N, input...) through every layer in the current mode and returns the output.
  /// x must stay alive and unchanged until backward().
  const Tensor<T>& forward(const Tensor<T>& x) {
    FALTUNG_CHECK(built_, "Sequential::forward: call build(input_shape) first");
    FALTUNG_CHECK(x.rank() == input_shape_.rank() + 1 && x.shape().without_batch() == input_shape_,
                  "Sequential::forward: the model was built for per-sample input ", input_shape_,
                  ", got a batch of shape ", x.shape());
    input_ = &x;
    const Tensor<T>* in = &x;
    for (std::size_t i = 0; i < execution_.size(); ++i) {
      execution_[i]->forward(*in, outputs_[i]);
      in = &outputs_[i];
    }
    return *in;
  }

  /// Back-propagates dL/d(output) through every layer of the latest forward, ADDING into the
  /// parameters' grads.
  void backward(const Tensor<T>& doutput) {
    FALTUNG_CHECK(input_ != nullptr, "Sequential::backward: call forward first");
    FALTUNG_CHECK(doutput.shape() == outputs_.back().shape(), "Sequential::backward: gradient of shape ",
                  doutput.shape(), " for an output of shape ", outputs_.back().shape());
    const Tensor<T>* dy = &doutput;
    int next = 0;  // the buffer dx goes to: the one dy is not in
    for (std::size_t i = execution_.size(); i-- > 0;) {
      Tensor<T>& dx = grad_buffers_[next];
      execution_[i]->backward(i == 0 ? *input_ : outputs_[i - 1], outputs_[i], *dy, dx);
      dy = &dx;
      next ^= 1;
    }
  }

  // -------------------------------------------------------------------------------------------
  // Training

  /// Fixes the loss and the optimizer. metrics: {"accuracy"} or {} (the loss is always reported).
  template <class L, class O>
  void compile(const L& loss, const O& optimizer, std::vector<std::string> metrics = {"accuracy"}) {
    static_assert(std::is_base_of<Optimizer<T>, O>::value, "compile: the optimizer must be an Optimizer<T> of the model's T");
    detail::CompiledLoss<T> c;
    c.name = loss.name();
    c.has_accuracy = L::has_accuracy;
    c.output = detail::loss_output_activation<L>::get(loss);
    c.compute = [loss](const Tensor<T>& p, const Tensor<T>& t, Tensor<T>* g) { return loss(p, t, g); };
    c.correct = [loss](const Tensor<T>& p, const Tensor<T>& t) { return loss.correct(p, t); };
    c.predictions = [loss](const Tensor<T>& p) { return loss.predictions(p); };
    for (const std::string& m : metrics)
      FALTUNG_CHECK(m == "accuracy" || m == "acc", "compile: unknown metric '", m, "' (known: accuracy)");
    report_accuracy_ = c.has_accuracy && !metrics.empty();
    loss_ = std::move(c);
    optimizer_ = std::make_unique<O>(optimizer);
  }
  bool compiled() const { return optimizer_ != nullptr; }
  Optimizer<T>& optimizer() {
    FALTUNG_CHECK(optimizer_, "Sequential: compile the model first");
    return *optimizer_;
  }

  struct BatchResult {
    double loss;
    std::size_t correct, predictions;
  };

  /// One gradient step on one batch: forward in training mode, loss, backward, optimizer step.
  BatchResult train_on_batch(const Tensor<T>& x, const Tensor<T>& y) {
    FALTUNG_CHECK(compiled(), "Sequential::train_on_batch: compile the model first");
    set_training(true);
    const Tensor<T>& out = forward(x);
    const double loss = double(loss_.compute(out, y, &loss_grad_));
    BatchResult r{loss, report_accuracy_ ? loss_.correct(out, y) : 0, loss_.predictions(out)};
    if (!std::isfinite(loss)) return r;  // the caller decides; no step on a non-finite loss
    zero_grad();
    backward(loss_grad_);
    optimizer_->step(step_parameters());
    return r;
  }

  /// Trains on x (N, input...) and y (targets, first dimension N). See FitOptions.
  History fit(const Tensor<T>& x, const Tensor<T>& y, const FitOptions& options = FitOptions()) {
    return fit_impl(x, y, nullptr, nullptr, options);
  }
  /// Trains, and reports val_loss / val_accuracy on (val_x, val_y) after each epoch.
  History fit(const Tensor<T>& x, const Tensor<T>& y, const Tensor<T>& val_x, const Tensor<T>& val_y,
              const FitOptions& options = FitOptions()) {
    return fit_impl(x, y, &val_x, &val_y, options);
  }

  /// Loss and accuracy over (x, y) in inference mode.
  Evaluation evaluate(const Tensor<T>& x, const Tensor<T>& y, std::size_t batch_size = 256) {
    return evaluate_range(x, y, 0, x.dim(0), batch_size);
  }

  /// The model's outputs as probabilities (the loss's output activation applied: softmax after
  /// logits for cross-entropy, sigmoid for binary cross-entropy), in inference mode.
  Tensor<T> predict(const Tensor<T>& x, std::size_t batch_size = 256) {
    FALTUNG_CHECK(built_, "Sequential::predict: build the model first");
    set_training(false);
    const std::size_t n = x.dim(0);
    Tensor<T> result(output_shape().with_batch(n));
    const std::size_t per_sample = output_shape().numel();
    for (std::size_t first = 0; first < n; first += batch_size) {
      const std::size_t count = std::min(batch_size, n - first);
      copy_rows(x, first, count, batch_x_);
      const Tensor<T>& out = forward(batch_x_);
      T* dst = result.data() + first * per_sample;
      kernels::activation_forward(loss_.output, out.data(), dst, count, out.dim(1), per_sample / out.dim(1));
    }
    return result;
  }

  /// The index of the largest output of each sample.
  std::vector<int> predict_classes(const Tensor<T>& x, std::size_t batch_size = 256) {
    const Tensor<T> p = predict(x, batch_size);
    const std::size_t n = p.dim(0), k = p.size() / std::max<std::size_t>(n, 1);
    std::vector<int> classes(n);
    for (std::size_t i = 0; i < n; ++i) {
      const T* row = p.data() + i * k;
      classes[i] = int(std::max_element(row, row + k) - row);
    }
    return classes;
  }

  // -------------------------------------------------------------------------------------------
  // Summary

  /// A Keras-style table: layer name and type, output shape, parameters; then the totals.
  void summary(std::ostream& os = std::cout) {
    FALTUNG_CHECK(built_, "Sequential::summary: build the model first");
    const std::size_t w1 = 32, w2 = 26, w3 = 12;
    const std::string rule(w1 + w2 + w3, '_'), double_rule(w1 + w2 + w3, '=');
    os << "Model: \"sequential\"\n" << rule << '\n';
    os << std::left << std::setw(w1) << " Layer (type)" << std::setw(w2) << "Output Shape" << std::right
       << std::setw(w3) << "Param #" << '\n'
       << double_rule << '\n';
    for (std::size_t i = 0; i < layers_.size(); ++i) {
      Layer<T>& l = *layers_[i];
      std::string shape = "(None";
      for (std::size_t d : l.output_shape()) shape += ", " + std::to_string(d);
      shape += ")";
      os << std::left << std::setw(w1) << (" " + l.name() + " (" + l.type() + ")") << std::setw(w2) << shape
         << std::right << std::setw(w3) << group_digits(l.parameter_count()) << '\n';
      if (i + 1 < layers_.size()) os << '\n';
    }
    const std::size_t total = parameter_count(), trainable = trainable_parameter_count();
    os << double_rule << '\n'
       << "Total params: " << group_digits(total) << '\n'
       << "Trainable params: " << group_digits(trainable) << '\n'
       << "Non-trainable params: " << group_digits(total - trainable) << '\n'
       << rule << '\n';
  }

 private:
  static std::string group_digits(std::size_t n) {
    std::string s = std::to_string(n);
    for (int i = int(s.size()) - 3; i > 0; i -= 3) s.insert(std::size_t(i), ",");
    return s;
  }

  /// dst = rows [first, first + count) of src.
  static void copy_rows(const Tensor<T>& src, std::size_t first, std::size_t count, Tensor<T>& dst) {
    const std::size_t per = src.size() / std::max<std::size_t>(src.dim(0), 1);
    Shape s = src.shape();
    s[0] = count;
    dst.resize(s);
    kernels::parallel_copy(src.data() + first * per, count * per, dst.data());
  }
  /// dst = the rows of src listed in idx[first, first + count).
  static void gather_rows(const Tensor<T>& src, const std::vector<std::size_t>& idx, std::size_t first,
                          std::size_t count, Tensor<T>& dst) {
    const std::size_t per = src.size() / std::max<std::size_t>(src.dim(0), 1);
    Shape s = src.shape();
    s[0] = count;
    dst.resize(s);
    // Split by rows, as parallel_copy splits by elements: a batch is a serial pass otherwise.
    kernels::for_each_block(count, kernels::memory_blocks(count * per), [&](std::size_t begin, std::size_t end) {
      for (std::size_t i = begin; i < end; ++i)
        std::copy(src.data() + idx[first + i] * per, src.data() + (idx[first + i] + 1) * per, dst.data() + i * per);
    });
  }

  Evaluation evaluate_range(const Tensor<T>& x, const Tensor<T>& y, std::size_t first, std::size_t count,
                            std::size_t batch_size) {
    FALTUNG_CHECK(compiled(), "Sequential::evaluate: compile the model first");
    FALTUNG_CHECK(x.rank() >= 1 && y.rank() >= 1 && x.dim(0) == y.dim(0), "Sequential::evaluate: ", x.dim(0),
                  " samples in x but ", y.rank() ? y.dim(0) : 0, " in y");
    FALTUNG_CHECK(count > 0, "Sequential::evaluate: no samples");
    FALTUNG_CHECK(batch_size > 0, "Sequential::evaluate: batch_size must be positive");
    set_training(false);
    double loss_sum = 0;
    std::size_t correct = 0, predictions = 0;
    for (std::size_t b = first; b < first + count; b += batch_size) {
      const std::size_t m = std::min(batch_size, first + count - b);
      copy_rows(x, b, m, batch_x_);
      copy_rows(y, b, m, batch_y_);
      const Tensor<T>& out = forward(batch_x_);
      loss_sum += double(loss_.compute(out, batch_y_, nullptr)) * double(m);
      if (loss_.has_accuracy) correct += loss_.correct(out, batch_y_);
      predictions += loss_.predictions(out);
    }
    Evaluation e;
    e.loss = loss_sum / double(count);
    e.accuracy = loss_.has_accuracy && predictions ? double(correct) / double(predictions) : std::nan("");
    return e;
  }

  // The model as callbacks see it.
  class Access : public ModelAccess {
   public:
    explicit Access(Sequential& m) : m_(m) {}
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
    void save(const std::string& path) const override { faltung::save_model(m_, path); }

   private:
    Sequential& m_;
  };

  History fit_impl(const Tensor<T>& x, const Tensor<T>& y, const Tensor<T>* val_x, const Tensor<T>* val_y,
                   const FitOptions& o) {
    FALTUNG_CHECK(compiled(), "Sequential::fit: compile the model first");
    FALTUNG_CHECK(built_, "Sequential::fit: build the model first");
    FALTUNG_CHECK(x.rank() >= 1 && y.rank() >= 1 && x.dim(0) == y.dim(0), "Sequential::fit: ", x.rank() ? x.dim(0) : 0,
                  " samples in x but ", y.rank() ? y.dim(0) : 0, " in y");
    FALTUNG_CHECK(o.epochs_ >= 0, "Sequential::fit: epochs must not be negative");
    FALTUNG_CHECK(o.batch_size_ > 0, "Sequential::fit: batch_size must be positive");
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

    History history;
    Access access(*this);
    TrainingState state;
    state.epochs = o.epochs_;
    state.batches = (n_train + o.batch_size_ - 1) / o.batch_size_;
    state.history = &history;
    state.model = &access;
    ProgressBar bar(*o.output_, o.verbose_, is_terminal(*o.output_));
    std::vector<std::size_t> order(n_train);
    std::iota(order.begin(), order.end(), std::size_t(0));
    std::vector<Tensor<T>> last_good;  // weights before the latest step, restored on a non-finite loss

    for (auto& c : o.callbacks_) c->on_train_begin(state);
    for (int epoch = 0; epoch < o.epochs_ && !state.stop_training; ++epoch) {
      const auto start = std::chrono::steady_clock::now();
      state.epoch = epoch;
      for (auto& c : o.callbacks_) c->on_epoch_begin(state);
      if (o.shuffle_) rng_.shuffle(order);
      bar.start_epoch(epoch, o.epochs_, state.batches);
      double loss_sum = 0;
      std::size_t seen = 0, correct = 0, predictions = 0;
      for (std::size_t b = 0; b < state.batches; ++b) {
        const std::size_t first = b * o.batch_size_, m = std::min(o.batch_size_, n_train - first);
        gather_rows(x, order, first, m, batch_x_);
        gather_rows(y, order, first, m, batch_y_);
        if (o.terminate_on_nan_) snapshot_into(last_good);
        const BatchResult r = train_on_batch(batch_x_, batch_y_);
        // A finite loss can still come with a step that overflows the weights, and the next
        // batch's snapshot would then hold nothing good; so the weights are checked too.
        if (o.terminate_on_nan_ && (!std::isfinite(r.loss) || !weights_finite())) {
          restore_from(last_good);
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
        const Evaluation e = evaluate_range(*vx, *vy, val_first, val_count, std::max<std::size_t>(o.batch_size_, 256));
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
    }
    for (auto& c : o.callbacks_) c->on_train_end(state);
    set_training(false);
    return history;
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

  /// parameters(), gathered into a vector the model keeps, so that a training step allocates
  /// nothing. Gathered afresh on every call: it never outlives a change of layers or a copy.
  const std::vector<Parameter<T>*>& step_parameters() {
    step_parameters_.clear();
    for (auto& l : layers_) l->append_parameters(step_parameters_);
    return step_parameters_;
  }

  /// Makes the execution list from the layer list (see the top of this file). Called whenever the
  /// layers change or are built: a pair is fused only once both its layers are built.
  void plan_execution() {
    execution_.clear();
    rewritten_.clear();
    for (std::size_t i = 0; i < layers_.size(); ++i) {
      std::unique_ptr<Layer<T>> pair;
      if (i + 1 < layers_.size()) pair = ConvPool<T>::fuse(*layers_[i], *layers_[i + 1]);
      if (pair) {
        rewritten_.push_back(std::move(pair));
        execution_.push_back(rewritten_.back().get());
        ++i;
      } else {
        execution_.push_back(layers_[i].get());
      }
    }
    outputs_.resize(execution_.size());
    input_ = nullptr;  // the outputs of an earlier forward no longer match the list
  }

  bool weights_finite() {
    for (Parameter<T>* p : step_parameters())
      if (!p->value.as_vector().allFinite()) return false;
    return true;
  }

  void snapshot_into(std::vector<Tensor<T>>& w) {
    const auto& params = step_parameters();
    w.resize(params.size());
    for (std::size_t i = 0; i < params.size(); ++i) w[i] = params[i]->value;  // reuses w's memory
  }
  void restore_from(const std::vector<Tensor<T>>& w) {
    const auto& params = step_parameters();
    for (std::size_t i = 0; i < params.size() && i < w.size(); ++i) params[i]->value = w[i];
  }

  std::vector<std::unique_ptr<Layer<T>>> layers_;      // the layers as the user added them
  std::vector<Layer<T>*> execution_;                   // what forward runs; see plan_execution()
  std::vector<std::unique_ptr<Layer<T>>> rewritten_;   // the ConvPools in execution_
  std::vector<Tensor<T>> outputs_;  // outputs_[i]: output of execution_[i] in the latest forward
  Tensor<T> grad_buffers_[2];        // the gradient ping-pongs between these in backward
  Tensor<T> loss_grad_, batch_x_, batch_y_;
  std::vector<Parameter<T>*> step_parameters_;  // see step_parameters()
  const Tensor<T>* input_ = nullptr;
  Shape input_shape_;
  bool built_ = false;
  Random rng_;
  std::uint64_t seed_ = 42;
  std::map<std::string, int> name_counts_;
  detail::CompiledLoss<T> loss_;
  bool report_accuracy_ = false;
  std::unique_ptr<Optimizer<T>> optimizer_;
};

}  // namespace faltung
