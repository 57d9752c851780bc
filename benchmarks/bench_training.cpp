// Whole-network benchmarks: one training step (train_on_batch: forward, SparseCrossEntropy,
// backward, Adam) and inference (forward in eval mode, batch 256) of the two reference networks
// of reference_networks.hpp; and the training step of transfer learning, with the convolutional
// base frozen (every layer up to the Flatten), so that only the dense head trains
// (train_frozen_base/...: no FLOP counters, the backward it skips is the point). benchmarks/pytorch_reference.py measures the same with PyTorch, and
// benchmarks/compare.py runs both side by side.
// items_per_second is images per second (one thread in the process's CPU time, more in wall time);
// FLOP/s and pct_peak (% of the FMA peak at the same
// thread count, measured in this run; peak_FLOP/s is that peak) count the convolutions' and dense
// layers' multiply-adds per image (flops.hpp). Real Fashion-MNIST images when the data set is
// found ($FALTUNG_FASHION_MNIST_DIR or /usr/share/datasets/fashion-mnist), random ones otherwise.
//
//   FALTUNG_BENCH_THREADS=2 ./bench_training --benchmark_filter=small
//   ./bench_training --networks     one line per network: its spec, batch sizes and FLOPs per image
//   ./bench_training --contended [small|notebook ...]   (default: small)
//       training speed at 1 thread and at the default count (or FALTUNG_BENCH_THREADS), with the
//       machine as it is and with a competing CPU-bound process started by the benchmark
//       (bench_common.hpp: BusyLoop, run_contended), all in wall-clock time; FALTUNG_BENCH_ROUNDS
//       alternating rounds (default 5) of FALTUNG_BENCH_SECONDS each (default 2). The last line
//       says whether every count trained at least 0.9x as fast as one thread with the competitor.
#include <faltung/faltung.hpp>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "bench_common.hpp"
#include "flops.hpp"
#include "reference_networks.hpp"

using namespace faltung;

namespace {

using bench::make_network;

/// The images as bytes (as the data set keeps them) and a batch converted on demand into a
/// tensor that is reused, as a training loop does.
struct Data {
  ImageDataset train, test;
  bool real = false;

  Data() {
    try {
      FashionMnist f = load_fashion_mnist();
      train = std::move(f.train);
      test = std::move(f.test);
      real = true;
    } catch (const Error& e) {
      std::cerr << "bench_training: " << e.what() << "; using random images\n";
      for (ImageDataset* d : {&train, &test}) {
        d->count = d == &train ? 60000 : 10000;
        d->height = d->width = 28;
        d->num_classes = 10;
        d->pixels.resize(d->count * 784);
        d->labels.resize(d->count);
        std::mt19937 g(7);
        for (auto& p : d->pixels) p = std::uint8_t(g() & 0xff);
        for (auto& l : d->labels) l = std::uint8_t(g() % 10);
      }
    }
  }

  static void batch(const ImageDataset& d, std::size_t first, std::size_t n, Tensor<float>& x, Tensor<float>& y) {
    x.resize({n, 1, 28, 28});
    y.resize({n});
    const std::uint8_t* src = d.pixels.data() + first * 784;
    for (std::size_t i = 0; i < n * 784; ++i) x[i] = float(src[i]) * (1.0f / 255.0f);
    for (std::size_t i = 0; i < n; ++i) y[i] = float(d.labels[first + i]);
  }
};

Data& data() {
  static Data d;
  return d;
}

/// FLOP/s and pct_peak of a benchmark that does `flops` per iteration, and the peak it is set against.
void set_flop_counters(benchmark::State& state, double flops, int threads) {
  state.counters["FLOP/s"] = benchmark::Counter(flops, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["pct_peak"] =
      benchmark::Counter(100.0 * flops / bench::fma_peak(threads), benchmark::Counter::kIsIterationInvariantRate);
  state.counters["peak_FLOP/s"] = bench::fma_peak(threads);
}

void BM_train_step(benchmark::State& state, std::string net_name, std::size_t batch, int threads, bool frozen_base) {
  set_num_threads(threads);
  Sequential<float> net = make_network(net_name);
  if (frozen_base) net.set_trainable(false, 0, net.index_of("flatten") + 1);
  Data& d = data();
  Tensor<float> x, y;
  std::size_t step = 0;
  // Warm-up batches, as the PyTorch reference does (3), so every buffer has its final size.
  for (; step < 3; ++step) {
    Data::batch(d.train, step * batch, batch, x, y);
    net.train_on_batch(x, y);
  }
  for (auto _ : state) {
    Data::batch(d.train, (step * batch) % (d.train.count - batch), batch, x, y);
    benchmark::DoNotOptimize(net.train_on_batch(x, y));
    ++step;
  }
  state.SetItemsProcessed(std::int64_t(state.iterations()) * std::int64_t(batch));
  if (!frozen_base) set_flop_counters(state, bench::count_flops(net).training * double(batch), threads);
  state.counters["real_data"] = d.real ? 1 : 0;
}

void BM_inference(benchmark::State& state, std::string net_name, int threads) {
  const std::size_t batch = bench::kInferenceBatch;
  set_num_threads(threads);
  Sequential<float> net = make_network(net_name);
  net.set_training(false);
  Data& d = data();
  Tensor<float> x, y;
  std::size_t step = 0;
  Data::batch(d.test, 0, batch, x, y);
  net.forward(x);
  for (auto _ : state) {
    Data::batch(d.test, (step * batch) % (d.test.count - batch), batch, x, y);
    benchmark::DoNotOptimize(net.forward(x).data());
    ++step;
  }
  state.SetItemsProcessed(std::int64_t(state.iterations()) * std::int64_t(batch));
  set_flop_counters(state, bench::count_flops(net).forward * double(batch), threads);
}

}  // namespace

/// Seconds each benchmark runs at least: $FALTUNG_BENCH_SECONDS, default 2 (training) and 1.
double seconds(double fallback) {
  const char* env = std::getenv("FALTUNG_BENCH_SECONDS");
  return env && *env ? std::atof(env) : fallback;
}

/// Rounds of the contended mode: $FALTUNG_BENCH_ROUNDS, default 5.
int rounds() {
  const char* env = std::getenv("FALTUNG_BENCH_ROUNDS");
  return env && *env ? std::max(1, std::atoi(env)) : 5;
}

/// --contended: see the top of this file. One training step as BM_train_step runs it, on a
/// network of its own per thread count.
int run_contended(const std::vector<std::string>& nets) {
  double worst = 1e300;
  for (const std::string& name : nets) {
    const std::size_t batch = bench::reference_network(name).batch;
    auto make_step = [name, batch](int threads) -> std::function<void()> {
      set_num_threads(threads);
      auto net = std::make_shared<Sequential<float>>(make_network(name));
      auto x = std::make_shared<Tensor<float>>(), y = std::make_shared<Tensor<float>>();
      auto step = std::make_shared<std::size_t>(0);
      return [=] {
        Data& d = data();
        Data::batch(d.train, (*step * batch) % (d.train.count - batch), batch, *x, *y);
        net->train_on_batch(*x, *y);
        ++*step;
      };
    };
    worst = std::min(worst, bench::run_contended("train/" + name + ", batch " + std::to_string(batch) + ", images/s",
                                                 double(batch), make_step, rounds(), seconds(2)));
  }
  std::printf("contended: the slowest count trains at %.2fx one thread's speed (target: at least 0.90x)\n", worst);
  return 0;
}

/// One thread is timed in the process's CPU time, more in wall time (pytorch_reference.py does the
/// same): on a shared machine wall time would count the time the one thread was not running, and
/// the process's CPU time (user and system) still counts everything the process does, page faults
/// included. Several threads need wall time: a thread waiting for the others is the cost.
benchmark::internal::Benchmark* network_clock(benchmark::internal::Benchmark* b, int threads) {
  return threads == 1 ? b->MeasureProcessCPUTime() : b->UseRealTime();
}

/// One line of key=value pairs per reference network: what the PyTorch side needs to build the
/// same network (its canonical spec) and to set its speed against the peak (FLOPs per image).
void print_networks() {
  for (const bench::ReferenceNetwork& r : bench::reference_networks()) {
    Sequential<float> net = make_network(r.name);
    const bench::NetworkFlops f = bench::count_flops(net);
    std::cout << "net=" << r.name << " batch=" << r.batch << " infer_batch=" << bench::kInferenceBatch
              << " parameters=" << net.parameter_count() << " train_flop_per_image=" << std::size_t(f.training)
              << " infer_flop_per_image=" << std::size_t(f.forward) << " input=1x28x28 spec=" << net.spec() << "\n";
  }
}

int main(int argc, char** argv) {
  if (argc == 2 && std::strcmp(argv[1], "--networks") == 0) {
    print_networks();
    return 0;
  }
  if (argc >= 2 && std::strcmp(argv[1], "--contended") == 0) {
    std::vector<std::string> nets(argv + 2, argv + argc);
    if (nets.empty()) nets.push_back("small");
    try {
      return run_contended(nets);
    } catch (const Error& e) {
      std::cerr << "bench_training: " << e.what() << "\n";
      return 2;
    }
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  for (int t : bench::thread_counts())
    for (const bench::ReferenceNetwork& r : bench::reference_networks()) {
      const std::string suffix = "/" + r.name + "/threads:" + std::to_string(t);
      for (const bool frozen : {false, true}) {
        const std::string name = (frozen ? "train_frozen_base" : "train") + suffix;
        network_clock(benchmark::RegisterBenchmark(name.c_str(), BM_train_step, r.name, r.batch, t, frozen), t)
            ->MinTime(seconds(2));
      }
      network_clock(benchmark::RegisterBenchmark(("infer" + suffix).c_str(), BM_inference, r.name, t), t)
          ->MinTime(seconds(1));
    }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
