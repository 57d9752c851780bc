// The trainer's adaptive thread count (model/adaptive_threads.hpp): its decisions, driven by
// synthetic step times (no timing here), and its hook in the trainer.

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <vector>

#include "faltung/faltung.hpp"
#include "model_fixtures.hpp"
#include "test_support.hpp"

using namespace faltung;

namespace {

constexpr std::size_t kBatch = 64;

/// Runs `steps` steps through `adapt`, step i at threads t taking seconds_per_sample(i, t) per
/// sample. What it cost, and how many steps ran at each count.
struct Simulated {
  double seconds = 0;
  std::size_t at_high = 0, at_low = 0;
  std::vector<int> counts;  // the count of each step
};

Simulated simulate(AdaptiveThreads& adapt, std::size_t steps, const std::function<double(std::size_t, int)>& seconds_per_sample) {
  Simulated r;
  for (std::size_t i = 0; i < steps; ++i) {
    const int t = adapt.threads();
    const double s = seconds_per_sample(i, t) * double(kBatch);
    adapt.record(s, kBatch);
    r.seconds += s;
    (t == adapt.high() ? r.at_high : r.at_low)++;
    r.counts.push_back(t);
  }
  return r;
}

/// An idle 2-core machine: 2 threads are 1.8x as fast as one.
double idle(std::size_t, int t) { return t == 2 ? 1.0 : 1.8; }
/// The same machine with a competing process: 2 threads at 0.13x of one.
double busy(std::size_t, int t) { return t == 2 ? 7.7 : 1.0; }

TEST(AdaptiveThreads, OnAnIdleMachineStaysAtTheConfiguredCountAndLosesUnderOnePercent) {
  AdaptiveThreads adapt(2);
  EXPECT_EQ(adapt.threads(), 2);
  const Simulated r = simulate(adapt, 5000, idle);
  EXPECT_EQ(adapt.current(), 2);
  EXPECT_LT(r.at_low, 10u);                      // a handful of probes, backing off
  EXPECT_LT(r.seconds, 1.01 * 5000 * kBatch);    // against every step at 2 threads
  // The probes back off: none in the last 1000 steps but at most one.
  std::size_t late = 0;
  for (std::size_t i = 4000; i < 5000; ++i) late += r.counts[i] == 1;
  EXPECT_LE(late, 1u);
}

TEST(AdaptiveThreads, OnABusyMachineMovesToOneThreadWithinThreeStepsAndStaysAboveNinetyPercent) {
  AdaptiveThreads adapt(2);
  const Simulated r = simulate(adapt, 2000, busy);
  EXPECT_EQ(adapt.current(), 1);
  for (std::size_t i = 3; i < 20; ++i) EXPECT_EQ(r.counts[i], 1) << "step " << i;
  // The rate against one thread throughout: at least 0.9x, with the start and the probes.
  EXPECT_GT(2000.0 * kBatch / r.seconds, 0.9);
}

TEST(AdaptiveThreads, NoticesAMachineThatBecomesBusyAndOneThatBecomesIdleAgain) {
  AdaptiveThreads adapt(2);
  auto phases = [](std::size_t i, int t) { return i >= 500 && i < 1500 ? busy(i, t) : idle(i, t); };
  const Simulated r = simulate(adapt, 4000, phases);
  // Busy from step 500: within a window of steps it runs at one thread.
  for (std::size_t i = 510; i < 1500; ++i)
    if (r.counts[i] != 1) {
      // only a rare probe of 2 threads
      EXPECT_EQ(r.counts[i - 1], 1) << "step " << i;
      EXPECT_EQ(r.counts[i + 1], 1) << "step " << i;
    }
  // Idle again from step 1500: back to 2 threads within the longest interval between probes.
  const std::size_t back = 1500 + AdaptiveThreadsOptions().max_interval + 10;
  ASSERT_LT(back, r.counts.size());
  EXPECT_EQ(r.counts[back], 2);
  EXPECT_EQ(adapt.current(), 2);
}

TEST(AdaptiveThreads, NoiseAloneDoesNotMakeItSwitch) {
  AdaptiveThreads adapt(2);
  // Nearly equal counts, each step up to 3 % off: the margin keeps it where it is.
  auto noisy = [](std::size_t i, int t) { return (t == 2 ? 1.0 : 1.01) * (1 + 0.03 * std::sin(double(i) * 1.7)); };
  const Simulated r = simulate(adapt, 3000, noisy);
  std::size_t switches = 0;
  for (std::size_t i = 1; i < r.counts.size(); ++i)
    switches += r.counts[i] != r.counts[i - 1] && r.counts[i] == 1 && i + 1 < r.counts.size() && r.counts[i + 1] == 1;
  EXPECT_EQ(switches, 0u);
}

TEST(AdaptiveThreads, StepsOfAnotherBatchSizeAreNotCompared) {
  AdaptiveThreads adapt(2);
  adapt.record(1.0, kBatch);  // warm-up
  adapt.record(1.0, kBatch);  // the first counted step: a probe comes next
  ASSERT_TRUE(adapt.probing());
  adapt.record(0.01, 3);  // an epoch's last batch of 3 at 1 thread: quick, but not comparable
  EXPECT_TRUE(adapt.probing());
  EXPECT_EQ(adapt.current(), 2);
  adapt.record(2.0, kBatch);  // the probe proper: slower
  EXPECT_FALSE(adapt.probing());
  EXPECT_EQ(adapt.current(), 2);
}

TEST(AdaptiveThreads, OneConfiguredThreadIsNeverChanged) {
  AdaptiveThreads adapt(1);
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(adapt.threads(), 1);
    adapt.record(i % 2 ? 10.0 : 0.1, kBatch);
  }
}

TEST(AdaptiveThreads, BadOptionsAreAnError) {
  AdaptiveThreadsOptions o;
  o.probe_budget = 0;
  EXPECT_TRUE(test::contains(test::error_of([&] { AdaptiveThreads a(2, o); }), "AdaptiveThreads"));
}

/// fit with adaptation on and off gives the same bits, and leaves num_threads() as it was.
TEST(AdaptiveThreads, FitGivesTheSameWeightsWithAndWithoutAdaptationAndKeepsTheThreadCount) {
  const int saved = num_threads();
  set_num_threads(2);
  test::Blobs data(300);
  auto train = [&](bool adapt) {
    Sequential<float> net = test::blob_classifier();
    net.compile(SparseCrossEntropy{}, Adam<float>());
    net.fit(data.x, data.y, FitOptions().epochs(3).batch_size(16).verbose(0).adaptive_threads(adapt));
    EXPECT_EQ(num_threads(), 2);
    return test::weights_of(net);
  };
  const std::vector<Tensor<float>> on = train(true), off = train(false);
  ASSERT_EQ(on.size(), off.size());
  for (std::size_t i = 0; i < on.size(); ++i)
    EXPECT_EQ(0, std::memcmp(on[i].data(), off[i].data(), on[i].size() * sizeof(float))) << "parameter " << i;
  set_adaptive_threads(false);
  EXPECT_FALSE(adaptive_threads());
  set_adaptive_threads(true);
  set_num_threads(saved);
}

}  // namespace
