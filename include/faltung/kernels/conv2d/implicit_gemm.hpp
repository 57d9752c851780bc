#pragma once
// The implicit-GEMM convolution: stride 1, float with AVX-512 / AVX2, K > 32. No column matrix
// is formed.
//
// With stride 1, row (c, ki, kj) of im2col's matrix, read over the "wide" pixel index
// p' = i * Wp + j (the padded plane's row length Wp in place of OW), is the padded plane of
// channel c itself, shifted by ki * Wp + kj. So the GEMM reads B's rows straight from the C
// padded planes through a table of those K offsets (GemmArgs::b_rows). Its output has Wp - OW =
// KW - 1 extra columns per row, computed and dropped when the result is copied out: 224 instead
// of 196 pixels for 3x3 on 14x14, 14% more arithmetic. In exchange nothing writes or re-reads
// the K x P column matrix (900 KiB for 128 channels on 14x14, as large as L2), and B is C planes
// of 1 KiB instead of K rows of P: 32 KiB for 32 channels, which stays in L1.
//
// Backward-data is the same computation. For stride 1, dx is the 'valid' correlation of dz,
// padded by (KH - 1 - pad top, KW - 1 - pad left), with the kernel flipped in space and its two
// channel axes swapped: w'[c, o, KH-1-ki, KW-1-kj] = w[o, c, ki, kj]. That needs every pad <=
// window - 1: always so for 'same' and 'valid'; a larger explicit pad takes im2col.
//
// Backward-weights reads the padded planes of x through the same offsets as A instead:
//   dW1^T (K + 1, OC) += X (K + 1, P') * dZ^T (P', OC)
// with dZ in the wide layout, zero in the extra columns (so they add nothing), and X's last row
// all ones, which makes the last row of dW1^T the bias gradient.

#include <algorithm>
#include <cstddef>
#include <vector>

#include "faltung/kernels/conv2d/fused_pool.hpp"
#include "faltung/kernels/conv2d/gradients.hpp"
#include "faltung/kernels/conv2d/params.hpp"
#include "faltung/kernels/conv2d/rows.hpp"
#include "faltung/kernels/gemm.hpp"
#include "faltung/tensor.hpp"
#include "faltung/threading.hpp"

FALTUNG_BEGIN_NAMESPACE
namespace kernels {

/// Channels stored as padded planes, back to back: plane c is (rows, ld) with the channel's
/// (height, width) pixels at (top, left) and zeros around them. After the last plane come
/// round_up16(ld) zeros, for the shifted rows of the last channel that read up to KW - 1 past it.
struct PlaneStack {
  std::size_t channels, rows, ld, top, left, height, width;
  std::size_t plane() const { return rows * ld; }
  std::size_t size() const { return channels * plane() + round_up16(ld); }

  /// Copies the channels (channels, height, width) of src into the planes' interiors; with a
  /// gate (laid out as src), only where the gate is > 0 (a fused ReLU's gradient).
  void fill(float* stack, const float* src, const float* gate = nullptr) const {
    const std::size_t pixels = height * width;
    for (std::size_t c = 0; c < channels; ++c)
      copy_rows(src + c * pixels, width, stack + c * plane() + top * ld + left, ld, height, width,
                gate ? gate + c * pixels : nullptr);
  }
  /// rows_out[(c * kh + ki) * kw + kj] = the offset of the window tap (ki, kj) of channel c: the
  /// B (or A) row of the implicit GEMM.
  void window_offsets(std::size_t kh, std::size_t kw, std::ptrdiff_t* rows_out) const {
    for (std::size_t c = 0; c < channels; ++c)
      for (std::size_t ki = 0; ki < kh; ++ki)
        for (std::size_t kj = 0; kj < kw; ++kj) *rows_out++ = std::ptrdiff_t(c * plane() + ki * ld + kj);
  }
};

/// x's channels in the forward's padded planes: (OH + KH - 1, OW + KW - 1), x at (pad top, pad left).
inline PlaneStack input_planes(const Conv2DParams& p) {
  return {p.in_channels, p.h.out + p.h.window - 1, p.w.out + p.w.window - 1, p.h.pad_before, p.w.pad_before,
          p.h.in, p.w.in};
}
/// dz's channels padded for the backward-data correlation: (H + KH - 1, W + KW - 1), dz at
/// (KH - 1 - pad top, KW - 1 - pad left).
inline PlaneStack gradient_planes(const Conv2DParams& p) {
  return {p.out_channels, p.h.in + p.h.window - 1, p.w.in + p.w.window - 1, p.h.window - 1 - p.h.pad_before,
          p.w.window - 1 - p.w.pad_before, p.h.out, p.w.out};
}

/// Whether the implicit-GEMM kernels take this convolution (see above). With K <= 32 (a first
/// layer) the output, not the column matrix, dominates the traffic, and the wide layout's extra
/// columns and copy-out would cost more than im2col saves.
template <class T>
bool implicit_gemm_applies(const Conv2DParams& p) {
  auto axis_fits = [](const WindowAxis& a) {
    const std::size_t extent = a.out - 1 + a.window;  // of the padded input, with stride 1
    return a.stride == 1 && a.pad_before < a.window && extent >= a.pad_before + a.in &&
           extent - a.pad_before - a.in < a.window;
  };
  return use_simd_gemm<T>() && p.patch_size() > 32 && axis_fits(p.h) && axis_fits(p.w);
}

/// The row-offset tables of the implicit GEMM are built by the calling thread before its
/// parallel region and only read inside it. Kept per calling thread, grown to the largest table
/// and then reused: no allocation in the steady state.
inline std::vector<std::ptrdiff_t>& offset_table_scratch() {
  static thread_local std::vector<std::ptrdiff_t> table;
  return table;
}

#if FALTUNG_HAS_SIMD_GEMM
/// The GEMM both the forward and backward-data run per sample: out (M, wide) = kernel (M, depth)
/// times the window taps of padded planes, tap l (row l of B) at planes + taps[l].
inline simd::GemmArgs taps_gemm(const float* kernel, std::size_t depth, const float* planes,
                                const std::ptrdiff_t* taps, float* out, std::size_t wide) {
  simd::GemmArgs g;
  g.depth = depth;
  g.a = kernel;
  g.a_rs = depth;
  g.b = planes;
  g.b_rows = taps;
  g.c = out;
  g.ldc = wide;
  return g;
}

/// conv2d_forward's implicit-GEMM form (see above). workspace, per thread: x's padded planes |
/// the wide output (OC, OH * Wp).
inline void conv2d_forward_implicit(const Conv2DParams& p, const float* x, const float* w, const float* b,
                                    float* y, Tensor<float>& workspace, bool relu, const FusedMaxPool<float>* pool) {
  const std::size_t K = p.patch_size(), OC = p.out_channels, OH = p.h.out, OW = p.w.out, P = OH * OW;
  const PlaneStack xs = input_planes(p);
  const std::size_t wide = OH * xs.ld, in_sample = p.in_channels * p.in_pixels();
  const int threads = conv_threads(p, 1);
  const std::size_t per_thread = xs.size() + OC * wide + (pool ? OC * P : 0);
  resize_workspace(workspace, threads, per_thread, 0, "conv2d_forward");
  std::vector<std::ptrdiff_t>& rows = offset_table_scratch();
  rows.resize(K);
  xs.window_offsets(p.h.window, p.w.window, rows.data());
  FALTUNG_OMP(parallel num_threads(threads))
  {
    float* planes = workspace.data() + std::size_t(thread_index()) * per_thread;
    float* y_wide = planes + xs.size();  // (OC, OH, Wp)
    float* pooled_in = y_wide + OC * wide;  // (OC, OH, OW) before a fused pool
    std::fill(planes, planes + xs.size(), 0.0f);  // the borders; the interiors are rewritten per sample
    simd::GemmArgs g = taps_gemm(w, K, planes, rows.data(), y_wide, wide);  // W (OC, K) * taps of x
    g.row_init = b;
    g.relu = relu;
    FALTUNG_OMP(for schedule(static))
    for (std::ptrdiff_t n = 0; n < std::ptrdiff_t(p.batch); ++n) {
      xs.fill(planes, x + std::size_t(n) * in_sample);
      simd::gemm(OC, wide, g);
      float* out = pool ? pooled_in : y + std::size_t(n) * OC * P;
      copy_rows(y_wide, xs.ld, out, OW, OC * OH, OW);  // drop the extra columns
      if (pool) pool->forward_sample(std::size_t(n), out);
    }
  }
}

/// conv2d_backward's implicit-GEMM form (see above and conv2d_backward). workspace, per thread:
///   dW:  x's padded planes, then a row of ones (P') | dz wide (OC, P') | its transpose (P', OCp)
///   dx:  dz's padded planes | dx wide (C, H * Wq)
/// then per chunk of the batch (GradientChunks) its partial dW1^T (K + 1, OCp), and once, shared:
/// the flipped kernel (C, OC * KH * KW) for dx.
inline void conv2d_backward_implicit(const Conv2DParams& p, const float* x, const float* w, const float* y,
                                     const float* dy, bool relu, float* dw, float* db, float* dx,
                                     Tensor<float>& workspace, const FusedMaxPool<float>* pool) {
  const std::size_t K = p.patch_size(), K1 = K + 1, OC = p.out_channels, C = p.in_channels;
  const std::size_t KH = p.h.window, KW = p.w.window, taps = KH * KW, OK = OC * taps;
  const std::size_t OH = p.h.out, OW = p.w.out, P = OH * OW, H = p.h.in, W = p.w.in, OCp = round_up16(OC);
  const std::size_t in_sample = C * p.in_pixels();
  const PlaneStack xs = input_planes(p), zs = gradient_planes(p);
  const std::size_t x_wide = OH * xs.ld, dx_wide = H * zs.ld;
  // Per-thread slices; a size is 0 for a pass that is not wanted.
  const std::size_t planes_size = dw ? xs.size() + x_wide : 0, dz_wide_size = dw ? OC * x_wide : 0,
                    dzt_size = dw ? x_wide * OCp : 0, part_size = dw ? K1 * OCp : 0;
  const std::size_t dz_planes_size = dx ? zs.size() : 0, dx_wide_size = dx ? C * dx_wide : 0;
  const std::size_t unpooled_size = pool ? OC * P : 0;
  const std::size_t per_thread = planes_size + dz_wide_size + dzt_size + dz_planes_size + dx_wide_size + unpooled_size;
  const GradientChunks chunks(p.batch, part_size);
  const int threads =
      std::max(1, std::min(conv_threads(p, std::size_t(dw != nullptr) + std::size_t(dx != nullptr)), int(chunks.count)));
  const std::size_t parts_total = checked_mul(chunks.count, part_size, "conv2d_backward: the workspace");
  resize_workspace(workspace, threads, per_thread,
                   checked_add(parts_total, dx ? C * OK : 0, "conv2d_backward: the workspace"), "conv2d_backward");
  float* const partials = workspace.data() + std::size_t(threads) * per_thread;  // chunk g's (K + 1, OCp) at g * part_size
  float* const w_flipped = partials + parts_total;                                // (C, OC * KH * KW)
  std::vector<std::ptrdiff_t>& table = offset_table_scratch();
  table.resize(K1 + OK);
  std::ptrdiff_t* const x_rows = table.data();      // A rows of dW: x's taps, then the row of ones
  std::ptrdiff_t* const dz_rows = x_rows + K1;      // B rows of dx: dz's taps
  xs.window_offsets(KH, KW, x_rows);
  x_rows[K] = std::ptrdiff_t(xs.size());
  zs.window_offsets(KH, KW, dz_rows);
  FALTUNG_OMP(parallel num_threads(threads))
  {
    float* const planes = workspace.data() + std::size_t(thread_index()) * per_thread;
    float* const dz_wide = planes + planes_size;  // (OC, OH, Wp)
    float* const dzt = dz_wide + dz_wide_size;     // (OH * Wp, OCp)
    float* const dz_planes = dzt + dzt_size;
    float* const dx_w = dz_planes + dz_planes_size;  // (C, H, Wq)
    float* const unpooled = dx_w + dx_wide_size;     // (OC, OH, OW) dz_n from a fused pool
    // Zero every border and extra column once; per sample only the interiors are rewritten.
    std::fill(planes, planes + per_thread, 0.0f);
    if (dw) std::fill(planes + xs.size(), planes + xs.size() + x_wide, 1.0f);
    if (dx) {
      FALTUNG_OMP(for schedule(static))
      for (std::ptrdiff_t c = 0; c < std::ptrdiff_t(C); ++c)
        for (std::size_t o = 0; o < OC; ++o)
          for (std::size_t t = 0; t < taps; ++t)
            w_flipped[(std::size_t(c) * OC + o) * taps + t] = w[(o * C + std::size_t(c)) * taps + taps - 1 - t];
    }
    simd::GemmArgs gw;  // dW1^T (K + 1, OC) += X (K + 1, P') * dZ^T (P', OC), into the chunk's partial
    gw.depth = x_wide;
    gw.a = planes;
    gw.a_rows = x_rows;
    gw.b = dzt;
    gw.ldb = OCp;
    gw.ldc = OCp;
    gw.accumulate = true;
    // dX' (C, H * Wq) = W' (C, OC * KH * KW) * the taps of dz's planes
    const simd::GemmArgs gx = taps_gemm(w_flipped, OK, dz_planes, dz_rows, dx_w, dx_wide);
    FALTUNG_OMP(for schedule(static))
    for (std::ptrdiff_t g = 0; g < std::ptrdiff_t(chunks.count); ++g) {
      gw.c = partials + std::size_t(g) * part_size;  // (K + 1, OCp)
      std::fill(gw.c, gw.c + part_size, 0.0f);
      for (std::size_t n = chunks.first(std::size_t(g)); n < chunks.first(std::size_t(g) + 1); ++n) {
        const float* dyn = unpooled;  // (OC, OH, OW)
        const float* gate = nullptr;
        if (pool) {
          pool->backward_sample(n, unpooled, relu);
        } else {
          dyn = dy + n * OC * P;
          gate = relu ? y + n * OC * P : nullptr;
        }
        if (dw) {
          xs.fill(planes, x + n * in_sample);
          copy_rows(dyn, OW, dz_wide, xs.ld, OC * OH, OW, gate);
          simd::transpose(OC, x_wide, dz_wide, x_wide, dzt, OCp);
          simd::gemm(K1, OC, gw);
        }
        if (dx) {
          zs.fill(dz_planes, dyn, gate);
          simd::gemm(C, dx_wide, gx);
          copy_rows(dx_w, zs.ld, dx + n * in_sample, W, C * H, W);  // drop the extra columns
        }
      }
    }
    // The implicit barrier above: every partial is complete.
    if (dw) add_weight_partials(partials, part_size, chunks.count, OC, K, 1, OCp, dw, db);
  }
}
#endif

}  // namespace kernels
FALTUNG_END_NAMESPACE
