// Freezing layers for transfer learning: the set_trainable API and its errors, and what a frozen
// layer saves: no weight gradient for a frozen parameter, no backward at all below the lowest
// trained layer, with the trained parameters' gradients bitwise those of the full backward.
// The basic transfer (pop, freeze, new head, fit) is in test_model.cpp.

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "faltung/faltung.hpp"
#include "model_fixtures.hpp"
#include "test_support.hpp"

namespace {

using namespace faltung;
using namespace faltung::test;

// A small CNN with everything the backward pass must step over: a fused Conv2D+MaxPool2D pair
// (run as one ConvPool), Dropout, Flatten and Dense layers with activations.
//   layer:  0 conv2d, 1 max_pooling2d, 2 dropout, 3 conv2d_1, 4 max_pooling2d_1, 5 flatten,
//           6 dense, 7 dropout_1, 8 dense_1
const char* const kCnn = "conv:4:3:same:relu,pool:2,drop:0.25,conv:6:3:same:relu,pool:2,flatten,dense:8:relu,"
                         "drop:0.5,dense:3";
const Shape kCnnInput{1, 8, 8};

template <class T>
Tensor<T> labels_for(std::size_t n, std::size_t classes) {
  Tensor<T> y(Shape{n});
  for (std::size_t i = 0; i < n; ++i) y[i] = T(i % classes);
  return y;
}

/// A value no gradient computation produces here: a frozen parameter's grad must keep it.
template <class T>
constexpr T kUntouched = T(12345.5);

template <class T>
void mark_frozen_grads(Sequential<T>& net) {
  for (Parameter<T>* p : net.parameters())
    if (!p->trainable) p->grad.fill(kUntouched<T>);
}

template <class T>
bool holds_only(const Tensor<T>& t, T v) {
  for (std::size_t i = 0; i < t.size(); ++i)
    if (!(t[i] == v)) return false;
  return true;
}

// ---------------------------------------------------------------------------------------------
// The API

TEST(SetTrainable, ByIndexRangeByNameRangeAndOneLayer) {
  Sequential<float> net = make_sequential<float>(kCnn, kCnnInput);
  auto trainable = [&] {  // one character per layer, 1 for trainable
    std::string t;
    for (std::size_t i = 0; i < net.size(); ++i) t += net.layer(i).trainable() ? '1' : '0';
    return t;
  };
  EXPECT_EQ(trainable(), "100100101");  // layers without parameters are never trainable
  net.set_trainable(false, 0, 6);  // the slice layers[0:6]: both convolutions
  EXPECT_EQ(trainable(), "000000101");
  net.set_trainable(true);
  net.set_trainable(false, "conv2d_1", "dense");  // both named layers included
  EXPECT_EQ(trainable(), "100000001");
  net.set_trainable(false, "dense_1", "dense_1");
  EXPECT_EQ(trainable(), "100000000");
  net.set_trainable(true, 3, 3);  // an empty range changes nothing
  EXPECT_EQ(trainable(), "100000000");
  net.layer("conv2d").set_trainable(false);
  net.layer(8).set_trainable(true);
  EXPECT_EQ(trainable(), "000000001");
  EXPECT_EQ(net.trainable_parameter_count(), 8u * 3u + 3u);
  net.set_trainable(true);
  EXPECT_EQ(net.trainable_parameter_count(), net.parameter_count());
  EXPECT_EQ(net.index_of("flatten"), 5u);
}

TEST(SetTrainable, BadRangesAndNamesAreClearErrors) {
  Sequential<float> net = make_sequential<float>(kCnn, kCnnInput);
  std::string e = error_of([&] { net.set_trainable(false, 4, 2); });
  EXPECT_TRUE(contains(e, "Sequential::set_trainable: layers [4, 2) is not a range of the model's 9 layers")) << e;
  e = error_of([&] { net.set_trainable(false, 0, 10); });
  EXPECT_TRUE(contains(e, "[0, 10)") && contains(e, "first <= last <= 9")) << e;
  e = error_of([&] { net.set_trainable(false, "dense", "conv2d"); });
  EXPECT_TRUE(contains(e, "layer 'dense' (index 6) comes after layer 'conv2d' (index 0)")) << e;
  e = error_of([&] { net.set_trainable(false, "conv", "dense"); });
  EXPECT_TRUE(contains(e, "Sequential::set_trainable: no layer named 'conv'")) << e;
  EXPECT_TRUE(contains(e, "conv2d, max_pooling2d, dropout, conv2d_1")) << e;
  e = error_of([&] { net.layer("nope"); });
  EXPECT_TRUE(contains(e, "Sequential::layer: no layer named 'nope'")) << e;
  e = error_of([] { Sequential<float>().index_of("x"); });
  EXPECT_TRUE(contains(e, "(the layers are: none)")) << e;
  // Nothing was changed by the calls that failed.
  EXPECT_EQ(net.trainable_parameter_count(), net.parameter_count());
}

// ---------------------------------------------------------------------------------------------
// One backward pass: a frozen copy against the full backward

/// Runs one training-mode forward and backward of a model of `spec` and of a copy to which
/// `freeze` is applied, on the same batch (the copy draws the same dropout masks), and checks
/// that the copy adds bitwise the full backward's gradient into each trainable parameter and
/// leaves each frozen parameter's grad untouched.
template <class T>
void expect_frozen_backward_matches_full(const std::string& spec, const Shape& in,
                                         const std::function<void(Sequential<T>&)>& freeze, const std::string& what) {
  Sequential<T> full = make_sequential<T>(spec, in, 5);
  Sequential<T> frozen = full;
  freeze(frozen);
  mark_frozen_grads(frozen);
  const Tensor<T> x = random_tensor<T>(in.with_batch(6), 8);
  full.set_training(true);
  frozen.set_training(true);
  const Tensor<T> out = full.forward(x);
  ASSERT_TRUE(bitwise_equal(out, frozen.forward(x))) << what;
  const Tensor<T> dy = random_tensor<T>(out.shape(), 9);
  full.zero_grad();
  frozen.zero_grad();
  full.backward(dy);
  frozen.backward(dy);
  const auto pf = full.parameters(), pz = frozen.parameters();
  std::size_t trained = 0;
  for (std::size_t i = 0; i < pf.size(); ++i) {
    if (pz[i]->trainable) {
      ++trained;
      EXPECT_TRUE(bitwise_equal(pz[i]->grad, pf[i]->grad)) << what << ": gradient of parameter " << i;
    } else {
      EXPECT_TRUE(holds_only(pz[i]->grad, kUntouched<T>)) << what << ": frozen parameter " << i << "'s grad written";
    }
  }
  EXPECT_GT(trained, 0u) << what;
}

template <class T>
void check_frozen_backward_configurations() {
  using Net = Sequential<T>;
  expect_frozen_backward_matches_full<T>(kCnn, kCnnInput, [](Net& n) { n.set_trainable(false, "conv2d", "flatten"); },
                                         "the convolutional base frozen");
  expect_frozen_backward_matches_full<T>(kCnn, kCnnInput, [](Net& n) { n.set_trainable(false, 0, 7); },
                                         "all but the last Dense frozen");
  expect_frozen_backward_matches_full<T>(kCnn, kCnnInput, [](Net& n) { n.layer(0).set_trainable(false); },
                                         "the first convolution frozen: the lowest trained is a ConvPool");
  expect_frozen_backward_matches_full<T>(
      kCnn, kCnnInput, [](Net& n) { n.set_trainable(false, "conv2d_1", "dense"); },
      "frozen layers between trained ones pass the gradient on");
  expect_frozen_backward_matches_full<T>(
      kCnn, kCnnInput, [](Net& n) { n.layer("conv2d_1").parameters()[1]->trainable = false; },
      "a ConvPool's bias frozen, its kernel trained");
  expect_frozen_backward_matches_full<T>(
      kCnn, kCnnInput, [](Net& n) { n.layer("dense").parameters()[0]->trainable = false; },
      "a Dense kernel frozen, its bias trained");
  // Not fused: a Conv2D without a pool after it, with a frozen bias.
  expect_frozen_backward_matches_full<T>(
      "conv:3:3:same:tanh,flatten,dense:2", {2, 5, 5},
      [](Net& n) { n.layer(0).parameters()[1]->trainable = false; }, "a Conv2D's bias frozen");
}

TEST(FrozenBackward, TrainedGradientsAreThoseOfTheFullBackwardAndFrozenOnesUntouched) {
  check_frozen_backward_configurations<float>();
  check_frozen_backward_configurations<double>();
}

TEST(FrozenBackward, FrozenKernelUnderATrainedBiasStillGivesTheBiasItsGradient) {
  // db is computed in dW's pass, so the frozen kernel's grad is written here (see Conv2D); the
  // bias's gradient is the full backward's all the same.
  Sequential<double> full = make_sequential<double>("conv:3:3:same:relu,pool:2,flatten,dense:2", {1, 6, 6}, 5);
  Sequential<double> frozen = full;
  frozen.layer(0).parameters()[0]->trainable = false;
  const Tensor<double> x = random_tensor<double>(Shape{4, 1, 6, 6}, 3);
  const Tensor<double> dy = random_tensor<double>(full.forward(x).shape(), 4);
  frozen.forward(x);
  full.zero_grad();
  frozen.zero_grad();
  full.backward(dy);
  frozen.backward(dy);
  EXPECT_TRUE(bitwise_equal(frozen.layer(0).parameters()[1]->grad, full.layer(0).parameters()[1]->grad));
}

// ---------------------------------------------------------------------------------------------
// Which layers run a backward: a user's layer that counts

struct Calls {
  int forward = 0, backward = 0;
  bool input_grad_needed = false;  // at the latest backward
};

/// The identity, counting its calls; a user's layer without parameters.
class CountingIdentity : public Layer<float> {
 public:
  explicit CountingIdentity(std::shared_ptr<Calls> calls) : calls_(std::move(calls)) {}
  std::string type() const override { return "CountingIdentity"; }
  std::string default_name() const override { return "counting_identity"; }
  Shape output_shape(const Shape& in) const override { return in; }
  std::string spec() const override { return "counting_identity"; }
  std::unique_ptr<Layer<float>> clone() const override { return std::make_unique<CountingIdentity>(*this); }

 protected:
  void forward_impl(const Tensor<float>& x, Tensor<float>& y) override {
    ++calls_->forward;
    y = x;
  }
  void backward_impl(const Tensor<float>&, const Tensor<float>&, const Tensor<float>& dy, Tensor<float>& dx) override {
    ++calls_->backward;
    calls_->input_grad_needed = input_grad_needed();
    if (input_grad_needed()) dx = dy;
  }

 private:
  std::shared_ptr<Calls> calls_;
};

/// y = a x with one trainable scalar a, counting its calls; a user's layer with a parameter.
class CountingScale : public Layer<float> {
 public:
  explicit CountingScale(std::shared_ptr<Calls> calls) : calls_(std::move(calls)), a_("a", Shape{1}) {
    a_.value[0] = 1.5f;
  }
  std::string type() const override { return "CountingScale"; }
  std::string default_name() const override { return "counting_scale"; }
  Shape output_shape(const Shape& in) const override { return in; }
  std::string spec() const override { return "counting_scale"; }
  std::unique_ptr<Layer<float>> clone() const override { return std::make_unique<CountingScale>(*this); }
  std::vector<Parameter<float>*> parameters() override { return {&a_}; }

 protected:
  void forward_impl(const Tensor<float>& x, Tensor<float>& y) override {
    ++calls_->forward;
    y = x;
    y.as_vector() *= a_.value[0];
  }
  void backward_impl(const Tensor<float>& x, const Tensor<float>&, const Tensor<float>& dy,
                     Tensor<float>& dx) override {
    ++calls_->backward;
    calls_->input_grad_needed = input_grad_needed();
    a_.grad[0] += x.as_vector().dot(dy.as_vector());
    if (input_grad_needed()) dx.as_vector() = a_.value[0] * dy.as_vector();
  }

 private:
  std::shared_ptr<Calls> calls_;
  Parameter<float> a_;
};

TEST(FrozenBackward, NoLayerBelowTheLowestTrainedOneRunsABackward) {
  std::vector<std::shared_ptr<Calls>> c;
  for (int i = 0; i < 5; ++i) c.push_back(std::make_shared<Calls>());
  auto scale = std::make_shared<Calls>();
  // index: 0 c0, 1 conv2d, 2 max_pooling2d, 3 c1, 4 flatten, 5 c2, 6 counting_scale, 7 c3,
  //        8 dense, 9 c4, 10 dense_1
  Sequential<float> net(3);
  net.add(CountingIdentity(c[0]))
      .add<Conv2D>(Conv2DOptions(4, 3).padding(Same).activation(ActivationKind::ReLU))
      .add<MaxPool2D>(2)
      .add(CountingIdentity(c[1]))
      .add<Flatten>()
      .add(CountingIdentity(c[2]))
      .add(CountingScale(scale))
      .add(CountingIdentity(c[3]))
      .add<Dense>(DenseOptions(8).activation(ActivationKind::ReLU))
      .add(CountingIdentity(c[4]))
      .add<Dense>(3);
  net.build({1, 6, 6});
  ASSERT_EQ(net.execution().size(), 10u) << "the convolution and the pool run as one";
  net.compile(SparseCrossEntropy{}, Adam<float>(AdamOptions(0.01)));
  const Tensor<float> x = random_tensor<float>(Shape{5, 1, 6, 6}, 1);
  const Tensor<float> y = labels_for<float>(5, 3);

  // Which counters ran a backward in one step, and whether the scale was asked for dx.
  auto step = [&](const std::string& what, std::vector<int> expected_backward, int scale_backward,
                  bool scale_input_grad) {
    for (auto& k : c) *k = Calls();
    *scale = Calls();
    net.train_on_batch(x, y);
    for (std::size_t i = 0; i < c.size(); ++i) {
      EXPECT_EQ(c[i]->forward, 1) << what << ": counter " << i;
      EXPECT_EQ(c[i]->backward, expected_backward[i]) << what << ": backward calls of counter " << i;
    }
    EXPECT_EQ(scale->backward, scale_backward) << what << ": backward calls of the scale";
    if (scale_backward) {
      EXPECT_EQ(scale->input_grad_needed, scale_input_grad) << what << ": the scale's dx";
    }
  };

  // Even with everything trained, the parameterless layer below the convolution needs no
  // backward, and the convolution (run as a ConvPool) computes no dx.
  step("everything trained", {0, 1, 1, 1, 1}, 1, true);
  EXPECT_FALSE(net.execution()[1]->input_grad_needed());

  net.set_trainable(false, 0, 6);  // the convolution: the scale is the lowest trained layer
  const std::vector<Tensor<float>> before = weights_of(net);
  step("the convolution frozen", {0, 0, 0, 1, 1}, 1, false);
  EXPECT_TRUE(bitwise_equal(weights_of(net)[0], before[0]));
  EXPECT_TRUE(bitwise_equal(weights_of(net)[1], before[1]));

  net.set_trainable(false, "counting_scale", "dense");  // only the last Dense is trained
  step("all but the head frozen", {0, 0, 0, 0, 0}, 0, false);

  net.layer("counting_scale").set_trainable(true);  // a trained layer below a frozen Dense
  step("a frozen Dense between trained layers", {0, 0, 0, 1, 1}, 1, false);

  net.set_trainable(false);
  const std::vector<Tensor<float>> all_frozen = weights_of(net);
  const std::int64_t steps = net.optimizer().iterations();
  step("everything frozen", {0, 0, 0, 0, 0}, 0, false);
  EXPECT_TRUE(bitwise_equal(weights_of(net), all_frozen));
  EXPECT_EQ(net.optimizer().iterations(), steps + 1) << "the step counter still advances once per step";

  net.set_trainable(true);  // unfreezing restores the full backward
  step("everything trained again", {0, 1, 1, 1, 1}, 1, true);
}

// ---------------------------------------------------------------------------------------------
// Training with fit

TEST(FrozenTraining, FrozenParametersStayBitwiseAndTheirGradsUntouchedOverFit) {
  Sequential<float> net = make_sequential<float>(kCnn, kCnnInput, 11);
  net.set_trainable(false, "conv2d", "flatten");
  net.compile(SparseCrossEntropy{}, Adam<float>(AdamOptions(0.01)));
  mark_frozen_grads(net);
  const Tensor<float> x = random_tensor<float>(kCnnInput.with_batch(40), 2);
  const Tensor<float> y = labels_for<float>(40, 3);
  const std::vector<Tensor<float>> before = weights_of(net);
  net.fit(x, y, FitOptions().epochs(3).batch_size(8).validation_split(0.2).verbose(0));
  const auto params = net.parameters();
  const std::vector<Tensor<float>> after = weights_of(net);
  ASSERT_EQ(params.size(), 8u);
  for (std::size_t i = 0; i < 4; ++i) {
    EXPECT_FALSE(params[i]->trainable);
    EXPECT_TRUE(bitwise_equal(after[i], before[i])) << "frozen parameter " << i << " changed";
    EXPECT_TRUE(holds_only(params[i]->grad, kUntouched<float>)) << "frozen parameter " << i << "'s grad was written";
  }
  for (std::size_t i = 4; i < 8; ++i) EXPECT_FALSE(bitwise_equal(after[i], before[i])) << "parameter " << i;
  EXPECT_EQ(net.optimizer().iterations(), 3 * 4);
}

}  // namespace
