// Reproducibility: the same seed and the same thread count give bitwise the same weights, today
// and after any rework of the code. Both reference networks (benchmarks/reference_networks.hpp)
// train for a few steps on a fixed synthetic slice, at 1 and at 2 threads, and a hash of every
// final weight and of the predictions is compared with the value recorded for this build
// configuration.
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

#include "../benchmarks/reference_networks.hpp"
#include "faltung/faltung.hpp"

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

/// Hashes recorded for one configuration: each network at 1 and at 2 threads.
struct Golden {
  std::uint64_t small_1, small_2, notebook_1, notebook_2;
};

const std::map<std::string, Golden>& golden_hashes() {
  // Recorded on an AVX-512 machine (the native build, and builds with -march=haswell and with no
  // -march (x86-64, SSE2), FALTUNG_NATIVE=OFF, all Release) once the optimizers' square roots
  // became exact (optimizers/optimizer.hpp, sqrt_block): before, Eigen's approximate packet sqrt
  // made Adam's bits depend on the address of a stack buffer, so a change anywhere could move
  // them. The values recorded at fec1360 were, by the same measure, the exact-sqrt ones with the
  // approximation on top.
  static const std::map<std::string, Golden> table = {
      {"gcc 12, Eigen 3.4.0, avx512f avx512dq avx512bw avx512vl avx2 fma avx, OpenMP",
       {0xa5b09976a5d40b43, 0x89af5e0105a6513f, 0xc9f6c369ec7a0358, 0xa0517f7fadbe1fae}},
      {"gcc 12, Eigen 3.4.0, avx2 fma avx, OpenMP",
       {0xe4e82d59ddb0e80, 0x424df13cfb28213f, 0xeda1c3aa58ec0a15, 0xe359d55a562c9bf}},
      {"gcc 12, Eigen 3.4.0, generic, OpenMP",
       {0xd6ec4b1a5375a476, 0xcb385fa24ae214ec, 0x7393a9a9991fe666, 0x19ed1c4036004764}},
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

TEST(Reproducibility, SameSeedAndThreadsGiveTheRecordedWeights) {
  std::map<std::string, std::uint64_t> got;
  for (const char* name : {"small", "notebook"})
    for (int threads : {1, 2}) {
      const std::uint64_t h = train_and_hash(name, threads);
      // Whatever the configuration: a second run in the same process gives the same bits.
      EXPECT_EQ(h, train_and_hash(name, threads)) << name << " at " << threads << " thread(s): two runs differ";
      got[std::string(name) + "_" + std::to_string(threads)] = h;
    }
  const std::string config = build_configuration();
  const std::string computed = "{" + hex(got["small_1"]) + ", " + hex(got["small_2"]) + ", " +
                               hex(got["notebook_1"]) + ", " + hex(got["notebook_2"]) + "}";
  const auto it = golden_hashes().find(config);
  if (it == golden_hashes().end())
    GTEST_SKIP() << "no recorded hashes for the configuration \"" << config
                 << "\"; to record this build's: {\"" << config << "\", " << computed << "}";
  const Golden& g = it->second;
  EXPECT_EQ(hex(got["small_1"]), hex(g.small_1)) << "small network, 1 thread";
  EXPECT_EQ(hex(got["small_2"]), hex(g.small_2)) << "small network, 2 threads";
  EXPECT_EQ(hex(got["notebook_1"]), hex(g.notebook_1)) << "notebook network, 1 thread";
  EXPECT_EQ(hex(got["notebook_2"]), hex(g.notebook_2)) << "notebook network, 2 threads";
}

}  // namespace
