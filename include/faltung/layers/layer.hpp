#pragma once
// The layer contract. Every layer, built in or a user's own, derives from Layer<T>.
//
//  output_shape(in)   Pure shape inference on per-sample shapes (no batch dimension). Throws
//                     faltung::Error when `in` does not fit; Sequential adds both layers' names.
//  build(in, rng)     Allocates and initialises the parameters for per-sample input shape `in`.
//                     Every random draw goes through `rng`. Called once, before forward.
//  forward(x, y)      x is (N, in...), y is resized to (N, out...). May keep in the layer what
//                     backward needs beyond x and y (a pooling argmax, a dropout mask).
//  backward(x, y, dy, dx)
//                     x and y are the tensors of the latest forward, unchanged; dy = dL/dy has
//                     y's shape. ADDS dL/dparam into the grad of each trainable parameter (so
//                     gradients of several batches accumulate until zero_grad), and WRITES dL/dx
//                     into dx (x's shape) unless input_grad_needed() is false, when dx is left
//                     untouched: the first layer of a network, or the lowest one that is
//                     trained, has nothing to feed. A frozen parameter's (trainable == false)
//                     grad is not needed: the built-in layers skip its computation and leave it
//                     untouched (a user's layer may still write it; optimizers never read it).
//  parameters()       The trainable tensors in a fixed order (kernel, then bias).
//  set_training(on)   Training or inference mode; Dropout reads it.
//  spec()             The layer in the architecture language ("conv:32:3x3:same:relu"),
//                     from which model files and the command line rebuild it.
//
// backward takes x and y explicitly rather than remembering pointers from forward: the caller
// (Sequential, or the gradient checker) holds them anyway, and a layer then cannot read a
// tensor that has since been freed or overwritten.
//
// forward and backward are the checked entry points, not virtual: they check every tensor's
// shape against the built shapes and the batch of the latest forward (a few integer compares,
// no allocation), size dx, and then call the layer's implementation, forward_impl and
// backward_impl, which a layer overrides. An implementation can therefore rely on
//   forward_impl   x is (N, in...)
//   backward_impl  x is (N, in...), y and dy are (N, out...), with the N of the latest forward,
//                  and dx is already (N, in...) when input_grad_needed() (when it is false, dx
//                  is not sized, and an implementation that writes it must size it itself)
// and a wrong tensor from a user's own training loop is an error naming the layer and both
// shapes, not a read or write past the end of a buffer the layer kept from forward.
//
// infer(x, y, ws) is forward in inference mode for a model that many threads share
// (model/inference_model.hpp): const, it reads only the weights and writes only y and the
// workspace `ws` the caller owns, so several threads may call it on one layer at once, each
// with its own workspace. The built-in layers override infer_impl with the same arithmetic as
// their forward_impl (bitwise the same y); a layer that does not override it still works: the
// default runs its forward_impl in inference mode, one thread at a time (a lock per layer).

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "faltung/parameter.hpp"
#include "faltung/random.hpp"
#include "faltung/tensor.hpp"

FALTUNG_BEGIN_NAMESPACE

template <class T>
class InferenceModel;

/// The buffers one inference call of a layer needs besides its weights (see Layer::infer): what
/// forward keeps in the layer itself, held by the caller instead. Grown on first use, then reused.
template <class T>
struct LayerWorkspace {
  Tensor<T> buffer;                  ///< a convolution's im2col and per-thread buffers
  std::vector<std::int32_t> argmax;  ///< a max pooling's winning pixels (inference discards them)
};

namespace detail {
/// A mutex that a copy does not share: a copied layer gets a lock of its own.
struct OwnMutex {
  std::mutex m;
  OwnMutex() = default;
  OwnMutex(const OwnMutex&) {}
  OwnMutex& operator=(const OwnMutex&) { return *this; }
};
}  // namespace detail

template <class T>
class Layer {
 public:
  virtual ~Layer() = default;

  /// The layer's kind as Keras names it in a summary: "Conv2D", "Dense", "MaxPool2D", ...
  virtual std::string type() const = 0;
  /// Default name stem, snake_case ("conv2d"); Sequential numbers them: conv2d, conv2d_1, ...
  virtual std::string default_name() const = 0;
  virtual Shape output_shape(const Shape& in) const = 0;
  /// The number of parameters build(in) will allocate, computed overflow-checked without
  /// allocating: Sequential::build holds the model's total to SizeLimits::max_parameters before
  /// it builds any layer. A layer with parameters overrides it; without an override, each of its
  /// tensors is still held to SizeLimits::max_tensor_elements when it is allocated.
  virtual std::size_t parameter_count_for(const Shape& in) const {
    (void)in;
    return 0;
  }
  virtual void build(const Shape& in, Random& rng) {
    (void)rng;
    input_shape_ = in;
    output_shape_ = output_shape(in);
    built_ = true;
  }

  /// y (N, out...) = the layer applied to x (N, in...); see the contract above.
  void forward(const Tensor<T>& x, Tensor<T>& y) {
    check_input(x, "forward");
    forward_batch_ = no_forward;  // until forward_impl has finished
    forward_impl(x, y);
    check_output(x, y, "forward");
    forward_batch_ = x.dim(0);
  }

  /// y (N, out...) = the layer applied to x (N, in...) in inference mode, whatever training()
  /// says, with `ws` holding what forward would keep in the layer. Const and safe to call from
  /// several threads at once on one layer, each with its own workspace; see the contract above.
  void infer(const Tensor<T>& x, Tensor<T>& y, LayerWorkspace<T>& ws) const {
    check_input(x, "infer");
    infer_impl(x, y, ws);
    check_output(x, y, "infer");
  }

  /// Adds dL/dparam into the parameters' grads and writes dL/dx into dx, from x and y of the
  /// latest forward and dy = dL/dy; see the contract above.
  void backward(const Tensor<T>& x, const Tensor<T>& y, const Tensor<T>& dy, Tensor<T>& dx) {
    FALTUNG_CHECK(forward_batch_ != no_forward, type(), " '", name_, "': backward without a forward before it");
    const Shape in = input_shape_.with_batch(forward_batch_), out = output_shape_.with_batch(forward_batch_);
    FALTUNG_CHECK(x.shape() == in, type(), " '", name_, "': backward: x has shape ", x.shape(),
                  " but the latest forward's input had shape ", in);
    FALTUNG_CHECK(y.shape() == out, type(), " '", name_, "': backward: y has shape ", y.shape(),
                  " but the latest forward's output had shape ", out);
    FALTUNG_CHECK(dy.shape() == out, type(), " '", name_, "': backward: the gradient dy has shape ", dy.shape(),
                  " but the latest forward's output had shape ", out);
    if (input_grad_needed_) dx.resize(in);
    backward_impl(x, y, dy, dx);
  }
  /// The layer's trainable tensors, in a fixed order. A layer with parameters overrides this
  /// (and, to keep training steps free of allocation, append_parameters).
  virtual std::vector<Parameter<T>*> parameters() { return {}; }
  /// Appends parameters() to `out`. Sequential gathers the parameters this way for every training
  /// step into a vector it keeps, so Dense and Conv2D override it to append without a temporary.
  virtual void append_parameters(std::vector<Parameter<T>*>& out) {
    for (Parameter<T>* p : parameters()) out.push_back(p);
  }
  virtual std::string spec() const = 0;
  /// A deep copy, parameters included (Sequential has value semantics).
  virtual std::unique_ptr<Layer<T>> clone() const = 0;

  /// The state of the layer's own random stream (Dropout's mask seed), empty for a layer that
  /// draws nothing after build. A checkpoint saves it and set_random_state gives it back, so that
  /// a resumed training draws the masks the uninterrupted one would have. A user's layer that
  /// draws random numbers while training overrides both.
  virtual std::vector<std::uint64_t> random_state() const { return {}; }
  /// Restores a random_state() of a layer of the same kind; throws for a state of another size.
  virtual void set_random_state(const std::vector<std::uint64_t>& state) {
    FALTUNG_CHECK(state.empty(), type(), " '", name_, "': a random state of ", state.size(),
                  " words for a layer that keeps none");
  }

  virtual void set_training(bool on) { training_ = on; }
  bool training() const { return training_; }

  void set_input_grad_needed(bool on) { input_grad_needed_ = on; }
  bool input_grad_needed() const { return input_grad_needed_; }

  const std::string& name() const { return name_; }
  void set_name(std::string name) { name_ = std::move(name); }

  bool built() const { return built_; }
  const Shape& input_shape() const { return input_shape_; }
  const Shape& output_shape() const { return output_shape_; }

  /// Freezes (false) or unfreezes (true) every parameter of the layer. A frozen parameter keeps
  /// its value through training, and backward computes no gradient for it.
  void set_trainable(bool on) {
    for (Parameter<T>* p : parameters()) p->trainable = on;
  }
  /// Whether any parameter of the layer is trainable (false for a layer without parameters).
  bool trainable() {
    for (Parameter<T>* p : parameters())
      if (p->trainable) return true;
    return false;
  }

  std::size_t parameter_count() {
    std::size_t n = 0;
    for (Parameter<T>* p : parameters()) n += p->value.size();
    return n;
  }

 protected:
  /// parameters() for a layer that overrides append_parameters.
  std::vector<Parameter<T>*> appended_parameters() {
    std::vector<Parameter<T>*> all;
    append_parameters(all);
    return all;
  }

  /// The layer's computation, called by forward() once x is checked. Resizes y to (N, out...).
  virtual void forward_impl(const Tensor<T>& x, Tensor<T>& y) = 0;
  /// The layer's gradients, called by backward() once x, y and dy are checked and dx is sized.
  virtual void backward_impl(const Tensor<T>& x, const Tensor<T>& y, const Tensor<T>& dy, Tensor<T>& dx) = 0;
  /// Inference, called by infer() once x is checked: y resized to (N, out...) and computed as
  /// forward_impl computes it in inference mode, reading only the weights, writing only y and
  /// ws. The default runs forward_impl itself, under a lock of the layer's, for a layer that
  /// does not override this (a user's own): correct, but one thread at a time.
  virtual void infer_impl(const Tensor<T>& x, Tensor<T>& y, LayerWorkspace<T>& ws) const {
    (void)ws;
    std::lock_guard<std::mutex> lock(infer_lock_.m);
    Layer& self = const_cast<Layer&>(*this);  // every layer object is created non-const
    const bool was_training = training_;
    self.training_ = false;
    try {
      self.forward_impl(x, y);
    } catch (...) {
      self.training_ = was_training;
      throw;
    }
    self.training_ = was_training;
  }

  /// Frees what only training needs, for a layer that will only infer (InferenceModel): every
  /// parameter's grad and the buffers forward and backward keep. A layer with buffers of its
  /// own overrides it (and calls this one). Afterwards the layer must not run backward; an
  /// InferenceModel never does.
  virtual void release_training_state() {
    for (Parameter<T>* p : parameters()) p->grad = Tensor<T>();
    forward_batch_ = no_forward;  // backward now refuses: there is no forward to go back through
  }

  Shape input_shape_, output_shape_;
  bool built_ = false;
  bool training_ = false;
  bool input_grad_needed_ = true;
  std::string name_;

 private:
  template <class>
  friend class InferenceModel;  // calls release_training_state on its own copies of the layers

  static constexpr std::size_t no_forward = std::size_t(-1);

  void check_input(const Tensor<T>& x, const char* entry) const {
    FALTUNG_CHECK(built_, type(), " '", name_, "': ", entry, " before build");
    FALTUNG_CHECK(is_batch_of(x.shape(), input_shape_), type(), " '", name_, "': ", entry,
                  ": expected an input (N, ...) with per-sample shape ", input_shape_, ", got ", x.shape());
  }
  void check_output(const Tensor<T>& x, const Tensor<T>& y, const char* entry) const {
    FALTUNG_CHECK(y.shape() == output_shape_.with_batch(x.dim(0)), type(), " '", name_, "': ", entry, " produced ",
                  y.shape(), " for the output shape ", output_shape_, " it was built with");
  }

  /// Whether `batch` is (N, per_sample...) for some N.
  static bool is_batch_of(const Shape& batch, const Shape& per_sample) {
    return batch.rank() == per_sample.rank() + 1 && batch.without_batch() == per_sample;
  }

  std::size_t forward_batch_ = no_forward;  // N of the latest completed forward
  mutable detail::OwnMutex infer_lock_;    // serialises the default infer_impl
};

FALTUNG_END_NAMESPACE
