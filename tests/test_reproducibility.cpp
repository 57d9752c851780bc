// Reproducibility: the same seed gives bitwise the same weights, at any thread count, today and
// after any rework of the code. Every reduction in the kernels sums in an order fixed by the
// shapes alone (the convolutions' batch chunks, kernels/conv2d/gradients.hpp; Dense's row blocks,
// kernels/dense.hpp), never by how the work is shared among threads; that is what lets the
// trainer change its thread count from step to step (model/adaptive_threads.hpp). Both reference
// networks (benchmarks/reference_networks.hpp) train for a few steps on a fixed synthetic slice,
// at 1 and at 2 threads, and a hash of every final weight and of the predictions is compared with
// the one value recorded for this build configuration; other tests compare the gradients of one
// pass and the weights after training with each optimizer at 1, 2 and 3 threads bit for bit.
//
// The bits depend on the instructions the kernels and Eigen are compiled for (AVX-512, AVX2 + FMA
// or neither: different GEMM tiles, different summation orders), on the compiler (floating-point
// contraction into FMAs) and on Eigen's version, so the recorded values are keyed by all of
// these. A configuration without a recorded value is skipped with a message that prints the
// hashes to record, never passed: only "the same run twice gives the same bits" is checked there.
//
// A change that alters the numbers on purpose (a new kernel with another summation order) records
// new values here, and says so in its commit message.

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "../benchmarks/reference_networks.hpp"
#include "faltung/faltung.hpp"
#include "model_fixtures.hpp"

using namespace faltung;

namespace {

/// The compile-time configuration the numbers depend on, e.g. "gcc 12, Eigen 3.4.0, avx512f
/// avx512dq avx512bw avx512vl avx2 fma avx, OpenMP".
std::string build_configuration() {
  std::ostringstream os;
#if defined(__clang__)
  os << "clang " << __clang_major__;
#elif defined(__GNUC__)
  os << "gcc " << __GNUC__;
#elif defined(_MSC_VER)
  os << "msvc " << _MSC_VER;
#else
  os << "unknown compiler";
#endif
  os << ", Eigen " << EIGEN_WORLD_VERSION << '.' << EIGEN_MAJOR_VERSION << '.' << EIGEN_MINOR_VERSION << ',';
  std::string isa;
#if defined(__AVX512F__)
  isa += " avx512f";
#endif
#if defined(__AVX512DQ__)
  isa += " avx512dq";
#endif
#if defined(__AVX512BW__)
  isa += " avx512bw";
#endif
#if defined(__AVX512VL__)
  isa += " avx512vl";
#endif
#if defined(__AVX2__)
  isa += " avx2";
#endif
#if defined(__FMA__)
  isa += " fma";
#endif
#if defined(__AVX__)
  isa += " avx";
#endif
  os << (isa.empty() ? std::string(" generic") : isa);
  os << (FALTUNG_HAS_OPENMP ? ", OpenMP" : ", no OpenMP");
  return os.str();
}

/// Hashes recorded for one configuration: each network, at any thread count.
struct Golden {
  std::uint64_t small, notebook;
};

const std::map<std::string, Golden>& golden_hashes() {
  // Recorded on an AVX-512 machine (the native build, and builds with -march=haswell and with no
  // -march (x86-64, SSE2), FALTUNG_NATIVE=OFF, all Release) once the results stopped depending on
  // the thread count: the convolutions' weight gradients sum fixed chunks of the batch instead of
  // one slice per thread, and Eigen's products (the generic build) run in fixed row blocks, each
  // on one thread. Before, each configuration had one value per thread count. The generic
  // build's is its old 1-thread value: there Eigen adds each sample's product to the partial as a
  // whole, so one partial per chunk or per thread sums the same way from a zero gradient.
  static const std::map<std::string, Golden> table = {
      {"gcc 12, Eigen 3.4.0, avx512f avx512dq avx512bw avx512vl avx2 fma avx, OpenMP", {0xbcf9aa0a2f7ba3bb, 0x2d420c474e51be2a}},
      {"gcc 12, Eigen 3.4.0, avx2 fma avx, OpenMP", {0xa3633200f9f10cfe, 0x6dc4479a4a48dfac}},
      {"gcc 12, Eigen 3.4.0, generic, OpenMP", {0xd6ec4b1a5375a476, 0x7393a9a9991fe666}},
  };
  return table;
}

/// FNV-1a, 64 bits, over raw bytes.
struct Fnv1a {
  std::uint64_t h = 14695981039346656037ull;
  void add(const void* data, std::size_t bytes) {
    const auto* p = static_cast<const unsigned char*>(data);
    for (std::size_t i = 0; i < bytes; ++i) {
      h ^= p[i];
      h *= 1099511628211ull;
    }
  }
};

/// Trains reference network `name` (seed 42) for two steps of 16 samples, with shuffling and
/// dropout, at `threads` threads, and hashes every parameter's value, in parameters() order,
/// then the predicted probabilities of the first 8 samples.
std::uint64_t train_and_hash(const std::string& name, int threads) {
  const int saved = num_threads();
  set_num_threads(threads);
  Sequential<float> net = bench::make_network(name);
  const std::size_t n = 32;
  Tensor<float> x(Shape{n, 1, 28, 28}), y(Shape{n});
  Random data(7);
  for (float& v : x) v = float(data.uniform());
  for (std::size_t i = 0; i < n; ++i) y[i] = float(i % 10);
  net.fit(x, y, FitOptions().epochs(1).batch_size(16).verbose(0));
  Tensor<float> first(Shape{8, 1, 28, 28});
  std::memcpy(first.data(), x.data(), first.size() * sizeof(float));
  const Tensor<float> p = net.predict(first);
  Fnv1a hash;
  for (Parameter<float>* param : net.parameters()) hash.add(param->value.data(), param->value.size() * sizeof(float));
  hash.add(p.data(), p.size() * sizeof(float));
  set_num_threads(saved);
  return hash.h;
}

std::string hex(std::uint64_t v) {
  std::ostringstream os;
  os << "0x" << std::hex << v;
  return os.str();
}

/// One forward and backward pass of reference network `name` (in training mode, so with
/// dropout) on a batch of `batch` random images and a random output gradient, at `threads`
/// threads: the output, then every parameter's gradient (the input gradient is not exposed: the
/// first layer's gradients depend on every layer's input gradient above it).
template <class T>
std::vector<Tensor<T>> gradients_at(const std::string& name, std::size_t batch, int threads) {
  const int saved = num_threads();
  set_num_threads(threads);
  Sequential<T> net = make_sequential<T>(bench::reference_network_spec(name), {1, 28, 28});
  net.set_training(true);
  const Tensor<T> x = test::random_tensor<T>(Shape{batch, 1, 28, 28}, 3);
  const Tensor<T>& out = net.forward(x);
  std::vector<Tensor<T>> result{out};
  const Tensor<T> dout = test::random_tensor<T>(out.shape(), 5);
  net.zero_grad();
  net.backward(dout);
  for (Parameter<T>* p : net.parameters()) result.push_back(p->grad);
  set_num_threads(saved);
  return result;
}

/// Compares, bit for bit, the output and every parameter's gradient of one training pass at 2
/// and 3 threads with those at 1 thread, naming each tensor that differs: every reduction whose
/// order followed the thread count shows up here.
template <class T>
void expect_gradients_independent_of_threads(const std::string& name, std::size_t batch) {
  const std::vector<Tensor<T>> one = gradients_at<T>(name, batch, 1);
  for (int threads : {2, 3}) {
    const std::vector<Tensor<T>> other = gradients_at<T>(name, batch, threads);
    ASSERT_EQ(one.size(), other.size());
    for (std::size_t i = 0; i < one.size(); ++i) {
      ASSERT_EQ(one[i].size(), other[i].size());
      std::size_t differ = 0;
      for (std::size_t j = 0; j < one[i].size(); ++j)
        differ += std::memcmp(&one[i][j], &other[i][j], sizeof(T)) != 0;
      EXPECT_EQ(differ, 0u) << name << " at batch " << batch << ", " << threads << " threads against 1: "
                            << (i == 0 ? std::string("the output") : "the gradient of parameter " + std::to_string(i - 1))
                            << " differs in " << differ << " of " << one[i].size() << " elements";
    }
  }
}

TEST(Reproducibility, GradientsAreTheSameAtAnyThreadCount) {
  for (const char* name : {"small", "notebook"})
    for (std::size_t batch : {64, 37}) expect_gradients_independent_of_threads<float>(name, batch);
  // double takes Eigen's products (as float does in a build without AVX2 / AVX-512)
  expect_gradients_independent_of_threads<double>("small", 29);
}

TEST(Reproducibility, SameSeedGivesTheRecordedWeightsAtAnyThreadCount) {
  std::map<std::string, std::uint64_t> got;
  for (const char* name : {"small", "notebook"}) {
    const std::uint64_t h = train_and_hash(name, 1);
    // Whatever the configuration: a second run in the same process gives the same bits, and so
    // does a run at another thread count.
    EXPECT_EQ(hex(h), hex(train_and_hash(name, 1))) << name << ": two runs at 1 thread differ";
    EXPECT_EQ(hex(h), hex(train_and_hash(name, 2))) << name << ": 2 threads differ from 1";
    got[name] = h;
  }
  const std::string config = build_configuration();
  const std::string computed = "{" + hex(got["small"]) + ", " + hex(got["notebook"]) + "}";
  const auto it = golden_hashes().find(config);
  if (it == golden_hashes().end())
    GTEST_SKIP() << "no recorded hashes for the configuration \"" << config
                 << "\"; to record this build's: {\"" << config << "\", " << computed << "}";
  EXPECT_EQ(hex(got["small"]), hex(it->second.small)) << "small network; this build's: " << computed;
  EXPECT_EQ(hex(got["notebook"]), hex(it->second.notebook)) << "notebook network; this build's: " << computed;
}

/// Every weight of reference network `name` after three steps of 16 samples (shuffled, with
/// dropout) with `optimizer`, at `threads` threads.
template <class O>
std::vector<Tensor<float>> weights_after_training(const std::string& name, const O& optimizer, int threads) {
  const int saved = num_threads();
  set_num_threads(threads);
  Sequential<float> net = make_sequential<float>(bench::reference_network_spec(name), {1, 28, 28});
  net.compile(SparseCrossEntropy{}, optimizer);
  const std::size_t n = 48;
  const Tensor<float> x = test::random_tensor<float>(Shape{n, 1, 28, 28}, 11);
  Tensor<float> y(Shape{n});
  for (std::size_t i = 0; i < n; ++i) y[i] = float(i % 10);
  net.fit(x, y, FitOptions().epochs(1).batch_size(16).verbose(0));
  set_num_threads(saved);
  return test::weights_of(net);
}

template <class O>
void expect_training_independent_of_threads(const O& optimizer, const char* what) {
  for (const char* name : {"small", "notebook"}) {
    const std::vector<Tensor<float>> one = weights_after_training(name, optimizer, 1);
    for (int threads : {2, 3}) {
      const std::vector<Tensor<float>> other = weights_after_training(name, optimizer, threads);
      ASSERT_EQ(one.size(), other.size());
      for (std::size_t i = 0; i < one.size(); ++i)
        EXPECT_EQ(0, std::memcmp(one[i].data(), other[i].data(), one[i].size() * sizeof(float)))
            << what << ", " << name << " network: parameter " << i << " at " << threads
            << " threads differs from 1 thread";
    }
  }
}

TEST(Reproducibility, TrainingGivesTheSameWeightsAtOneTwoAndThreeThreads) {
  expect_training_independent_of_threads(SGD<float>(SGDOptions(0.05).momentum(0.9).nesterov(true)), "SGD");
  expect_training_independent_of_threads(Adam<float>(AdamOptions(1e-3)), "Adam");
  expect_training_independent_of_threads(RMSProp<float>(RMSPropOptions(1e-3).momentum(0.5)), "RMSProp");
  expect_training_independent_of_threads(Adagrad<float>(AdagradOptions(0.01)), "Adagrad");
}

}  // namespace
