#pragma once
// Dense (fully connected) layer:  y = f(x W + b)
//   x (N, in)   W "kernel" (in, units)   b "bias" (units)   y (N, units)
// W is stored (in, units), as Keras stores it, so the forward pass is one row-major GEMM.
// The products are in kernels/dense.hpp. Backward (z = x W + b, dz = f'(z) * dy, written through y, see kernels/activation.hpp):
//   dW += x^T dz      db += sum over the batch of dz      dx = dz W^T
// The input must be flat per sample; put a Flatten before a Dense that follows a convolution.

#include <memory>
#include <sstream>
#include <string>

#include "faltung/initializers.hpp"
#include "faltung/kernels/activation.hpp"
#include "faltung/kernels/dense.hpp"
#include "faltung/layers/layer.hpp"

FALTUNG_BEGIN_NAMESPACE

struct DenseOptions {
  DenseOptions(std::size_t units) : units_(units) {}  // NOLINT: Dense(128) reads well
  /// Output features. Required, positive.
  DenseOptions& units(std::size_t v) { units_ = v; return *this; }
  /// Activation applied to the output. Default: linear (none).
  DenseOptions& activation(Activation v) { activation_ = v; return *this; }
  /// Whether to add a bias. Default: true.
  DenseOptions& use_bias(bool v) { use_bias_ = v; return *this; }
  /// Initialiser of the kernel. Default: Glorot-uniform. The bias starts at zero.
  DenseOptions& kernel_initializer(Initializer v) { kernel_initializer_ = v; return *this; }

  std::size_t units_;
  Activation activation_;
  bool use_bias_ = true;
  Initializer kernel_initializer_ = Initializer::GlorotUniform;
};

template <class T>
class Dense : public Layer<T> {
 public:
  explicit Dense(DenseOptions options) : options_(options) {
    FALTUNG_CHECK(options_.units_ > 0, "Dense: units must be positive");
    detail::check_activation("Dense", options_.activation_);
  }
  Dense(std::size_t units, Activation activation) : Dense(DenseOptions(units).activation(activation)) {}

  std::string type() const override { return "Dense"; }
  std::string default_name() const override { return "dense"; }
  const DenseOptions& options() const { return options_; }

  Shape output_shape(const Shape& in) const override {
    FALTUNG_CHECK(in.rank() == 1, "Dense expects a flat input (features), got ", in,
                  "; add a Flatten layer before it");
    return Shape{options_.units_};
  }

  std::size_t parameter_count_for(const Shape& in) const override {
    (void)output_shape(in);
    const std::size_t kernel = checked_mul(in[0], options_.units_, "Dense: the kernel's size (inputs x units)");
    return checked_add(kernel, options_.use_bias_ ? options_.units_ : 0, "Dense: the parameter count");
  }

  void build(const Shape& in, Random& rng) override {
    Layer<T>::build(in, rng);
    const std::size_t fan_in = in[0], units = options_.units_;
    kernel_ = Parameter<T>("kernel", Shape{fan_in, units});
    initialize(kernel_.value, options_.kernel_initializer_, fan_in, units, rng);
    if (options_.use_bias_) bias_ = Parameter<T>("bias", Shape{units});
  }

  std::vector<Parameter<T>*> parameters() override { return this->appended_parameters(); }
  void append_parameters(std::vector<Parameter<T>*>& out) override {
    out.push_back(&kernel_);
    if (options_.use_bias_) out.push_back(&bias_);
  }

  std::string spec() const override {
    std::ostringstream os;
    os << "dense:" << options_.units_;
    if (!options_.activation_.is_linear()) os << ':' << activation_spec(options_.activation_);
    if (!options_.use_bias_) os << ":nobias";
    if (options_.kernel_initializer_ != Initializer::GlorotUniform) os << ':' << to_string(options_.kernel_initializer_);
    return os.str();
  }

  std::unique_ptr<Layer<T>> clone() const override { return std::make_unique<Dense<T>>(*this); }

 protected:
  void forward_impl(const Tensor<T>& x, Tensor<T>& y) override { apply(x, y); }
  void infer_impl(const Tensor<T>& x, Tensor<T>& y, LayerWorkspace<T>&) const override { apply(x, y); }

  void release_training_state() override {
    Layer<T>::release_training_state();
    dz_ = Tensor<T>();
    transposed_kernel_ = Tensor<T>();
  }

  void backward_impl(const Tensor<T>& x, const Tensor<T>& y, const Tensor<T>& dy, Tensor<T>& dx) override {
    const std::size_t n = x.dim(0), in = this->input_shape_[0], units = options_.units_;
    const Tensor<T>* dz = &dy;
    if (!options_.activation_.is_linear()) {
      dz_.resize(dy.shape());
      kernels::activation_backward(options_.activation_, y.data(), dy.data(), dz_.data(), n, units, 1);
      dz = &dz_;
    }
    const auto dZ = dz->as_matrix(n, units);
    // A frozen parameter's gradient is not needed (see layer.hpp): a frozen layer above the
    // lowest trained one only passes the gradient on.
    if (kernel_.trainable) kernels::dense_backward_weights(x.data(), dz->data(), kernel_.grad.data(), n, in, units);
    if (options_.use_bias_ && bias_.trainable) bias_.grad.as_vector() += dZ.colwise().sum().transpose();
    if (this->input_grad_needed()) {
      kernels::dense_backward_data(dz->data(), kernel_.value.data(), dx.data(), n, in, units, transposed_kernel_);
    }
  }

 private:
  /// The forward pass, which keeps nothing in the layer: forward and infer both run it.
  void apply(const Tensor<T>& x, Tensor<T>& y) const {
    const std::size_t n = x.dim(0), units = options_.units_;
    y.resize(Shape{n, units});
    kernels::dense_forward(x.data(), kernel_.value.data(), y.data(), n, this->input_shape_[0], units);
    if (options_.use_bias_) y.as_matrix(n, units).rowwise() += bias_.value.as_vector().transpose();
    kernels::activation_forward(options_.activation_, y.data(), y.data(), n, units, 1);
  }

  DenseOptions options_;
  Parameter<T> kernel_, bias_;
  Tensor<T> dz_;  // (N, units) gradient before the activation; reused across batches
  Tensor<T> transposed_kernel_;  // W^T for the input gradient (kernels/dense.hpp); reused likewise
};

FALTUNG_END_NAMESPACE
