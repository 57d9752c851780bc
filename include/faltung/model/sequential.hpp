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
// reverse, down to the lowest layer with a trainable parameter, ping-ponging the gradient between
// two buffers and adding into each trainable parameter's grad; the optimizer steps. All buffers
// are kept across batches, so the steady state allocates nothing.
// The model is this file: its layers, build, forward and backward, predict and summary. What
// compile() fixes and the training loop (fit, train_on_batch, evaluate, callbacks, the NaN
// policy) are in model/trainer.hpp; the methods here forward to it.
//
// The execution list is the user's layers, rewritten once where two layers run faster as one:
// a Conv2D directly followed by a MaxPool2D becomes a ConvPool (layers/conv_pool.hpp), with
// bitwise the same numbers. Everything the user sees (layer(i), summary, spec, parameters,
// model files) is the layer list as written.
//
// Sequential has value semantics: copying one copies every layer and its weights.

#include <algorithm>
#include <iomanip>
#include <iostream>
#include <map>
#include <memory>
#include <ostream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "faltung/io/model_file.hpp"
#include "faltung/kernels/activation.hpp"
#include "faltung/layers/conv_pool.hpp"
#include "faltung/layers/layer.hpp"
#include "faltung/model/batch_rows.hpp"
#include "faltung/model/history.hpp"
#include "faltung/model/inference_config.hpp"
#include "faltung/model/trainer.hpp"
#include "faltung/random.hpp"
#include "faltung/tensor.hpp"
#include "faltung/text.hpp"

FALTUNG_BEGIN_NAMESPACE

template <class T>
class InferenceModel;

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
    rng_ = other.rng_;
    seed_ = other.seed_;
    name_counts_ = other.name_counts_;
    inference_ = other.inference_;
    trainer_ = other.trainer_;
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
    if (layers_.back()->built()) {
      plan_execution();  // a built layer may fuse with the one before it
    } else {
      // An unbuilt layer fuses with nothing: appending it keeps the plan, and adding the n layers
      // of a long architecture (a model file's) costs n steps, not n^2.
      execution_.push_back(layers_.back().get());
      outputs_.resize(execution_.size());
      input_ = nullptr;
    }
    return *this;
  }

  /// Removes the last layer (to replace a trained network's head in transfer learning). The class
  /// names go with it: they named the outputs of the old head.
  Sequential& pop() {
    FALTUNG_CHECK(!layers_.empty(), "Sequential::pop: the model has no layers");
    layers_.pop_back();
    inference_.class_names.clear();
    plan_execution();
    return *this;
  }

  /// Infers every shape from the per-sample input shape, e.g. {1, 28, 28}, and initialises the
  /// layers not built yet. Layers already built (a trained base) keep their weights; their
  /// input shape must not change. A shape that does not fit names both layers and both shapes.
  /// Every shape and the parameter count are checked first, against SizeLimits too, so a model
  /// too large to exist is refused before any layer allocates.
  void build(const Shape& input_shape) {
    std::vector<Shape> inputs;  // each layer's per-sample input shape
    check_build(input_shape, inputs);
    for (std::size_t i = 0; i < layers_.size(); ++i) {
      Layer<T>& l = *layers_[i];
      if (!l.built()) l.build(inputs[i], rng_);
      l.set_input_grad_needed(i > 0);
    }
    input_shape_ = input_shape;
    built_ = true;
    plan_execution();
  }

  /// The number of parameters the model has once built for `input_shape`, computed with every
  /// check of build() (shapes, overflow, SizeLimits) but without allocating: load_model compares
  /// it with what a file holds before it builds anything.
  std::size_t parameter_count_for(const Shape& input_shape) {
    std::vector<Shape> inputs;
    return check_build(input_shape, inputs);
  }

  bool built() const { return built_; }
  const Shape& input_shape() const { return input_shape_; }
  Shape output_shape() const { return layers_.empty() ? input_shape_ : layers_.back()->output_shape(); }
  std::size_t size() const { return layers_.size(); }
  Layer<T>& layer(std::size_t i) { return const_cast<Layer<T>&>(std::as_const(*this).layer(i)); }
  const Layer<T>& layer(std::size_t i) const {
    FALTUNG_CHECK(i < layers_.size(), "Sequential::layer: index ", i, " out of range (", layers_.size(), " layers)");
    return *layers_[i];
  }
  Layer<T>& layer(const std::string& name) { return *layers_[index_of(name, "layer")]; }
  /// The index of the layer named `name`; an error lists the names there are.
  std::size_t index_of(const std::string& name) const { return index_of(name, "index_of"); }

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
  /// parameters(), each with the name of its layer: what model files store, and what
  /// load_weights matches by name (LoadWeightsOptions::by_name).
  std::vector<NamedParameter<T>> named_parameters() {
    std::vector<NamedParameter<T>> all;
    std::vector<Parameter<T>*> own;
    for (auto& l : layers_) {
      own.clear();
      l->append_parameters(own);
      for (Parameter<T>* p : own) all.push_back({l->name(), p});
    }
    return all;
  }
  /// The layers' names, in order.
  std::vector<std::string> layer_names() const {
    std::vector<std::string> names;
    for (const auto& l : layers_) names.push_back(l->name());
    return names;
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
  /// Zeroes the grads of the trainable parameters. A frozen parameter's grad is left as it is:
  /// backward does not compute it, and no optimizer reads it.
  void zero_grad() {
    for (Parameter<T>* p : step_parameters())
      if (p->trainable) p->zero_grad();
  }
  /// parameters(), gathered into a vector the model keeps, so that a training step allocates
  /// nothing. Gathered afresh on every call: it never outlives a change of layers or a copy.
  const std::vector<Parameter<T>*>& step_parameters() {
    step_parameters_.clear();
    for (auto& l : layers_) l->append_parameters(step_parameters_);
    return step_parameters_;
  }

  // Freezing, for transfer learning. A frozen layer's parameters keep their values through
  // training; backward computes no gradient for them, and none at all below the lowest layer
  // that is still trained (see backward()). One layer: net.layer(i).set_trainable(false), or
  // net.layer("conv2d").set_trainable(false).

  /// Freezes (false) or unfreezes (true) every layer.
  void set_trainable(bool on) { set_trainable(on, 0, layers_.size()); }
  /// Freezes (false) or unfreezes (true) the layers first, ..., last - 1: the half-open range of
  /// a slice, layers[first:last]. A range outside the model is an error.
  void set_trainable(bool on, std::size_t first, std::size_t last) {
    FALTUNG_CHECK(first <= last && last <= layers_.size(), "Sequential::set_trainable: layers [", first, ", ", last,
                  ") is not a range of the model's ", layers_.size(), " layers (first <= last <= ", layers_.size(),
                  ")");
    for (std::size_t i = first; i < last; ++i) layers_[i]->set_trainable(on);
  }
  /// Freezes (false) or unfreezes (true) the layers from the one named `first` through the one
  /// named `last`, both included: net.set_trainable(false, "conv2d", "flatten").
  void set_trainable(bool on, const std::string& first, const std::string& last) {
    const std::size_t i = index_of(first, "set_trainable"), j = index_of(last, "set_trainable");
    FALTUNG_CHECK(i <= j, "Sequential::set_trainable: layer '", first, "' (index ", i, ") comes after layer '", last,
                  "' (index ", j, "); name the lower layer first");
    set_trainable(on, i, j + 1);
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

  /// Writes the architecture, the layer names, the inference configuration (the loss, its output
  /// activation, the class names) and the weights to `path` atomically (faltung/io/model_file.hpp).
  void save(const std::string& path) { faltung::save_model(*this, path); }
  /// Loads weights saved from a model of the same architecture and input shape; checks
  /// everything before changing anything. Only the weights: the model's compiled loss and class
  /// names stay as they are. To rebuild a model from a file, use load_model (io/load_model.hpp).
  void load_weights(const std::string& path) { faltung::load_weights(*this, path); }
  /// The same, or with LoadWeightsOptions().by_name(true) the weights of each layer whose name is
  /// in the file, into a model that shares only some layers with the saved one (see
  /// faltung::load_weights_by_name). Returns the names of the layers whose weights were loaded.
  std::vector<std::string> load_weights(const std::string& path, const LoadWeightsOptions& options) {
    if (options.by_name_) return faltung::load_weights_by_name(*this, path);
    faltung::load_weights(*this, path);
    std::vector<std::string> loaded;
    for (auto& l : layers_)
      if (!l->parameters().empty()) loaded.push_back(l->name());
    return loaded;
  }

  // Inference configuration: how the outputs become probabilities and what the classes are
  // called (model/inference_config.hpp). Model files store it; load_model restores it.

  /// What predict() applies to the network's outputs: the compiled loss's output activation
  /// (softmax for cross-entropy from logits); for a model that load_model rebuilt and that has not
  /// been compiled since, the one its file stores; Linear (the outputs as they are) otherwise.
  Activation output_activation() const {
    return trainer_.compiled() ? trainer_.loss().output_activation() : inference_.output_activation;
  }
  /// The loss's name and output activation as output_activation() describes them, and the class names.
  InferenceConfig inference_config() const {
    InferenceConfig c = inference_;
    if (trainer_.compiled()) c.loss = trainer_.loss().name();
    c.output_activation = output_activation();
    return c;
  }
  /// Sets what an uncompiled model's predict() applies and the class names; compile() overrides
  /// the loss and activation. load_model calls it with what the file stores.
  void set_inference_config(InferenceConfig c) {
    detail::check_activation("Sequential::set_inference_config", c.output_activation);
    if (built_) detail::check_class_names(c.class_names, output_shape(), "Sequential::set_inference_config");
    inference_ = std::move(c);
  }
  /// Names the classes, one per output of a sample in output order (checked against the output
  /// shape once the model is built, and when it is saved); {} removes them. Saved in model files.
  void set_class_names(std::vector<std::string> names) {
    if (built_) detail::check_class_names(names, output_shape(), "Sequential::set_class_names");
    inference_.class_names = std::move(names);
  }
  const std::vector<std::string>& class_names() const { return inference_.class_names; }

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

  /// Back-propagates dL/d(output) through the layers of the latest forward, ADDING into the grads
  /// of the trainable parameters. Only what some trainable parameter needs is computed: the pass
  /// stops at the lowest layer with a trainable parameter, which computes no input gradient, so
  /// the layers below it (a frozen base, with its pooling, dropout and flattening) run no
  /// backward at all; the frozen layers above it pass the gradient on without computing their
  /// own. With everything trainable, every layer runs, and only the first computes no dx.
  void backward(const Tensor<T>& doutput) {
    FALTUNG_CHECK(input_ != nullptr, "Sequential::backward: call forward first");
    FALTUNG_CHECK(doutput.shape() == outputs_.back().shape(), "Sequential::backward: gradient of shape ",
                  doutput.shape(), " for an output of shape ", outputs_.back().shape());
    const std::size_t lowest = lowest_trainable();
    const Tensor<T>* dy = &doutput;
    int next = 0;  // the buffer dx goes to: the one dy is not in
    for (std::size_t i = execution_.size(); i-- > lowest;) {
      Tensor<T>& dx = grad_buffers_[next];
      // Set on every pass: freezing is a flag on the parameters, which may change between batches.
      execution_[i]->set_input_grad_needed(i > lowest);
      execution_[i]->backward(i == 0 ? *input_ : outputs_[i - 1], outputs_[i], *dy, dx);
      dy = &dx;
      next ^= 1;
    }
  }

  // -------------------------------------------------------------------------------------------
  // Training (model/trainer.hpp)

  /// Fixes the loss and the optimizer. metrics: {"accuracy"} or {} (the loss is always reported).
  template <class L, class O>
  void compile(const L& loss, const O& optimizer, std::vector<std::string> metrics = {"accuracy"}) {
    trainer_.compile(loss, optimizer, std::move(metrics));
  }
  bool compiled() const { return trainer_.compiled(); }
  Optimizer<T>& optimizer() { return trainer_.optimizer(); }
  /// The compiled loss: its name, and how the outputs become probabilities (output_activation).
  const Loss<T>& loss() const { return trainer_.loss(); }

  using BatchResult = faltung::BatchResult;

  /// One gradient step on one batch: forward in training mode, loss, backward, optimizer step.
  BatchResult train_on_batch(const Tensor<T>& x, const Tensor<T>& y) { return trainer_.train_on_batch(*this, x, y); }

  /// Trains on x (N, input...) and y (targets, first dimension N). See FitOptions.
  History fit(const Tensor<T>& x, const Tensor<T>& y, const FitOptions& options = FitOptions()) {
    return trainer_.fit(*this, x, y, nullptr, nullptr, options);
  }
  /// Trains, and reports val_loss / val_accuracy on (val_x, val_y) after each epoch.
  History fit(const Tensor<T>& x, const Tensor<T>& y, const Tensor<T>& val_x, const Tensor<T>& val_y,
              const FitOptions& options = FitOptions()) {
    return trainer_.fit(*this, x, y, &val_x, &val_y, options);
  }

  /// Loss and accuracy over (x, y) in inference mode.
  Evaluation evaluate(const Tensor<T>& x, const Tensor<T>& y, std::size_t batch_size = 256) {
    return trainer_.evaluate(*this, x, y, 0, x.dim(0), batch_size);
  }
  /// Loss and accuracy over (x, y), shared out between the processes of comm (distributed/): each
  /// evaluates its share of the rows, and every one returns the totals. Every process passes the
  /// same model and data; a disagreement is an error on every process.
  Evaluation evaluate(const Tensor<T>& x, const Tensor<T>& y, Communicator& comm, std::size_t batch_size = 256) {
    detail::check_ranks_agree(comm, "Sequential::evaluate (distributed)", spec(),
                              {{"number of samples", x.rank() ? x.dim(0) : 0}, {"batch size", batch_size}});
    return trainer_.evaluate(*this, x, y, 0, x.rank() ? x.dim(0) : 0, batch_size, "y", &comm);
  }

  // -------------------------------------------------------------------------------------------
  // Inference

  /// The model's outputs as probabilities (output_activation() applied: the loss's, softmax after
  /// logits for cross-entropy, sigmoid for binary cross-entropy), in inference mode. A model
  /// rebuilt by load_model applies the activation its file stores without being compiled.
  Tensor<T> predict(const Tensor<T>& x, std::size_t batch_size = 256) {
    FALTUNG_CHECK(built_, "Sequential::predict: build the model first");
    detail::check_batch_size("Sequential::predict", batch_size);
    set_training(false);
    return detail::predict_in_batches(x, batch_size, output_shape(), output_activation(), batch_x_,
                                      [this](const Tensor<T>& batch) -> const Tensor<T>& { return forward(batch); });
  }

  /// The index of the largest output of each sample.
  std::vector<int> predict_classes(const Tensor<T>& x, std::size_t batch_size = 256) {
    return detail::argmax_rows(predict(x, batch_size));
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
         << std::right << std::setw(w3) << detail::group_digits(l.parameter_count()) << '\n';
      if (i + 1 < layers_.size()) os << '\n';
    }
    const std::size_t total = parameter_count(), trainable = trainable_parameter_count();
    os << double_rule << '\n'
       << "Total params: " << detail::group_digits(total) << '\n'
       << "Trainable params: " << detail::group_digits(trainable) << '\n'
       << "Non-trainable params: " << detail::group_digits(total - trainable) << '\n'
       << rule << '\n';
  }

 private:
  /// build()'s checks, before anything is allocated: every layer's output shape, held to
  /// SizeLimits, the class names against the output, and the model's parameter count (returned). Fills `inputs` with each layer's
  /// per-sample input shape.
  std::size_t check_build(const Shape& input_shape, std::vector<Shape>& inputs) {
    FALTUNG_CHECK(!layers_.empty(), "Sequential::build: the model has no layers");
    check_tensor_elements(input_shape.numel(), "Sequential::build: the input shape ", input_shape);
    Shape shape = input_shape;
    std::size_t parameters = 0;
    for (std::size_t i = 0; i < layers_.size(); ++i) {
      Layer<T>& l = *layers_[i];
      const std::string from = i == 0 ? std::string("the input") : "'" + layers_[i - 1]->name() + "' (" + layers_[i - 1]->type() + ")";
      inputs.push_back(shape);
      try {
        Shape out = l.output_shape(shape);
        check_tensor_elements(out.numel(), "its output shape ", out);
        parameters = checked_add(parameters, l.built() ? l.parameter_count() : l.parameter_count_for(shape),
                                 "the model's parameter count");
        shape = out;
      } catch (const Error& e) {
        detail::fail("Sequential::build: layer ", i, " '", l.name(), "' (", l.type(), ") cannot take the output of ",
                     from, " of shape ", shape, ": ", e.what());
      }
      if (l.built())
        FALTUNG_CHECK(l.input_shape() == inputs[i], "Sequential::build: layer ", i, " '", l.name(), "' (", l.type(),
                      ") was built for input ", l.input_shape(), " but ", from, " now gives ", inputs[i]);
    }
    const std::size_t limit = size_limits().max_parameters;
    FALTUNG_CHECK(parameters <= limit, "Sequential::build: the model has ", parameters,
                  " parameters for input shape ", input_shape, ", more than faltung's limit of ", limit,
                  " (SizeLimits::max_parameters)");
    detail::check_class_names(inference_.class_names, shape, "Sequential::build");
    return parameters;
  }

  friend class InferenceModel<T>;  // takes the layers of a Sequential it is made from by move

  /// The position in execution_ of the lowest layer with a trainable parameter (a ConvPool has
  /// its Conv2D's), or execution_.size() when everything is frozen. Allocation-free: the
  /// parameters are gathered into a vector the model keeps.
  std::size_t lowest_trainable() {
    for (std::size_t i = 0; i < execution_.size(); ++i) {
      layer_parameters_.clear();
      execution_[i]->append_parameters(layer_parameters_);
      for (const Parameter<T>* p : layer_parameters_)
        if (p->trainable) return i;
    }
    return execution_.size();
  }

  std::size_t index_of(const std::string& name, const char* caller) const {
    for (std::size_t i = 0; i < layers_.size(); ++i)
      if (layers_[i]->name() == name) return i;
    std::string names;
    for (const auto& l : layers_) names += (names.empty() ? "" : ", ") + l->name();
    detail::fail("Sequential::", caller, ": no layer named '", name, "' (the layers are: ",
                 names.empty() ? std::string("none") : names, ")");
  }

  /// Makes the execution list from the layer list (see the top of this file). Called whenever the
  /// layers change or are built: a pair is fused only once both its layers are built.
  void plan_execution() {
    ConvPool<T>::plan(layers_, execution_, rewritten_);
    outputs_.resize(execution_.size());
    input_ = nullptr;  // the outputs of an earlier forward no longer match the list
  }

  std::vector<std::unique_ptr<Layer<T>>> layers_;      // the layers as the user added them
  std::vector<Layer<T>*> execution_;                   // what forward runs; see plan_execution()
  std::vector<std::unique_ptr<Layer<T>>> rewritten_;   // the ConvPools in execution_
  std::vector<Tensor<T>> outputs_;  // outputs_[i]: output of execution_[i] in the latest forward
  Tensor<T> grad_buffers_[2];        // the gradient ping-pongs between these in backward
  Tensor<T> batch_x_;                // predict's batch
  std::vector<Parameter<T>*> step_parameters_;  // see step_parameters()
  std::vector<Parameter<T>*> layer_parameters_;  // see lowest_trainable()
  const Tensor<T>* input_ = nullptr;
  Shape input_shape_;
  bool built_ = false;
  Random rng_;
  std::uint64_t seed_ = 42;
  std::map<std::string, int> name_counts_;
  InferenceConfig inference_;  // what predict applies when not compiled, and the class names
  Trainer<T> trainer_;  // the loss and optimizer compile() fixed
};

FALTUNG_END_NAMESPACE
