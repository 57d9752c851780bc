#pragma once
// faltung's convolution passes at the reference networks' shapes, as bench_kernels and
// bench_onednn (which runs oneDNN's beside them) both time them.
//   conv_forward/32x64_14/batch:64/threads:1   pass / in x out channels _ size / batch / threads
// Counters: FLOP/s (2 per multiply-add of the pass), pct_peak (% of the FMA peak at the same
// thread count, measured in the same run), items_per_second (images/s).

#include <faltung/kernels/conv2d.hpp>
#include <faltung/kernels/geometry.hpp>
#include <faltung/tensor.hpp>
#include <faltung/threading.hpp>

#include <string>

#include "bench_common.hpp"

namespace bench {

/// A 3x3 'same' convolution of a reference network, and the batch that network trains at.
struct ConvShape {
  const char* name;  ///< "INxOUT_SIZE"
  std::size_t in_channels, out_channels, size, network_batch;
};
inline constexpr ConvShape kConvShapes[] = {
    {"1x32_28", 1, 32, 28, 64}, {"1x128_28", 1, 128, 28, 256}, {"32x64_14", 32, 64, 14, 64}, {"128x64_14", 128, 64, 14, 256}};

enum class Pass { Forward, BackwardData, BackwardWeights };
inline constexpr Pass kPasses[] = {Pass::Forward, Pass::BackwardData, Pass::BackwardWeights};

inline const char* pass_name(Pass pass) {
  switch (pass) {
    case Pass::Forward: return "forward";
    case Pass::BackwardData: return "backward_data";
    case Pass::BackwardWeights: return "backward_weights";
  }
  return "?";
}

/// "conv_forward/32x64_14/batch:64/threads:1"
inline std::string conv_benchmark_name(const ConvShape& s, Pass pass, std::size_t batch, int threads) {
  return std::string("conv_") + pass_name(pass) + "/" + s.name + "/batch:" + std::to_string(batch) +
         "/threads:" + std::to_string(threads);
}

inline faltung::kernels::Conv2DParams conv_params(const ConvShape& s, std::size_t batch) {
  faltung::kernels::Conv2DParams p;
  p.batch = batch;
  p.in_channels = s.in_channels;
  p.out_channels = s.out_channels;
  p.h = faltung::window_axis(s.size, 3, 1, faltung::Same, 0, "h");
  p.w = faltung::window_axis(s.size, 3, 1, faltung::Same, 0, "w");
  return p;
}

/// FLOPs of one pass (each pass is the same number of multiply-adds).
inline double conv_flops(const faltung::kernels::Conv2DParams& p) {
  return 2.0 * double(p.batch) * double(p.out_channels) * double(p.out_pixels()) * double(p.patch_size());
}

/// FLOP/s, pct_peak and images/s of a convolution benchmark.
inline void set_conv_counters(benchmark::State& state, const faltung::kernels::Conv2DParams& p, int threads) {
  const double flops = conv_flops(p);
  state.counters["FLOP/s"] = benchmark::Counter(flops, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["pct_peak"] =
      benchmark::Counter(100.0 * flops / fma_peak(threads), benchmark::Counter::kIsIterationInvariantRate);
  state.SetItemsProcessed(std::int64_t(state.iterations()) * std::int64_t(p.batch));
}

/// The inputs of every pass, NCHW / OIHW as faltung keeps them, filled from fixed seeds.
struct ConvTensors {
  faltung::Tensor<float> x, w, b, y, dx, dw, db;
  explicit ConvTensors(const faltung::kernels::Conv2DParams& p)
      : x({p.batch, p.in_channels, p.h.in, p.w.in}),
        w({p.out_channels, p.in_channels, p.h.window, p.w.window}),
        b({p.out_channels}),
        y({p.batch, p.out_channels, p.h.out, p.w.out}),
        dx(x.shape()),
        dw(w.shape()),
        db(b.shape()) {
    fill_random(x, 1);
    fill_random(w, 2);
    fill_random(b, 4);
    fill_random(y, 3);  // also dL/dy of the backward passes
  }
};

/// Runs one pass of faltung's kernels: forward writes y; backward-data reads y as dL/dy and
/// writes dx; backward-weights ADDS into dw and db.
inline void run_conv_pass(const faltung::kernels::Conv2DParams& p, Pass pass, ConvTensors& t,
                          faltung::Tensor<float>& workspace) {
  namespace k = faltung::kernels;
  switch (pass) {
    case Pass::Forward: k::conv2d_forward(p, t.x.data(), t.w.data(), t.b.data(), t.y.data(), workspace); break;
    case Pass::BackwardData: k::conv2d_backward_data(p, t.y.data(), t.w.data(), t.dx.data(), workspace); break;
    case Pass::BackwardWeights:
      k::conv2d_backward_weights(p, t.x.data(), t.y.data(), t.dw.data(), t.db.data(), workspace);
      break;
  }
}

inline void BM_conv(benchmark::State& state, ConvShape s, Pass pass, std::size_t batch, int threads) {
  faltung::set_num_threads(threads);
  const faltung::kernels::Conv2DParams p = conv_params(s, batch);
  ConvTensors t(p);
  faltung::Tensor<float> workspace;
  for (auto _ : state) {
    run_conv_pass(p, pass, t, workspace);
    benchmark::ClobberMemory();
  }
  set_conv_counters(state, p, threads);
}

}  // namespace bench
