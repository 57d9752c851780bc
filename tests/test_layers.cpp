// Layers: numerical gradient checks of every layer (double, many shapes), fixed reference outputs
// and gradients computed by PyTorch (tests/reference/make_layer_reference.py writes
// reference/layer_reference.inc), shape inference and its error messages, Dropout's statistics
// and thread independence, "backward adds into grads", and fused activations against separate
// activation layers.

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "faltung/layers/activation.hpp"
#include "faltung/layers/conv2d.hpp"
#include "faltung/layers/conv_pool.hpp"
#include "faltung/layers/dense.hpp"
#include "faltung/layers/dropout.hpp"
#include "faltung/layers/flatten.hpp"
#include "faltung/layers/max_pool2d.hpp"
#include "faltung/testing/gradcheck.hpp"
#include "faltung/threading.hpp"
#include "reference/layer_reference.inc"

using namespace faltung;

#include "test_support.hpp"

namespace {

using faltung::test::contains;
using faltung::test::error_of;

namespace ref = layer_reference;

/// Restores the thread count when a test that changes it ends, pass or fail.
struct ThreadCountGuard {
  int saved = num_threads();
  ~ThreadCountGuard() { set_num_threads(saved); }
};

/// A message that names the first mismatches, or empty when got matches expected within
/// |got - expected| <= tol * max(1, |expected|).
template <class T>
std::string compare(const char* what, const Tensor<T>& got, const std::vector<double>& expected, double tol) {
  std::ostringstream os;
  if (got.size() != expected.size()) {
    os << what << ": " << got.size() << " elements (shape " << got.shape() << "), expected " << expected.size()
       << '\n';
    return os.str();
  }
  std::size_t bad = 0;
  for (std::size_t i = 0; i < expected.size(); ++i) {
    const double g = double(got[i]), e = expected[i];
    if (!(std::abs(g - e) <= tol * std::max(1.0, std::abs(e)))) {
      if (bad < 5) os << what << '[' << i << "]: got " << g << ", expected " << e << '\n';
      ++bad;
    }
  }
  if (bad > 5) os << what << ": " << (bad - 5) << " more mismatches\n";
  return os.str();
}

template <class T>
Tensor<T> tensor_from(const Shape& shape, const std::vector<double>& values) {
  Tensor<T> t(shape);
  EXPECT_EQ(t.size(), values.size()) << "shape " << shape;
  for (std::size_t i = 0; i < std::min(t.size(), values.size()); ++i) t[i] = T(values[i]);
  return t;
}

template <class T>
void set_values(Parameter<T>& p, const std::vector<double>& values) {
  ASSERT_EQ(p.value.size(), values.size()) << p.name;
  for (std::size_t i = 0; i < values.size(); ++i) p.value[i] = T(values[i]);
}

Activation parse_activation(const std::string& name, double alpha) {
  if (name == "linear") return Activation();
  if (name == "relu") return Activation(ActivationKind::ReLU);
  if (name == "leaky_relu") return Activation(ActivationKind::LeakyReLU, alpha);
  if (name == "sigmoid") return Activation(ActivationKind::Sigmoid);
  if (name == "tanh") return Activation(ActivationKind::Tanh);
  if (name == "softmax") return Activation(ActivationKind::Softmax);
  ADD_FAILURE() << "unknown activation " << name;
  return Activation();
}

/// x with distinct values spaced 0.01 apart in random order: no ties inside a pooling window
/// and no value within the gradient checker's step of another or of a ReLU kink.
Tensor<double> distinct_tensor(const Shape& shape, Random& rng) {
  Tensor<double> t(shape);
  std::vector<std::size_t> order(t.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  rng.shuffle(order);
  for (std::size_t i = 0; i < order.size(); ++i) t[i] = (double(order[i]) - double(t.size()) / 2 + 0.5) * 0.01;
  return t;
}

/// Uniform values in [-1, 1] pushed at least 0.05 away from zero (away from the ReLU kink).
Tensor<double> away_from_zero(const Shape& shape, Random& rng) {
  Tensor<double> t = random_tensor<double>(shape, rng);
  for (double& v : t) v = v < 0 ? v - 0.05 : v + 0.05;
  return t;
}

/// Gradient check with the biases made nonzero first (they start at zero, which would hide a
/// bias that is added to the wrong outputs).
void expect_gradcheck(Layer<double>& layer, const Tensor<double>& x, Random& rng) {
  for (Parameter<double>* p : layer.parameters())
    if (p->name == "bias")
      for (double& v : p->value) v = rng.uniform(-0.5, 0.5);
  const GradCheckResult r = gradcheck(layer, x);
  EXPECT_TRUE(r.ok) << layer.spec() << " on " << x.shape() << ":\n" << r.report;
  std::size_t expected_checks = layer.input_grad_needed() ? x.size() : 0;
  for (Parameter<double>* p : layer.parameters()) expected_checks += p->value.size();
  EXPECT_EQ(r.checked, expected_checks) << layer.spec();
  EXPECT_LT(r.max_abs_error, 1e-6) << layer.spec();
}

const std::vector<Activation>& all_activations() {
  static const std::vector<Activation> list = {
      Activation(),
      Activation(ActivationKind::ReLU),
      Activation(ActivationKind::LeakyReLU, 0.3),
      Activation(ActivationKind::LeakyReLU, 0.05),
      Activation(ActivationKind::Sigmoid),
      Activation(ActivationKind::Tanh),
      Activation(ActivationKind::Softmax),
  };
  return list;
}

// =============================================================================================
// The gradient checker itself must catch a wrong backward, or every test below proves nothing.

struct WrongSquare : Layer<double> {
  std::string type() const override { return "WrongSquare"; }
  std::string default_name() const override { return "wrong_square"; }
  Shape output_shape(const Shape& in) const override { return in; }
  void forward_impl(const Tensor<double>& x, Tensor<double>& y) override {
    y.resize(x.shape());
    for (std::size_t i = 0; i < x.size(); ++i) y[i] = x[i] * x[i];
  }
  void backward_impl(const Tensor<double>& x, const Tensor<double>&, const Tensor<double>& dy,
                     Tensor<double>& dx) override {  // dx comes sized: input_grad_needed() is true
    for (std::size_t i = 0; i < x.size(); ++i) dx[i] = (i == 3 ? 1.9 : 2.0) * x[i] * dy[i];  // one wrong entry
  }
  std::string spec() const override { return "wrong_square"; }
  std::unique_ptr<Layer<double>> clone() const override { return std::make_unique<WrongSquare>(*this); }
};

TEST(GradCheck, CatchesAWrongBackward) {
  WrongSquare layer;
  Random rng(3);
  layer.build({6}, rng);
  const GradCheckResult r = gradcheck<double>(layer, away_from_zero({2, 6}, rng));
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.report.find("WrongSquare input[3]"), std::string::npos) << r.report;
  EXPECT_EQ(r.report.find("input[4]"), std::string::npos) << r.report;
}

// =============================================================================================
// Gradient checks, every layer, in double.

TEST(GradCheck, DenseEveryActivation) {
  Random rng(11);
  for (const Activation& f : all_activations()) {
    for (bool bias : {true, false}) {
      Dense<double> dense(DenseOptions(4).activation(f).use_bias(bias));
      dense.build({5}, rng);
      SCOPED_TRACE(dense.spec());
      expect_gradcheck(dense, random_tensor<double>({3, 5}, rng), rng);
    }
  }
}

TEST(GradCheck, DenseShapes) {
  Random rng(12);
  struct Config {
    std::size_t batch, in, units;
  };
  for (const Config c : {Config{1, 1, 1}, Config{1, 7, 3}, Config{5, 3, 9}, Config{2, 17, 2}}) {
    Dense<double> dense(DenseOptions(c.units).activation(ActivationKind::Tanh));
    dense.build({c.in}, rng);
    SCOPED_TRACE(testing::Message() << "batch " << c.batch << " in " << c.in << " units " << c.units);
    expect_gradcheck(dense, random_tensor<double>({c.batch, c.in}, rng), rng);
  }
}

struct ConvConfig {
  std::size_t batch, channels, height, width, filters, kh, kw, sh, sw;
  Padding padding;
  std::size_t ph, pw;
  bool bias;
  Activation activation;

  Conv2DOptions options() const {
    Conv2DOptions o(filters, kh);
    o.kernel_size(kh, kw).stride(sh, sw).use_bias(bias).activation(activation);
    if (padding == Padding::Explicit)
      o.padding(ph, pw);
    else
      o.padding(padding);
    return o;
  }
};

TEST(GradCheck, Conv2DShapes) {
  const Activation lin, relu(ActivationKind::ReLU), leaky(ActivationKind::LeakyReLU, 0.2),
      sig(ActivationKind::Sigmoid), tanh_(ActivationKind::Tanh), soft(ActivationKind::Softmax);
  const std::vector<ConvConfig> configs = {
      {2, 2, 5, 5, 3, 3, 3, 1, 1, Padding::Valid, 0, 0, true, lin},
      {2, 2, 6, 7, 3, 3, 3, 2, 2, Padding::Same, 0, 0, true, lin},     // 'same' stride 2, pad 0/1 and 1/1
      {1, 3, 7, 6, 2, 3, 3, 2, 2, Padding::Same, 0, 0, false, lin},    // batch 1, no bias
      {2, 1, 5, 6, 2, 2, 3, 1, 2, Padding::Explicit, 1, 2, true, lin}, // non-square, explicit padding
      {1, 3, 4, 4, 4, 1, 1, 1, 1, Padding::Valid, 0, 0, true, lin},    // 1x1 kernel
      {2, 2, 7, 5, 2, 1, 1, 2, 2, Padding::Valid, 0, 0, true, lin},    // 1x1 kernel, stride 2
      {2, 2, 5, 7, 3, 4, 2, 1, 1, Padding::Same, 0, 0, true, lin},     // even kernel: pad 1/2 and 0/1
      {1, 2, 9, 7, 2, 3, 3, 2, 2, Padding::Valid, 0, 0, true, lin},    // odd sizes, stride 2, valid
      {2, 1, 2, 2, 2, 3, 3, 1, 1, Padding::Explicit, 1, 1, true, lin}, // kernel larger than the image
      {1, 2, 6, 5, 2, 3, 2, 2, 1, Padding::Same, 0, 0, true, lin},     // different strides per axis
      {2, 2, 6, 6, 2, 3, 3, 1, 1, Padding::Same, 0, 0, true, relu},
      {2, 2, 5, 5, 2, 3, 3, 1, 1, Padding::Valid, 0, 0, true, leaky},
      {2, 2, 5, 5, 2, 3, 3, 2, 2, Padding::Same, 0, 0, true, sig},
      {1, 2, 4, 5, 3, 2, 2, 1, 1, Padding::Valid, 0, 0, false, tanh_},
      {2, 2, 4, 4, 3, 3, 3, 1, 1, Padding::Explicit, 1, 1, true, soft},
  };
  ThreadCountGuard guard;
  set_num_threads(1);  // thousands of tiny forwards: parallel regions would only add overhead
  Random rng(13);
  for (const ConvConfig& c : configs) {
    Conv2D<double> conv(c.options());
    conv.build({c.channels, c.height, c.width}, rng);
    SCOPED_TRACE(testing::Message() << conv.spec() << " on " << (Shape{c.batch, c.channels, c.height, c.width}));
    expect_gradcheck(conv, random_tensor<double>({c.batch, c.channels, c.height, c.width}, rng), rng);
  }
}

TEST(GradCheck, Conv2DWithoutInputGradient) {
  // A first layer: dx is not needed, not written, and the parameter gradients are still right.
  ThreadCountGuard guard;
  set_num_threads(1);
  Random rng(14);
  Conv2D<double> conv(Conv2DOptions(2, 3).padding(Same));
  conv.build({2, 5, 5}, rng);
  conv.set_input_grad_needed(false);
  const Tensor<double> x = random_tensor<double>({2, 2, 5, 5}, rng);
  GradCheckOptions o;
  o.check_input = false;
  const GradCheckResult r = gradcheck(conv, x, o);
  EXPECT_TRUE(r.ok) << r.report;

  Tensor<double> y, dx(Shape{3}, 42.0);
  conv.forward(x, y);
  conv.backward(x, y, y, dx);
  EXPECT_EQ(dx.shape(), Shape{3});  // untouched
  EXPECT_EQ(dx[0], 42.0);
}

TEST(GradCheck, MaxPool2DShapes) {
  struct Config {
    std::size_t batch, channels, height, width, ph, pw, sh, sw;
    Padding padding;
  };
  const std::vector<Config> configs = {
      {2, 2, 4, 6, 2, 2, 0, 0, Padding::Valid},  // stride defaults to the pool size
      {1, 2, 7, 7, 3, 3, 2, 2, Padding::Valid},  // overlapping windows, odd size
      {2, 1, 5, 7, 2, 2, 0, 0, Padding::Same},   // pad after only
      {1, 2, 5, 5, 3, 3, 1, 1, Padding::Same},   // pad 1/1
      {2, 1, 5, 7, 2, 3, 1, 2, Padding::Valid},  // non-square
      {1, 3, 6, 5, 3, 2, 2, 1, Padding::Same},   // non-square, 'same'
      {1, 1, 5, 5, 5, 5, 0, 0, Padding::Valid},  // one window covers everything
      {3, 2, 4, 4, 2, 2, 1, 1, Padding::Valid},  // stride 1
  };
  ThreadCountGuard guard;
  set_num_threads(1);  // thousands of tiny forwards: parallel regions would only add overhead
  Random rng(15);
  for (const Config& c : configs) {
    MaxPool2DOptions o(c.ph);
    o.pool_size(c.ph, c.pw).padding(c.padding);
    if (c.sh) o.stride(c.sh, c.sw);
    MaxPool2D<double> pool(o);
    pool.build({c.channels, c.height, c.width}, rng);
    SCOPED_TRACE(pool.spec());
    expect_gradcheck(pool, distinct_tensor({c.batch, c.channels, c.height, c.width}, rng), rng);
  }
}

TEST(GradCheck, ConvPool) {
  // The pair Sequential runs as one (layers/conv_pool.hpp): the convolution's gradient through
  // the pool fused into its kernels, with and without the ReLU whose gate it reads from the
  // pooled output. double takes the im2col kernels; the float implicit GEMM is compared with the
  // layers one by one in test_model.cpp.
  struct Config {
    std::size_t batch, channels, height, width, filters, kernel, pool_h, pool_w;
    Padding padding;
  };
  const std::vector<Config> configs = {
      {2, 2, 6, 6, 3, 3, 2, 2, Padding::Same},   // the reference networks' block
      {1, 3, 7, 8, 2, 3, 2, 3, Padding::Valid},  // odd map: the pool drops a row
  };
  ThreadCountGuard guard;
  set_num_threads(1);
  Random rng(16);
  for (const Config& c : configs)
    for (ActivationKind f : {ActivationKind::Linear, ActivationKind::ReLU}) {
      Conv2D<double> conv(Conv2DOptions(c.filters, c.kernel).padding(c.padding).activation(f));
      MaxPool2D<double> pool(MaxPool2DOptions(c.pool_h).pool_size(c.pool_h, c.pool_w));
      const Shape in{c.channels, c.height, c.width};
      conv.build(in, rng);
      pool.build(conv.output_shape(in), rng);
      std::unique_ptr<Layer<double>> pair = ConvPool<double>::fuse(conv, pool);
      ASSERT_NE(pair, nullptr) << conv.spec();
      SCOPED_TRACE(pair->spec());
      EXPECT_EQ(pair->output_shape(in), pool.output_shape(conv.output_shape(in)));
      expect_gradcheck(*pair, distinct_tensor({c.batch, c.channels, c.height, c.width}, rng), rng);
    }
}

TEST(ConvPoolLayer, FusesOnlyABuiltConv2DWithReLUOrNoneAndAMaxPool2D) {
  struct OwnConv2D : Conv2D<double> {
    using Conv2D<double>::Conv2D;
  };
  Random rng(17);
  auto built = [&](auto layer, const Shape& in) {
    layer.build(in, rng);
    return layer;
  };
  Conv2D<double> relu = built(Conv2D<double>(Conv2DOptions(2, 3).activation(ActivationKind::ReLU)), {1, 6, 6});
  Conv2D<double> tanh = built(Conv2D<double>(Conv2DOptions(2, 3).activation(ActivationKind::Tanh)), {1, 6, 6});
  OwnConv2D own = built(OwnConv2D(Conv2DOptions(2, 3)), {1, 6, 6});
  Conv2D<double> unbuilt(Conv2DOptions(2, 3));
  MaxPool2D<double> pool = built(MaxPool2D<double>(2), {2, 4, 4});
  MaxPool2D<double> unbuilt_pool(2);
  EXPECT_NE(ConvPool<double>::fuse(relu, pool), nullptr);
  EXPECT_EQ(ConvPool<double>::fuse(tanh, pool), nullptr);
  EXPECT_EQ(ConvPool<double>::fuse(own, pool), nullptr);
  EXPECT_EQ(ConvPool<double>::fuse(unbuilt, pool), nullptr);
  EXPECT_EQ(ConvPool<double>::fuse(relu, unbuilt_pool), nullptr);
  EXPECT_EQ(ConvPool<double>::fuse(pool, relu), nullptr);
  EXPECT_TRUE(contains(error_of([&] { ConvPool<double>::fuse(relu, pool)->clone(); }), "not copied"));
}

TEST(GradCheck, Dropout) {
  Random rng(16);
  for (double rate : {0.0, 0.25, 0.5}) {
    Dropout<double> train(rate);
    train.build({4, 5}, rng);
    train.set_training(true);
    train.repeat_mask(true);
    SCOPED_TRACE(train.spec());
    expect_gradcheck(train, random_tensor<double>({3, 4, 5}, rng), rng);

    Dropout<double> infer(rate);
    infer.build({4, 5}, rng);
    infer.set_training(false);
    expect_gradcheck(infer, random_tensor<double>({1, 4, 5}, rng), rng);
  }
}

TEST(GradCheck, Flatten) {
  Random rng(17);
  Flatten<double> flat;
  flat.build({3, 4, 5}, rng);
  expect_gradcheck(flat, random_tensor<double>({2, 3, 4, 5}, rng), rng);
  Flatten<double> flat1;
  flat1.build({7}, rng);
  expect_gradcheck(flat1, random_tensor<double>({1, 7}, rng), rng);
}

TEST(GradCheck, ActivationLayers) {
  Random rng(18);
  std::vector<std::unique_ptr<Layer<double>>> layers;
  layers.push_back(std::make_unique<ReLU<double>>());
  layers.push_back(std::make_unique<LeakyReLU<double>>());
  layers.push_back(std::make_unique<LeakyReLU<double>>(0.1));
  layers.push_back(std::make_unique<Sigmoid<double>>());
  layers.push_back(std::make_unique<Tanh<double>>());
  layers.push_back(std::make_unique<Softmax<double>>());
  for (const Shape& shape : {Shape{3, 5}, Shape{1, 1}, Shape{2, 3, 4, 5}, Shape{1, 4, 3, 2}, Shape{2, 3, 7}}) {
    for (auto& layer : layers) {
      auto fresh = layer->clone();
      fresh->build(shape.without_batch(), rng);
      SCOPED_TRACE(testing::Message() << fresh->spec() << " on " << shape);
      expect_gradcheck(*fresh, away_from_zero(shape, rng), rng);
    }
  }
}

TEST(GradCheck, SoftmaxLargeInputs) {
  // Logits of magnitude up to 30: softmax must stay finite and its gradient right.
  Random rng(19);
  Softmax<double> softmax;
  softmax.build({6}, rng);
  expect_gradcheck(softmax, random_tensor<double>({4, 6}, rng, -30.0, 30.0), rng);
}

// =============================================================================================
// Reference outputs and gradients from PyTorch.

template <class T>
void run_conv_reference(const ref::ConvCase& c, double tol) {
  SCOPED_TRACE(c.name);
  Conv2DOptions o(c.filters, c.kernel_h);
  o.kernel_size(c.kernel_h, c.kernel_w).stride(c.stride_h, c.stride_w).use_bias(c.use_bias)
      .activation(parse_activation(c.activation, c.alpha));
  const std::string padding = c.padding;
  if (padding == "same")
    o.padding(Same);
  else if (padding == "explicit")
    o.padding(c.pad_h, c.pad_w);
  else
    o.padding(Valid);
  Conv2D<T> conv(o);
  Random rng(1);
  const Shape in{c.channels, c.height, c.width};
  conv.build(in, rng);
  const Shape out{c.out_shape[1], c.out_shape[2], c.out_shape[3]};
  ASSERT_EQ(conv.output_shape(in), out);

  const auto params = conv.parameters();
  ASSERT_EQ(params.size(), c.use_bias ? 2u : 1u);
  EXPECT_EQ(params[0]->value.shape(), (Shape{c.filters, c.channels, c.kernel_h, c.kernel_w}));
  set_values(*params[0], c.w);
  if (c.use_bias) set_values(*params[1], c.b);

  const Tensor<T> x = tensor_from<T>(in.with_batch(c.batch), c.x);
  Tensor<T> y, dx;
  conv.forward(x, y);
  ASSERT_EQ(y.shape(), out.with_batch(c.batch));
  EXPECT_EQ(compare("y", y, c.y, tol), "");
  const Tensor<T> dy = tensor_from<T>(y.shape(), c.dy);
  conv.backward(x, y, dy, dx);
  ASSERT_EQ(dx.shape(), x.shape());
  EXPECT_EQ(compare("dx", dx, c.dx, tol), "");
  EXPECT_EQ(compare("dw", params[0]->grad, c.dw, tol), "");
  if (c.use_bias) {
    EXPECT_EQ(compare("db", params[1]->grad, c.db, tol), "");
  }
}

template <class T>
void run_pool_reference(const ref::PoolCase& c, double tol) {
  SCOPED_TRACE(c.name);
  MaxPool2DOptions o(c.pool_h);
  o.pool_size(c.pool_h, c.pool_w).stride(c.stride_h, c.stride_w).padding(std::string(c.padding) == "same" ? Same : Valid);
  MaxPool2D<T> pool(o);
  Random rng(1);
  const Shape in{c.channels, c.height, c.width};
  pool.build(in, rng);
  const Shape out{c.out_shape[1], c.out_shape[2], c.out_shape[3]};
  ASSERT_EQ(pool.output_shape(in), out);
  const Tensor<T> x = tensor_from<T>(in.with_batch(c.batch), c.x);
  Tensor<T> y, dx(x.shape(), T(7));  // dx is overwritten, not added to
  pool.forward(x, y);
  ASSERT_EQ(y.shape(), out.with_batch(c.batch));
  EXPECT_EQ(compare("y", y, c.y, tol), "");
  const Tensor<T> dy = tensor_from<T>(y.shape(), c.dy);
  pool.backward(x, y, dy, dx);
  EXPECT_EQ(compare("dx", dx, c.dx, tol), "");
}

template <class T>
void run_dense_reference(const ref::DenseCase& c, double tol) {
  SCOPED_TRACE(c.name);
  Dense<T> dense(DenseOptions(c.units).use_bias(c.use_bias).activation(parse_activation(c.activation, c.alpha)));
  Random rng(1);
  dense.build({c.in_features}, rng);
  const auto params = dense.parameters();
  ASSERT_EQ(params.size(), c.use_bias ? 2u : 1u);
  EXPECT_EQ(params[0]->value.shape(), (Shape{c.in_features, c.units}));  // Keras layout (in, units)
  set_values(*params[0], c.w);
  if (c.use_bias) set_values(*params[1], c.b);
  const Tensor<T> x = tensor_from<T>({c.batch, c.in_features}, c.x);
  Tensor<T> y, dx;
  dense.forward(x, y);
  ASSERT_EQ(y.shape(), (Shape{c.batch, c.units}));
  EXPECT_EQ(compare("y", y, c.y, tol), "");
  const Tensor<T> dy = tensor_from<T>(y.shape(), c.dy);
  dense.backward(x, y, dy, dx);
  ASSERT_EQ(dx.shape(), x.shape());
  EXPECT_EQ(compare("dx", dx, c.dx, tol), "");
  EXPECT_EQ(compare("dw", params[0]->grad, c.dw, tol), "");
  if (c.use_bias) {
    EXPECT_EQ(compare("db", params[1]->grad, c.db, tol), "");
  }
}

template <class T>
void run_activation_reference(const ref::ActivationCase& c, double tol) {
  SCOPED_TRACE(c.name);
  ActivationLayer<T> layer(parse_activation(c.activation, c.alpha));
  Shape shape;
  for (std::size_t d : c.shape) shape.push_back(d);
  Random rng(1);
  layer.build(shape.without_batch(), rng);
  const Tensor<T> x = tensor_from<T>(shape, c.x);
  Tensor<T> y, dx;
  layer.forward(x, y);
  ASSERT_EQ(y.shape(), shape);
  for (T v : y) ASSERT_TRUE(std::isfinite(v)) << "non-finite output";
  EXPECT_EQ(compare("y", y, c.y, tol), "");
  const Tensor<T> dy = tensor_from<T>(shape, c.dy);
  layer.backward(x, y, dy, dx);
  for (T v : dx) ASSERT_TRUE(std::isfinite(v)) << "non-finite gradient";
  EXPECT_EQ(compare("dx", dx, c.dx, tol), "");
}

TEST(LayerReference, Conv2D) {
  ThreadCountGuard guard;
  ASSERT_GE(ref::conv_cases.size(), 10u);
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    SCOPED_TRACE(testing::Message() << threads << " threads");
    for (const auto& c : ref::conv_cases) run_conv_reference<double>(c, 1e-12);
  }
  for (const auto& c : ref::conv_cases) run_conv_reference<float>(c, 1e-5);
}

TEST(LayerReference, MaxPool2D) {
  ThreadCountGuard guard;
  ASSERT_GE(ref::pool_cases.size(), 6u);
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    SCOPED_TRACE(testing::Message() << threads << " threads");
    for (const auto& c : ref::pool_cases) run_pool_reference<double>(c, 1e-12);
  }
  for (const auto& c : ref::pool_cases) run_pool_reference<float>(c, 1e-6);
}

TEST(LayerReference, Dense) {
  ASSERT_GE(ref::dense_cases.size(), 8u);
  for (const auto& c : ref::dense_cases) run_dense_reference<double>(c, 1e-12);
  for (const auto& c : ref::dense_cases) run_dense_reference<float>(c, 1e-5);
}

TEST(LayerReference, Activations) {
  ASSERT_GE(ref::activation_cases.size(), 12u);
  for (const auto& c : ref::activation_cases) run_activation_reference<double>(c, 1e-12);
  for (const auto& c : ref::activation_cases) run_activation_reference<float>(c, 1e-5);
}

TEST(LayerReference, InputsAreTheDocumentedArange) {
  // The script's inputs, recomputed here: a regenerated file with other inputs is noticed.
  const ref::ConvCase& c = ref::conv_cases.front();
  for (std::size_t i = 0; i < c.x.size(); ++i) ASSERT_EQ(c.x[i], (double(i % 7) - 3) / 4) << i;
  for (std::size_t i = 0; i < c.w.size(); ++i) ASSERT_EQ(c.w[i], (double(i % 5) - 2) / 8) << i;
  for (std::size_t i = 0; i < c.dy.size(); ++i) ASSERT_EQ(c.dy[i], (double(i % 11) - 5) / 8) << i;
}

// =============================================================================================
// Shape inference and error messages.



TEST(LayerShapes, Dense) {
  Dense<float> dense(10);
  EXPECT_EQ(dense.output_shape({784}), Shape{10});
  const std::string msg = error_of([&] { (void)dense.output_shape({3, 4, 4}); });
  EXPECT_TRUE(contains(msg, "Flatten")) << msg;
  EXPECT_TRUE(contains(msg, "(3, 4, 4)")) << msg;
  EXPECT_TRUE(contains(error_of([] { Dense<float> d(0); }), "units")) ;

  Random rng(1);
  dense.build({6}, rng);
  const auto params = dense.parameters();
  ASSERT_EQ(params.size(), 2u);
  EXPECT_EQ(params[0]->name, "kernel");
  EXPECT_EQ(params[0]->value.shape(), (Shape{6, 10}));
  EXPECT_EQ(params[1]->name, "bias");
  EXPECT_EQ(params[1]->value.shape(), Shape{10});
  for (float b : params[1]->value) EXPECT_EQ(b, 0.0f);
  EXPECT_EQ(dense.parameter_count(), 70u);
  Dense<float> nobias(DenseOptions(10).use_bias(false));
  nobias.build({6}, rng);
  EXPECT_EQ(nobias.parameters().size(), 1u);

  // A batch of the wrong per-sample shape names the expected one.
  Tensor<float> x({2, 5}), y;
  const std::string fwd = error_of([&] { dense.forward(x, y); });
  EXPECT_TRUE(contains(fwd, "(6)")) << fwd;
  EXPECT_TRUE(contains(fwd, "(2, 5)")) << fwd;
  Dense<float> unbuilt(3);
  EXPECT_TRUE(contains(error_of([&] { unbuilt.forward(x, y); }), "before build"));
}

TEST(LayerShapes, Conv2D) {
  auto out = [](Conv2DOptions o, Shape in) { return Conv2D<float>(o).output_shape(in); };
  EXPECT_EQ(out(Conv2DOptions(32, 3), {1, 28, 28}), (Shape{32, 26, 26}));
  EXPECT_EQ(out(Conv2DOptions(8, 3).padding(Same), {3, 28, 28}), (Shape{8, 28, 28}));
  EXPECT_EQ(out(Conv2DOptions(8, 3).padding(Same).stride(2), {3, 7, 8}), (Shape{8, 4, 4}));
  EXPECT_EQ(out(Conv2DOptions(8, 3).stride(2), {3, 7, 8}), (Shape{8, 3, 3}));
  EXPECT_EQ(out(Conv2DOptions(4, 3).padding(1, 1), {2, 5, 6}), (Shape{4, 5, 6}));
  EXPECT_EQ(out(Conv2DOptions(4, 1).kernel_size(2, 3).padding(1, 2).stride(1, 2), {3, 5, 6}), (Shape{4, 6, 4}));
  EXPECT_EQ(out(Conv2DOptions(4, 1).stride(3), {1, 7, 9}), (Shape{4, 3, 3}));
  EXPECT_EQ(out(Conv2DOptions(4, 5).padding(Same), {1, 2, 2}), (Shape{4, 2, 2}));  // window > input, 'same'

  const std::string msg = error_of([&] { (void)out(Conv2DOptions(2, 5), {1, 3, 7}); });
  EXPECT_TRUE(contains(msg, "Conv2D height")) << msg;
  EXPECT_TRUE(contains(msg, "window 5 is larger than the input size 3")) << msg;
  EXPECT_TRUE(contains(msg, "'valid'")) << msg;
  const std::string msg_w = error_of([&] { (void)out(Conv2DOptions(2, 1).kernel_size(1, 4), {1, 3, 3}); });
  EXPECT_TRUE(contains(msg_w, "Conv2D width")) << msg_w;
  const std::string rank = error_of([&] { (void)out(Conv2DOptions(2, 3), {28, 28}); });
  EXPECT_TRUE(contains(rank, "(channels, height, width)")) << rank;
  EXPECT_TRUE(contains(rank, "(28, 28)")) << rank;
  EXPECT_TRUE(contains(error_of([] { Conv2D<float> c(Conv2DOptions(0, 3)); }), "filters"));
  EXPECT_TRUE(contains(error_of([] { Conv2D<float> c(Conv2DOptions(2, 3).stride(0)); }), "stride"));

  Conv2D<float> conv(Conv2DOptions(5, 3).kernel_size(3, 2));
  Random rng(1);
  conv.build({4, 6, 6}, rng);
  const auto params = conv.parameters();
  ASSERT_EQ(params.size(), 2u);
  EXPECT_EQ(params[0]->name, "kernel");
  EXPECT_EQ(params[0]->value.shape(), (Shape{5, 4, 3, 2}));
  EXPECT_EQ(params[1]->value.shape(), Shape{5});
  Tensor<float> x({2, 4, 6, 5}), y;
  const std::string fwd = error_of([&] { conv.forward(x, y); });
  EXPECT_TRUE(contains(fwd, "(4, 6, 6)")) << fwd;
}

TEST(LayerShapes, MaxPool2D) {
  auto out = [](MaxPool2DOptions o, Shape in) { return MaxPool2D<float>(o).output_shape(in); };
  EXPECT_EQ(out(MaxPool2DOptions(2), {8, 28, 28}), (Shape{8, 14, 14}));
  EXPECT_EQ(out(MaxPool2DOptions(2), {8, 7, 7}), (Shape{8, 3, 3}));
  EXPECT_EQ(out(MaxPool2DOptions(2).padding(Same), {8, 7, 7}), (Shape{8, 4, 4}));
  EXPECT_EQ(out(MaxPool2DOptions(3).stride(1), {2, 5, 6}), (Shape{2, 3, 4}));
  EXPECT_EQ(out(MaxPool2DOptions(3).stride(1).padding(Same), {2, 5, 6}), (Shape{2, 5, 6}));
  EXPECT_EQ(out(MaxPool2DOptions(2).pool_size(2, 3), {1, 6, 9}), (Shape{1, 3, 3}));
  EXPECT_EQ(out(MaxPool2DOptions(3).padding(Same), {1, 2, 2}), (Shape{1, 1, 1}));

  const std::string msg = error_of([&] { (void)out(MaxPool2DOptions(3), {1, 2, 5}); });
  EXPECT_TRUE(contains(msg, "MaxPool2D height")) << msg;
  EXPECT_TRUE(contains(msg, "window 3 is larger than the input size 2")) << msg;
  EXPECT_TRUE(contains(msg, "'valid'")) << msg;
  EXPECT_TRUE(contains(error_of([] { MaxPool2DOptions(2).padding(Padding::Explicit); }), "'valid' or 'same'"));
  EXPECT_TRUE(contains(error_of([&] { (void)out(MaxPool2DOptions(2), {4, 4}); }), "(channels, height, width)"));
  MaxPool2D<float> pool(2);
  EXPECT_TRUE(pool.parameters().empty());
}

TEST(LayerShapes, OthersKeepOrFlatten) {
  EXPECT_EQ(Flatten<float>().output_shape({3, 4, 5}), Shape{60});
  EXPECT_EQ(Flatten<float>().output_shape({7}), Shape{7});
  EXPECT_EQ(Dropout<float>(0.5).output_shape({3, 4, 5}), (Shape{3, 4, 5}));
  EXPECT_EQ(ReLU<float>().output_shape({3, 4, 5}), (Shape{3, 4, 5}));
  EXPECT_EQ(Softmax<float>().output_shape({10}), Shape{10});
  EXPECT_TRUE(contains(error_of([] { Dropout<float> d(1.0); }), "[0, 1)"));
  EXPECT_TRUE(contains(error_of([] { Dropout<float> d(-0.1); }), "[0, 1)"));
  EXPECT_TRUE(contains(error_of([] { LeakyReLU<float> l(0.0); }), "alpha"));
  EXPECT_TRUE(contains(error_of([] { (void)Tanh<float>().output_shape(Shape{}); }), "at least one dimension"));

  Random rng(1);
  Flatten<float> flat;
  flat.build({2, 3, 4}, rng);
  Tensor<float> x({5, 2, 3, 4}), y;
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = float(i);
  flat.forward(x, y);
  EXPECT_EQ(y.shape(), (Shape{5, 24}));
  for (std::size_t i = 0; i < y.size(); ++i) ASSERT_EQ(y[i], float(i));  // (c, h, w) order kept
}

// =============================================================================================
// Dropout: statistics, inference, thread independence.

TEST(DropoutLayer, Statistics) {
  const std::size_t count = 200000;
  for (double rate : {0.1, 0.3, 0.5, 0.8}) {
    Dropout<float> drop(rate);
    Random rng(21);
    drop.build({count}, rng);
    drop.set_training(true);
    const Tensor<float> x({1, count}, 1.0f);
    Tensor<float> y;
    drop.forward(x, y);
    std::size_t zeros = 0;
    const float scale = float(1.0 / (1.0 - rate));
    for (float v : y) {
      if (v == 0.0f)
        ++zeros;
      else
        ASSERT_EQ(v, scale) << "kept values are scaled by 1 / (1 - rate)";
    }
    const double frac = double(zeros) / double(count);
    const double sigma = std::sqrt(rate * (1 - rate) / double(count));
    EXPECT_NEAR(frac, rate, 6 * sigma) << "rate " << rate;
    // The mean is preserved in expectation.
    double sum = 0;
    for (float v : y) sum += v;
    EXPECT_NEAR(sum / double(count), 1.0, 6 * sigma * double(scale)) << "rate " << rate;
  }
}

// =============================================================================================
// The contract's checked entry points: forward and backward check every tensor against the built
// shapes and the batch of the latest forward before a layer's implementation runs.

TEST(LayerContract, DropoutBackwardWithAWrongGradientIsAnError) {
  // Without the check, the mask of 4 x 3 elements is read for a gradient of 4 x 5: past its end.
  Dropout<float> drop(0.5);
  drop.set_name("dropout_2");
  Random rng(5);
  drop.build({3}, rng);
  drop.set_training(true);
  Tensor<float> x({4, 3}), y, dx, dy({4, 5});
  drop.forward(x, y);
  const std::string msg = error_of([&] { drop.backward(x, y, dy, dx); });
  EXPECT_TRUE(contains(msg, "Dropout 'dropout_2'")) << msg;
  EXPECT_TRUE(contains(msg, "dy has shape (4, 5)")) << msg;
  EXPECT_TRUE(contains(msg, "(4, 3)")) << msg;
}

TEST(LayerContract, DenseForwardWithAWrongWidthIsAnError) {
  Dense<float> dense(3);
  dense.set_name("dense_7");
  Random rng(5);
  dense.build({4}, rng);
  Tensor<float> x({2, 5}), y;
  const std::string msg = error_of([&] { dense.forward(x, y); });
  EXPECT_TRUE(contains(msg, "Dense 'dense_7'")) << msg;
  EXPECT_TRUE(contains(msg, "(4)")) << msg;
  EXPECT_TRUE(contains(msg, "(2, 5)")) << msg;
}

/// Every built-in layer, built: forward on x, then backward with a dy one column too wide, with
/// x and y of another batch, and before any forward. Each is an error that names the layer.
template <class L>
void expect_checked_entry_points(L& layer, const Shape& per_sample) {
  SCOPED_TRACE(layer.type());
  layer.set_name("checked");
  const std::string who = layer.type() + " 'checked'";
  Tensor<float> x(per_sample.with_batch(2)), y, dx;
  Random rng(3);
  for (float& v : x) v = float(rng.uniform(-1, 1));
  EXPECT_TRUE(contains(error_of([&] { layer.backward(x, x, x, dx); }), who + ": backward without a forward"));
  layer.forward(x, y);
  Shape wide = y.shape();
  wide[wide.rank() - 1] += 1;
  const Tensor<float> dy_wide(wide);
  std::string msg = error_of([&] { layer.backward(x, y, dy_wide, dx); });
  EXPECT_TRUE(contains(msg, who + ": backward: the gradient dy has shape " + wide.to_string())) << msg;
  EXPECT_TRUE(contains(msg, y.shape().to_string())) << msg;
  const Tensor<float> x3(per_sample.with_batch(3));
  msg = error_of([&] { layer.backward(x3, y, y, dx); });
  EXPECT_TRUE(contains(msg, who + ": backward: x has shape " + x3.shape().to_string())) << msg;
  Tensor<float> y3;
  layer.forward(x3, y3);
  msg = error_of([&] { layer.backward(x3, y, y, dx); });
  EXPECT_TRUE(contains(msg, who + ": backward: y has shape " + y.shape().to_string())) << msg;
  // The right tensors pass, and dx has x's shape.
  layer.backward(x3, y3, y3, dx);
  EXPECT_EQ(dx.shape(), x3.shape());
}

TEST(LayerContract, EveryLayerChecksBackwardAgainstTheLatestForward) {
  Random rng(9);
  Dense<float> dense(DenseOptions(3).activation(ActivationKind::ReLU));
  dense.build({4}, rng);
  expect_checked_entry_points(dense, {4});
  Conv2D<float> conv(Conv2DOptions(2, 3).padding(Same));
  conv.build({1, 4, 4}, rng);
  expect_checked_entry_points(conv, {1, 4, 4});
  MaxPool2D<float> pool(2);
  pool.build({2, 4, 4}, rng);
  expect_checked_entry_points(pool, {2, 4, 4});
  Dropout<float> drop(0.5);
  drop.build({2, 3}, rng);
  drop.set_training(true);
  expect_checked_entry_points(drop, {2, 3});
  Flatten<float> flat;
  flat.build({2, 3}, rng);
  expect_checked_entry_points(flat, {2, 3});
  ReLU<float> relu;
  relu.build({5}, rng);
  expect_checked_entry_points(relu, {5});
  Conv2D<float> conv_relu(Conv2DOptions(2, 3).padding(Same).activation(ActivationKind::ReLU));
  conv_relu.build({1, 4, 4}, rng);
  MaxPool2D<float> after(2);
  after.build({2, 4, 4}, rng);
  std::unique_ptr<Layer<float>> pair = ConvPool<float>::fuse(conv_relu, after);
  ASSERT_NE(pair, nullptr);
  expect_checked_entry_points(*pair, {1, 4, 4});
}

/// A user's layer whose forward_impl forgets to size y.
struct ForgetsToSizeY : Layer<float> {
  std::string type() const override { return "ForgetsToSizeY"; }
  std::string default_name() const override { return "forgets"; }
  Shape output_shape(const Shape& in) const override { return in; }
  void forward_impl(const Tensor<float>&, Tensor<float>&) override {}
  void backward_impl(const Tensor<float>&, const Tensor<float>&, const Tensor<float>&, Tensor<float>&) override {}
  std::string spec() const override { return "forgets"; }
  std::unique_ptr<Layer<float>> clone() const override { return std::make_unique<ForgetsToSizeY>(*this); }
};

TEST(LayerContract, AnOutputOfTheWrongShapeIsAnError) {
  ForgetsToSizeY layer;
  layer.set_name("mine");
  Random rng(1);
  layer.build({3}, rng);
  Tensor<float> x({2, 3}), y;
  const std::string msg = error_of([&] { layer.forward(x, y); });
  EXPECT_TRUE(contains(msg, "ForgetsToSizeY 'mine': forward produced ()")) << msg;
  EXPECT_TRUE(contains(msg, "(3)")) << msg;
  // A forward that failed is no forward for backward.
  Tensor<float> dx;
  EXPECT_TRUE(contains(error_of([&] { layer.backward(x, y, y, dx); }), "backward without a forward"));
}

TEST(DropoutLayer, BackwardUsesTheMaskAndInferenceIsIdentity) {
  Random rng(22);
  Dropout<double> drop(0.4);
  drop.build({50}, rng);
  drop.set_training(true);
  const Tensor<double> x = away_from_zero({4, 50}, rng);
  Tensor<double> y, dx;
  drop.forward(x, y);
  const Tensor<double> dy = random_tensor<double>(y.shape(), rng);
  drop.backward(x, y, dy, dx);
  std::size_t zeros = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    if (y[i] == 0.0) {
      ++zeros;
      EXPECT_EQ(dx[i], 0.0) << i;
    } else {
      EXPECT_DOUBLE_EQ(y[i], x[i] / 0.6) << i;
      EXPECT_DOUBLE_EQ(dx[i], dy[i] / 0.6) << i;
    }
  }
  EXPECT_GT(zeros, 0u);
  EXPECT_LT(zeros, x.size());

  // A new mask every training batch, unless repeat_mask.
  Tensor<double> y2;
  drop.forward(x, y2);
  EXPECT_NE(std::memcmp(y.data(), y2.data(), y.size() * sizeof(double)), 0);
  drop.repeat_mask(true);
  Tensor<double> y3, y4;
  drop.forward(x, y3);
  drop.forward(x, y4);
  EXPECT_EQ(std::memcmp(y3.data(), y4.data(), y3.size() * sizeof(double)), 0);

  // Inference: exactly the identity, forward and backward.
  drop.set_training(false);
  Tensor<double> yi, dxi;
  drop.forward(x, yi);
  EXPECT_EQ(std::memcmp(x.data(), yi.data(), x.size() * sizeof(double)), 0);
  drop.backward(x, yi, dy, dxi);
  EXPECT_EQ(std::memcmp(dy.data(), dxi.data(), dy.size() * sizeof(double)), 0);
}

TEST(DropoutLayer, SameSeedSameMaskWhateverTheThreadCount) {
  ThreadCountGuard guard;
  const std::size_t count = 100000;  // above the kernel's threshold for going parallel
  auto run = [&](int threads, std::uint64_t seed) {
    set_num_threads(threads);
    Dropout<float> drop(0.5);
    Random rng(seed);
    drop.build({count}, rng);
    drop.set_training(true);
    const Tensor<float> x({2, count}, 1.0f);
    Tensor<float> y, y2;
    drop.forward(x, y);
    drop.forward(x, y2);  // the second batch too
    std::vector<float> both(y.begin(), y.end());
    both.insert(both.end(), y2.begin(), y2.end());
    return both;
  };
  const std::vector<float> one = run(1, 5), two = run(2, 5);
  ASSERT_EQ(one.size(), two.size());
  EXPECT_EQ(std::memcmp(one.data(), two.data(), one.size() * sizeof(float)), 0);
  const std::vector<float> other = run(2, 6);
  EXPECT_NE(std::memcmp(one.data(), other.data(), one.size() * sizeof(float)), 0) << "the seed must matter";
}

// =============================================================================================
// backward() ADDS into parameter gradients, and WRITES dx.

void expect_backward_adds(Layer<double>& layer, const Shape& in_batch, Random& rng) {
  const Tensor<double> x = random_tensor<double>(in_batch, rng);
  Tensor<double> y, dx;
  layer.forward(x, y);
  const Tensor<double> dy = random_tensor<double>(y.shape(), rng);
  for (Parameter<double>* p : layer.parameters()) p->zero_grad();
  layer.backward(x, y, dy, dx);
  std::vector<Tensor<double>> once;
  for (Parameter<double>* p : layer.parameters()) once.push_back(p->grad);
  const Tensor<double> dx_once = dx;
  for (double& v : dx) v = 1e30;  // dx is overwritten, never added to
  layer.backward(x, y, dy, dx);
  const auto params = layer.parameters();
  ASSERT_FALSE(params.empty());
  for (std::size_t k = 0; k < params.size(); ++k) {
    double largest = 0;
    for (std::size_t i = 0; i < once[k].size(); ++i) {
      largest = std::max(largest, std::abs(once[k][i]));
      ASSERT_NEAR(params[k]->grad[i], 2 * once[k][i], 1e-12 * (1 + std::abs(once[k][i])))
          << layer.spec() << ' ' << params[k]->name << '[' << i << ']';
    }
    EXPECT_GT(largest, 0.0) << params[k]->name << ": a zero gradient would prove nothing";
  }
  for (std::size_t i = 0; i < dx.size(); ++i) ASSERT_EQ(dx[i], dx_once[i]) << layer.spec() << " dx[" << i << ']';
  for (Parameter<double>* p : layer.parameters()) {
    p->zero_grad();
    for (double g : p->grad) ASSERT_EQ(g, 0.0);
  }
}

TEST(LayerBackward, AddsIntoParameterGradients) {
  ThreadCountGuard guard;
  Random rng(31);
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    Dense<double> dense(DenseOptions(4).activation(ActivationKind::Tanh));
    dense.build({6}, rng);
    expect_backward_adds(dense, {3, 6}, rng);
    Conv2D<double> conv(Conv2DOptions(3, 3).padding(Same).stride(2).activation(ActivationKind::Sigmoid));
    conv.build({2, 5, 6}, rng);
    expect_backward_adds(conv, {3, 2, 5, 6}, rng);
    Conv2D<double> conv_nobias(Conv2DOptions(2, 1).kernel_size(1, 2).use_bias(false));
    conv_nobias.build({3, 4, 4}, rng);
    expect_backward_adds(conv_nobias, {1, 3, 4, 4}, rng);
  }
}

// =============================================================================================
// A fused activation is the same as a separate activation layer.

/// fused (a layer with a fused activation) against plain followed by act, all three built:
/// with the same weights, the same outputs, input gradients and parameter gradients on a random
/// input of x_shape.
template <class L>
void expect_fused_matches_separate(L& fused, L& plain, ActivationLayer<double>& act, const Shape& x_shape,
                                   Random& rng) {
  for (std::size_t k = 0; k < 2; ++k) {
    for (double& v : fused.parameters()[k]->value) v = rng.uniform(-1, 1);
    plain.parameters()[k]->value = fused.parameters()[k]->value;
  }
  const Tensor<double> x = random_tensor<double>(x_shape, rng);
  Tensor<double> y_fused, z, y_sep;
  fused.forward(x, y_fused);
  plain.forward(x, z);
  act.forward(z, y_sep);
  EXPECT_EQ(compare("y", y_fused, std::vector<double>(y_sep.begin(), y_sep.end()), 1e-14), "");

  const Tensor<double> dy = random_tensor<double>(y_fused.shape(), rng);
  Tensor<double> dx_fused, dz, dx_sep;
  fused.backward(x, y_fused, dy, dx_fused);
  act.backward(z, y_sep, dy, dz);
  plain.backward(x, z, dz, dx_sep);
  EXPECT_EQ(compare("dx", dx_fused, std::vector<double>(dx_sep.begin(), dx_sep.end()), 1e-14), "");
  for (std::size_t k = 0; k < 2; ++k) {
    const Tensor<double>& g = plain.parameters()[k]->grad;
    EXPECT_EQ(compare(fused.parameters()[k]->name.c_str(), fused.parameters()[k]->grad,
                      std::vector<double>(g.begin(), g.end()), 1e-14),
              "");
  }
}

TEST(FusedActivation, DenseMatchesSeparateLayer) {
  Random rng(41);
  for (const Activation& f : all_activations()) {
    SCOPED_TRACE(f.name());
    Dense<double> fused(DenseOptions(5).activation(f));
    Dense<double> plain(5);
    ActivationLayer<double> act(f);
    fused.build({7}, rng);
    plain.build({7}, rng);
    act.build({5}, rng);
    expect_fused_matches_separate(fused, plain, act, {4, 7}, rng);
  }
}

TEST(FusedActivation, Conv2DMatchesSeparateLayer) {
  Random rng(42);
  for (const Activation& f : all_activations()) {
    SCOPED_TRACE(f.name());
    const Conv2DOptions base = Conv2DOptions(3, 3).padding(Same).stride(2);
    Conv2D<double> fused(Conv2DOptions(base).activation(f));
    Conv2D<double> plain(base);
    ActivationLayer<double> act(f);  // softmax over the channels of (N, C, H, W)
    fused.build({2, 5, 6}, rng);
    plain.build({2, 5, 6}, rng);
    act.build(plain.output_shape({2, 5, 6}), rng);
    expect_fused_matches_separate(fused, plain, act, {2, 2, 5, 6}, rng);
  }
}

TEST(ActivationLayers, SoftmaxNormalisesOverAxisOne) {
  Random rng(43);
  Softmax<double> softmax;
  softmax.build({3, 2, 4}, rng);
  const Tensor<double> x = random_tensor<double>({2, 3, 2, 4}, rng, -5, 5);
  Tensor<double> y;
  softmax.forward(x, y);
  for (std::size_t n = 0; n < 2; ++n)
    for (std::size_t h = 0; h < 2; ++h)
      for (std::size_t w = 0; w < 4; ++w) {
        double sum = 0;
        for (std::size_t c = 0; c < 3; ++c) {
          const double v = y.at({n, c, h, w});
          EXPECT_GT(v, 0.0);
          sum += v;
        }
        EXPECT_NEAR(sum, 1.0, 1e-14) << n << ' ' << h << ' ' << w;
      }
}

// =============================================================================================
// Activation checks and NaN: a LeakyReLU slope is refused wherever it comes in, and every ReLU
// (the layer, and the one fused into Dense's and Conv2D's products) passes a NaN on.

TEST(ActivationChecks, ALeakyReLUSlopeIsRefusedWhereverItComesIn) {
  const double nan = std::nan(""), inf = std::numeric_limits<double>::infinity();
  for (double alpha : {0.0, -0.1, nan, inf}) {
    SCOPED_TRACE(alpha);
    const Activation leaky(ActivationKind::LeakyReLU, alpha);
    const std::string slope = "the leaky_relu slope (alpha) must be positive and finite";
    EXPECT_TRUE(contains(error_of([&] { LeakyReLU<float> l(alpha); }), "LeakyReLU: " + slope));
    EXPECT_TRUE(contains(error_of([&] { ActivationLayer<float> l(leaky); }), "LeakyReLU: " + slope));
    EXPECT_TRUE(contains(error_of([&] { Dense<float> d(DenseOptions(4).activation(leaky)); }), "Dense: " + slope));
    EXPECT_TRUE(contains(error_of([&] { Dense<double> d(4, leaky); }), "Dense: " + slope));
    EXPECT_TRUE(contains(error_of([&] { Conv2D<float> c(Conv2DOptions(4, 3).activation(leaky)); }), "Conv2D: " + slope));
  }
  EXPECT_TRUE(contains(error_of([] { Dense<float> d(DenseOptions(4).activation({ActivationKind::LeakyReLU, -0.5})); }),
                       "got -0.5"));
  EXPECT_NO_THROW(Dense<float>(DenseOptions(4).activation({ActivationKind::LeakyReLU, 0.01})));
}

TEST(ReLU, PassesNaNOnAsPyTorchDoes) {
  Random rng(44);
  const float nan = std::nanf("");
  ReLU<float> relu;
  relu.build({5}, rng);
  Tensor<float> x(Shape{1, 5}, {nan, -1.0f, 0.0f, -0.0f, 2.0f}), y;
  relu.forward(x, y);
  EXPECT_TRUE(std::isnan(y[0]));
  EXPECT_EQ(y[1], 0.0f);
  EXPECT_EQ(y[2], 0.0f);
  EXPECT_FALSE(std::signbit(y[3]));  // -0 becomes +0, as max(x, 0) makes it
  EXPECT_EQ(y[4], 2.0f);
  Tensor<float> dy(Shape{1, 5}, 1.0f), dx;
  relu.backward(x, y, dy, dx);
  EXPECT_EQ(dx[0], 0.0f);  // as PyTorch: the gradient passes only where the output is > 0
  EXPECT_EQ(dx[4], 1.0f);
}

/// Every output of `y` is NaN where `nan_expected` says so, and finite and >= 0 elsewhere.
template <class T, class Pred>
void expect_relu_outputs(const Tensor<T>& y, Pred nan_expected) {
  std::size_t nans = 0;
  for (std::size_t i = 0; i < y.size(); ++i) {
    if (nan_expected(i)) {
      EXPECT_TRUE(std::isnan(y[i])) << "output " << i << " is " << y[i];
      ++nans;
    } else {
      EXPECT_TRUE(std::isfinite(y[i]) && y[i] >= T(0)) << "output " << i << " is " << y[i];
    }
  }
  EXPECT_GT(nans, 0u);
}

template <class T>
void expect_dense_relu_passes_nan() {
  Random rng(45);
  Dense<T> dense(DenseOptions(6).activation(ActivationKind::ReLU));
  dense.build({4}, rng);
  Tensor<T> x = Tensor<T>(Shape{3, 4}, T(0.5)), y;
  x[1 * 4 + 2] = std::numeric_limits<T>::quiet_NaN();  // sample 1: every unit sees it
  dense.forward(x, y);
  expect_relu_outputs(y, [](std::size_t i) { return i / 6 == 1; });
}

TEST(ReLU, FusedIntoDensePassesNaNOn) {
  expect_dense_relu_passes_nan<float>();
  expect_dense_relu_passes_nan<double>();
}

/// A 'same' 3x3 convolution with a fused ReLU on (2, C, 6, 6), one NaN at sample 1, pixel (2, 3) of
/// channel 0: the outputs whose window covers it, rows 1-3 and columns 2-4 of sample 1, are NaN.
template <class T>
void expect_conv_relu_passes_nan(std::size_t channels) {
  Random rng(46);
  Conv2D<T> conv(Conv2DOptions(5, 3).padding(Same).activation(ActivationKind::ReLU));
  conv.build({channels, 6, 6}, rng);
  Tensor<T> x = Tensor<T>(Shape{2, channels, 6, 6}, T(0.25)), y;
  x.at({1, 0, 2, 3}) = std::numeric_limits<T>::quiet_NaN();
  conv.forward(x, y);
  expect_relu_outputs(y, [](std::size_t i) {
    const std::size_t n = i / (5 * 36), r = i % 36 / 6, c = i % 6;
    return n == 1 && r >= 1 && r <= 3 && c >= 2 && c <= 4;
  });
}

TEST(ReLU, FusedIntoConv2DPassesNaNOn) {
  expect_conv_relu_passes_nan<float>(1);   // im2col + GEMM (K = 9)
  expect_conv_relu_passes_nan<float>(4);   // the implicit GEMM where compiled (K = 36 > 32)
  expect_conv_relu_passes_nan<double>(2);  // im2col + Eigen
}

}  // namespace
