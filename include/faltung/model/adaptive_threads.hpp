#pragma once
// AdaptiveThreads: the thread count of each training step, chosen from the measured times of the
// steps before it.
//
// On a machine whose cores are shared with other work, more threads can be much slower than one:
// every parallel region ends in a barrier, and OpenMP's threads spin at it, so a thread whose core
// is taken by another process holds up the whole team, many times per step (OMP_WAIT_POLICY=passive
// softens this, but OpenMP reads it once at start-up, before faltung can set it). Since the kernels
// give the same bits at any thread count (test_reproducibility), the trainer may pick, step by step,
// whichever of two counts is faster: `high`, the configured count (num_threads(): OMP_NUM_THREADS
// or set_num_threads), and `low`, one thread. The logic here is pure: it is fed step times and
// says which count to use next, so its tests drive it with synthetic timings.
//
//   - It runs `current` (at first: high) and keeps the per-sample times of its latest steps; the
//     median of those is its estimate. A step of another batch size than the others (an epoch's
//     last, smaller batch) is not compared. The very first step (allocations, cold caches) is not
//     counted.
//   - Now and then it runs one step at the other count, a probe. When the probe beats the estimate
//     by the margin (hysteresis: noise alone does not flip it), the other count becomes current.
//   - The probes back off: after each, the next waits at least twice as long, and long enough
//     that a probe as slow as the last one costs at most `probe_budget` of the time (1/2 % by
//     default, so an idle machine loses well under 1 %), between min_interval and max_interval
//     steps. The first probe comes right after the first counted step, so a busy machine is
//     noticed within three steps.
//   - When the estimate of current grows by slowdown_factor (a competing process started), the
//     other count is probed at once.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <exception>
#include <vector>

#include "faltung/config.hpp"
#include "faltung/threading.hpp"

FALTUNG_BEGIN_NAMESPACE

/// The tuning of AdaptiveThreads; the defaults suit training steps of milliseconds to seconds.
struct AdaptiveThreadsOptions {
  double probe_budget = 0.005;       ///< the share of time a probe as slow as the last one may cost
  std::size_t min_interval = 16;     ///< steps between probes, at least
  std::size_t max_interval = 1024;   ///< and at most
  double switch_margin = 0.05;       ///< a probe must be this much faster (relative) to switch
  double slowdown_factor = 1.5;      ///< an estimate this much above its first value probes at once
  std::size_t window = 5;            ///< steps whose median is the estimate
};

class AdaptiveThreads {
 public:
  /// Chooses between `high` threads and one. With high <= 1 it always says 1.
  explicit AdaptiveThreads(int high = 1, const AdaptiveThreadsOptions& o = AdaptiveThreadsOptions())
      : o_(o), high_(std::max(1, high)), current_(high_) {
    FALTUNG_CHECK(o.probe_budget > 0 && o.min_interval >= 1 && o.max_interval >= o.min_interval &&
                      o.switch_margin >= 0 && o.switch_margin < 1 && o.slowdown_factor > 1 && o.window >= 1,
                  "AdaptiveThreads: bad options");
    recent_.reserve(o.window + 1);  // the steps allocate nothing
    sorted_.reserve(o.window + 1);
  }

  /// The configured (highest) count.
  int high() const { return high_; }
  /// The count for the next step.
  int threads() const { return probing_ ? other() : current_; }
  /// The count the steps run at when not probing.
  int current() const { return current_; }
  /// Whether the next step is a probe of the other count.
  bool probing() const { return probing_; }

  /// Records the step that just ran at threads(): `seconds` of wall-clock time for `samples` samples.
  void record(double seconds, std::size_t samples) {
    if (high_ == 1 || samples == 0 || !(seconds >= 0)) return;
    if (!warmed_up_) {  // the first step pays for allocations and cold caches
      warmed_up_ = true;
      return;
    }
    if (samples_ == 0) samples_ = samples;
    if (samples != samples_) return;  // a batch of another size: not comparable
    const double per_sample = seconds / double(samples);
    if (probing_) {
      finish_probe(per_sample);
      return;
    }
    recent_.push_back(per_sample);
    if (recent_.size() > o_.window) recent_.erase(recent_.begin());
    ++since_probe_;
    const double e = estimate();
    if (baseline_ == 0 && recent_.size() >= std::min<std::size_t>(o_.window, 3)) baseline_ = e;
    if (baseline_ > 0 && e > o_.slowdown_factor * baseline_) {  // the machine got busier: look now
      since_probe_ = interval_;
      baseline_ = e;
    }
    probing_ = since_probe_ >= interval_;
  }

 private:
  int other() const { return current_ == high_ ? 1 : high_; }

  /// The median per-sample time of current's latest steps.
  double estimate() {
    sorted_.assign(recent_.begin(), recent_.end());
    std::nth_element(sorted_.begin(), sorted_.begin() + std::ptrdiff_t(sorted_.size() / 2), sorted_.end());
    return sorted_[sorted_.size() / 2];
  }

  void finish_probe(double probe) {
    probing_ = false;
    since_probe_ = 0;
    const double e = estimate();
    const bool faster = probe < e * (1 - o_.switch_margin);
    const double ratio = faster ? e / probe : probe / e;  // the loser's time over the winner's
    // Long enough that probing the loser again costs at most probe_budget of the time.
    const double affordable = (ratio - 1) / o_.probe_budget;
    const double wanted = std::max(faster ? double(o_.min_interval) : 2.0 * double(interval_), affordable);
    interval_ = std::size_t(std::clamp(wanted, double(o_.min_interval), double(o_.max_interval)));
    if (faster) {
      current_ = other();
      recent_.assign(1, probe);
      baseline_ = 0;
    }
  }

  AdaptiveThreadsOptions o_;
  int high_, current_;
  bool warmed_up_ = false, probing_ = false;
  std::size_t samples_ = 0;      // the batch size the times are compared at
  std::vector<double> recent_;   // current's latest per-sample times
  std::vector<double> sorted_;   // scratch of estimate()
  double baseline_ = 0;          // current's estimate once it had a few steps
  std::size_t since_probe_ = 0;  // steps at current since the last probe
  std::size_t interval_ = 1;     // steps at current before the next probe: the first comes at once
};

namespace detail {
inline std::atomic<bool>& adaptive_threads_flag() {
  static std::atomic<bool> on{true};
  return on;
}
}  // namespace detail

/// Turns the trainer's adaptive thread count on (the default) or off for the whole process. Off,
/// every training step runs at num_threads(). FitOptions::adaptive_threads turns it off for one fit.
inline void set_adaptive_threads(bool on) { detail::adaptive_threads_flag() = on; }
inline bool adaptive_threads() { return detail::adaptive_threads_flag(); }

namespace detail {

/// One training step under an AdaptiveThreads: sets its thread count for the step (a new
/// AdaptiveThreads when num_threads() changed since the last step), and at the end of the scope
/// restores num_threads() and records the step's wall-clock time, unless the step threw.
class AdaptiveStep {
 public:
  AdaptiveStep(AdaptiveThreads& adapt, bool on, std::size_t samples)
      : adapt_(adapt), samples_(samples), configured_(num_threads()), on_(on && configured_ > 1) {
    if (!on_) return;
    if (adapt_.high() != configured_) adapt_ = AdaptiveThreads(configured_);
    if (adapt_.threads() != configured_) set_num_threads(adapt_.threads());
    start_ = std::chrono::steady_clock::now();
  }
  ~AdaptiveStep() {
    if (!on_) return;
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    if (num_threads() != configured_) set_num_threads(configured_);
    if (std::uncaught_exceptions() == uncaught_) adapt_.record(seconds, samples_);
  }
  AdaptiveStep(const AdaptiveStep&) = delete;
  AdaptiveStep& operator=(const AdaptiveStep&) = delete;

 private:
  AdaptiveThreads& adapt_;
  std::size_t samples_;
  int configured_;
  bool on_;
  int uncaught_ = std::uncaught_exceptions();
  std::chrono::steady_clock::time_point start_;
};

}  // namespace detail

FALTUNG_END_NAMESPACE
