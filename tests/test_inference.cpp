// InferenceModel (model/inference_model.hpp): the same predictions as the Sequential it came
// from, bit for bit, without any training state, and from many threads at once.
//
// The tests named ConcurrentInference.* are what .ci/run's ThreadSanitizer stage runs (see
// tests/tsan.supp and the README's "Thread safety"): keep them small (the small network, a few
// samples per thread), since that build runs them at -O0 and TSan several times slower again.

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "../benchmarks/reference_networks.hpp"
#include "faltung/faltung.hpp"
#include "model_fixtures.hpp"
#include "test_support.hpp"

namespace {

using namespace faltung;
using test::bitwise_equal;
using test::contains;
using test::error_of;
using test::random_tensor;

/// Sets the calling thread's kernel thread count for a scope.
using Threads = ScopedNumThreads;

/// Reference network `name` in scalar T, compiled as the benchmarks compile it and trained for
/// one step of 8 samples (so the weights, gradients, optimizer moments, dropout streams and the
/// layers' buffers all hold something an inference model must not carry along).
template <class T>
Sequential<T> trained_network(const std::string& name) {
  Sequential<T> net = make_sequential<T>(bench::reference_network_spec(name), {1, 28, 28});
  net.compile(SparseCrossEntropy{}, Adam<T>(AdamOptions(1e-3).epsilon(1e-7)));
  const Tensor<T> x = random_tensor<T>({8, 1, 28, 28}, 3);
  Tensor<T> y(Shape{8});
  for (std::size_t i = 0; i < 8; ++i) y[i] = T(i % 10);
  net.train_on_batch(x, y);
  return net;
}

template <class T>
void expect_predictions_match(const std::string& name) {
  SCOPED_TRACE(name);
  Sequential<T> net = trained_network<T>(name);
  ASSERT_EQ(net.execution()[0]->type(), "ConvPool");  // the fused path is the one compared
  const Tensor<T> x = random_tensor<T>({11, 1, 28, 28}, 5);
  for (int threads : {1, 2}) {
    SCOPED_TRACE(threads);
    Tensor<T> expected;
    {
      const Threads t(threads);
      expected = net.predict(x, 4);  // 4 + 4 + 3: a short last batch
    }
    const InferenceModel<T> copied(net, InferenceOptions().threads(threads));
    EXPECT_TRUE(bitwise_equal(copied.predict(x, 4), expected));
    typename InferenceModel<T>::Workspace ws;
    EXPECT_TRUE(bitwise_equal(copied.predict(x, ws, 4), expected));
    EXPECT_TRUE(bitwise_equal(copied.predict(x, ws, 4), expected)) << "a reused workspace";
    Sequential<T> copy = net;
    const InferenceModel<T> moved(std::move(copy), InferenceOptions().threads(threads));
    EXPECT_TRUE(bitwise_equal(moved.predict(x, 4), expected));
    EXPECT_EQ(copy.size(), 0u) << "the model moved from is left empty";
    EXPECT_EQ(moved.spec(), net.spec());
    EXPECT_EQ(moved.parameter_count(), net.parameter_count());
  }
  // Probabilities: every row sums to 1.
  const Tensor<T> p = InferenceModel<T>(net).predict(x);
  for (std::size_t i = 0; i < p.dim(0); ++i) {
    T sum = 0;
    for (std::size_t k = 0; k < p.dim(1); ++k) sum += p[i * p.dim(1) + k];
    EXPECT_NEAR(double(sum), 1.0, 1e-5);
  }
}

TEST(InferenceModel, PredictsBitwiseWhatTheSequentialPredicts) {
  expect_predictions_match<float>("small");
  expect_predictions_match<float>("notebook");
  expect_predictions_match<double>("small");
  expect_predictions_match<double>("notebook");
}

TEST(InferenceModel, EveryLayerKindMatches) {
  // Layers run one by one (a tanh convolution is not fused), every activation layer, Dropout in
  // inference mode, a pool on its own, and a Dense with an activation of its own.
  const std::string spec =
      "conv:4:3:same:tanh,pool:2,drop:0.3,conv:3:3:relu,leaky_relu=0.2,pool:2:s1,flatten,dense:6:sigmoid,tanh,"
      "dense:5:nobias,relu,dense:4,softmax";
  Sequential<double> net = make_sequential<double>(spec, {2, 10, 10});
  net.compile(SparseCrossEntropy{}, SGD<double>());
  const Tensor<double> x = random_tensor<double>({5, 2, 10, 10}, 8);
  Tensor<double> y(Shape{5});
  net.train_on_batch(x, y);  // Dropout now has a mask, training on
  const Tensor<double> expected = net.predict(x, 2);
  EXPECT_TRUE(bitwise_equal(InferenceModel<double>(net).predict(x, 2), expected));
}

TEST(InferenceModel, KeepsNoTrainingState) {
  Sequential<float> net = trained_network<float>("small");
  const InferenceModel<float> model(net);
  std::size_t weights = 0;
  for (std::size_t i = 0; i < model.size(); ++i) {
    // parameters() is not const (the training loop hands the pointers to the optimizer): the
    // test looks through it.
    for (Parameter<float>* p : const_cast<Layer<float>&>(model.layer(i)).parameters()) {
      EXPECT_EQ(p->grad.size(), 0u) << model.layer(i).name() << " " << p->name;
      weights += p->value.size();
    }
    EXPECT_FALSE(model.layer(i).training());
  }
  EXPECT_EQ(weights, net.parameter_count());
  EXPECT_EQ(model.parameter_count(), net.parameter_count());
  // The weights are the trained ones, copied.
  std::vector<Tensor<float>> copied;
  for (std::size_t i = 0; i < model.size(); ++i)
    for (Parameter<float>* p : const_cast<Layer<float>&>(model.layer(i)).parameters()) copied.push_back(p->value);
  EXPECT_TRUE(bitwise_equal(copied, test::weights_of(net)));
  // The Sequential it was copied from trains on.
  const Tensor<float> x = random_tensor<float>({4, 1, 28, 28}, 2);
  Tensor<float> y(Shape{4});
  net.train_on_batch(x, y);
}

TEST(InferenceModel, OutputActivation) {
  Sequential<float> net = make_sequential<float>("flatten,dense:3", {2, 2});
  const Tensor<float> x = random_tensor<float>({4, 2, 2}, 1);
  // Never compiled: the raw outputs, as Sequential::predict gives them.
  EXPECT_TRUE(InferenceModel<float>(net).output_activation().is_linear());
  EXPECT_TRUE(bitwise_equal(InferenceModel<float>(net).predict(x), net.predict(x)));
  // Compiled: the loss's output activation; or the one the options name.
  Sequential<float> compiled = net;
  compiled.compile(SparseCrossEntropy{}, SGD<float>());
  const Tensor<float> probabilities = compiled.predict(x);
  EXPECT_TRUE(bitwise_equal(InferenceModel<float>(compiled).predict(x), probabilities));
  const InferenceModel<float> softmax(net, InferenceOptions().output_activation(ActivationKind::Softmax));
  EXPECT_TRUE(bitwise_equal(softmax.predict(x), probabilities));
  Sequential<float> binary = make_sequential<float>("flatten,dense:1", {2, 2});
  binary.compile(BinaryCrossEntropy{}, SGD<float>());
  EXPECT_EQ(InferenceModel<float>(binary).output_activation().kind, ActivationKind::Sigmoid);
  EXPECT_TRUE(bitwise_equal(InferenceModel<float>(binary).predict(x), binary.predict(x)));
  EXPECT_EQ(InferenceModel<float>(compiled).predict_classes(x), compiled.predict_classes(x));
}

TEST(InferenceModel, LoadsFromAModelFile) {
  test::TempDir dir;
  Sequential<float> net = trained_network<float>("small");
  net.save(dir.path("small.faltung"));
  const Tensor<float> x = random_tensor<float>({3, 1, 28, 28}, 4);
  // What load_model's Sequential predicts, whatever the file says of the output activation.
  const Tensor<float> loaded = load_model<float>(dir.path("small.faltung")).predict(x);
  EXPECT_TRUE(bitwise_equal(load_inference_model<float>(dir.path("small.faltung")).predict(x), loaded));
  // The file stores the loss's output activation, so that is the trained model's probabilities.
  EXPECT_TRUE(bitwise_equal(loaded, net.predict(x)));
  // With the activation named, the trained model's probabilities.
  const auto model = load_inference_model<float>(dir.path("small.faltung"),
                                                 InferenceOptions().output_activation(ActivationKind::Softmax));
  EXPECT_TRUE(bitwise_equal(model.predict(x), net.predict(x)));
  EXPECT_TRUE(contains(error_of([&] { load_inference_model<float>(dir.path("missing.faltung")); }), "missing.faltung"));
}

TEST(InferenceModel, Errors) {
  Sequential<float> unbuilt;
  unbuilt.add<Dense>(3);
  EXPECT_TRUE(contains(error_of([&] { InferenceModel<float> m(unbuilt); }), "build the model first"));
  EXPECT_TRUE(contains(error_of([] { InferenceOptions().threads(-1); }), "got -1"));
  EXPECT_TRUE(contains(error_of([] { InferenceOptions().output_activation(Activation(ActivationKind::LeakyReLU, -1)); }),
                       "InferenceOptions::output_activation"));
  const InferenceModel<float> model(make_sequential<float>("flatten,dense:3", {2, 2}));
  const std::string wrong = error_of([&] { model.predict(Tensor<float>(Shape{4, 3, 2})); });
  EXPECT_TRUE(contains(wrong, "InferenceModel::predict")) << wrong;
  EXPECT_TRUE(contains(wrong, "(2, 2)")) << wrong;
  EXPECT_TRUE(contains(wrong, "(4, 3, 2)")) << wrong;
  EXPECT_TRUE(contains(error_of([&] { model.predict(Tensor<float>(Shape{4, 2, 2}), 0); }), "batch_size"));
  EXPECT_TRUE(contains(error_of([&] { model.layer(2); }), "index 2 out of range"));
  // An empty batch gives an empty result.
  EXPECT_EQ(model.predict(Tensor<float>(Shape{0, 2, 2})).shape(), (Shape{0, 3}));
  // A failed call gives its workspace back.
  EXPECT_EQ(model.pooled_workspaces(), 1u);
}

TEST(InferenceModel, TheCallersThreadCountIsRestored) {
  const InferenceModel<float> model(make_sequential<float>("flatten,dense:3", {2, 2}), InferenceOptions().threads(1));
  const Threads t(2);
  model.predict(Tensor<float>(Shape{1, 2, 2}));
  EXPECT_EQ(num_threads(), FALTUNG_HAS_OPENMP ? 2 : 1);
}

// ---- many threads at once ------------------------------------------------------------------

/// Runs body(t) on `count` std::threads that start together (each waits until all exist).
template <class Body>
void run_together(int count, const Body& body) {
  std::atomic<int> ready{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < count; ++t)
    threads.emplace_back([&, t] {
      ready.fetch_add(1);
      while (ready.load() < count) std::this_thread::yield();
      body(t);
    });
  for (std::thread& th : threads) th.join();
}

constexpr int kThreads = 8;

TEST(ConcurrentInference, EightThreadsGiveTheSequentialResult) {
  const Threads one(1);  // the reference at the thread count each call runs its kernels with
  Sequential<float> net = trained_network<float>("small");
  std::vector<Tensor<float>> inputs, expected;
  for (int t = 0; t < kThreads; ++t) {
    inputs.push_back(random_tensor<float>({std::size_t(1 + t % 3), 1, 28, 28}, 100 + std::uint64_t(t)));
    expected.push_back(net.predict(inputs.back()));
  }
  const InferenceModel<float> model(std::move(net));
  // Different inputs, then all the same input, twice each, on the pooled workspaces.
  std::vector<Tensor<float>> got(kThreads * 4);
  run_together(kThreads, [&](int t) {
    for (int round = 0; round < 2; ++round) {
      got[std::size_t(t * 4 + round)] = model.predict(inputs[std::size_t(t)]);
      got[std::size_t(t * 4 + 2 + round)] = model.predict(inputs[0]);
    }
  });
  for (int t = 0; t < kThreads; ++t)
    for (int round = 0; round < 2; ++round) {
      EXPECT_TRUE(bitwise_equal(got[std::size_t(t * 4 + round)], expected[std::size_t(t)])) << t;
      EXPECT_TRUE(bitwise_equal(got[std::size_t(t * 4 + 2 + round)], expected[0])) << t;
    }
  EXPECT_GE(model.pooled_workspaces(), 1u);
  EXPECT_LE(model.pooled_workspaces(), std::size_t(kThreads));
}

TEST(ConcurrentInference, EightThreadsWithWorkspacesOfTheirOwn) {
  const Threads one(1);
  Sequential<float> net = trained_network<float>("small");
  const Tensor<float> x = random_tensor<float>({2, 1, 28, 28}, 7);
  const Tensor<float> expected = net.predict(x);
  const InferenceModel<float> model(net);
  std::vector<int> equal(kThreads, 0);
  run_together(kThreads, [&](int t) {
    InferenceModel<float>::Workspace ws;
    equal[std::size_t(t)] = bitwise_equal(model.predict(x, ws), expected) && bitwise_equal(model.predict(x, ws), expected);
  });
  for (int t = 0; t < kThreads; ++t) EXPECT_TRUE(equal[std::size_t(t)]) << t;
  EXPECT_EQ(model.pooled_workspaces(), 0u);
}

TEST(ConcurrentInference, TwoKernelThreadsInEachOfFourCalls) {
  // Each call starts OpenMP teams of its own (two threads each) inside the kernels.
  const Threads two(2);
  Sequential<float> net = trained_network<float>("small");
  const Tensor<float> x = random_tensor<float>({2, 1, 28, 28}, 11);
  const Tensor<float> expected = net.predict(x);
  const InferenceModel<float> model(net, InferenceOptions().threads(2));
  std::vector<int> equal(4, 0);
  run_together(4, [&](int t) { equal[std::size_t(t)] = bitwise_equal(model.predict(x), expected); });
  for (int t = 0; t < 4; ++t) EXPECT_TRUE(equal[std::size_t(t)]) << t;
}

/// A user's layer that overrides only forward_impl and keeps a buffer in itself: InferenceModel
/// runs it one thread at a time (Layer's default infer_impl).
template <class T>
class AddOne : public Layer<T> {
 public:
  std::string type() const override { return "AddOne"; }
  std::string default_name() const override { return "add_one"; }
  std::string spec() const override { return "add_one"; }
  Shape output_shape(const Shape& in) const override { return in; }
  std::unique_ptr<Layer<T>> clone() const override { return std::make_unique<AddOne>(*this); }

 protected:
  void forward_impl(const Tensor<T>& x, Tensor<T>& y) override {
    scratch_ = x;  // state in the layer: two threads at once would race on it
    for (T& v : scratch_) v += T(1);
    y = scratch_;
  }
  void backward_impl(const Tensor<T>&, const Tensor<T>&, const Tensor<T>& dy, Tensor<T>& dx) override {
    if (this->input_grad_needed()) dx = dy;
  }

 private:
  Tensor<T> scratch_;
};

TEST(ConcurrentInference, AUsersOwnLayerRunsOneThreadAtATime) {
  const Threads one(1);
  Sequential<float> net;
  net.add(AddOne<float>()).add<Dense>(3).add(AddOne<float>());
  net.build({4});
  const Tensor<float> x = random_tensor<float>({3, 4}, 1);
  const Tensor<float> expected = net.predict(x);
  const InferenceModel<float> model(net);
  std::vector<int> equal(kThreads, 0);
  run_together(kThreads, [&](int t) {
    bool same = true;
    for (int round = 0; round < 20; ++round) same = same && bitwise_equal(model.predict(x), expected);
    equal[std::size_t(t)] = same;
  });
  for (int t = 0; t < kThreads; ++t) EXPECT_TRUE(equal[std::size_t(t)]) << t;
}

}  // namespace
