#pragma once
// What every faltung benchmark program shares: the thread counts to measure and the FP32 FMA peak
// of this machine, measured in the same run so that "% of peak" needs no outside figure.
//
// Thread counts come from FALTUNG_BENCH_THREADS ("1,2", "16"; default: 1 and the machine's
// OpenMP maximum). Each benchmark calls faltung::set_num_threads itself.

#include <faltung/threading.hpp>

#include <benchmark/benchmark.h>

#include <chrono>
#include <ctime>
#include <cstdlib>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

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

/// FLOPs per call of fma_block: kChains independent accumulators, kSteps rounds.
constexpr int kChains = 16, kSteps = 1024;
#if defined(__AVX512F__)
constexpr int kLanes = 16;
#elif defined(__AVX2__)
constexpr int kLanes = 8;
#else
constexpr int kLanes = 1;
#endif
constexpr double kBlockFlops = 2.0 * kChains * kLanes * kSteps;

/// kChains independent FMA chains on registers: enough in flight to cover the FMA latency on
/// every FMA pipe, so the loop runs at the pipes' throughput. The asm barrier keeps the compiler
/// from folding the steps. The chain loop must be unrolled completely: otherwise acc[] lives on
/// the stack and the loop measures store-to-load forwarding instead (this benchmark reported
/// 61.5 GFLOP/s on a Zen 5 core whose real peak is about 220).
inline float fma_block(float seed) {
#if defined(__AVX512F__)
  __m512 acc[kChains];
  const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
  FALTUNG_UNROLL
  for (int c = 0; c < kChains; ++c) acc[c] = _mm512_set1_ps(seed + float(c));
  for (int s = 0; s < kSteps; ++s) {
    FALTUNG_UNROLL
    for (int c = 0; c < kChains; ++c) acc[c] = _mm512_fmadd_ps(acc[c], a, b);
    __asm__ volatile("" : "+v"(acc[0]));
  }
  FALTUNG_UNROLL
  for (int c = 1; c < kChains; ++c) acc[0] = _mm512_add_ps(acc[0], acc[c]);
  return _mm512_reduce_add_ps(acc[0]);
#elif defined(__AVX2__)
  __m256 acc[kChains];
  const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
  FALTUNG_UNROLL
  for (int c = 0; c < kChains; ++c) acc[c] = _mm256_set1_ps(seed + float(c));
  for (int s = 0; s < kSteps; ++s) {
    FALTUNG_UNROLL
    for (int c = 0; c < kChains; ++c) acc[c] = _mm256_fmadd_ps(acc[c], a, b);
    __asm__ volatile("" : "+x"(acc[0]));
  }
  FALTUNG_UNROLL
  for (int c = 1; c < kChains; ++c) acc[0] = _mm256_add_ps(acc[0], acc[c]);
  float out[8];
  _mm256_storeu_ps(out, acc[0]);
  return out[0];
#else
  float acc[kChains];
  FALTUNG_UNROLL
  for (int c = 0; c < kChains; ++c) acc[c] = seed + float(c);
  for (int s = 0; s < kSteps; ++s) {
    FALTUNG_UNROLL
    for (int c = 0; c < kChains; ++c) acc[c] = acc[c] * 0.999999f + 1e-7f;
  }
  float sum = 0;
  FALTUNG_UNROLL
  for (int c = 0; c < kChains; ++c) sum += acc[c];
  return sum;
#endif
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
