// The kernel yardstick: oneDNN's convolutions at the shapes, batches and thread counts of
// bench_kernels' convolution benchmarks, each followed by faltung's run of the same pass, with
// faltung's speed as a share of oneDNN's (pct_onednn) on faltung's row. Built only when Debian's
// libdnnl-dev (oneDNN) is found.
//
// oneDNN runs in its best layout: every tensor's format is left to the primitive ("any"), which
// on AVX-512 picks channel-blocked layouts (16 channels interleaved) for its JIT kernels; the
// inputs are reordered into them once, outside the timing, so only the convolution is timed, as
// faltung's own rows time only its kernel on NCHW. The implementation oneDNN chose is the label
// ("jit:avx512_core"). Before timing, each oneDNN pass is checked against faltung's kernel on the
// same inputs: a yardstick that computed a different convolution would be no yardstick.
//
//   onednn/conv_forward/32x64_14/batch:64/threads:1   then   conv_forward/32x64_14/batch:64/threads:1
//   FALTUNG_BENCH_THREADS=1,2 ./bench_onednn --benchmark_filter=14/batch:64
#include <faltung/faltung.hpp>

#include <oneapi/dnnl/dnnl.hpp>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "bench_common.hpp"
#include "conv_benchmark.hpp"

#if DNNL_VERSION_MAJOR != 2
#error "bench_onednn is written against oneDNN 2.x (Debian 12's libdnnl-dev); CMake should not have built it"
#endif

namespace {

using bench::ConvShape;
using bench::ConvTensors;
using bench::Pass;
using tag = dnnl::memory::format_tag;

/// One pass of oneDNN's convolution at a shape, its tensors in the layouts it chose, with the
/// values of `t` (NCHW / OIHW) reordered in.
struct OneDnnConv {
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream{engine};
  dnnl::primitive conv;
  std::unordered_map<int, dnnl::memory> args;
  int result_arg = 0;        ///< the argument the pass writes (checked against faltung's)
  std::string implementation;

  OneDnnConv(const faltung::kernels::Conv2DParams& p, Pass pass, const ConvTensors& t) {
    using dnnl::memory;
    const memory::dims src{memory::dim(p.batch), memory::dim(p.in_channels), memory::dim(p.h.in), memory::dim(p.w.in)},
        weights{memory::dim(p.out_channels), memory::dim(p.in_channels), memory::dim(p.h.window),
                memory::dim(p.w.window)},
        bias{memory::dim(p.out_channels)},
        dst{memory::dim(p.batch), memory::dim(p.out_channels), memory::dim(p.h.out), memory::dim(p.w.out)},
        strides{memory::dim(p.h.stride), memory::dim(p.w.stride)},
        pad_before{memory::dim(p.h.pad_before), memory::dim(p.w.pad_before)},
        pad_after{pad_end(p.h), pad_end(p.w)};
    const auto any = [](const memory::dims& d) { return memory::desc(d, memory::data_type::f32, tag::any); };
    const memory::desc bias_md(bias, memory::data_type::f32, tag::x);
    // Every pass needs the forward primitive's description (the backward ones as a hint).
    const dnnl::convolution_forward::primitive_desc forward(
        dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct,
                                        any(src), any(weights), bias_md, any(dst), strides, pad_before, pad_after),
        engine);
    const float* x = t.x.data();
    const float* w = t.w.data();
    const float* dy = t.y.data();  // the backward passes' dL/dy
    switch (pass) {
      case Pass::Forward:
        conv = dnnl::convolution_forward(forward);
        implementation = forward.impl_info_str();
        args[DNNL_ARG_SRC] = input(forward.src_desc(), src, tag::nchw, x);
        args[DNNL_ARG_WEIGHTS] = input(forward.weights_desc(), weights, tag::oihw, w);
        args[DNNL_ARG_BIAS] = input(bias_md, bias, tag::x, t.b.data());
        args[DNNL_ARG_DST] = memory(forward.dst_desc(), engine);
        result_arg = DNNL_ARG_DST;
        break;
      case Pass::BackwardData: {
        const dnnl::convolution_backward_data::primitive_desc pd(
            dnnl::convolution_backward_data::desc(dnnl::algorithm::convolution_direct, any(src), any(weights),
                                                  any(dst), strides, pad_before, pad_after),
            engine, forward);
        conv = dnnl::convolution_backward_data(pd);
        implementation = pd.impl_info_str();
        args[DNNL_ARG_DIFF_DST] = input(pd.diff_dst_desc(), dst, tag::nchw, dy);
        args[DNNL_ARG_WEIGHTS] = input(pd.weights_desc(), weights, tag::oihw, w);
        args[DNNL_ARG_DIFF_SRC] = memory(pd.diff_src_desc(), engine);
        result_arg = DNNL_ARG_DIFF_SRC;
        break;
      }
      case Pass::BackwardWeights: {
        const dnnl::convolution_backward_weights::primitive_desc pd(
            dnnl::convolution_backward_weights::desc(dnnl::algorithm::convolution_direct, any(src), any(weights),
                                                     bias_md, any(dst), strides, pad_before, pad_after),
            engine, forward);
        conv = dnnl::convolution_backward_weights(pd);
        implementation = pd.impl_info_str();
        args[DNNL_ARG_SRC] = input(pd.src_desc(), src, tag::nchw, x);
        args[DNNL_ARG_DIFF_DST] = input(pd.diff_dst_desc(), dst, tag::nchw, dy);
        args[DNNL_ARG_DIFF_WEIGHTS] = memory(pd.diff_weights_desc(), engine);
        args[DNNL_ARG_DIFF_BIAS] = memory(bias_md, engine);
        result_arg = DNNL_ARG_DIFF_WEIGHTS;
        break;
      }
    }
  }

  /// The padding after the input that makes the window end on the last output: oneDNN asks for it.
  static dnnl::memory::dim pad_end(const faltung::WindowAxis& a) {
    return dnnl::memory::dim((a.out - 1) * a.stride + a.window) - dnnl::memory::dim(a.in + a.pad_before);
  }

  void run() {
    conv.execute(stream, args);
    stream.wait();
  }

  /// The pass's result in faltung's layout (NCHW, or OIHW for the weight gradient), into `out`.
  void result(faltung::Tensor<float>& out, tag plain) {
    dnnl::memory& m = args.at(result_arg);
    dnnl::memory user({m.get_desc().dims(), dnnl::memory::data_type::f32, plain}, engine, out.data());
    dnnl::reorder(m, user).execute(stream, m, user);
    stream.wait();
  }

 private:
  /// A memory in the primitive's chosen layout `md`, holding the plain tensor `values`.
  dnnl::memory input(const dnnl::memory::desc& md, const dnnl::memory::dims& dims, tag plain, const float* values) {
    dnnl::memory user({dims, dnnl::memory::data_type::f32, plain}, engine, const_cast<float*>(values));
    dnnl::memory chosen(md, engine);
    dnnl::reorder(user, chosen).execute(stream, user, chosen);
    stream.wait();
    return chosen;
  }
};

/// The largest difference between a and b, relative to the largest magnitude in b.
double relative_difference(const faltung::Tensor<float>& a, const faltung::Tensor<float>& b) {
  double diff = 0, scale = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    diff = std::max(diff, double(std::fabs(a[i] - b[i])));
    scale = std::max(scale, double(std::fabs(b[i])));
  }
  return diff / std::max(scale, 1e-30);
}

/// Both libraries sum the same products in different orders: float rounding, nothing more.
constexpr double kTolerance = 1e-4;

void BM_onednn_conv(benchmark::State& state, ConvShape s, Pass pass, std::size_t batch, int threads) {
  faltung::set_num_threads(threads);  // oneDNN's OpenMP runtime follows it
  const faltung::kernels::Conv2DParams p = bench::conv_params(s, batch);
  ConvTensors t(p);
  OneDnnConv onednn(p, pass, t);
  state.SetLabel(onednn.implementation);

  // Check: oneDNN's result against faltung's on the same inputs.
  faltung::Tensor<float> workspace;
  faltung::Tensor<float> expected, got;
  onednn.run();
  switch (pass) {
    case Pass::Forward:
      bench::run_conv_pass(p, pass, t, workspace);
      expected = t.y;  // faltung's forward wrote y
      got.resize(t.y.shape());
      onednn.result(got, tag::nchw);
      break;
    case Pass::BackwardData:
      bench::run_conv_pass(p, pass, t, workspace);
      expected = t.dx;
      got.resize(t.dx.shape());
      onednn.result(got, tag::nchw);
      break;
    case Pass::BackwardWeights:
      t.dw.fill(0.0f);
      t.db.fill(0.0f);
      bench::run_conv_pass(p, pass, t, workspace);
      expected = t.dw;
      got.resize(t.dw.shape());
      onednn.result(got, tag::oihw);
      break;
  }
  const double difference = relative_difference(got, expected);
  if (!(difference <= kTolerance)) {
    state.SkipWithError(("oneDNN's result differs from faltung's by " + std::to_string(difference) +
                         " of the largest value: not the same convolution")
                            .c_str());
    return;
  }

  for (auto _ : state) {
    onednn.run();
    benchmark::ClobberMemory();
  }
  bench::set_conv_counters(state, p, threads);
}

/// Hands every run on to the reporter the command line chose, after adding to each faltung row
/// its speed as a percentage of the oneDNN row of the same name that ran just before it.
class RatioReporter : public benchmark::BenchmarkReporter {
 public:
  explicit RatioReporter(std::unique_ptr<benchmark::BenchmarkReporter> inner) : inner_(std::move(inner)) {}

  bool ReportContext(const Context& context) override { return inner_->ReportContext(context); }
  void ReportRuns(const std::vector<Run>& runs) override {
    std::vector<Run> out = runs;
    for (Run& r : out) {
      const auto flops = r.counters.find("FLOP/s");
      if (r.error_occurred || flops == r.counters.end()) continue;
      const std::string name = r.benchmark_name();
      if (name.rfind(kPrefix, 0) == 0) {
        onednn_[name.substr(std::strlen(kPrefix))] = flops->second.value;
        r.counters["pct_onednn"] = benchmark::Counter(100.0);  // every row has the column: one table
      } else if (auto it = onednn_.find(name); it != onednn_.end() && it->second > 0) {
        r.counters["pct_onednn"] = benchmark::Counter(100.0 * flops->second.value / it->second);
      }
    }
    inner_->ReportRuns(out);
  }
  void Finalize() override { inner_->Finalize(); }

  static constexpr const char* kPrefix = "onednn/";

 private:
  std::unique_ptr<benchmark::BenchmarkReporter> inner_;
  std::map<std::string, double> onednn_;
};

/// The reporter --benchmark_format asks for (read before benchmark::Initialize consumes it);
/// console unless it says json.
std::unique_ptr<benchmark::BenchmarkReporter> chosen_reporter(int argc, char** argv) {
  std::string format = "console";
  for (int i = 1; i < argc; ++i)
    if (std::strncmp(argv[i], "--benchmark_format=", 19) == 0) format = argv[i] + 19;
  if (format == "json") return std::make_unique<benchmark::JSONReporter>();
  const bool color = isatty(fileno(stdout)) != 0;
  return std::make_unique<benchmark::ConsoleReporter>(color ? benchmark::ConsoleReporter::OO_ColorTabular
                                                            : benchmark::ConsoleReporter::OO_Tabular);
}

}  // namespace

int main(int argc, char** argv) {
  RatioReporter reporter(chosen_reporter(argc, argv));
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  const dnnl_version_t* v = dnnl_version();
  benchmark::AddCustomContext("onednn", std::to_string(v->major) + "." + std::to_string(v->minor) + "." +
                                            std::to_string(v->patch) + " (cpu runtime " +
                                            (v->cpu_runtime == DNNL_RUNTIME_OMP ? "OpenMP" : "other") + ")");
  const auto threads = bench::thread_counts();
  for (const ConvShape& s : bench::kConvShapes)
    for (Pass pass : bench::kPasses)
      for (std::size_t batch : {64, 256})
        for (int t : threads) {
          const std::string name = bench::conv_benchmark_name(s, pass, batch, t);
          bench::timed(benchmark::RegisterBenchmark((RatioReporter::kPrefix + name).c_str(), BM_onednn_conv, s, pass,
                                                    batch, t),
                       t)
              ->MinTime(0.3);
          bench::timed(benchmark::RegisterBenchmark(name.c_str(), bench::BM_conv, s, pass, batch, t), t)->MinTime(0.3);
        }
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}
