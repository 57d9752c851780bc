// Per-layer, per-pass profile of one training step of the two reference networks: where the time
// of Sequential::train_on_batch goes beyond the convolution GEMMs. Runs the same work as
// train_on_batch (training forward, SparseCrossEntropy, zero_grad, backward, Adam step), but one
// layer at a time with a timer around each pass, and prints milliseconds per batch (median of the
// steps), plus the whole train_on_batch and a batch-256 inference for reference. The layers are
// those Sequential runs (Sequential::execution()): a convolution and the pool after it are one
// ConvPool, named after both ("conv2d+max_pooling2d").
//
//   profile_layers [small|notebook] [threads] [steps]
//
// One thread is timed in the thread's CPU time (these machines are shared: wall time would count
// the time the thread was not running), more threads in wall time.
#include <faltung/faltung.hpp>

#include "reference_networks.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <random>
#include <string>
#include <vector>

using namespace faltung;

namespace {

using bench::make_network;

int g_threads = 1;

double now() {
  timespec ts;
  clock_gettime(g_threads == 1 ? CLOCK_THREAD_CPUTIME_ID : CLOCK_MONOTONIC, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  const std::string net_name = argc > 1 ? argv[1] : "small";
  g_threads = argc > 2 ? std::atoi(argv[2]) : 1;
  const int steps = argc > 3 ? std::atoi(argv[3]) : 20;
  const std::size_t batch = bench::reference_network(net_name).batch;
  set_num_threads(g_threads);

  Sequential<float> net = make_network(net_name);
  const std::vector<Layer<float>*>& layers = net.execution();
  const std::size_t L = layers.size();
  Tensor<float> x({batch, 1, 28, 28}), y({batch});
  std::mt19937 gen(7);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = float(gen() & 0xff) / 255.0f;
  for (std::size_t i = 0; i < batch; ++i) y[i] = float(gen() % 10);

  std::vector<Tensor<float>> out(L), grad(2);
  Tensor<float> dloss;
  Adam<float> adam(AdamOptions(1e-3f).epsilon(1e-7f));
  SparseCrossEntropy loss;
  std::vector<std::vector<double>> fwd(L), bwd(L);
  std::vector<double> t_loss, t_zero, t_opt, t_total;
  net.set_training(true);
  for (int s = 0; s < steps + 3; ++s) {  // 3 warm-up steps, so every buffer has its size
    const double t0 = now();
    const Tensor<float>* in = &x;
    for (std::size_t i = 0; i < L; ++i) {
      const double a = now();
      layers[i]->forward(*in, out[i]);
      fwd[i].push_back(now() - a);
      in = &out[i];
    }
    double a = now();
    loss(out[L - 1], y, &dloss);
    t_loss.push_back(now() - a);
    a = now();
    net.zero_grad();
    t_zero.push_back(now() - a);
    const Tensor<float>* dy = &dloss;
    int next = 0;
    for (std::size_t i = L; i-- > 0;) {
      const double b = now();
      layers[i]->backward(i == 0 ? x : out[i - 1], out[i], *dy, grad[next]);
      bwd[i].push_back(now() - b);
      dy = &grad[next];
      next ^= 1;
    }
    a = now();
    adam.step(net.parameters());
    t_opt.push_back(now() - a);
    t_total.push_back(now() - t0);
    if (s < 3) {
      for (auto* v : {&t_loss, &t_zero, &t_opt, &t_total}) v->clear();
      for (std::size_t i = 0; i < L; ++i) fwd[i].clear(), bwd[i].clear();
    }
  }
  std::printf("%s, batch %zu, %d thread(s), %s time, ms per batch (median of %d)\n", net_name.c_str(), batch,
              g_threads, g_threads == 1 ? "CPU" : "wall", steps);
  std::printf("%-28s %9s %9s\n", "layer", "forward", "backward");
  double sf = 0, sb = 0;
  for (std::size_t i = 0; i < L; ++i) {
    const double f = 1e3 * median(fwd[i]), b = 1e3 * median(bwd[i]);
    sf += f, sb += b;
    std::printf("%-28s %9.3f %9.3f\n", layers[i]->name().c_str(), f, b);
  }
  std::printf("%-28s %9.3f %9.3f\n", "sum of layers", sf, sb);
  std::printf("loss %.3f  zero_grad %.3f  adam %.3f  step total %.3f ms  -> %.0f img/s\n", 1e3 * median(t_loss),
              1e3 * median(t_zero), 1e3 * median(t_opt), 1e3 * median(t_total), double(batch) / median(t_total));

  // The same through train_on_batch, and inference at batch 256.
  std::vector<double> tob;
  for (int s = 0; s < steps; ++s) {
    const double a = now();
    net.train_on_batch(x, y);
    tob.push_back(now() - a);
  }
  Tensor<float> xi({bench::kInferenceBatch, 1, 28, 28});
  for (std::size_t i = 0; i < xi.size(); ++i) xi[i] = x[i % x.size()];
  net.set_training(false);
  net.forward(xi);
  std::vector<double> inf;
  for (int s = 0; s < std::max(3, steps / 4); ++s) {
    const double a = now();
    net.forward(xi);
    inf.push_back(now() - a);
  }
  std::printf("train_on_batch %.3f ms -> %.0f img/s; inference (batch 256) %.3f ms -> %.0f img/s\n",
              1e3 * median(tob), double(batch) / median(tob), 1e3 * median(inf), double(bench::kInferenceBatch) / median(inf));
  return 0;
}
