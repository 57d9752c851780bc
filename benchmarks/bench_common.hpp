#pragma once
// What every faltung benchmark program shares: the thread counts to measure and the FP32 FMA peak
// of this machine, measured in the same run so that "% of peak" needs no outside figure.
//
// Thread counts come from FALTUNG_BENCH_THREADS ("1,2", "16"; default: 1 and the machine's
// OpenMP maximum). Each benchmark calls faltung::set_num_threads itself.

#include <faltung/tensor.hpp>
#include <faltung/threading.hpp>

#include <benchmark/benchmark.h>

#include <chrono>
#include <ctime>
#include <cstdlib>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <faltung/kernels/gemm.hpp>  // simd::VecF: the vector the kernels compute with

namespace bench {

inline std::vector<int> thread_counts() {
  std::vector<int> counts;
  if (const char* env = std::getenv("FALTUNG_BENCH_THREADS")) {
    std::stringstream ss(env);
    std::string item;
    while (std::getline(ss, item, ','))
      if (!item.empty()) counts.push_back(std::atoi(item.c_str()));
  }
  if (counts.empty()) {
    counts.push_back(1);
    if (faltung::num_threads() > 1) counts.push_back(faltung::num_threads());
  }
  return counts;
}

#if FALTUNG_HAS_SIMD_GEMM
using Vec = faltung::kernels::simd::VecF;
#else
/// One float, standing in for the kernels' vector where they have none.
struct Vec {
  using Reg = float;
  static constexpr int lanes = 1;
  static Reg set1(float v) { return v; }
  static Reg fma(Reg a, Reg b, Reg c) { return a * b + c; }
  static Reg add(Reg a, Reg b) { return a + b; }
  static float sum(Reg v) { return v; }
};
#endif

/// Uniform values in [-1, 1), the same for the same seed.
inline void fill_random(faltung::Tensor<float>& t, unsigned seed) {
  std::mt19937 g(seed);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  for (float& v : t) v = u(g);
}

/// FLOPs per call of fma_block: kChains independent accumulators, kSteps rounds.
constexpr int kChains = 16, kSteps = 1024, kLanes = Vec::lanes;
constexpr double kBlockFlops = 2.0 * kChains * kLanes * kSteps;

/// kChains independent FMA chains on registers, in the vector the kernels use (AVX-512, AVX2 or
/// a plain float): enough in flight to cover the FMA latency on every FMA pipe, so the loop runs
/// at the pipes' throughput. The asm barrier keeps the compiler from folding the steps. The chain
/// loops must be unrolled completely: otherwise acc[] lives on the stack and the loop measures
/// store-to-load forwarding instead (this benchmark reported 61.5 GFLOP/s on a Zen 5 core whose
/// real peak is about 220).
inline float fma_block(float seed) {
  Vec::Reg acc[kChains];
  const Vec::Reg a = Vec::set1(0.999999f), b = Vec::set1(1e-7f);
  FALTUNG_UNROLL
  for (int c = 0; c < kChains; ++c) acc[c] = Vec::set1(seed + float(c));
  for (int s = 0; s < kSteps; ++s) {
    FALTUNG_UNROLL
    for (int c = 0; c < kChains; ++c) acc[c] = Vec::fma(acc[c], a, b);
#if FALTUNG_HAS_SIMD_GEMM
    __asm__ volatile("" : "+v"(acc[0]));
#endif
  }
  FALTUNG_UNROLL
  for (int c = 1; c < kChains; ++c) acc[0] = Vec::add(acc[0], acc[c]);
  return Vec::sum(acc[0]);
}

/// Seconds of CPU time the calling thread has used.
inline double thread_cpu_seconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

/// FMA peak in FLOP/s with `threads` threads, each running fma_block: the best of a few tries.
/// One thread: per CPU second of that thread, the same clock the single-thread benchmarks use
/// (these machines are shared; wall time would count time the thread was not running). Several
/// threads: per wall-clock second, as those benchmarks are timed.
inline double measure_fma_peak(int threads) {
  double best = 0;
  for (int attempt = 0; attempt < 7; ++attempt) {
    const int blocks = 2000;
    const auto t0 = std::chrono::steady_clock::now();
    const double c0 = thread_cpu_seconds();
    float sink = 0;
#pragma omp parallel num_threads(threads) reduction(+ : sink)
    for (int i = 0; i < blocks; ++i) sink += fma_block(float(i));
    benchmark::DoNotOptimize(sink);
    const double s = threads == 1 ? thread_cpu_seconds() - c0
                                  : std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, kBlockFlops * blocks * threads / s);
  }
  return best;
}

/// Single-thread benchmarks are timed in CPU time, the others in wall time (see measure_fma_peak).
inline benchmark::internal::Benchmark* timed(benchmark::internal::Benchmark* b, int threads) {
  return threads == 1 ? b : b->UseRealTime();
}

/// The peak per thread count, measured once per process on first use.
inline double fma_peak(int threads) {
  static std::map<int, double> peaks;
  auto it = peaks.find(threads);
  if (it == peaks.end()) it = peaks.emplace(threads, measure_fma_peak(threads)).first;
  return it->second;
}

/// Benchmark that reports the FMA peak itself (GFLOP/s counter), so the table shows it.
inline void BM_fma_peak(benchmark::State& state, int threads) {
  float sink = 0;
  for (auto _ : state) {
#pragma omp parallel num_threads(threads) reduction(+ : sink)
    for (int i = 0; i < 64; ++i) sink += fma_block(float(i));
  }
  benchmark::DoNotOptimize(sink);
  state.counters["FLOP/s"] =
      benchmark::Counter(kBlockFlops * 64 * threads, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["threads"] = threads;
}

}  // namespace bench
