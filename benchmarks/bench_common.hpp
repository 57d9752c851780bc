#pragma once
// What every faltung benchmark program shares: the thread counts to measure and the FP32 FMA peak
// of this machine, measured in the same run so that "% of peak" needs no outside figure.
//
// Thread counts come from FALTUNG_BENCH_THREADS ("1,2", "16"; default: 1 and the machine's
// OpenMP maximum). Each benchmark calls faltung::set_num_threads itself.

#include <faltung/tensor.hpp>
#include <faltung/threading.hpp>

#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#if defined(__linux__)
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
#endif

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

/// The nice value of the calling process's autogroup (Linux: the CPU is shared between sessions
/// by these values first), as text, or empty where there is none.
inline std::string autogroup_nice() {
  std::string nice;
  if (FILE* f = std::fopen("/proc/self/autogroup", "r")) {
    int value = 0;
    if (std::fscanf(f, "%*s nice %d", &value) == 1) nice = std::to_string(value);
    std::fclose(f);
  }
  return nice;
}

/// Another CPU-bound program on the machine, for as long as the object lives: a child process
/// that spins on integer additions, in a session of its own (setsid), as a program started from
/// another terminal is, so the kernel schedules it against the benchmark as such a program
/// (with autogroups on, Linux shares the CPU between sessions first). Its session gets the
/// benchmark's autogroup nice value, so that the two are equals even when the benchmark runs
/// with a raised priority to keep other work on the machine out of its figures. It dies with
/// the benchmark (PR_SET_PDEATHSIG) should the benchmark be killed. Linux only; elsewhere
/// `running()` is false.
class BusyLoop {
 public:
  BusyLoop() {
#if defined(__linux__)
    const pid_t parent = getpid();
    char nice[16] = {0};  // the benchmark's autogroup nice value, as text ("-20"), or empty
    const std::string own = autogroup_nice();
    std::snprintf(nice, sizeof nice, "%s", own.c_str());
    pid_ = fork();
    if (pid_ == 0) {
      // The child: only async-signal-safe calls, since the parent may have other threads.
      setsid();
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(0);
      const int fd = nice[0] ? open("/proc/self/autogroup", O_WRONLY) : -1;
      if (fd >= 0) {
        if (write(fd, nice, strlen(nice)) < 0) {
          // Not allowed: the competitor keeps the default priority.
        }
        close(fd);
      }
      volatile unsigned long spin = 0;
      for (;;) spin = spin + 1;
    }
#endif
  }
  ~BusyLoop() {
#if defined(__linux__)
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
#endif
  }
  BusyLoop(const BusyLoop&) = delete;
  BusyLoop& operator=(const BusyLoop&) = delete;
  bool running() const { return pid_ > 0; }

 private:
  long pid_ = -1;
};

/// The 1-minute load average, to judge how busy the machine was (-1 where unknown).
inline double load_average() {
  double load = -1;
  if (FILE* f = std::fopen("/proc/loadavg", "r")) {
    if (std::fscanf(f, "%lf", &load) != 1) load = -1;
    std::fclose(f);
  }
  return load;
}

/// Steps per second of wall-clock time: `step` called `warmup` times untimed, then until `seconds`
/// have passed.
inline double steps_per_second(const std::function<void()>& step, double seconds, int warmup = 3) {
  using Clock = std::chrono::steady_clock;
  for (int i = 0; i < warmup; ++i) step();
  const auto t0 = Clock::now();
  std::size_t steps = 0;
  double elapsed = 0;
  do {
    step();
    ++steps;
    elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
  } while (elapsed < seconds);
  return double(steps) / elapsed;
}

inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n == 0 ? 0.0 : n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/// The contended mode of the network benchmarks: training speed at 1 thread and at each other
/// count of thread_counts() (the default: the machine's), on the machine as it is ("idle") and
/// with one BusyLoop running ("contended"). `make_step(threads)` sets the thread count and
/// returns one training step of `items` items. Every rate is in wall-clock time, at every thread
/// count, since a thread that waits for a core is the cost measured here. `rounds` rounds, each
/// measuring every combination for `seconds`, in an order that alternates between rounds; the
/// table gives medians over the rounds with their ranges, and the ratios to 1 thread in the same
/// condition (medians of the per-round ratios). Returns the lowest contended ratio.
inline double run_contended(const std::string& what, double items,
                            const std::function<std::function<void()>(int)>& make_step, int rounds, double seconds) {
  std::vector<int> counts = thread_counts();
  if (std::find(counts.begin(), counts.end(), 1) == counts.end()) counts.insert(counts.begin(), 1);
  const int saved = faltung::num_threads();
  // rates[contended][count index][round]
  std::vector<std::vector<std::vector<double>>> rates(2, std::vector<std::vector<double>>(counts.size()));
  for (int r = 0; r < rounds; ++r)
    for (int c = 0; c < 2; ++c) {
      const bool contended = (c + r) % 2 == 1;  // alternates which condition goes first
      std::unique_ptr<BusyLoop> busy;
      if (contended) busy = std::make_unique<BusyLoop>();
      for (std::size_t k = 0; k < counts.size(); ++k) {
        const std::size_t i = r % 2 ? counts.size() - 1 - k : k;  // and which thread count
        const std::function<void()> step = make_step(counts[i]);
        rates[contended][i].push_back(items * steps_per_second(step, seconds));
      }
    }
  faltung::set_num_threads(saved);
  auto range = [](const std::vector<double>& v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.0f (%.0f-%.0f)", median(v), *std::min_element(v.begin(), v.end()),
                  *std::max_element(v.begin(), v.end()));
    return std::string(buf);
  };
  std::printf("%s: items/s in wall-clock time, median (range) of %d rounds of %.1f s each; load average %.2f,"
              " autogroup nice %s\n",
              what.c_str(), rounds, seconds, load_average(), autogroup_nice().c_str());
  std::printf("%-10s", "");
  for (int t : counts) std::printf(" %24s", (std::to_string(t) + (t == 1 ? " thread" : " threads")).c_str());
  for (std::size_t i = 1; i < counts.size(); ++i) std::printf(" %10s", (std::to_string(counts[i]) + "t/1t").c_str());
  std::printf("\n");
  double worst = 1e300;
  for (int contended = 0; contended < 2; ++contended) {
    std::printf("%-10s", contended ? "contended" : "idle");
    for (std::size_t i = 0; i < counts.size(); ++i) std::printf(" %24s", range(rates[contended][i]).c_str());
    for (std::size_t i = 1; i < counts.size(); ++i) {
      std::vector<double> ratio;
      for (int r = 0; r < rounds; ++r) ratio.push_back(rates[contended][i][r] / rates[contended][0][r]);
      std::printf(" %10.2f", median(ratio));
      if (contended) worst = std::min(worst, median(ratio));
    }
    std::printf("\n");
  }
  std::fflush(stdout);
  return worst;
}

}  // namespace bench
