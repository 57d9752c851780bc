// Kernel benchmarks: the FP32 FMA peak, each convolution pass at the reference shapes, max
// pooling, dense layers, and the memory-bound rest of a training step at the reference networks'
// shapes: a ReLU layer, dropout, the loss and each optimizer's update. Counters: FLOP/s (GFLOP/s
// in the table as "G/s"), pct_peak (% of the FMA peak for the same thread count, measured in this
// run), items_per_second (images/s; parameters/s for the optimizers), bytes_per_second (the
// memory a memory-bound kernel must read and write at least).
//
//   FALTUNG_BENCH_THREADS=1,2 ./bench_kernels --benchmark_filter=conv
#include <faltung/faltung.hpp>

#include <functional>
#include <memory>
#include <string>

#include "bench_common.hpp"
#include "conv_benchmark.hpp"
#include "reference_networks.hpp"

using namespace faltung;

namespace {

using bench::fill_random;

/// MaxPool2D(2) forward and backward through the layer, on (batch, channels, size, size).
void BM_max_pool(benchmark::State& state, std::size_t channels, std::size_t size, bool backward, std::size_t batch,
                 int threads) {
  set_num_threads(threads);
  Random rng(1);
  MaxPool2D<float> pool(2);
  pool.build({channels, size, size}, rng);
  Tensor<float> x({batch, channels, size, size}), y, dx;
  fill_random(x, 1);
  pool.forward(x, y);
  Tensor<float> dy(y.shape());
  fill_random(dy, 2);
  for (auto _ : state) {
    if (backward)
      pool.backward(x, y, dy, dx);
    else
      pool.forward(x, y);
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(std::int64_t(state.iterations()) * std::int64_t(batch));
  state.SetBytesProcessed(std::int64_t(state.iterations()) * std::int64_t((x.size() + y.size()) * sizeof(float)));
}

/// Dense(units, relu) forward + backward through the layer, on (batch, in).
void BM_dense(benchmark::State& state, std::size_t in, std::size_t units, std::size_t batch, int threads) {
  set_num_threads(threads);
  Random rng(1);
  Dense<float> dense(DenseOptions(units).activation(ActivationKind::ReLU));
  dense.build({in}, rng);
  Tensor<float> x({batch, in}), y, dx;
  fill_random(x, 1);
  dense.forward(x, y);
  Tensor<float> dy(y.shape());
  fill_random(dy, 2);
  for (auto _ : state) {
    dense.forward(x, y);
    dense.backward(x, y, dy, dx);
    benchmark::ClobberMemory();
  }
  const double flops = 3 * 2.0 * double(batch) * double(in) * double(units);
  state.counters["FLOP/s"] = benchmark::Counter(flops, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["pct_peak"] =
      benchmark::Counter(100.0 * flops / bench::fma_peak(threads), benchmark::Counter::kIsIterationInvariantRate);
  state.SetItemsProcessed(std::int64_t(state.iterations()) * std::int64_t(batch));
}

/// An element-wise layer's forward and backward in training mode on (batch, shape...).
/// `arrays`: how many input-sized float arrays the two passes read and write in all (a mask of
/// bytes counts a quarter).
void BM_elementwise(benchmark::State& state, const std::function<std::unique_ptr<Layer<float>>()>& make,
                    const Shape& shape, std::size_t batch, double arrays, int threads) {
  set_num_threads(threads);
  Random rng(1);
  std::unique_ptr<Layer<float>> layer = make();
  layer->build(shape, rng);
  layer->set_training(true);
  Tensor<float> x(shape.with_batch(batch)), y, dx;
  fill_random(x, 1);
  layer->forward(x, y);
  Tensor<float> dy(y.shape());
  fill_random(dy, 2);
  for (auto _ : state) {
    layer->forward(x, y);
    layer->backward(x, y, dy, dx);
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(std::int64_t(state.iterations()) * std::int64_t(batch));
  state.SetBytesProcessed(std::int64_t(double(state.iterations()) * arrays * double(x.size() * sizeof(float))));
}

/// SparseCrossEntropy with its gradient on (batch, 10) logits.
void BM_loss(benchmark::State& state, std::size_t batch) {
  Tensor<float> logits({batch, 10}), labels({batch}), grad;
  fill_random(logits, 1);
  for (std::size_t i = 0; i < batch; ++i) labels[i] = float(i % 10);
  const SparseCrossEntropy loss;
  for (auto _ : state) {
    benchmark::DoNotOptimize(loss(logits, labels, &grad));
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(std::int64_t(state.iterations()) * std::int64_t(batch));
}

/// One optimizer step over the lecture network's 1.8 M parameters. `arrays`: the parameter-sized
/// arrays the update reads and writes (weights, gradient and the optimizer's state).
void BM_optimizer(benchmark::State& state, const std::function<void(Sequential<float>&)>& compile, int arrays,
                  int threads) {
  set_num_threads(threads);
  Sequential<float> net = faltung::make_sequential<float>(bench::reference_network_spec("notebook"), {1, 28, 28});
  compile(net);
  const std::vector<Parameter<float>*> params = net.parameters();
  unsigned seed = 1;
  for (Parameter<float>* p : params) fill_random(p->grad, seed++);
  for (auto _ : state) {
    net.optimizer().step(params);
    benchmark::ClobberMemory();
  }
  const std::size_t n = net.parameter_count();
  state.SetItemsProcessed(std::int64_t(state.iterations()) * std::int64_t(n));
  state.SetBytesProcessed(std::int64_t(state.iterations()) * std::int64_t(arrays * n * sizeof(float)));
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  const auto threads = bench::thread_counts();
  for (int t : threads)
    bench::timed(benchmark::RegisterBenchmark(("fma_peak/threads:" + std::to_string(t)).c_str(), bench::BM_fma_peak, t), t);
  for (const bench::ConvShape& s : bench::kConvShapes)
    for (bench::Pass pass : bench::kPasses) {
      // The first convolution's input gradient is never computed in training; it is still listed.
      for (std::size_t batch : {64, 256})
        for (int t : threads)
          bench::timed(benchmark::RegisterBenchmark(bench::conv_benchmark_name(s, pass, batch, t).c_str(),
                                                    bench::BM_conv, s, pass, batch, t),
                       t)
              ->MinTime(0.3);
    }
  for (bool backward : {false, true})
    for (auto [c, size] : {std::pair<std::size_t, std::size_t>{32, 28}, {128, 28}, {64, 14}})
      for (int t : threads) {
        const std::string name = std::string("max_pool2x2_") + (backward ? "backward" : "forward") + "/" +
                                 std::to_string(c) + "x" + std::to_string(size) + "/batch:64/threads:" +
                                 std::to_string(t);
        bench::timed(benchmark::RegisterBenchmark(name.c_str(), BM_max_pool, c, size, backward, 64, t), t);
      }
  for (auto [in, units, batch] : {std::tuple<std::size_t, std::size_t, std::size_t>{3136, 128, 64}, {3136, 512, 256}})
    for (int t : threads) {
      const std::string name = "dense_relu_fwd_bwd/" + std::to_string(in) + "x" + std::to_string(units) +
                               "/batch:" + std::to_string(batch) + "/threads:" + std::to_string(t);
      bench::timed(benchmark::RegisterBenchmark(name.c_str(), BM_dense, in, units, batch, t), t);
    }
  // The standalone ReLU on the first convolution's output; dropout where the two networks have it.
  struct Elementwise {
    const char* name;
    std::function<std::unique_ptr<Layer<float>>()> make;
    Shape shape;
    std::size_t batch;
    double arrays;  // ReLU: x, y | y, dy, dx. Dropout: x, y, keep (bytes) | dy, keep, dx.
  };
  const Elementwise elementwise[] = {
      {"relu_fwd_bwd/32x28/batch:64", [] { return std::make_unique<ActivationLayer<float>>(ActivationKind::ReLU); },
       Shape{32, 28, 28}, 64, 5},
      {"dropout_fwd_bwd/32x14/batch:64", [] { return std::make_unique<Dropout<float>>(0.25); }, Shape{32, 14, 14},
       64, 4.5},
      {"dropout_fwd_bwd/128x14/batch:256", [] { return std::make_unique<Dropout<float>>(0.5); }, Shape{128, 14, 14},
       256, 4.5},
      {"dropout_fwd_bwd/512/batch:256", [] { return std::make_unique<Dropout<float>>(0.5); }, Shape{512}, 256, 4.5},
  };
  for (const Elementwise& e : elementwise)
    for (int t : threads)
      bench::timed(benchmark::RegisterBenchmark((std::string(e.name) + "/threads:" + std::to_string(t)).c_str(),
                                                BM_elementwise, e.make, e.shape, e.batch, e.arrays, t),
                   t);
  for (std::size_t batch : {64, 256})
    benchmark::RegisterBenchmark(("sparse_cross_entropy/batch:" + std::to_string(batch)).c_str(), BM_loss, batch);
  struct OptimizerCase {
    const char* name;
    std::function<void(Sequential<float>&)> compile;
    int arrays;  // read and written: w, g, one or two state arrays, then w and the state again
  };
  const OptimizerCase optimizers[] = {
      {"sgd_momentum",
       [](Sequential<float>& n) { n.compile(SparseCrossEntropy{}, SGD<float>(SGDOptions(0.01).momentum(0.9))); }, 5},
      {"adam", [](Sequential<float>& n) { n.compile(SparseCrossEntropy{}, Adam<float>(AdamOptions(1e-3))); }, 7},
      {"rmsprop",
       [](Sequential<float>& n) { n.compile(SparseCrossEntropy{}, RMSProp<float>(RMSPropOptions(1e-3))); }, 5},
      {"adagrad",
       [](Sequential<float>& n) { n.compile(SparseCrossEntropy{}, Adagrad<float>(AdagradOptions(1e-2))); }, 5},
  };
  for (const OptimizerCase& o : optimizers)
    for (int t : threads)
      bench::timed(benchmark::RegisterBenchmark(
                       (std::string("optimizer_step/") + o.name + "/notebook/threads:" + std::to_string(t)).c_str(),
                       BM_optimizer, o.compile, o.arrays, t),
                   t);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
