// Training with Sequential::fit: every optimizer learns non-linear problems, bitwise
// reproducibility (seed and thread count), no allocation in the steady state, fit's semantics
// (validation split and data, History, shuffling, the last partial batch), callbacks
// (EarlyStopping, ModelCheckpoint, LambdaCallback) and stopping on a non-finite loss.

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "faltung/faltung.hpp"

#include <unistd.h>

// Every operator new is counted while g_count_allocations is set: how the steady-state test sees
// that a training step allocates nothing once its buffers exist (Tensor allocates through the
// aligned form).
namespace {
std::atomic<bool> g_count_allocations{false};
std::atomic<std::size_t> g_allocations{0};
// Called through a pointer the compiler cannot see through: GCC 12 otherwise inlines the
// replaced operator delete and warns (-Wmismatched-new-delete) that free() gets a pointer from
// operator new, which is exactly what these replacements intend.
void (*volatile g_free)(void*) = std::free;

void* counted_allocation(std::size_t n, std::size_t alignment) {
  if (g_count_allocations.load(std::memory_order_relaxed)) g_allocations.fetch_add(1, std::memory_order_relaxed);
  n = n ? n : 1;
  // aligned_alloc wants a size that is a multiple of the alignment.
  void* p = alignment > alignof(std::max_align_t)
                ? std::aligned_alloc(alignment, (n + alignment - 1) / alignment * alignment)
                : std::malloc(n);
  if (!p) throw std::bad_alloc();
  return p;
}
}  // namespace

void* operator new(std::size_t n) { return counted_allocation(n, 0); }
void* operator new(std::size_t n, std::align_val_t a) { return counted_allocation(n, std::size_t(a)); }
void operator delete(void* p) noexcept { g_free(p); }
void operator delete(void* p, std::size_t) noexcept { g_free(p); }
void operator delete(void* p, std::align_val_t) noexcept { g_free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { g_free(p); }

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

// ---------------------------------------------------------------------------------------------
// Helpers

template <class T>
bool all_finite(const std::vector<Tensor<T>>& w) {
  for (const Tensor<T>& t : w)
    for (std::size_t i = 0; i < t.size(); ++i)
      if (!std::isfinite(t[i])) return false;
  return true;
}

/// Rows [first, first + count) of a tensor.
template <class T>
Tensor<T> rows(const Tensor<T>& t, std::size_t first, std::size_t count) {
  Shape s = t.shape();
  s[0] = count;
  Tensor<T> r(s);
  const std::size_t per = t.size() / t.dim(0);
  std::copy(t.data() + first * per, t.data() + (first + count) * per, r.data());
  return r;
}

/// Noisy XOR: four clusters at the corners of [-1, 1]^2, class 1 where the signs differ.
struct Xor {
  Tensor<float> x, y;
  explicit Xor(std::size_t per_corner = 16, std::uint64_t seed = 5) : x(Shape{4 * per_corner, 2}), y(Shape{4 * per_corner}) {
    Random rng(seed);
    for (std::size_t i = 0; i < 4 * per_corner; ++i) {
      const int a = int(i % 4) & 1, b = (int(i % 4) >> 1) & 1;
      x[2 * i] = float((a ? 1.0 : -1.0) + 0.2 * rng.normal());
      x[2 * i + 1] = float((b ? 1.0 : -1.0) + 0.2 * rng.normal());
      y[i] = float(a ^ b);
    }
  }
};

/// Two interleaved spirals (Lang & Witbrock), one turn each, radius up to 2.
struct Spirals {
  Tensor<float> x, y;
  explicit Spirals(std::size_t per_class = 40) : x(Shape{2 * per_class, 2}), y(Shape{2 * per_class}) {
    const double two_pi = 6.283185307179586;
    for (std::size_t i = 0; i < per_class; ++i) {
      const double t = 0.25 + two_pi * double(i) / double(per_class);  // angle
      const double r = 2.0 * t / two_pi;                               // radius
      for (int c = 0; c < 2; ++c) {  // class 1 is class 0 turned by half a turn
        const std::size_t k = 2 * i + std::size_t(c);
        const double s = c == 0 ? 1.0 : -1.0;
        x[2 * k] = float(s * r * std::cos(t));
        x[2 * k + 1] = float(s * r * std::sin(t));
        y[k] = float(c);
      }
    }
  }
};

/// Counts calls and keeps what a LambdaCallback saw.
struct Calls {
  int batch_end = 0, epoch_end = 0, epoch_begin = 0;
  std::vector<std::pair<int, std::size_t>> batches;  // (epoch, batch) at each batch end
  std::vector<std::vector<Tensor<float>>> weights;   // at each epoch end (or batch end)
};

// ---------------------------------------------------------------------------------------------
// Every optimizer learns non-linear problems to 100% training accuracy

struct OptimizerCase {
  const char* name;
  std::function<void(Sequential<float>&)> compile;
  int xor_epochs;
  // Names the case in test listings instead of gtest's byte dump of the struct.
  friend void PrintTo(const OptimizerCase& c, std::ostream* os) { *os << c.name; }
};

class Learns : public ::testing::TestWithParam<OptimizerCase> {};

TEST_P(Learns, Xor) {
  const OptimizerCase& c = GetParam();
  Xor data;
  Sequential<float> net(3);
  net.add<Dense>(DenseOptions(16).activation(ActivationKind::Tanh)).add<Dense>(2);
  net.build({2});
  c.compile(net);
  const History h = net.fit(data.x, data.y, FitOptions().epochs(c.xor_epochs).batch_size(8).verbose(0));
  ASSERT_EQ(h.epochs(), std::size_t(c.xor_epochs));
  EXPECT_LT(h.loss.back(), 0.5 * h.loss.front());
  const auto [loss, accuracy] = net.evaluate(data.x, data.y);
  EXPECT_EQ(accuracy, 1.0) << c.name << ": loss " << loss;
  const std::vector<int> classes = net.predict_classes(data.x);
  for (std::size_t i = 0; i < classes.size(); ++i) EXPECT_EQ(classes[i], int(data.y[i])) << "sample " << i;
}

TEST_P(Learns, TwoSpirals) {
  const OptimizerCase& c = GetParam();
  Spirals data(40);
  Sequential<float> net(4);
  net.add<Dense>(DenseOptions(32).activation(ActivationKind::Tanh))
      .add<Dense>(DenseOptions(32).activation(ActivationKind::Tanh))
      .add<Dense>(2);
  net.build({2});
  c.compile(net);
  net.fit(data.x, data.y, FitOptions().epochs(5 * c.xor_epochs).batch_size(16).verbose(0));
  const auto [loss, accuracy] = net.evaluate(data.x, data.y);
  EXPECT_EQ(accuracy, 1.0) << c.name << ": loss " << loss;
}

INSTANTIATE_TEST_SUITE_P(
    EachOptimizer, Learns,
    ::testing::Values(
        OptimizerCase{"SGD_momentum",
                      [](Sequential<float>& n) {
                        n.compile(SparseCrossEntropy{}, SGD<float>(SGDOptions(0.05).momentum(0.9)));
                      },
                      60},
        OptimizerCase{"SGD_nesterov",
                      [](Sequential<float>& n) {
                        n.compile(SparseCrossEntropy{}, SGD<float>(SGDOptions(0.05).momentum(0.9).nesterov(true)));
                      },
                      60},
        OptimizerCase{"Adam", [](Sequential<float>& n) { n.compile(SparseCrossEntropy{}, Adam<float>(AdamOptions(0.02))); },
                      60},
        OptimizerCase{"RMSProp",
                      [](Sequential<float>& n) { n.compile(SparseCrossEntropy{}, RMSProp<float>(RMSPropOptions(0.01))); },
                      60},
        OptimizerCase{"Adagrad",
                      [](Sequential<float>& n) { n.compile(SparseCrossEntropy{}, Adagrad<float>(AdagradOptions(0.2))); },
                      60}),
    [](const ::testing::TestParamInfo<OptimizerCase>& info) { return std::string(info.param.name); });

TEST(LearnsOtherLosses, XorWithBinaryCrossEntropyAndOneHotTargets) {
  Xor data;
  {
    Sequential<float> net(3);
    net.add<Dense>(DenseOptions(16).activation(ActivationKind::Tanh)).add<Dense>(1);
    net.build({2});
    net.compile(BinaryCrossEntropy{}, Adam<float>(AdamOptions(0.02)));
    Tensor<float> y(Shape{data.y.size(), 1});
    std::copy(data.y.begin(), data.y.end(), y.begin());
    net.fit(data.x, y, FitOptions().epochs(60).batch_size(8).verbose(0));
    EXPECT_EQ(net.evaluate(data.x, y).accuracy, 1.0);
  }
  {
    Sequential<float> net(3);
    net.add<Dense>(DenseOptions(16).activation(ActivationKind::Tanh)).add<Dense>(2).add<Softmax>();
    net.build({2});
    net.compile(CategoricalCrossEntropy{}, Adam<float>(AdamOptions(0.02)));
    Tensor<float> y(Shape{data.y.size(), 2}, 0.0f);
    for (std::size_t i = 0; i < data.y.size(); ++i) y[2 * i + std::size_t(data.y[i])] = 1.0f;
    net.fit(data.x, y, FitOptions().epochs(60).batch_size(8).verbose(0));
    EXPECT_EQ(net.evaluate(data.x, y).accuracy, 1.0);
  }
}

// ---------------------------------------------------------------------------------------------
// Reproducibility

/// Images 1 x 8 x 8 whose class is the brightest of three regions.
struct Images {
  Tensor<float> x, y;
  explicit Images(std::size_t n) : x(Shape{n, 1, 8, 8}), y(Shape{n}) {
    Random rng(3);
    for (std::size_t i = 0; i < n; ++i) {
      const std::size_t c = i % 3;
      for (std::size_t p = 0; p < 64; ++p) {
        const std::size_t region = std::min<std::size_t>(p % 8 / 3, 2);
        x[i * 64 + p] = float(rng.uniform() + (region == c ? 0.5 : 0.0));
      }
      y[i] = float(c);
    }
  }
};

std::vector<Tensor<float>> train_conv_net(std::uint64_t seed, const Images& data) {
  Sequential<float> net(seed);
  net.add<Conv2D>(Conv2DOptions(6, 3).padding(Same).activation(ActivationKind::ReLU))
      .add<MaxPool2D>(2)
      .add<Dropout>(0.3)
      .add<Flatten>()
      .add<Dense>(DenseOptions(16).activation(ActivationKind::ReLU))
      .add<Dropout>(0.3)
      .add<Dense>(3);
  net.build({1, 8, 8});
  net.compile(SparseCrossEntropy{}, Adam<float>(AdamOptions(1e-2)));
  net.fit(data.x, data.y, FitOptions().epochs(3).batch_size(16).shuffle(true).validation_split(0.2).verbose(0));
  return weights_of(net);
}

class ThreadCount {
 public:
  explicit ThreadCount(int n) : saved_(num_threads()) { set_num_threads(n); }
  ~ThreadCount() { set_num_threads(saved_); }

 private:
  int saved_;
};

TEST(Reproducible, SameSeedSameThreadsGiveBitwiseEqualWeights) {
  Images data(100);
  ThreadCount one(1);
  const auto a = train_conv_net(17, data);
  const auto b = train_conv_net(17, data);
  EXPECT_TRUE(all_finite(a));
  EXPECT_TRUE(bitwise_equal(a, b));
  const auto c = train_conv_net(18, data);
  EXPECT_FALSE(bitwise_equal(a, c));
}

TEST(Reproducible, TwoThreadsTwiceGiveBitwiseEqualWeights) {
  Images data(100);
  ThreadCount two(2);
  EXPECT_EQ(num_threads(), FALTUNG_HAS_OPENMP ? 2 : 1);
  const auto a = train_conv_net(17, data);
  const auto b = train_conv_net(17, data);
  EXPECT_TRUE(bitwise_equal(a, b));
  const auto c = train_conv_net(18, data);
  EXPECT_FALSE(bitwise_equal(a, c));
}

TEST(Reproducible, DifferentSeedsDrawDifferentInitialWeights) {
  Sequential<float> a = blob_classifier(1), b = blob_classifier(1), c = blob_classifier(2);
  EXPECT_TRUE(bitwise_equal(weights_of(a), weights_of(b)));
  EXPECT_FALSE(bitwise_equal(weights_of(a), weights_of(c)));
}

// ---------------------------------------------------------------------------------------------
// Steady state: once the first batches have sized every output, gradient and workspace, a
// training step (and an evaluation) allocates nothing, on one thread and on two.

/// Allocations made by f().
template <class F>
std::size_t allocations_in(F&& f) {
  g_allocations = 0;
  g_count_allocations = true;
  f();
  g_count_allocations = false;
  return g_allocations.load();
}

struct StepCase {
  const char* name;
  std::function<void(Sequential<float>&)> compile;
};

TEST(SteadyState, TrainingStepsAllocateNothingAfterTheFirst) {
  const Images data(24);
  Tensor<float> x = rows(data.x, 0, 12), y = rows(data.y, 0, 12);
  // Every layer kind and both convolution paths: the first convolution (K = 9) and the strided
  // one go through im2col, the second (K = 72) through the implicit GEMM where it is compiled.
  const char* spec =
      "conv:8:3:same:relu,conv:8:3:same,tanh,pool:2,drop:0.3,conv:6:3:s2:valid:relu,flatten,"
      "dense:16:relu,drop:0.3,dense:3";
  const StepCase cases[] = {
      {"SGD_momentum",
       [](Sequential<float>& n) { n.compile(SparseCrossEntropy{}, SGD<float>(SGDOptions(0.01).momentum(0.9))); }},
      {"Adam", [](Sequential<float>& n) { n.compile(SparseCrossEntropy{}, Adam<float>(AdamOptions(1e-3))); }},
      {"RMSProp", [](Sequential<float>& n) { n.compile(SparseCrossEntropy{}, RMSProp<float>(RMSPropOptions(1e-3))); }},
      {"Adagrad", [](Sequential<float>& n) { n.compile(SparseCrossEntropy{}, Adagrad<float>(AdagradOptions(1e-2))); }},
  };
  for (int threads : {1, 2}) {
    ThreadCount count(threads);
    for (const StepCase& c : cases) {
      Sequential<float> net = make_sequential<float>(spec, {1, 8, 8}, 5);
      c.compile(net);
      for (int warm_up = 0; warm_up < 2; ++warm_up) {
        net.train_on_batch(x, y);
        net.evaluate(data.x, data.y, 12);
      }
      EXPECT_EQ(allocations_in([&] {
                  for (int step = 0; step < 3; ++step) net.train_on_batch(x, y);
                }),
                0u)
          << c.name << ", " << threads << " thread(s): train_on_batch";
      EXPECT_EQ(allocations_in([&] { net.evaluate(data.x, data.y, 12); }), 0u)
          << c.name << ", " << threads << " thread(s): evaluate";
    }
  }
  // The counter itself works: a step of a fresh model sizes its buffers.
  Sequential<float> fresh = make_sequential<float>(spec, {1, 8, 8}, 5);
  cases[0].compile(fresh);
  EXPECT_GT(allocations_in([&] { fresh.train_on_batch(x, y); }), 0u);
}

/// y = w * x with one scalar parameter: a user's layer that overrides parameters() only.
class Scale : public Layer<float> {
 public:
  Scale() : w_("kernel", Shape{1}) { w_.value[0] = 2.0f; }
  std::string type() const override { return "Scale"; }
  std::string default_name() const override { return "scale"; }
  Shape output_shape(const Shape& in) const override { return in; }
  void forward_impl(const Tensor<float>& x, Tensor<float>& y) override {
    y.resize(x.shape());
    for (std::size_t i = 0; i < x.size(); ++i) y[i] = w_.value[0] * x[i];
  }
  void backward_impl(const Tensor<float>& x, const Tensor<float>&, const Tensor<float>& dy, Tensor<float>& dx) override {
    dx.resize(x.shape());
    for (std::size_t i = 0; i < x.size(); ++i) {
      w_.grad[0] += dy[i] * x[i];
      dx[i] = w_.value[0] * dy[i];
    }
  }
  std::vector<Parameter<float>*> parameters() override { return {&w_}; }
  std::string spec() const override { return "scale"; }
  std::unique_ptr<Layer<float>> clone() const override { return std::make_unique<Scale>(*this); }

 private:
  Parameter<float> w_;
};

TEST(SteadyState, ALayerThatOverridesOnlyParametersIsTrained) {
  Sequential<float> net;
  net.add(Scale()).build({1});
  net.compile(MeanSquaredError{}, SGD<float>(SGDOptions(0.25)));
  Tensor<float> x({2, 1}), y({2, 1});
  x[0] = 1, x[1] = 3, y[0] = 1, y[1] = 5;
  // L = mean((2x - y)^2) = (1 + 1) / 2; dL/dw = mean(2 (2x - y) x) = (2 + 6) / 2 = 4.
  net.train_on_batch(x, y);
  ASSERT_EQ(net.parameters().size(), 1u);
  EXPECT_FLOAT_EQ(net.parameters()[0]->value[0], 2.0f - 0.25f * 4.0f);
}

// ---------------------------------------------------------------------------------------------
// fit semantics

/// 40 samples: 30 blobs, then 10 whose labels are rotated (0 -> 1 -> 2 -> 0), so a loss over
/// the last 10 rows is far from a loss over any other 10.
struct SplitData {
  Tensor<float> x, y;
  SplitData() {
    Blobs b(40, 11);
    x = b.x;
    y = b.y;
    for (std::size_t i = 30; i < 40; ++i) y[i] = float((std::size_t(y[i]) + 1) % 3);
  }
};

TEST(Fit, ValidationSplitTakesTheLastRowsBeforeShuffling) {
  SplitData d;
  Sequential<float> net = blob_classifier(2);
  // A learning rate of 0: the weights stay as they are, so every epoch's val_loss must be the
  // loss over exactly the last 10 rows, however the training rows were shuffled.
  net.compile(SparseCrossEntropy{}, SGD<float>(SGDOptions(0.0)));
  const auto before = weights_of(net);
  std::size_t batches = 0;
  int batch_calls = 0;
  auto probe = LambdaCallback().on_batch_end([&](TrainingState& s) {
    batches = s.batches;
    ++batch_calls;
  });
  const History h = net.fit(
      d.x, d.y, FitOptions().epochs(3).batch_size(8).shuffle(true).validation_split(0.25).verbose(0).callback(probe));
  ASSERT_TRUE(bitwise_equal(weights_of(net), before));
  const Tensor<float> tail_x = rows(d.x, 30, 10), tail_y = rows(d.y, 30, 10);
  const Tensor<float> head_x = rows(d.x, 0, 30), head_y = rows(d.y, 0, 30);
  const Evaluation tail = net.evaluate(tail_x, tail_y);
  const Evaluation head = net.evaluate(head_x, head_y);
  const Evaluation first10 = net.evaluate(rows(d.x, 0, 10), rows(d.y, 0, 10));
  ASSERT_GT(std::abs(tail.loss - first10.loss), 0.05);  // the check below can tell them apart
  ASSERT_GT(std::abs(tail.loss - head.loss), 0.05);
  ASSERT_EQ(h.val_loss.size(), 3u);
  ASSERT_EQ(h.val_accuracy.size(), 3u);
  for (std::size_t e = 0; e < 3; ++e) {
    EXPECT_DOUBLE_EQ(h.val_loss[e], tail.loss) << "epoch " << e;
    EXPECT_DOUBLE_EQ(h.val_accuracy[e], tail.accuracy) << "epoch " << e;
    // Training sees the first 30 rows only (the shuffled batches sum in another order).
    EXPECT_NEAR(h.loss[e], head.loss, 1e-5) << "epoch " << e;
    EXPECT_DOUBLE_EQ(h.accuracy[e], head.accuracy) << "epoch " << e;
  }
  EXPECT_EQ(batches, 4u);  // ceil(30 / 8): the last batch of 6 included
  EXPECT_EQ(batch_calls, 12);
}

TEST(Fit, ValidationDataIsUsedWhenGivenAndTheSplitIsThenIgnored) {
  SplitData d;
  Blobs v(12, 99);
  Sequential<float> net = blob_classifier(2);
  net.compile(SparseCrossEntropy{}, SGD<float>(SGDOptions(0.0)));
  std::size_t batches = 0;
  const History h =
      net.fit(d.x, d.y, v.x, v.y,
              FitOptions().epochs(2).batch_size(8).validation_split(0.25).verbose(0).callback(
                  LambdaCallback().on_batch_end([&](TrainingState& s) { batches = s.batches; })));
  const Evaluation val = net.evaluate(v.x, v.y);
  const Evaluation all = net.evaluate(d.x, d.y);
  ASSERT_EQ(h.val_loss.size(), 2u);
  for (std::size_t e = 0; e < 2; ++e) {
    EXPECT_DOUBLE_EQ(h.val_loss[e], val.loss);
    EXPECT_DOUBLE_EQ(h.val_accuracy[e], val.accuracy);
    EXPECT_NEAR(h.loss[e], all.loss, 1e-5);  // all 40 rows train
  }
  EXPECT_EQ(batches, 5u);
}

TEST(Fit, HistoryHasOneEntryPerEpoch) {
  Blobs d(40);
  Sequential<float> net = blob_classifier(3);
  const double lr = 0.1, decay = 0.01;
  net.compile(SparseCrossEntropy{}, SGD<float>(SGDOptions(lr).decay(decay)));
  const History h = net.fit(d.x, d.y, FitOptions().epochs(4).batch_size(10).validation_split(0.25).verbose(0));
  EXPECT_EQ(h.epochs(), 4u);
  for (const char* m : {"loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds"})
    EXPECT_EQ(h.metric(m).size(), 4u) << m;
  EXPECT_TRUE(h.has_validation());
  EXPECT_TRUE(h.stop_reason.empty()) << h.stop_reason;
  for (std::size_t e = 0; e < 4; ++e) {
    EXPECT_GE(h.seconds[e], 0.0);
    EXPECT_LT(h.seconds[e], 10.0);
    EXPECT_TRUE(h.accuracy[e] >= 0 && h.accuracy[e] <= 1);
    // 3 steps per epoch (30 rows, batch 10); the rate at the end of epoch e is for step 3(e+1).
    EXPECT_NEAR(h.learning_rate[e], lr / (1 + decay * 3 * double(e + 1)), 1e-12) << "epoch " << e;
  }
  EXPECT_LT(h.loss.back(), h.loss.front());
  EXPECT_THROW(h.metric("precision"), Error);

  // Without validation there are no val_ entries; mean squared error has no accuracy.
  Sequential<float> reg(4);
  reg.add<Dense>(1);
  reg.build({4});
  reg.compile(MeanSquaredError{}, SGD<float>(SGDOptions(0.01)));
  Tensor<float> target(Shape{40, 1}, 1.0f);
  const History r = reg.fit(d.x, target, FitOptions().epochs(2).batch_size(16).verbose(0));
  EXPECT_EQ(r.loss.size(), 2u);
  EXPECT_TRUE(r.accuracy.empty());
  EXPECT_TRUE(r.val_loss.empty());
  EXPECT_TRUE(r.val_accuracy.empty());
  EXPECT_FALSE(r.has_validation());
  EXPECT_EQ(r.learning_rate.size(), 2u);
  EXPECT_EQ(r.seconds.size(), 2u);
}

TEST(Fit, ZeroEpochsChangesNothing) {
  Blobs d(12);
  Sequential<float> net = blob_classifier(3);
  net.compile(SparseCrossEntropy{}, SGD<float>(SGDOptions(0.1)));
  const auto before = weights_of(net);
  const History h = net.fit(d.x, d.y, FitOptions().epochs(0).verbose(0));
  EXPECT_EQ(h.epochs(), 0u);
  EXPECT_TRUE(bitwise_equal(weights_of(net), before));
}

/// A model with dropout, so that the random streams matter too.
Sequential<float> dropout_classifier(std::uint64_t seed) {
  Sequential<float> net(seed);
  net.add<Dense>(DenseOptions(12).activation(ActivationKind::ReLU)).add<Dropout>(0.25).add<Dense>(3);
  net.build({4});
  net.compile(SparseCrossEntropy{}, SGD<float>(SGDOptions(0.1).momentum(0.5)));
  return net;
}

TEST(Fit, WithoutShuffleItIsTheBatchesInOrderLastPartialOneIncluded) {
  Blobs d(30);
  const FitOptions no_shuffle = FitOptions().epochs(2).batch_size(8).shuffle(false).verbose(0);
  Sequential<float> a = dropout_classifier(8);
  a.fit(d.x, d.y, no_shuffle);
  Sequential<float> b = dropout_classifier(8);
  b.fit(d.x, d.y, no_shuffle);
  EXPECT_TRUE(bitwise_equal(weights_of(a), weights_of(b)));

  // The same steps by hand: rows 0-7, 8-15, 16-23 and the partial 24-29, twice.
  Sequential<float> manual = dropout_classifier(8);
  for (int epoch = 0; epoch < 2; ++epoch)
    for (std::size_t first = 0; first < 30; first += 8) {
      const std::size_t m = std::min<std::size_t>(8, 30 - first);
      manual.train_on_batch(rows(d.x, first, m), rows(d.y, first, m));
    }
  EXPECT_TRUE(bitwise_equal(weights_of(a), weights_of(manual)));

  // Leaving out the partial batch would be different.
  Sequential<float> dropped = dropout_classifier(8);
  for (int epoch = 0; epoch < 2; ++epoch)
    for (std::size_t first = 0; first + 8 <= 30; first += 8)
      dropped.train_on_batch(rows(d.x, first, 8), rows(d.y, first, 8));
  EXPECT_FALSE(bitwise_equal(weights_of(a), weights_of(dropped)));

  // Shuffling does change the order (and so the weights), and is itself reproducible.
  Sequential<float> s1 = dropout_classifier(8), s2 = dropout_classifier(8);
  s1.fit(d.x, d.y, FitOptions(no_shuffle).shuffle(true));
  s2.fit(d.x, d.y, FitOptions(no_shuffle).shuffle(true));
  EXPECT_FALSE(bitwise_equal(weights_of(a), weights_of(s1)));
  EXPECT_TRUE(bitwise_equal(weights_of(s1), weights_of(s2)));
}

TEST(Fit, ErrorsAreClear) {
  Blobs d(20);
  Sequential<float> net = blob_classifier();
  EXPECT_NE(error_of([&] { net.fit(d.x, d.y, FitOptions().verbose(0)); }).find("compile"), std::string::npos);
  net.compile(SparseCrossEntropy{}, SGD<float>());
  Tensor<float> y19(Shape{19}, 0.0f);
  const std::string counts = error_of([&] { net.fit(d.x, y19, FitOptions().verbose(0)); });
  EXPECT_NE(counts.find("20"), std::string::npos) << counts;
  EXPECT_NE(counts.find("19"), std::string::npos) << counts;
  EXPECT_NE(error_of([&] { net.fit(d.x, d.y, FitOptions().validation_split(1.0).verbose(0)); }).find("validation_split"),
            std::string::npos);
  EXPECT_NE(error_of([&] { net.fit(d.x, d.y, FitOptions().validation_split(0.01).verbose(0)); }).find("validation_split"),
            std::string::npos);  // 0 rows for validation
  EXPECT_NE(error_of([&] { net.fit(d.x, d.y, FitOptions().batch_size(0).verbose(0)); }).find("batch_size"),
            std::string::npos);
  Tensor<float> bad_label(Shape{20}, 0.0f);
  bad_label[13] = 3.0f;
  const std::string label = error_of([&] { net.fit(d.x, bad_label, FitOptions().shuffle(false).verbose(0)); });
  EXPECT_NE(label.find("label"), std::string::npos) << label;
}

TEST(Fit, ABadLabelIsNamedByItsRowInTheDataNotInTheBatch) {
  Blobs d(40);
  Sequential<float> net = blob_classifier();
  net.compile(SparseCrossEntropy{}, SGD<float>());
  const std::string bad = "SparseCrossEntropy: label in row 29 of y is 7, not a class index in [0, 3)";
  Tensor<float> y = d.y;
  y[29] = 7.0f;
  // Shuffled, row 29 lands anywhere in some batch of 8; in order, it is row 5 of the fourth.
  EXPECT_TRUE(contains(error_of([&] { net.fit(d.x, y, FitOptions().batch_size(8).verbose(0)); }), bad));
  EXPECT_TRUE(contains(error_of([&] { net.fit(d.x, y, FitOptions().batch_size(8).shuffle(false).verbose(0)); }), bad));
  EXPECT_TRUE(contains(error_of([&] { net.evaluate(d.x, y, 8); }), bad));
  EXPECT_TRUE(contains(error_of([&] { net.train_on_batch(d.x, y); }), bad));  // the batch is the data
  // In the validation rows: the last 10 of y with a split, or rows of the validation data.
  Tensor<float> y_val_bad = d.y;
  y_val_bad[35] = -1.0f;
  EXPECT_TRUE(contains(error_of([&] { net.fit(d.x, y_val_bad, FitOptions().validation_split(0.25).verbose(0)); }),
                       "label in row 35 of y is -1"));
  Blobs v(12, 3);
  v.y[11] = 0.5f;
  EXPECT_TRUE(contains(error_of([&] { net.fit(d.x, d.y, v.x, v.y, FitOptions().verbose(0)); }),
                       "label in row 11 of val_y is 0.5"));
}

// ---------------------------------------------------------------------------------------------
// LambdaCallback and stopping from a callback

TEST(LambdaCallback, CalledPerBatchAndPerEpoch) {
  Blobs d(50);
  Sequential<float> net = blob_classifier(4);
  net.compile(SparseCrossEntropy{}, Adam<float>());
  Calls calls;
  Logs last_batch_logs, last_epoch_logs;
  int epochs_seen = 0;
  auto cb = LambdaCallback()
                .on_epoch_begin([&](TrainingState& s) {
                  EXPECT_EQ(s.epoch, calls.epoch_begin);
                  ++calls.epoch_begin;
                })
                .on_batch_end([&](TrainingState& s) {
                  ++calls.batch_end;
                  calls.batches.emplace_back(s.epoch, s.batch);
                  EXPECT_EQ(s.batches, 5u);  // 40 training rows in batches of 8
                  last_batch_logs = s.logs;
                })
                .on_epoch_end([&](TrainingState& s) {
                  ++calls.epoch_end;
                  epochs_seen = s.epochs;
                  last_epoch_logs = s.logs;
                  ASSERT_NE(s.history, nullptr);
                });
  const History h = net.fit(d.x, d.y, FitOptions().epochs(3).batch_size(8).validation_split(0.2).verbose(0).callback(cb));
  EXPECT_EQ(calls.epoch_begin, 3);
  EXPECT_EQ(calls.epoch_end, 3);
  EXPECT_EQ(calls.batch_end, 15);
  EXPECT_EQ(epochs_seen, 3);
  ASSERT_EQ(calls.batches.size(), 15u);
  for (std::size_t k = 0; k < 15; ++k) {
    EXPECT_EQ(calls.batches[k].first, int(k / 5));
    EXPECT_EQ(calls.batches[k].second, k % 5);
  }
  EXPECT_EQ(last_batch_logs.count("loss"), 1u);
  EXPECT_EQ(last_batch_logs.count("accuracy"), 1u);
  EXPECT_EQ(last_batch_logs.count("val_loss"), 0u);
  // After the last batch the running mean is the epoch's training loss.
  EXPECT_DOUBLE_EQ(last_batch_logs["loss"], h.loss.back());
  for (const char* k : {"loss", "accuracy", "val_loss", "val_accuracy", "lr"})
    EXPECT_EQ(last_epoch_logs.count(k), 1u) << k;
  EXPECT_DOUBLE_EQ(last_epoch_logs["val_loss"], h.val_loss.back());
}

TEST(LambdaCallback, StopTrainingFromABatch) {
  Blobs d(40);
  Sequential<float> net = blob_classifier(4);
  net.compile(SparseCrossEntropy{}, Adam<float>());
  int batch_calls = 0;
  const History h = net.fit(d.x, d.y,
                            FitOptions().epochs(5).batch_size(8).verbose(0).callback(
                                LambdaCallback().on_batch_end([&](TrainingState& s) {
                                  ++batch_calls;
                                  if (s.epoch == 1 && s.batch == 2) s.stop_training = true;
                                })));
  EXPECT_EQ(batch_calls, 5 + 3);
  EXPECT_EQ(h.epochs(), 2u);  // the interrupted epoch is reported
  EXPECT_FALSE(h.stop_reason.empty());
}

TEST(LambdaCallback, StopTrainingFromAnEpochWithAReason) {
  Blobs d(40);
  Sequential<float> net = blob_classifier(4);
  net.compile(SparseCrossEntropy{}, Adam<float>());
  int batch_calls = 0;
  const History h = net.fit(d.x, d.y,
                            FitOptions().epochs(6).batch_size(8).verbose(0).callback(
                                LambdaCallback()
                                    .on_batch_end([&](TrainingState&) { ++batch_calls; })
                                    .on_epoch_end([](TrainingState& s) {
                                      if (s.epoch == 2) {
                                        s.stop_training = true;
                                        s.stop_reason = "enough for today";
                                      }
                                    })));
  EXPECT_EQ(h.epochs(), 3u);
  EXPECT_EQ(batch_calls, 15);
  EXPECT_EQ(h.stop_reason, "enough for today");
}

// ---------------------------------------------------------------------------------------------
// EarlyStopping

/// A callback that replaces one metric of each epoch's logs by a scripted value, so that the
/// callbacks after it see a known sequence. It must come first in the list.
LambdaCallback script(const std::string& metric, std::vector<double> values) {
  return LambdaCallback().on_epoch_end([metric, values](TrainingState& s) {
    s.logs[metric] = values.at(std::size_t(s.epoch));
  });
}

/// Weights at each epoch end.
LambdaCallback record_weights(Sequential<float>& net, std::vector<std::vector<Tensor<float>>>& out) {
  return LambdaCallback().on_epoch_end([&net, &out](TrainingState&) { out.push_back(weights_of(net)); });
}

TEST(EarlyStopping, StopsPatienceEpochsAfterTheBest) {
  Blobs d(40);
  Sequential<float> net = blob_classifier(5);
  net.compile(SparseCrossEntropy{}, Adam<float>(AdamOptions(1e-2)));
  auto es = std::make_shared<EarlyStopping>(EarlyStopping().monitor("val_loss").patience(2));
  //                      best at epoch 2 (0-based), then two epochs without improvement
  const History h = net.fit(d.x, d.y,
                            FitOptions().epochs(10).batch_size(8).validation_split(0.25).verbose(0)
                                .callback(script("val_loss", {1.0, 0.8, 0.5, 0.6, 0.55, 0.4, 0.3, 0.2, 0.1, 0.05}))
                                .callbacks({es}));
  EXPECT_EQ(h.epochs(), 2u + 2u + 1u);  // best epoch + patience + 1
  EXPECT_EQ(es->best_epoch(), 2);
  EXPECT_EQ(es->stopped_epoch(), 4);
  EXPECT_EQ(h.best_epoch, 2);
  EXPECT_NE(h.stop_reason.find("val_loss"), std::string::npos) << h.stop_reason;
}

TEST(EarlyStopping, OnAFlatLossItStopsAfterPatienceEpochs) {
  // Keras's documented example: patience 3 on a loss that never improves after the first epoch
  // runs 4 epochs. A learning rate of 0 and no shuffling make every epoch's loss identical.
  Blobs d(24);
  Sequential<float> net = blob_classifier(5);
  net.compile(SparseCrossEntropy{}, SGD<float>(SGDOptions(0.0)));
  const History h = net.fit(
      d.x, d.y, FitOptions().epochs(10).batch_size(8).shuffle(false).verbose(0).callback(EarlyStopping().monitor("loss").patience(3)));
  EXPECT_EQ(h.epochs(), 4u);
  EXPECT_EQ(h.best_epoch, 0);
}

TEST(EarlyStopping, AccuracyIsMaximised) {
  Blobs d(40);
  Sequential<float> net = blob_classifier(5);
  net.compile(SparseCrossEntropy{}, Adam<float>(AdamOptions(1e-2)));
  const History h = net.fit(d.x, d.y,
                            FitOptions().epochs(10).batch_size(8).validation_split(0.25).verbose(0)
                                .callback(script("val_accuracy", {0.5, 0.7, 0.6, 0.65, 0.7, 0.9, 0.9, 0.9, 0.9, 0.9}))
                                .callback(EarlyStopping().monitor("val_accuracy").patience(3)));
  EXPECT_EQ(h.epochs(), 1u + 3u + 1u);
  EXPECT_EQ(h.best_epoch, 1);
}

TEST(EarlyStopping, MinDeltaSetsWhatCountsAsAnImprovement) {
  Blobs d(40);
  const std::vector<double> slow = {1.0, 0.97, 0.95, 0.93, 0.91, 0.89, 0.87, 0.85};
  {
    Sequential<float> net = blob_classifier(5);
    net.compile(SparseCrossEntropy{}, Adam<float>(AdamOptions(1e-2)));
    const History h = net.fit(d.x, d.y,
                              FitOptions().epochs(8).batch_size(8).validation_split(0.25).verbose(0)
                                  .callback(script("val_loss", slow))
                                  .callback(EarlyStopping().patience(2)));
    EXPECT_EQ(h.epochs(), 8u);  // every epoch improves a little
  }
  {
    Sequential<float> net = blob_classifier(5);
    net.compile(SparseCrossEntropy{}, Adam<float>(AdamOptions(1e-2)));
    const History h = net.fit(d.x, d.y,
                              FitOptions().epochs(8).batch_size(8).validation_split(0.25).verbose(0)
                                  .callback(script("val_loss", slow))
                                  .callback(EarlyStopping().patience(2).min_delta(0.06)));
    // 0.97 and 0.95 are less than 0.06 below the best 1.0: two epochs without improvement.
    EXPECT_EQ(h.epochs(), 3u);
    EXPECT_EQ(h.best_epoch, 0);
  }
  {
    Sequential<float> net = blob_classifier(5);
    net.compile(SparseCrossEntropy{}, Adam<float>(AdamOptions(1e-2)));
    const History h = net.fit(d.x, d.y,
                              FitOptions().epochs(8).batch_size(8).validation_split(0.25).verbose(0)
                                  .callback(script("val_loss", slow))
                                  .callback(EarlyStopping().patience(2).min_delta(0.035)));
    // Improvements of 0.05 every second epoch: 1.0 -> 0.95 -> 0.91 -> 0.87, never 2 epochs without.
    EXPECT_EQ(h.epochs(), 8u);
    EXPECT_EQ(h.best_epoch, 6);
  }
}

TEST(EarlyStopping, RestoresTheBestEpochsWeights) {
  Blobs d(40);
  Sequential<float> net = blob_classifier(6);
  net.compile(SparseCrossEntropy{}, Adam<float>(AdamOptions(1e-2)));
  std::vector<std::vector<Tensor<float>>> at_epoch_end;
  const History h = net.fit(d.x, d.y,
                            FitOptions().epochs(10).batch_size(8).validation_split(0.25).verbose(0)
                                .callback(script("val_loss", {0.9, 0.7, 0.75, 0.72, 0.71, 0.3, 0.2, 0.1, 0.1, 0.1}))
                                .callback(record_weights(net, at_epoch_end))
                                .callback(EarlyStopping().patience(3).restore_best_weights(true)));
  ASSERT_EQ(h.epochs(), 5u);
  ASSERT_EQ(at_epoch_end.size(), 5u);
  EXPECT_FALSE(bitwise_equal(at_epoch_end[1], at_epoch_end[4]));  // training moved on
  EXPECT_TRUE(bitwise_equal(weights_of(net), at_epoch_end[1]));

  // Without restore_best_weights the last weights stay.
  Sequential<float> other = blob_classifier(6);
  other.compile(SparseCrossEntropy{}, Adam<float>(AdamOptions(1e-2)));
  std::vector<std::vector<Tensor<float>>> other_epochs;
  other.fit(d.x, d.y,
            FitOptions().epochs(10).batch_size(8).validation_split(0.25).verbose(0)
                .callback(script("val_loss", {0.9, 0.7, 0.75, 0.72, 0.71, 0.3, 0.2, 0.1, 0.1, 0.1}))
                .callback(record_weights(other, other_epochs))
                .callback(EarlyStopping().patience(3)));
  ASSERT_EQ(other_epochs.size(), 5u);
  EXPECT_TRUE(bitwise_equal(weights_of(other), other_epochs[4]));
}

TEST(EarlyStopping, UnknownMetricIsAClearError) {
  Blobs d(20);
  Sequential<float> net = blob_classifier();
  net.compile(SparseCrossEntropy{}, Adam<float>());
  const std::string typo = error_of([&] {
    net.fit(d.x, d.y, FitOptions().epochs(2).verbose(0).validation_split(0.2).callback(EarlyStopping().monitor("val_los")));
  });
  EXPECT_NE(typo.find("EarlyStopping"), std::string::npos) << typo;
  EXPECT_NE(typo.find("'val_los'"), std::string::npos) << typo;
  EXPECT_NE(typo.find("val_loss"), std::string::npos) << typo;  // lists what is available
  // val_loss without validation data.
  const std::string no_val = error_of([&] {
    net.fit(d.x, d.y, FitOptions().epochs(2).verbose(0).callback(EarlyStopping().monitor("val_loss")));
  });
  EXPECT_NE(no_val.find("'val_loss'"), std::string::npos) << no_val;
  EXPECT_NE(no_val.find("validation"), std::string::npos) << no_val;
}

// ---------------------------------------------------------------------------------------------
// ModelCheckpoint

/// A fresh directory for this test's files, removed afterwards.
class TempDir {
 public:
  TempDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = (std::filesystem::temp_directory_path() /
             ("faltung_test_training_" + std::string(info->name()) + "_" + std::to_string(::getpid())))
                .string();
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

std::string read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return "";
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

/// Runs after a ModelCheckpoint: records, per epoch, whether the file changed and the weights.
struct FileWatch {
  std::vector<int> written;                         // epochs after which the file changed
  std::vector<std::vector<Tensor<float>>> weights;  // at each epoch end
  std::string last;
};

LambdaCallback watch_file(Sequential<float>& net, const std::string& path, FileWatch& w) {
  return LambdaCallback().on_epoch_end([&net, path, &w](TrainingState& s) {
    const std::string now = read_bytes(path);
    if (!now.empty() && now != w.last) w.written.push_back(s.epoch);
    w.last = now;
    w.weights.push_back(weights_of(net));
  });
}

TEST(ModelCheckpoint, SaveBestOnlySavesOnImprovement) {
  TempDir dir;
  const std::string path = dir.file("best.faltung");
  Blobs d(40);
  Sequential<float> net = blob_classifier(7);
  net.compile(SparseCrossEntropy{}, Adam<float>(AdamOptions(1e-2)));
  auto cp = std::make_shared<ModelCheckpoint>(ModelCheckpoint(path).monitor("val_loss"));
  FileWatch w;
  const History h = net.fit(d.x, d.y,
                            FitOptions().epochs(6).batch_size(8).validation_split(0.25).verbose(0)
                                .callback(script("val_loss", {1.0, 0.8, 0.9, 0.7, 0.7, 0.75}))
                                .callbacks({cp})
                                .callback(watch_file(net, path, w)));
  EXPECT_EQ(h.epochs(), 6u);
  EXPECT_EQ(w.written, (std::vector<int>{0, 1, 3}));
  EXPECT_EQ(cp->saves(), 3);
  EXPECT_EQ(h.best_epoch, 3);
  ASSERT_EQ(w.weights.size(), 6u);
  // The file holds the best epoch's weights, not the last ones.
  Sequential<float> loaded = blob_classifier(99);
  loaded.load_weights(path);
  EXPECT_TRUE(bitwise_equal(weights_of(loaded), w.weights[3]));
  EXPECT_FALSE(bitwise_equal(weights_of(loaded), w.weights[5]));
}

TEST(ModelCheckpoint, AccuracyIsMaximisedAndEveryEpochWithoutBestOnly) {
  TempDir dir;
  Blobs d(40);
  Sequential<float> net = blob_classifier(7);
  net.compile(SparseCrossEntropy{}, Adam<float>(AdamOptions(1e-2)));
  FileWatch acc;
  const std::string acc_path = dir.file("acc.faltung");
  net.fit(d.x, d.y,
          FitOptions().epochs(4).batch_size(8).validation_split(0.25).verbose(0)
              .callback(script("val_accuracy", {0.5, 0.4, 0.6, 0.6}))
              .callback(ModelCheckpoint(acc_path).monitor("val_accuracy"))
              .callback(watch_file(net, acc_path, acc)));
  EXPECT_EQ(acc.written, (std::vector<int>{0, 2}));

  FileWatch every;
  const std::string every_path = dir.file("every.faltung");
  auto cp = std::make_shared<ModelCheckpoint>(ModelCheckpoint(every_path).save_best_only(false));
  net.fit(d.x, d.y, FitOptions().epochs(3).batch_size(8).verbose(0).callbacks({cp}).callback(watch_file(net, every_path, every)));
  EXPECT_EQ(every.written, (std::vector<int>{0, 1, 2}));
  EXPECT_EQ(cp->saves(), 3);
  Sequential<float> loaded = blob_classifier(99);
  loaded.load_weights(every_path);
  EXPECT_TRUE(bitwise_equal(weights_of(loaded), weights_of(net)));
}

TEST(ModelCheckpoint, UnknownMetricIsAClearError) {
  TempDir dir;
  Blobs d(20);
  Sequential<float> net = blob_classifier();
  net.compile(SparseCrossEntropy{}, Adam<float>());
  const std::string path = dir.file("x.faltung");
  const std::string msg =
      error_of([&] { net.fit(d.x, d.y, FitOptions().epochs(1).verbose(0).callback(ModelCheckpoint(path))); });
  EXPECT_NE(msg.find("ModelCheckpoint"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'val_loss'"), std::string::npos) << msg;
  EXPECT_FALSE(std::filesystem::exists(path));
}

TEST(Callbacks, AMetricThatFitWillNotReportFailsBeforeAnyTraining) {
  Blobs d(20);
  Sequential<float> net = blob_classifier();
  net.compile(SparseCrossEntropy{}, Adam<float>());
  const auto before = weights_of(net);
  int epochs_begun = 0;
  const auto counter = LambdaCallback().on_epoch_begin([&](TrainingState&) { ++epochs_begun; });
  const auto refused = [&](FitOptions o, const std::string& part) {
    epochs_begun = 0;
    const std::string msg = error_of([&] { net.fit(d.x, d.y, o.epochs(2).verbose(0).callback(counter)); });
    EXPECT_TRUE(contains(msg, part)) << msg;
    EXPECT_EQ(epochs_begun, 0) << msg;  // refused at the start: no epoch ran, nothing was lost
    EXPECT_TRUE(bitwise_equal(weights_of(net), before)) << msg;
  };
  refused(FitOptions().validation_split(0.25).callback(EarlyStopping().monitor("val_acc")),
          "EarlyStopping: monitored metric 'val_acc' is not available (available: loss, accuracy, val_loss, "
          "val_accuracy, lr)");
  refused(FitOptions().callback(EarlyStopping()),
          "EarlyStopping: monitored metric 'val_loss' is not available (available: loss, accuracy, lr); 'val_*' "
          "metrics need validation data");
  refused(FitOptions().callback(ModelCheckpoint("unused.faltung").monitor("val_accuracy")),
          "ModelCheckpoint: monitored metric 'val_accuracy' is not available");
  refused(FitOptions().callbacks({nullptr}), "Sequential::fit: callback 0 is null");
  // Without the accuracy metric, or with a loss that has none, there is no accuracy to watch.
  net.compile(SparseCrossEntropy{}, Adam<float>(), {});
  refused(FitOptions().validation_split(0.25).callback(EarlyStopping().monitor("val_accuracy")),
          "(available: loss, val_loss, lr)");
  // A checkpoint of every epoch watches nothing: no metric is needed.
  TempDir dir;
  EXPECT_NO_THROW(net.fit(d.x, d.y, FitOptions().verbose(0).callback(ModelCheckpoint(dir.file("every.faltung")).save_best_only(false))));
}

// ---------------------------------------------------------------------------------------------
// A non-finite loss stops training and keeps the last good weights

/// Fits with a LambdaCallback that records the weights after every batch; returns the history.
History fit_recording_batches(Sequential<float>& net, const Tensor<float>& x, const Tensor<float>& y, FitOptions o,
                              Calls& calls) {
  o.callback(LambdaCallback().on_batch_end([&](TrainingState& s) {
    calls.batches.emplace_back(s.epoch, s.batch);
    calls.weights.push_back(weights_of(net));
  }));
  return net.fit(x, y, o);
}

TEST(NonFiniteLoss, NaNInputStopsAtTheBadBatchAndKeepsTheWeightsBeforeIt) {
  Blobs d(16);
  d.x[9 * 4 + 2] = std::nanf("");  // row 9: batch 3 of 4 (batch size 4, no shuffling)
  Sequential<float> net = blob_classifier(8);
  net.compile(SparseCrossEntropy{}, Adam<float>(AdamOptions(1e-2)));
  Calls calls;
  const History h =
      fit_recording_batches(net, d.x, d.y, FitOptions().epochs(3).batch_size(4).shuffle(false).verbose(0), calls);
  ASSERT_EQ(calls.batches.size(), 2u);  // batches 1 and 2 of epoch 1 went through
  const auto w = weights_of(net);
  EXPECT_TRUE(all_finite(w));
  EXPECT_TRUE(bitwise_equal(w, calls.weights.back()));
  EXPECT_NE(h.stop_reason.find("epoch 1"), std::string::npos) << h.stop_reason;
  EXPECT_NE(h.stop_reason.find("batch 3"), std::string::npos) << h.stop_reason;
  EXPECT_LE(h.epochs(), 1u);
  for (double l : h.loss) EXPECT_TRUE(std::isfinite(l));
}

/// The (epoch, batch), both 1-based, of the batch after the last one a callback saw.
std::string bad_batch_after(const Calls& calls, std::size_t batches_per_epoch) {
  std::size_t epoch = 0, batch = 0;
  if (!calls.batches.empty()) {
    epoch = std::size_t(calls.batches.back().first);
    batch = calls.batches.back().second + 1;
    if (batch == batches_per_epoch) {
      ++epoch;
      batch = 0;
    }
  }
  return "epoch " + std::to_string(epoch + 1) + ", batch " + std::to_string(batch + 1);
}

TEST(NonFiniteLoss, HugeLearningRateStopsWithTheLastGoodWeights) {
  Blobs d(32);
  for (double lr : {1e3, 1e6, 1e12, 1e30}) {
    Sequential<float> net(9);
    net.add<Dense>(DenseOptions(8).activation(ActivationKind::ReLU)).add<Dense>(3);
    net.build({4});
    net.compile(SparseCrossEntropy{}, SGD<float>(SGDOptions(lr)));
    const auto initial = weights_of(net);
    Calls calls;
    const History h =
        fit_recording_batches(net, d.x, d.y, FitOptions().epochs(20).batch_size(4).shuffle(true).verbose(0), calls);
    ASSERT_FALSE(h.stop_reason.empty()) << "lr " << lr << ": the loss never became non-finite";
    const auto w = weights_of(net);
    EXPECT_TRUE(all_finite(w)) << "lr " << lr;
    // The weights after the last batch with a finite loss (or the initial ones).
    EXPECT_TRUE(bitwise_equal(w, calls.weights.empty() ? initial : calls.weights.back())) << "lr " << lr;
    EXPECT_NE(h.stop_reason.find(bad_batch_after(calls, 8)), std::string::npos) << "lr " << lr << ": " << h.stop_reason;
    EXPECT_LT(h.epochs(), 20u);
  }
}

TEST(NonFiniteLoss, AStepThatOverflowsTheWeightsIsUndone) {
  // Inputs of 1e6 and a rate of 1e35: the first step's loss is finite (about 1e6), but the
  // step itself overflows the weights to infinity; the next batch's loss is NaN. The weights
  // kept must be finite: those from before the overflowing step.
  Blobs d(32);
  for (std::size_t i = 0; i < d.x.size(); ++i) d.x[i] *= 1e6f;
  Sequential<float> net(9);
  net.add<Dense>(DenseOptions(8).activation(ActivationKind::ReLU)).add<Dense>(3);
  net.build({4});
  net.compile(SparseCrossEntropy{}, SGD<float>(SGDOptions(1e35)));
  const auto initial = weights_of(net);
  Calls calls;
  const History h =
      fit_recording_batches(net, d.x, d.y, FitOptions().epochs(3).batch_size(4).shuffle(false).verbose(0), calls);
  EXPECT_FALSE(h.stop_reason.empty());
  EXPECT_TRUE(all_finite(weights_of(net))) << h.stop_reason;
  EXPECT_TRUE(bitwise_equal(weights_of(net), initial)) << h.stop_reason;
}

TEST(NonFiniteLoss, TerminateOnNanFalseKeepsGoing) {
  Blobs d(16);
  d.x[9 * 4 + 2] = std::nanf("");
  Sequential<float> net = blob_classifier(8);
  net.compile(SparseCrossEntropy{}, Adam<float>(AdamOptions(1e-2)));
  Calls calls;
  const History h = fit_recording_batches(
      net, d.x, d.y, FitOptions().epochs(3).batch_size(4).shuffle(false).verbose(0).terminate_on_nan(false), calls);
  EXPECT_EQ(h.epochs(), 3u);
  EXPECT_TRUE(h.stop_reason.empty()) << h.stop_reason;
  EXPECT_EQ(calls.batches.size(), 12u);
  ASSERT_EQ(h.loss.size(), 3u);
  EXPECT_FALSE(std::isfinite(h.loss[0]));
}

TEST(NonFiniteLoss, MessageIsPrintedWhenVerbose) {
  Blobs d(16);
  d.x[1] = std::nanf("");  // row 0: batch 1
  Sequential<float> net = blob_classifier(8);
  net.compile(SparseCrossEntropy{}, Adam<float>());
  const auto before = weights_of(net);
  std::ostringstream out;
  const History h = net.fit(d.x, d.y, FitOptions().epochs(2).batch_size(4).shuffle(false).verbose(2).output(out));
  EXPECT_EQ(h.epochs(), 0u);
  EXPECT_TRUE(bitwise_equal(weights_of(net), before));
  EXPECT_NE(h.stop_reason.find("epoch 1, batch 1"), std::string::npos) << h.stop_reason;
  EXPECT_NE(out.str().find(h.stop_reason), std::string::npos) << out.str();
}

}  // namespace
