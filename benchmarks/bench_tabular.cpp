// Small steps, where a step's fixed costs show: the tabular example's networks at batch 32
// (Keras's default) on the generated 50,000 x 20 set (make_classification, data seed 7):
//   mlp     20-64-32-1 (ReLU), BinaryCrossEntropy, Adam   ~3.4k parameters
//   logreg  20-1, BinaryCrossEntropy, Adam                21 parameters
// A step does ~0.1 MFLOP (MLP) of useful work, a few microseconds at the machine's speed; the
// rest of its time is what every step pays regardless of size.
//
//   step/NET/threads:T   one train_on_batch (time per iteration = per step)
//   parts/NET/threads:T  the same step done through the public API piece by piece, with the
//                        microseconds of each piece as counters: copy (the batch into a tensor),
//                        forward, loss, zero_grad, backward, optimizer (Adam's step)
//   fit/NET/threads:T    one epoch of fit() (1,563 steps, shuffled); us_per_step counts fit's own
//                        work per batch (gathering the rows, the finite-weights guard, logs) too
//   omp_region/...       an empty OpenMP parallel region: entered with an `if` clause that is
//                        false (one thread, as the kernels' size thresholds do), and with T threads
//
//   FALTUNG_BENCH_THREADS=1,2 ./bench_tabular
//   ./bench_tabular --contended   the MLP's step at 1 thread and the default count, with the
//                                 machine as it is and with a competing CPU-bound process
//                                 (bench_common.hpp: run_contended; FALTUNG_BENCH_ROUNDS rounds,
//                                 default 5, of FALTUNG_BENCH_SECONDS, default 1)
// On a shared machine a 2-thread region waits for a core whenever another process holds it, so
// compare thread counts in the same run and look at the load (the program prints it).
#include <faltung/faltung.hpp>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <memory>
#include <string>

#include "bench_common.hpp"

using namespace faltung;

namespace {

using Clock = std::chrono::steady_clock;

const TabularData<float>& data() {
  static const TabularData<float> d = [] {
    auto t = make_classification<float>(MakeClassificationOptions().samples(50000).features(20).seed(7));
    StandardScaler<float>().fit_transform(t.x);
    return t;
  }();
  return d;
}

Sequential<float> make_net(const std::string& name) {
  Sequential<float> net(42);
  if (name == "mlp") add_layers(net, "dense:64:relu,dense:32:relu");
  net.add<Dense>(DenseOptions(1));
  net.build({20});
  net.compile(BinaryCrossEntropy{}, Adam<float>(AdamOptions(1e-3)));
  return net;
}

constexpr std::size_t kBatch = 32;

/// Rows [first, first + 32) of the set into x and y, as a training loop copies a batch.
void batch(std::size_t step, Tensor<float>& x, Tensor<float>& y) {
  const auto& d = data();
  const std::size_t first = (step * kBatch) % (d.size() - kBatch);
  x.resize({kBatch, 20});
  y.resize({kBatch, 1});
  std::copy(d.x.data() + first * 20, d.x.data() + (first + kBatch) * 20, x.data());
  std::copy(d.y.data() + first, d.y.data() + first + kBatch, y.data());
}

void BM_step(benchmark::State& state, std::string net_name, int threads) {
  set_num_threads(threads);
  Sequential<float> net = make_net(net_name);
  Tensor<float> x, y;
  std::size_t step = 0;
  for (; step < 10; ++step) {  // every buffer at its final size
    batch(step, x, y);
    net.train_on_batch(x, y);
  }
  for (auto _ : state) {
    batch(step++, x, y);
    benchmark::DoNotOptimize(net.train_on_batch(x, y));
  }
  state.SetItemsProcessed(std::int64_t(state.iterations() * kBatch));
}

void BM_parts(benchmark::State& state, std::string net_name, int threads) {
  set_num_threads(threads);
  Sequential<float> net = make_net(net_name);
  const BinaryCrossEntropy loss;
  const auto params = net.parameters();
  Tensor<float> x, y, grad;
  double us[6] = {0, 0, 0, 0, 0, 0};
  std::size_t step = 0;
  auto one_step = [&](bool timed) {
    const auto t0 = Clock::now();
    batch(step++, x, y);
    const auto t1 = Clock::now();
    net.set_training(true);
    const Tensor<float>& out = net.forward(x);
    const auto t2 = Clock::now();
    benchmark::DoNotOptimize(loss(out, y, &grad));
    const auto t3 = Clock::now();
    net.zero_grad();
    const auto t4 = Clock::now();
    net.backward(grad);
    const auto t5 = Clock::now();
    net.optimizer().step(params);
    const auto t6 = Clock::now();
    if (timed) {
      const Clock::time_point t[7] = {t0, t1, t2, t3, t4, t5, t6};
      for (int i = 0; i < 6; ++i) us[i] += std::chrono::duration<double, std::micro>(t[i + 1] - t[i]).count();
    }
  };
  for (int i = 0; i < 10; ++i) one_step(false);
  for (auto _ : state) one_step(true);
  const char* names[6] = {"copy_us", "forward_us", "loss_us", "zero_grad_us", "backward_us", "optimizer_us"};
  for (int i = 0; i < 6; ++i) state.counters[names[i]] = benchmark::Counter(us[i], benchmark::Counter::kAvgIterations);
}

void BM_fit(benchmark::State& state, std::string net_name, int threads) {
  set_num_threads(threads);
  Sequential<float> net = make_net(net_name);
  const auto& d = data();
  const auto options = FitOptions().epochs(1).batch_size(kBatch).verbose(0);
  net.fit(d.x, d.y, options);  // warm-up
  const double steps = double((d.size() + kBatch - 1) / kBatch);
  for (auto _ : state) benchmark::DoNotOptimize(net.fit(d.x, d.y, options).loss.back());
  state.counters["us_per_step"] = benchmark::Counter(
      steps * 1e-6, benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}

void BM_omp_region_if_false(benchmark::State& state) {
  int sink = 0;
  for (auto _ : state) {
    const bool parallel = sink < 0;  // false, but not known to the compiler
    FALTUNG_OMP(parallel if (parallel))
    benchmark::DoNotOptimize(sink);
  }
}

void BM_omp_region(benchmark::State& state, int threads) {
  int sink = 0;
  for (auto _ : state) {
    FALTUNG_OMP(parallel num_threads(threads))
    benchmark::DoNotOptimize(sink);
  }
}

/// Seconds each benchmark runs at least: $FALTUNG_BENCH_SECONDS, default `fallback`.
double seconds(double fallback) {
  const char* env = std::getenv("FALTUNG_BENCH_SECONDS");
  return env && *env ? std::atof(env) : fallback;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 2 && std::string(argv[1]) == "--contended") {
    const char* env = std::getenv("FALTUNG_BENCH_ROUNDS");
    const int rounds = env && *env ? std::max(1, std::atoi(env)) : 5;
    for (const std::string net : {"mlp", "logreg"}) {
      auto make_step = [net](int threads) -> std::function<void()> {
        set_num_threads(threads);
        auto model = std::make_shared<Sequential<float>>(make_net(net));
        auto x = std::make_shared<Tensor<float>>(), y = std::make_shared<Tensor<float>>();
        auto step = std::make_shared<std::size_t>(0);
        return [=] {
          batch((*step)++, *x, *y);
          model->train_on_batch(*x, *y);
        };
      };
      bench::run_contended("step/" + net + ", batch 32, rows/s", double(kBatch), make_step, rounds, seconds(1));
    }
    return 0;
  }
  benchmark::Initialize(&argc, argv);
  std::cerr << "load average before: " << bench::load_average() << "\n";
  benchmark::RegisterBenchmark("omp_region/if_false", BM_omp_region_if_false)->UseRealTime();
  for (int t : bench::thread_counts()) {
    const std::string threads = "/threads:" + std::to_string(t);
    benchmark::RegisterBenchmark(("omp_region" + threads).c_str(), BM_omp_region, t)->UseRealTime();
    for (const std::string net : {"mlp", "logreg"}) {
      benchmark::RegisterBenchmark(("step/" + net + threads).c_str(), BM_step, net, t)->UseRealTime()->MinTime(seconds(1));
      benchmark::RegisterBenchmark(("parts/" + net + threads).c_str(), BM_parts, net, t)->UseRealTime()->MinTime(seconds(1));
      benchmark::RegisterBenchmark(("fit/" + net + threads).c_str(), BM_fit, net, t)->UseRealTime()->MinTime(seconds(1));
    }
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  std::cerr << "load average after: " << bench::load_average() << "\n";
  return 0;
}
