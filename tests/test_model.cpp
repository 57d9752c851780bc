// Sequential as a model: the Keras-style summary, shape inference and its errors, predict /
// predict_classes / evaluate against a manual computation, value semantics (deep copies), and
// transfer learning (pop, freeze, new head). Training itself is in test_training.cpp, the
// progress display in test_progress.cpp.

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <memory>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "faltung/faltung.hpp"

using namespace faltung;

#include "model_fixtures.hpp"
#include "test_support.hpp"

namespace {

using faltung::test::blob_classifier;
using faltung::test::Blobs;
using faltung::test::bitwise_equal;
using faltung::test::weights_of;
using faltung::test::contains;
using faltung::test::error_of;
using faltung::test::random_tensor;

// ---------------------------------------------------------------------------------------------
// Summary

/// The lecture notebook's network, built for Fashion-MNIST.
Sequential<float> notebook_network() {
  Sequential<float> net;
  net.add<Conv2D>(Conv2DOptions(128, 3).padding(Same).activation(ActivationKind::ReLU))
      .add<MaxPool2D>(2)
      .add<Dropout>(0.5)
      .add<Conv2D>(Conv2DOptions(64, 3).padding(Same).activation(ActivationKind::ReLU))
      .add<MaxPool2D>(2)
      .add<Flatten>()
      .add<Dense>(DenseOptions(512).activation(ActivationKind::ReLU))
      .add<Dropout>(0.5)
      .add<Dense>(DenseOptions(256).activation(ActivationKind::ReLU))
      .add<Dropout>(0.5)
      .add<Dense>(10);
  net.build({1, 28, 28});
  return net;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream is(text);
  for (std::string line; std::getline(is, line);) lines.push_back(line);
  return lines;
}

/// The line of the table that starts with " name (" ; empty when absent.
std::string row_of(const std::vector<std::string>& lines, const std::string& name) {
  for (const std::string& l : lines)
    if (l.rfind(" " + name + " (", 0) == 0) return l;
  return "";
}

TEST(Summary, NotebookNetworkHasKerasCounts) {
  Sequential<float> net = notebook_network();
  EXPECT_EQ(net.parameter_count(), 1815114u);
  EXPECT_EQ(net.trainable_parameter_count(), 1815114u);
  std::ostringstream os;
  net.summary(os);
  const std::string text = os.str();
  const std::vector<std::string> lines = lines_of(text);

  struct Row {
    const char* name;
    const char* type;
    const char* shape;
    const char* params;
  };
  const Row rows[] = {
      {"conv2d", "Conv2D", "(None, 128, 28, 28)", "1,280"},
      {"max_pooling2d", "MaxPool2D", "(None, 128, 14, 14)", "0"},
      {"dropout", "Dropout", "(None, 128, 14, 14)", "0"},
      {"conv2d_1", "Conv2D", "(None, 64, 14, 14)", "73,792"},
      {"max_pooling2d_1", "MaxPool2D", "(None, 64, 7, 7)", "0"},
      {"flatten", "Flatten", "(None, 3136)", "0"},
      {"dense", "Dense", "(None, 512)", "1,606,144"},
      {"dropout_1", "Dropout", "(None, 512)", "0"},
      {"dense_1", "Dense", "(None, 256)", "131,328"},
      {"dropout_2", "Dropout", "(None, 256)", "0"},
      {"dense_2", "Dense", "(None, 10)", "2,570"},
  };
  std::size_t previous_line = 0;
  for (const Row& r : rows) {
    const std::string line = row_of(lines, r.name);
    ASSERT_FALSE(line.empty()) << "no row for " << r.name << " in\n" << text;
    const std::regex pattern("^ " + std::string(r.name) + " \\(" + r.type + "\\) +" +
                             std::regex_replace(std::string(r.shape), std::regex("[()]"), "\\$&") + " +" +
                             r.params + "$");
    EXPECT_TRUE(std::regex_match(line, pattern)) << "row: '" << line << "'";
    // Rows are in layer order.
    const std::size_t at = std::size_t(std::find(lines.begin(), lines.end(), line) - lines.begin());
    EXPECT_GT(at, previous_line) << r.name;
    previous_line = at;
  }
  EXPECT_NE(text.find("Total params: 1,815,114\n"), std::string::npos) << text;
  EXPECT_NE(text.find("Trainable params: 1,815,114\n"), std::string::npos) << text;
  EXPECT_NE(text.find("Non-trainable params: 0\n"), std::string::npos) << text;
  EXPECT_NE(text.find("Layer (type)"), std::string::npos);
  EXPECT_NE(text.find("Output Shape"), std::string::npos);
  EXPECT_NE(text.find("Param #"), std::string::npos);
}

TEST(Summary, FrozenLayersCountAsNonTrainable) {
  Sequential<float> net = notebook_network();
  net.set_trainable(false, 0, 4);  // both convolutions: 1,280 + 73,792
  EXPECT_EQ(net.trainable_parameter_count(), 1815114u - 75072u);
  std::ostringstream os;
  net.summary(os);
  EXPECT_NE(os.str().find("Total params: 1,815,114\n"), std::string::npos) << os.str();
  EXPECT_NE(os.str().find("Trainable params: 1,740,042\n"), std::string::npos) << os.str();
  EXPECT_NE(os.str().find("Non-trainable params: 75,072\n"), std::string::npos) << os.str();
}

TEST(Summary, NeedsABuiltModel) {
  Sequential<float> net;
  net.add<Dense>(3);
  std::ostringstream os;
  EXPECT_THROW(net.summary(os), Error);
}

TEST(Summary, ExplicitNamesAndNumberingPerKind) {
  Sequential<float> net;
  Dense<float> named(4);
  named.set_name("features");
  net.add<Flatten>().add(named).add<Dense>(3).add<ReLU>().add<Dense>(2).add<ReLU>();
  net.build({2, 3});
  EXPECT_EQ(net.layer(0).name(), "flatten");
  EXPECT_EQ(net.layer(1).name(), "features");
  EXPECT_EQ(net.layer(2).name(), "dense");
  EXPECT_EQ(net.layer(3).name(), "relu");
  EXPECT_EQ(net.layer(4).name(), "dense_1");
  EXPECT_EQ(net.layer(5).name(), "relu_1");
  EXPECT_EQ(&net.layer("dense_1"), &net.layer(4));
  EXPECT_THROW(net.layer("dense_7"), Error);
  EXPECT_EQ(net.output_shape(), (Shape{2}));
  EXPECT_EQ(net.parameter_count(), std::size_t(6 * 4 + 4 + 4 * 3 + 3 + 3 * 2 + 2));
}

// ---------------------------------------------------------------------------------------------
// Shape inference errors

TEST(ShapeErrors, DenseAfterConvolutionWithoutFlatten) {
  Sequential<float> net;
  net.add<Conv2D>(Conv2DOptions(8, 3)).add<Dense>(10);
  const std::string msg = error_of([&] { net.build({1, 28, 28}); });
  // Both layers, the shape the convolution gives and what the Dense layer wants.
  EXPECT_NE(msg.find("'dense' (Dense)"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'conv2d' (Conv2D)"), std::string::npos) << msg;
  EXPECT_NE(msg.find("(8, 26, 26)"), std::string::npos) << msg;
  EXPECT_NE(msg.find("flat"), std::string::npos) << msg;
  EXPECT_NE(msg.find("Flatten"), std::string::npos) << msg;
  EXPECT_FALSE(net.built());
}

TEST(ShapeErrors, PoolLargerThanTheMapWithValidPadding) {
  Sequential<float> net;
  net.add<Conv2D>(Conv2DOptions(4, 3)).add<MaxPool2D>(5).add<Flatten>().add<Dense>(2);
  const std::string msg = error_of([&] { net.build({1, 6, 6}); });  // the map is 4 x 4
  EXPECT_NE(msg.find("'max_pooling2d' (MaxPool2D)"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'conv2d' (Conv2D)"), std::string::npos) << msg;
  EXPECT_NE(msg.find("(4, 4, 4)"), std::string::npos) << msg;
  EXPECT_NE(msg.find("window 5"), std::string::npos) << msg;
  EXPECT_NE(msg.find("valid"), std::string::npos) << msg;

  // The same pool with 'same' padding fits.
  Sequential<float> ok;
  ok.add<Conv2D>(Conv2DOptions(4, 3)).add<MaxPool2D>(MaxPool2DOptions(5).padding(Same)).add<Flatten>().add<Dense>(2);
  ok.build({1, 6, 6});
  EXPECT_EQ(ok.layer(1).output_shape(), (Shape{4, 1, 1}));
}

TEST(ShapeErrors, ConvolutionOnAFlatInputNamesTheInput) {
  Sequential<float> net;
  net.add<Conv2D>(Conv2DOptions(4, 3));
  const std::string msg = error_of([&] { net.build({784}); });
  EXPECT_NE(msg.find("'conv2d' (Conv2D)"), std::string::npos) << msg;
  EXPECT_NE(msg.find("the input"), std::string::npos) << msg;
  EXPECT_NE(msg.find("(784)"), std::string::npos) << msg;
}

TEST(ShapeErrors, RebuildingATrainedBaseForAnotherInputShape) {
  Sequential<float> net = blob_classifier();  // built for {4}
  net.pop();
  net.add<Dense>(2);
  const std::string msg = error_of([&] { net.build({5}); });
  EXPECT_NE(msg.find("'dense' (Dense)"), std::string::npos) << msg;
  EXPECT_NE(msg.find("(4)"), std::string::npos) << msg;
  EXPECT_NE(msg.find("(5)"), std::string::npos) << msg;
}

TEST(ShapeErrors, ForwardWithAWrongBatchShape) {
  Sequential<float> net = blob_classifier();
  Tensor<float> x(Shape{2, 5}, 0.0f);
  const std::string msg = error_of([&] { net.forward(x); });
  EXPECT_NE(msg.find("(4)"), std::string::npos) << msg;
  EXPECT_NE(msg.find("(2, 5)"), std::string::npos) << msg;
}

TEST(ShapeErrors, EmptyModelAndUnbuiltModel) {
  Sequential<float> empty;
  EXPECT_THROW(empty.build({3}), Error);
  Sequential<float> unbuilt;
  unbuilt.add<Dense>(2);
  Tensor<float> x(Shape{1, 3}, 0.0f);
  EXPECT_THROW(unbuilt.forward(x), Error);
  EXPECT_THROW(unbuilt.pop().pop(), Error);
}

// ---------------------------------------------------------------------------------------------
// predict, predict_classes, evaluate

TEST(Predict, SoftmaxProbabilitiesForSparseCrossEntropy) {
  Sequential<float> net = blob_classifier();
  net.compile(SparseCrossEntropy{}, Adam<float>(AdamOptions(1e-2)));
  Blobs data(30);
  const Tensor<float> p = net.predict(data.x, 7);  // several batches, the last one partial
  ASSERT_EQ(p.shape(), (Shape{30, 3}));
  net.set_training(false);
  const Tensor<float> logits = net.forward(data.x);
  for (std::size_t i = 0; i < 30; ++i) {
    double sum = 0;
    for (std::size_t j = 0; j < 3; ++j) {
      EXPECT_GT(p[i * 3 + j], 0.0f);
      EXPECT_LT(p[i * 3 + j], 1.0f);
      sum += p[i * 3 + j];
    }
    EXPECT_NEAR(sum, 1.0, 1e-5) << "row " << i;
    // softmax of the logits
    const float* z = logits.data() + i * 3;
    const double m = std::max({z[0], z[1], z[2]});
    const double e0 = std::exp(z[0] - m), e1 = std::exp(z[1] - m), e2 = std::exp(z[2] - m);
    EXPECT_NEAR(p[i * 3 + 1], e1 / (e0 + e1 + e2), 1e-6);
  }
  const std::vector<int> classes = net.predict_classes(data.x);
  ASSERT_EQ(classes.size(), 30u);
  for (std::size_t i = 0; i < 30; ++i) {
    const float* row = p.data() + i * 3;
    EXPECT_EQ(classes[i], int(std::max_element(row, row + 3) - row)) << "row " << i;
  }
}

TEST(Predict, SigmoidForBinaryCrossEntropyAndLinearForMeanSquaredError) {
  Sequential<float> net(3);
  net.add<Dense>(DenseOptions(6).activation(ActivationKind::Tanh)).add<Dense>(1);
  net.build({4});
  Blobs data(10);
  net.set_training(false);
  const Tensor<float> logits = net.forward(data.x);

  net.compile(BinaryCrossEntropy{}, SGD<float>(SGDOptions(0.1)));
  const Tensor<float> p = net.predict(data.x);
  ASSERT_EQ(p.shape(), (Shape{10, 1}));
  for (std::size_t i = 0; i < 10; ++i) EXPECT_NEAR(p[i], 1.0 / (1.0 + std::exp(-double(logits[i]))), 1e-6);

  net.compile(MeanSquaredError{}, SGD<float>(SGDOptions(0.1)));
  const Tensor<float> q = net.predict(data.x);
  for (std::size_t i = 0; i < 10; ++i) EXPECT_EQ(q[i], logits[i]);
  Tensor<float> target(Shape{10, 1}, 0.5f);
  const Evaluation e = net.evaluate(data.x, target);
  EXPECT_TRUE(std::isnan(e.accuracy));
  double mse = 0;
  for (std::size_t i = 0; i < 10; ++i) mse += (double(logits[i]) - 0.5) * (double(logits[i]) - 0.5);
  EXPECT_NEAR(e.loss, mse / 10, 1e-6);
}

TEST(CompiledLoss, KnowsItsNameAndHowOutputsBecomeProbabilities) {
  Sequential<float> net = blob_classifier();
  EXPECT_TRUE(contains(error_of([&] { net.loss(); }), "compile the model first"));
  const struct {
    std::function<void()> compile;
    const char* name;
    ActivationKind output;
    bool accuracy;
  } cases[] = {
      {[&] { net.compile(SparseCrossEntropy{}, SGD<float>()); }, "sparse_categorical_crossentropy",
       ActivationKind::Softmax, true},
      {[&] { net.compile(CategoricalCrossEntropy(true), SGD<float>()); }, "categorical_crossentropy",
       ActivationKind::Softmax, true},
      {[&] { net.compile(CategoricalCrossEntropy{}, SGD<float>()); }, "categorical_crossentropy",
       ActivationKind::Linear, true},
      {[&] { net.compile(BinaryCrossEntropy{}, SGD<float>()); }, "binary_crossentropy", ActivationKind::Sigmoid, true},
      {[&] { net.compile(MeanSquaredError{}, SGD<float>()); }, "mean_squared_error", ActivationKind::Linear, false},
  };
  for (const auto& c : cases) {
    c.compile();
    EXPECT_EQ(net.loss().name(), c.name);
    EXPECT_EQ(net.loss().output_activation().kind, c.output) << c.name;
    EXPECT_EQ(net.loss().has_accuracy(), c.accuracy) << c.name;
    const Sequential<float> copy = net;  // a copy has its own loss of the same kind
    EXPECT_EQ(copy.loss().name(), c.name);
    EXPECT_NE(&copy.loss(), &net.loss());
  }
}

// A user's own loss: mean absolute error, written against Loss<T> directly.
template <class T>
class MeanAbsoluteError : public Loss<T> {
 public:
  T value(const Tensor<T>& p, const Tensor<T>& t) const override {
    double s = 0;
    for (std::size_t k = 0; k < p.size(); ++k) s += std::abs(double(p[k]) - double(t[k]));
    return T(s / double(p.size()));
  }
  T value_and_gradient(const Tensor<T>& p, const Tensor<T>& t, Tensor<T>& g) const override {
    g.resize(p.shape());
    for (std::size_t k = 0; k < p.size(); ++k) g[k] = T(p[k] > t[k] ? 1 : p[k] < t[k] ? -1 : 0) / T(p.size());
    return value(p, t);
  }
  bool has_accuracy() const override { return false; }
  std::size_t correct(const Tensor<T>&, const Tensor<T>&) const override { return 0; }
  std::size_t predictions(const Tensor<T>& p) const override { return p.dim(0); }
  Activation output_activation() const override { return ActivationKind::Linear; }
  std::string name() const override { return "mean_absolute_error"; }
  std::unique_ptr<Loss<T>> clone() const override { return std::make_unique<MeanAbsoluteError>(*this); }
};

TEST(CompiledLoss, AUsersOwnLossTrains) {
  Sequential<float> net(4);
  net.add<Dense>(DenseOptions(8).activation(ActivationKind::Tanh)).add<Dense>(1);
  net.build({4});
  net.compile(MeanAbsoluteError<float>(), Adam<float>(AdamOptions(1e-2)));
  EXPECT_EQ(net.loss().name(), "mean_absolute_error");
  Blobs data(60);
  Tensor<float> target(Shape{60, 1});
  for (std::size_t i = 0; i < 60; ++i) target[i] = data.x[i * 4] - data.x[i * 4 + 1];
  const History h = net.fit(data.x, target, FitOptions().epochs(30).batch_size(10).verbose(0));
  EXPECT_TRUE(h.accuracy.empty());
  EXPECT_LT(h.loss.back(), 0.6 * h.loss.front());
  EXPECT_NEAR(net.evaluate(data.x, target).loss, MeanAbsoluteError<float>().value(net.predict(data.x), target), 1e-6);
}

TEST(Predict, BatchSizeZeroIsRefusedInsteadOfLoopingForever) {
  Sequential<float> net = blob_classifier();
  Blobs data(5);
  const std::string predict = "Sequential::predict: batch_size must be positive, got 0";
  EXPECT_TRUE(contains(error_of([&] { net.predict(data.x, 0); }), predict));
  EXPECT_TRUE(contains(error_of([&] { net.predict_classes(data.x, 0); }), predict));
  net.compile(SparseCrossEntropy{}, SGD<float>());
  EXPECT_TRUE(contains(error_of([&] { net.evaluate(data.x, data.y, 0); }),
                       "Sequential::evaluate: batch_size must be positive, got 0"));
  EXPECT_EQ(net.predict(data.x, 1).shape(), (Shape{5, 3}));
}

TEST(Evaluate, MatchesAManualComputation) {
  Sequential<float> net = blob_classifier(5);
  net.compile(SparseCrossEntropy{}, Adam<float>(AdamOptions(1e-2)));
  Blobs data(50);
  // Some training so that the accuracy is neither 0 nor 1 by construction.
  net.fit(data.x, data.y, FitOptions().epochs(2).batch_size(16).verbose(0));

  net.set_training(false);
  const Tensor<float> logits = net.forward(data.x);
  double loss = 0;
  std::size_t correct = 0;
  for (std::size_t i = 0; i < 50; ++i) {
    const float* z = logits.data() + i * 3;
    const double m = std::max({z[0], z[1], z[2]});
    double s = 0;
    for (int j = 0; j < 3; ++j) s += std::exp(double(z[j]) - m);
    const std::size_t label = std::size_t(data.y[i]);
    loss += m + std::log(s) - double(z[label]);
    correct += std::size_t(std::max_element(z, z + 3) - z) == label;
  }
  const auto [l7, a7] = net.evaluate(data.x, data.y, 7);
  const auto [l256, a256] = net.evaluate(data.x, data.y);
  EXPECT_NEAR(l7, loss / 50, 1e-5);
  EXPECT_NEAR(l256, loss / 50, 1e-5);
  EXPECT_DOUBLE_EQ(a7, double(correct) / 50);
  EXPECT_DOUBLE_EQ(a256, double(correct) / 50);

  // predict_classes agrees with the accuracy.
  const std::vector<int> classes = net.predict_classes(data.x, 16);
  std::size_t hits = 0;
  for (std::size_t i = 0; i < 50; ++i) hits += classes[i] == int(data.y[i]);
  EXPECT_EQ(hits, correct);
}

TEST(Evaluate, IsInInferenceModeAndRepeatable) {
  // With dropout in the model, evaluate and predict must not drop anything: two calls agree.
  Sequential<float> net(9);
  net.add<Dense>(DenseOptions(16).activation(ActivationKind::ReLU)).add<Dropout>(0.5).add<Dense>(3);
  net.build({4});
  net.compile(SparseCrossEntropy{}, SGD<float>(SGDOptions(0.1)));
  Blobs data(20);
  const Evaluation a = net.evaluate(data.x, data.y);
  const Evaluation b = net.evaluate(data.x, data.y, 3);
  EXPECT_NEAR(a.loss, b.loss, 1e-6);
  EXPECT_EQ(a.accuracy, b.accuracy);
  const Tensor<float> p1 = net.predict(data.x), p2 = net.predict(data.x);
  EXPECT_TRUE(bitwise_equal(p1, p2));
}

TEST(Evaluate, ErrorsAreClear) {
  Sequential<float> net = blob_classifier();
  Blobs data(6);
  EXPECT_THROW(net.evaluate(data.x, data.y), Error);  // not compiled
  net.compile(SparseCrossEntropy{}, SGD<float>());
  Tensor<float> y5(Shape{5}, 0.0f);
  const std::string msg = error_of([&] { net.evaluate(data.x, y5); });
  EXPECT_NE(msg.find('6'), std::string::npos) << msg;
  EXPECT_NE(msg.find('5'), std::string::npos) << msg;
  EXPECT_THROW(net.compile(SparseCrossEntropy{}, SGD<float>(), {"precision"}), Error);
}

// ---------------------------------------------------------------------------------------------
// Fused layers: Sequential runs a Conv2D with a MaxPool2D after it as one ConvPool
// (layers/conv_pool.hpp). The same model with a `linear` layer between the two runs them one by
// one; the two must agree bitwise: the output, every gradient, and the weights after training.

template <class T>
void expect_fused_pool_matches_layer_by_layer(const std::string& spec, const Shape& in, std::size_t batch) {
  const std::string apart = std::regex_replace(spec, std::regex(",pool"), ",linear,pool");
  for (int threads : {1, 2}) {
    const int saved = num_threads();
    set_num_threads(threads);
    const std::string where = spec + " on " + in.to_string() + ", batch " + std::to_string(batch) + ", " +
                              std::to_string(threads) + " thread(s)";
    Sequential<T> fused = make_sequential<T>(spec, in, 3), one_by_one = make_sequential<T>(apart, in, 4);
    const auto pf = fused.parameters(), pa = one_by_one.parameters();
    ASSERT_EQ(pf.size(), pa.size()) << where;
    for (std::size_t i = 0; i < pf.size(); ++i) pa[i]->value = pf[i]->value;
    const Tensor<T> x = random_tensor<T>(in.with_batch(batch), 5);

    const Tensor<T> yf = fused.forward(x), ya = one_by_one.forward(x);
    EXPECT_TRUE(bitwise_equal(yf, ya)) << where << ": forward";
    const Tensor<T> dy = random_tensor<T>(yf.shape(), 6);
    fused.zero_grad();
    one_by_one.zero_grad();
    fused.backward(dy);
    one_by_one.backward(dy);
    for (std::size_t i = 0; i < pf.size(); ++i)
      EXPECT_TRUE(bitwise_equal(pf[i]->grad, pa[i]->grad)) << where << ": gradient of parameter " << i;

    Tensor<T> labels({batch});
    for (std::size_t i = 0; i < batch; ++i) labels[i] = T(i % 3);
    fused.compile(SparseCrossEntropy{}, Adam<T>(AdamOptions(0.01)));
    one_by_one.compile(SparseCrossEntropy{}, Adam<T>(AdamOptions(0.01)));
    for (int step = 0; step < 3; ++step) {
      fused.train_on_batch(x, labels);
      one_by_one.train_on_batch(x, labels);
    }
    EXPECT_TRUE(bitwise_equal(weights_of(fused), weights_of(one_by_one))) << where << ": weights after 3 steps";
    EXPECT_TRUE(bitwise_equal(fused.predict(x), one_by_one.predict(x))) << where << ": predict";
    set_num_threads(saved);
  }
}

TEST(FusedConvolutionAndPool, MatchesTheLayersOneByOne) {
  // The first convolution (K = 9) on im2col, the second (K = 54) on the implicit GEMM where it
  // is compiled; both ReLU, so the unpooled gradient is gated.
  const std::string two_blocks = "conv:6:3:same:relu,pool:2,conv:8:3:same:relu,pool:2,flatten,dense:3";
  expect_fused_pool_matches_layer_by_layer<float>(two_blocks, {1, 12, 12}, 5);
  expect_fused_pool_matches_layer_by_layer<float>(two_blocks, {1, 12, 12}, 1);
  expect_fused_pool_matches_layer_by_layer<double>(two_blocks, {1, 12, 12}, 3);
  // Odd maps (the 2x2 pool drops a row and a column), a linear convolution before an
  // overlapping 3x3 / stride-2 'same' pool, a strided convolution before a 2x3 pool.
  expect_fused_pool_matches_layer_by_layer<float>(
      "conv:5:3:same:relu,pool:2,conv:7:3:same,pool:3:s2:same,flatten,dense:3", {2, 11, 9}, 4);
  expect_fused_pool_matches_layer_by_layer<double>(
      "conv:5:3:same:relu,pool:2,conv:7:3:same,pool:3:s2:same,flatten,dense:3", {2, 11, 9}, 2);
  expect_fused_pool_matches_layer_by_layer<float>("conv:4:3:s2:valid:relu,pool:2x3,flatten,dense:3", {3, 13, 15}, 3);
}

TEST(FusedConvolutionAndPool, OtherActivationsRunLayerByLayer) {
  // tanh before the pool is not fused; the model computes what its layers say all the same.
  expect_fused_pool_matches_layer_by_layer<float>("conv:4:3:same:tanh,pool:2,flatten,dense:3", {1, 8, 8}, 3);
}

TEST(FusedConvolutionAndPool, TheRewriteIsInvisibleToTheUser) {
  const std::string spec = "conv:4:3:same:relu,pool:2,conv:4:3:same:tanh,pool:2,flatten,dense:3";
  Sequential<float> net = make_sequential<float>(spec, {1, 8, 8});
  std::vector<std::string> run;
  for (const Layer<float>* l : net.execution()) run.push_back(l->name());
  EXPECT_EQ(run, (std::vector<std::string>{"conv2d+max_pooling2d", "conv2d_1", "max_pooling2d_1", "flatten", "dense"}));
  // What the user wrote, in every view.
  EXPECT_EQ(net.size(), 6u);
  EXPECT_EQ(net.layer(0).type(), "Conv2D");
  EXPECT_EQ(net.layer(1).type(), "MaxPool2D");
  EXPECT_EQ(net.spec(), spec);
  std::ostringstream summary;
  net.summary(summary);
  EXPECT_FALSE(contains(summary.str(), "ConvPool")) << summary.str();
  EXPECT_EQ(net.parameters().size(), 6u);
  EXPECT_EQ(net.parameters()[0], net.layer(0).parameters()[0]);
  // Popping the pool undoes the pair; adding one back makes it again once built.
  net.pop().pop().pop().pop().pop();
  ASSERT_EQ(net.execution().size(), 1u);
  EXPECT_EQ(net.execution()[0], &net.layer(0));
  net.add<MaxPool2D>(2);
  net.build({1, 8, 8});
  ASSERT_EQ(net.execution().size(), 1u);
  EXPECT_EQ(net.execution()[0]->type(), "ConvPool");
}

TEST(FusedConvolutionAndPool, ACopyRunsItsOwnLayers) {
  Sequential<float> original = make_sequential<float>("conv:4:3:same:relu,pool:2,flatten,dense:3", {1, 8, 8}, 5);
  Sequential<float> copy = original;
  ASSERT_EQ(copy.execution().size(), 3u);
  EXPECT_NE(copy.execution()[0], original.execution()[0]);
  const Tensor<float> x = random_tensor<float>({2, 1, 8, 8}, 9);
  const Tensor<float> before = original.forward(x);
  // Changing the copy's kernel changes the copy's output only.
  for (float& v : copy.layer(0).parameters()[0]->value) v = -v;
  EXPECT_TRUE(bitwise_equal(original.forward(x), before));
  EXPECT_FALSE(bitwise_equal(copy.forward(x), before));
  Sequential<float> moved = std::move(copy);
  EXPECT_EQ(moved.execution()[0]->type(), "ConvPool");
  EXPECT_FALSE(bitwise_equal(moved.forward(x), before));
}

// ---------------------------------------------------------------------------------------------
// Value semantics

TEST(Copy, TrainingTheCopyLeavesTheOriginalUnchanged) {
  Sequential<float> original = blob_classifier(11);
  original.compile(SparseCrossEntropy{}, Adam<float>(AdamOptions(1e-2)));
  Blobs data(30);
  original.fit(data.x, data.y, FitOptions().epochs(1).batch_size(10).verbose(0));
  const std::vector<Tensor<float>> before = weights_of(original);
  const Tensor<float> predictions_before = original.predict(data.x);

  Sequential<float> copy(original);
  EXPECT_TRUE(copy.built());
  EXPECT_TRUE(copy.compiled());
  EXPECT_TRUE(bitwise_equal(weights_of(copy), before));
  // The copy's parameters live elsewhere.
  for (std::size_t i = 0; i < before.size(); ++i)
    EXPECT_NE(copy.parameters()[i]->value.data(), original.parameters()[i]->value.data());

  const History h = copy.fit(data.x, data.y, FitOptions().epochs(2).batch_size(10).verbose(0));
  EXPECT_EQ(h.epochs(), 2u);
  EXPECT_EQ(h.accuracy.size(), 2u);  // the copy keeps the compiled metrics
  EXPECT_TRUE(bitwise_equal(weights_of(original), before));
  EXPECT_FALSE(bitwise_equal(weights_of(copy), before));
  EXPECT_TRUE(bitwise_equal(original.predict(data.x), predictions_before));

  // Copy assignment, and training the original leaves an earlier copy alone.
  Sequential<float> assigned;
  assigned = original;
  original.fit(data.x, data.y, FitOptions().epochs(1).batch_size(10).verbose(0));
  EXPECT_TRUE(bitwise_equal(weights_of(assigned), before));
  EXPECT_FALSE(bitwise_equal(weights_of(original), before));
}

TEST(Copy, CopiedOptimizerStateContinuesTheSameTrajectory) {
  // Training the original and a copy the same way gives bitwise the same weights: the copy
  // carries the optimizer's state (Adam's moments and step count) and the random generator.
  Sequential<float> a(21);
  a.add<Dense>(DenseOptions(8).activation(ActivationKind::ReLU)).add<Dropout>(0.25).add<Dense>(3);
  a.build({4});
  a.compile(SparseCrossEntropy{}, Adam<float>(AdamOptions(1e-2)));
  Blobs data(40);
  a.fit(data.x, data.y, FitOptions().epochs(1).batch_size(8).verbose(0));
  Sequential<float> b = a;
  const FitOptions more = FitOptions().epochs(2).batch_size(8).verbose(0);
  a.fit(data.x, data.y, more);
  b.fit(data.x, data.y, more);
  EXPECT_TRUE(bitwise_equal(weights_of(a), weights_of(b)));
}

// ---------------------------------------------------------------------------------------------
// Transfer learning

TEST(TransferLearning, FrozenBaseStaysBitwiseWhileTheNewHeadLearns) {
  Sequential<float> net(13);
  net.add<Dense>(DenseOptions(8).activation(ActivationKind::Tanh))
      .add<Dense>(DenseOptions(8).activation(ActivationKind::Tanh))
      .add<Dense>(3);
  net.build({4});
  net.compile(SparseCrossEntropy{}, Adam<float>(AdamOptions(1e-2)));
  Blobs data(60);
  net.fit(data.x, data.y, FitOptions().epochs(3).batch_size(16).verbose(0));
  const std::vector<Tensor<float>> trained = weights_of(net);

  // A new task with two classes: is the sample from blob 0?
  Tensor<float> y2(Shape{60});
  for (std::size_t i = 0; i < 60; ++i) y2[i] = data.y[i] == 0.0f ? 1.0f : 0.0f;

  Sequential<float> transfer = net;  // value semantics: `net` stays as it is
  transfer.pop();
  transfer.set_trainable(false);
  transfer.add<Dense>(2);
  transfer.build({4});
  EXPECT_EQ(transfer.size(), 3u);
  EXPECT_EQ(transfer.layer(2).name(), "dense_3");
  const std::size_t base = 4 * 8 + 8 + 8 * 8 + 8, head = 8 * 2 + 2;
  EXPECT_EQ(transfer.parameter_count(), base + head);
  EXPECT_EQ(transfer.trainable_parameter_count(), head);
  std::ostringstream os;
  transfer.summary(os);
  EXPECT_NE(os.str().find("Non-trainable params: " + std::to_string(base) + "\n"), std::string::npos) << os.str();
  EXPECT_NE(os.str().find("Trainable params: " + std::to_string(head) + "\n"), std::string::npos) << os.str();

  transfer.compile(SparseCrossEntropy{}, Adam<float>(AdamOptions(1e-2)));
  const std::vector<Tensor<float>> start = weights_of(transfer);
  // The base is the trained base.
  for (std::size_t i = 0; i < 4; ++i) EXPECT_TRUE(bitwise_equal(start[i], trained[i])) << "parameter " << i;
  const History h = transfer.fit(data.x, y2, FitOptions().epochs(5).batch_size(16).verbose(0));
  EXPECT_LT(h.loss.back(), h.loss.front());
  const std::vector<Tensor<float>> end = weights_of(transfer);
  for (std::size_t i = 0; i < 4; ++i) EXPECT_TRUE(bitwise_equal(end[i], start[i])) << "base parameter " << i;
  for (std::size_t i = 4; i < 6; ++i) EXPECT_FALSE(bitwise_equal(end[i], start[i])) << "head parameter " << i;
  // The original is untouched.
  EXPECT_TRUE(bitwise_equal(weights_of(net), trained));

  // Unfreezing lets the base move again.
  transfer.set_trainable(true);
  EXPECT_EQ(transfer.trainable_parameter_count(), base + head);
  transfer.fit(data.x, y2, FitOptions().epochs(1).batch_size(16).verbose(0));
  EXPECT_FALSE(bitwise_equal(weights_of(transfer)[0], start[0]));
}

}  // namespace
