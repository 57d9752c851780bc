#pragma once
// 2-D convolution (cross-correlation, as every framework computes it) on NCHW tensors:
// forward, backward-data and backward-weights, each as a naive reference and as the fast kernel.
//
// Shapes:  x (N, C, H, W)   w (OC, C, KH, KW)   b (OC)   y (N, OC, OH, OW)
//   y[n,o,i,j] = b[o] + sum_{c,p,q} w[o,c,p,q] * x[n, c, i*sh + p - pt, j*sw + q - pl]
// where reads outside the input are zero (padding).
//
// The fast kernels lower each sample to a matrix with im2col and do one GEMM per sample:
//   forward          Y_n (OC, P) = W (OC, K) * col_n (K, P) [+ b, ReLU fused into the store],
//                    K = C*KH*KW, P = OH*OW
//   backward-data    dcol (K, P) = W^T (K, OC) * dZ_n (OC, P), then col2im adds dcol into dX_n
//   backward-weights [dW | db] (OC, K + 1) += dZ_n (OC, P) * [col_n; 1]^T (P, K + 1)
// where dZ_n is dY_n, or dY_n * [Y_n > 0] for a fused ReLU. conv2d_backward does both backward
// products in one loop over the samples, while dZ_n is in cache.
// With stride 1, K > 32 and the SIMD GEMM, no matrix is formed: the implicit GEMM (its section
// below) reads the rows of col_n straight from zero-padded copies of the input planes, and
// backward-data runs as a forward convolution of the padded dZ_n with the flipped kernel.
// With AVX-512 / AVX2 and float the GEMMs are kernels/gemm.hpp's register-blocked tiles (pixels
// on the vector lanes; backward-weights with K > 32 transposes dZ_n so the output channels are);
// otherwise (double, or no SIMD) Eigen. One GEMM per sample rather than one per batch: the sample's
// column buffer stays in L2 between im2col and the GEMM, and the batch is the parallel loop.
// OpenMP runs over the samples of the batch. Forward and backward-data write only their own
// sample. Backward-weights sums over samples, so each thread accumulates into its own slice of
// the workspace, and the slices are added in thread order afterwards, each thread adding those
// of its own output channels: no atomics, and the same result for the same thread count.
// A max pool can be fused behind the convolution (FusedMaxPool): each sample's output is pooled
// while it is in cache, and its gradient unpooled there, so the full-size output never goes to
// memory.

#include <Eigen/Core>
#include <algorithm>
#include <cstddef>
#include <cstring>
#include <type_traits>
#include <vector>

#include "faltung/kernels/gemm.hpp"

#include "faltung/kernels/geometry.hpp"
#include "faltung/kernels/pool2d.hpp"
#include "faltung/tensor.hpp"
#include "faltung/threading.hpp"

namespace faltung {
namespace kernels {

struct Conv2DParams {
  std::size_t batch = 0, in_channels = 0, out_channels = 0;
  WindowAxis h, w;  // vertical and horizontal geometry

  std::size_t patch_size() const { return in_channels * h.window * w.window; }  // K
  std::size_t out_pixels() const { return h.out * w.out; }                       // P
  std::size_t in_pixels() const { return h.in * w.in; }
};

/// A max pool fused behind a convolution (Sequential runs Conv2D + MaxPool2D this way). The
/// convolution's output of each sample, (OC, OH, OW) in a per-thread buffer, is pooled into y and
/// argmax as max_pool2d_forward would pool the whole output; backward, each sample's dZ_n is
/// unpooled from dy in the same buffer, through the ReLU when there is one. Plane for plane the
/// arithmetic of the separate pool, so the results are bitwise the same.
template <class T>
struct FusedMaxPool {
  Pool2DParams p;                  ///< the pool, on the convolution's (OH, OW) planes
  T* out = nullptr;                ///< forward: y (N, OC, PH, PW), the pool's output
  std::int32_t* argmax = nullptr;  ///< (N, OC, PH, PW): written forward, read backward
  const T* y = nullptr;            ///< backward: y from the forward (the ReLU gate)
  const T* dy = nullptr;           ///< backward: dL/dy

  std::size_t in_plane() const { return p.h.in * p.w.in; }
  std::size_t out_plane() const { return p.h.out * p.w.out; }

  /// Pools sample n's convolution output (OC, OH, OW).
  void forward_sample(std::size_t n, const T* sample) const {
    for (std::size_t c = 0; c < p.channels; ++c) {
      const std::size_t plane = n * p.channels + c;
      max_pool2d_plane(p, sample + c * in_plane(), out + plane * out_plane(), argmax + plane * out_plane());
    }
  }
  /// dz (OC, OH, OW) = sample n's dL/d(convolution output): dy sent back to the winning pixels,
  /// and with a fused ReLU only where y > 0 (y is the ReLU's output at the winning pixel).
  void backward_sample(std::size_t n, T* dz, bool relu) const {
    for (std::size_t c = 0; c < p.channels; ++c) {
      const std::size_t plane = n * p.channels + c;
      max_pool2d_plane_backward(p, dy + plane * out_plane(), argmax + plane * out_plane(), dz + c * in_plane(),
                                relu ? y + plane * out_plane() : nullptr);
    }
  }
};

// ---------------------------------------------------------------------------------------------
// Naive references: the definition, loop by loop. The tests compare the fast kernels to these.

template <class T>
void conv2d_forward_naive(const Conv2DParams& p, const T* x, const T* w, const T* b, T* y) {
  for (std::size_t n = 0; n < p.batch; ++n)
    for (std::size_t o = 0; o < p.out_channels; ++o)
      for (std::size_t i = 0; i < p.h.out; ++i)
        for (std::size_t j = 0; j < p.w.out; ++j) {
          T acc = b ? b[o] : T(0);
          for (std::size_t c = 0; c < p.in_channels; ++c)
            for (std::size_t ki = 0; ki < p.h.window; ++ki)
              for (std::size_t kj = 0; kj < p.w.window; ++kj) {
                const std::ptrdiff_t r = std::ptrdiff_t(i * p.h.stride + ki) - std::ptrdiff_t(p.h.pad_before);
                const std::ptrdiff_t s = std::ptrdiff_t(j * p.w.stride + kj) - std::ptrdiff_t(p.w.pad_before);
                if (r < 0 || s < 0 || r >= std::ptrdiff_t(p.h.in) || s >= std::ptrdiff_t(p.w.in)) continue;
                acc += w[((o * p.in_channels + c) * p.h.window + ki) * p.w.window + kj] *
                       x[((n * p.in_channels + c) * p.h.in + r) * p.w.in + s];
              }
          y[((n * p.out_channels + o) * p.h.out + i) * p.w.out + j] = acc;
        }
}

/// dx = dL/dx (overwritten).
template <class T>
void conv2d_backward_data_naive(const Conv2DParams& p, const T* dy, const T* w, T* dx) {
  std::fill(dx, dx + p.batch * p.in_channels * p.in_pixels(), T(0));
  for (std::size_t n = 0; n < p.batch; ++n)
    for (std::size_t o = 0; o < p.out_channels; ++o)
      for (std::size_t i = 0; i < p.h.out; ++i)
        for (std::size_t j = 0; j < p.w.out; ++j) {
          const T g = dy[((n * p.out_channels + o) * p.h.out + i) * p.w.out + j];
          for (std::size_t c = 0; c < p.in_channels; ++c)
            for (std::size_t ki = 0; ki < p.h.window; ++ki)
              for (std::size_t kj = 0; kj < p.w.window; ++kj) {
                const std::ptrdiff_t r = std::ptrdiff_t(i * p.h.stride + ki) - std::ptrdiff_t(p.h.pad_before);
                const std::ptrdiff_t s = std::ptrdiff_t(j * p.w.stride + kj) - std::ptrdiff_t(p.w.pad_before);
                if (r < 0 || s < 0 || r >= std::ptrdiff_t(p.h.in) || s >= std::ptrdiff_t(p.w.in)) continue;
                dx[((n * p.in_channels + c) * p.h.in + r) * p.w.in + s] +=
                    g * w[((o * p.in_channels + c) * p.h.window + ki) * p.w.window + kj];
              }
        }
}

/// dw and db are ADDED to (db may be null).
template <class T>
void conv2d_backward_weights_naive(const Conv2DParams& p, const T* x, const T* dy, T* dw, T* db) {
  for (std::size_t n = 0; n < p.batch; ++n)
    for (std::size_t o = 0; o < p.out_channels; ++o)
      for (std::size_t i = 0; i < p.h.out; ++i)
        for (std::size_t j = 0; j < p.w.out; ++j) {
          const T g = dy[((n * p.out_channels + o) * p.h.out + i) * p.w.out + j];
          if (db) db[o] += g;
          for (std::size_t c = 0; c < p.in_channels; ++c)
            for (std::size_t ki = 0; ki < p.h.window; ++ki)
              for (std::size_t kj = 0; kj < p.w.window; ++kj) {
                const std::ptrdiff_t r = std::ptrdiff_t(i * p.h.stride + ki) - std::ptrdiff_t(p.h.pad_before);
                const std::ptrdiff_t s = std::ptrdiff_t(j * p.w.stride + kj) - std::ptrdiff_t(p.w.pad_before);
                if (r < 0 || s < 0 || r >= std::ptrdiff_t(p.h.in) || s >= std::ptrdiff_t(p.w.in)) continue;
                dw[((o * p.in_channels + c) * p.h.window + ki) * p.w.window + kj] +=
                    g * x[((n * p.in_channels + c) * p.h.in + r) * p.w.in + s];
              }
        }
}

// ---------------------------------------------------------------------------------------------
// im2col / col2im for one sample.
//
// Both go through one input channel at a time in a zero-padded copy of its plane, (Hp, Wp): the
// extent the windows cover, with the input at offset (pad top, pad left). Every row of col is
// then OH plain strided copies (stride 1: contiguous) without a bounds test or a zero fill, and
// col2im adds into the padded plane the same way and copies its interior out. Clipping each
// copy to the input instead costs three short loops or calls per row of 14 pixels, which made
// im2col and col2im a fifth of the second convolution's time.

/// Hp * Wp, the floats of the padded plane: the scratch im2col and col2im need.
inline std::size_t padded_plane_size(const Conv2DParams& p) {
  return ((p.h.out - 1) * p.h.stride + p.h.window) * ((p.w.out - 1) * p.w.stride + p.w.window);
}

namespace detail {
#if FALTUNG_HAS_SIMD_GEMM
/// Calls op(j, load, store) for j = 0, L, 2L, ... < n (L = simd::VecF::lanes), where load(ptr)
/// and store(ptr, reg) cover lanes j .. min(j + L, n) - 1: whole vectors, then one masked.
/// For the short rows here (14, 28 floats) a compiler-vectorised loop runs mostly its scalar tail.
template <class Op>
inline void for_lanes(std::size_t n, Op op) {
  using V = simd::VecF;
  std::size_t j = 0;
  for (; j + V::lanes <= n; j += V::lanes)
    op(j, [](const float* ptr) { return V::load(ptr); }, [](float* ptr, V::Reg v) { V::store(ptr, v); });
  if (j < n) {
    const V::Mask m = V::first(int(n - j));
    op(j, [m](const float* ptr) { return V::load(ptr, m); }, [m](float* ptr, V::Reg v) { V::store(ptr, v, m); });
  }
}
#endif

/// dst[j] += src[j] for j < n.
template <class T>
inline void add_row(T* dst, const T* src, std::size_t n) {
#if FALTUNG_HAS_SIMD_GEMM
  if constexpr (std::is_same<T, float>::value) {
    using V = simd::VecF;
    for_lanes(n, [&](std::size_t j, auto load, auto store) { store(dst + j, V::add(load(dst + j), load(src + j))); });
    return;
  }
#endif
  for (std::size_t j = 0; j < n; ++j) dst[j] += src[j];
}

/// dst[j] = src[j] for j < n; or, with a gate, src[j] where gate[j] > 0 and 0 elsewhere (the
/// gradient through a fused ReLU whose output was gate).
template <class T>
inline void copy_row(T* dst, const T* src, std::size_t n, const T* gate = nullptr) {
#if FALTUNG_HAS_SIMD_GEMM
  if constexpr (std::is_same<T, float>::value) {
    using V = simd::VecF;
    if (gate)
      for_lanes(n, [&](std::size_t j, auto load, auto store) {
        store(dst + j, V::where_positive(load(gate + j), load(src + j)));
      });
    else
      for_lanes(n, [&](std::size_t j, auto load, auto store) { store(dst + j, load(src + j)); });
    return;
  }
#endif
  if (gate)
    for (std::size_t j = 0; j < n; ++j) dst[j] = gate[j] > T(0) ? src[j] : T(0);
  else
    std::copy(src, src + n, dst);
}

/// copy_row over `rows` rows: src's rows src_ld apart (gate's as src's), dst's dst_ld apart.
template <class T>
inline void copy_rows(const T* src, std::size_t src_ld, T* dst, std::size_t dst_ld, std::size_t rows,
                      std::size_t cols, const T* gate = nullptr) {
  for (std::size_t r = 0; r < rows; ++r)
    copy_row(dst + r * dst_ld, src + r * src_ld, cols, gate ? gate + r * src_ld : nullptr);
}

/// The padded plane's geometry: Hp, Wp, and the window's top-left input pixel's place in it.
struct PaddedPlane {
  std::size_t hp, wp;
  explicit PaddedPlane(const Conv2DParams& p)
      : hp((p.h.out - 1) * p.h.stride + p.h.window), wp((p.w.out - 1) * p.w.stride + p.w.window) {}
  /// The input rows [0, rows) and columns [0, cols) that lie inside the plane (the rest is never
  /// read by a window: 'valid' with a stride that does not divide the input).
  std::size_t rows(const Conv2DParams& p) const { return std::min(p.h.in, hp - std::min(hp, p.h.pad_before)); }
  std::size_t cols(const Conv2DParams& p) const { return std::min(p.w.in, wp - std::min(wp, p.w.pad_before)); }
};
}  // namespace detail

/// col (K, ld), ld >= P: row (c, ki, kj), column (i, j) holds x[c, i*sh + ki - pt, j*sw + kj - pl],
/// 0 outside the input. x is one sample (C, H, W); plane (Hp, Wp) is scratch
/// (padded_plane_size). Columns P..ld-1 are left untouched.
template <class T>
void im2col(const Conv2DParams& p, const T* x, T* col, std::size_t ld, T* plane) {
  const detail::PaddedPlane g(p);
  const std::size_t OW = p.w.out, rows = g.rows(p), cols = g.cols(p);
  std::fill(plane, plane + g.hp * g.wp, T(0));  // the border; the interior is overwritten per channel
  for (std::size_t c = 0; c < p.in_channels; ++c) {
    const T* xc = x + c * p.in_pixels();  // (H, W)
    for (std::size_t r = 0; r < rows; ++r)
      detail::copy_row(plane + (r + p.h.pad_before) * g.wp + p.w.pad_before, xc + r * p.w.in, cols);
    for (std::size_t ki = 0; ki < p.h.window; ++ki)
      for (std::size_t kj = 0; kj < p.w.window; ++kj) {
        T* row = col + ((c * p.h.window + ki) * p.w.window + kj) * ld;
        for (std::size_t i = 0; i < p.h.out; ++i) {
          const T* src = plane + (i * p.h.stride + ki) * g.wp + kj;  // the window's pixel of column (i, 0)
          if (p.w.stride == 1)
            detail::copy_row(row + i * OW, src, OW);
          else
            for (std::size_t j = 0; j < OW; ++j) row[i * OW + j] = src[j * p.w.stride];
        }
      }
  }
}

/// col (K, P) as above, unpadded (a convenience for tests: allocates its scratch).
template <class T>
void im2col(const Conv2DParams& p, const T* x, T* col) {
  std::vector<T> plane(padded_plane_size(p));
  im2col(p, x, col, p.out_pixels(), plane.data());
}

/// The adjoint of im2col: adds every column entry back to the input pixel it was read from.
/// col (K, ld), ld >= P; dx (C, H, W) is overwritten; plane (Hp, Wp) is scratch. Each input
/// pixel receives its terms in (ki, kj, i, j) order, whatever the padding.
template <class T>
void col2im(const Conv2DParams& p, const T* col, T* dx, std::size_t ld, T* plane) {
  const detail::PaddedPlane g(p);
  const std::size_t OW = p.w.out, rows = g.rows(p), cols = g.cols(p);
  if (rows < p.h.in || cols < p.w.in) std::fill(dx, dx + p.in_channels * p.in_pixels(), T(0));  // pixels no window reads
  for (std::size_t c = 0; c < p.in_channels; ++c) {
    // (ki, kj) inside the channel: the padded plane (at most a few KiB) stays in L1 while its
    // KH*KW rows of col are added into it.
    std::fill(plane, plane + g.hp * g.wp, T(0));
    for (std::size_t ki = 0; ki < p.h.window; ++ki)
      for (std::size_t kj = 0; kj < p.w.window; ++kj) {
        const T* row = col + ((c * p.h.window + ki) * p.w.window + kj) * ld;
        for (std::size_t i = 0; i < p.h.out; ++i) {
          T* dst = plane + (i * p.h.stride + ki) * g.wp + kj;
          if (p.w.stride == 1)
            detail::add_row(dst, row + i * OW, OW);
          else
            for (std::size_t j = 0; j < OW; ++j) dst[j * p.w.stride] += row[i * OW + j];
        }
      }
    T* dxc = dx + c * p.in_pixels();  // (H, W)
    for (std::size_t r = 0; r < rows; ++r)
      detail::copy_row(dxc + r * p.w.in, plane + (r + p.h.pad_before) * g.wp + p.w.pad_before, cols);
  }
}

/// col (K, P) as above, unpadded (a convenience for tests: allocates its scratch).
template <class T>
void col2im(const Conv2DParams& p, const T* col, T* dx) {
  std::vector<T> plane(padded_plane_size(p));
  col2im(p, col, dx, p.out_pixels(), plane.data());
}

// ---------------------------------------------------------------------------------------------
// Fast kernels. `workspace` is resized as needed and kept by the caller across batches.
//
// With AVX-512 or AVX2 (and T = float) the GEMMs are kernels/gemm.hpp's register-blocked tiles,
// which read the operands in place; otherwise Eigen. The column buffers have their rows padded
// to a multiple of 16 floats (Pp >= P), so every row starts on a 64-byte boundary.

template <class T>
using RowMajorMap = Eigen::Map<Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>;
template <class T>
using ConstRowMajorMap = Eigen::Map<const Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>;
/// A row-major matrix whose rows are `stride` elements apart (the padded column buffers).
template <class T>
using StridedMap = Eigen::Map<Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>, 0, Eigen::OuterStride<>>;
template <class T>
using ConstStridedMap =
    Eigen::Map<const Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>, 0, Eigen::OuterStride<>>;

namespace detail {
/// n rounded up to a multiple of 16 (one cache line of floats).
inline std::size_t round_up16(std::size_t n) { return (n + 15) / 16 * 16; }

template <class T>
constexpr bool use_simd_gemm() {
  return FALTUNG_HAS_SIMD_GEMM && std::is_same<T, float>::value;
}

/// One sample's share of the weight gradient, added into dw_t:
///   dW1 (OC, K1) += dz (OC, P) * col (K1, P)^T
/// where col's last row is ones, so dW1's last column is the bias gradient. col has rows Pp
/// apart. transposed (SIMD, K1 > 33): dw_t holds dW1^T (K1, OCp) and dyt (P, OCp) is scratch.
template <class T>
void conv_weight_gradient(std::size_t OC, std::size_t K1, std::size_t P, std::size_t Pp, std::size_t OCp,
                          bool transposed, const T* dz, const T* col, T* dyt, T* dw_t) {
#if FALTUNG_HAS_SIMD_GEMM
  if constexpr (use_simd_gemm<T>()) {
    if (transposed) {
      // dW1^T (K1, OC) += col (K1, P) * dz^T (P, OC). Transposed so that the vector direction
      // is the output channels (contiguous in dyt) and the contraction over the pixels keeps
      // its accumulators in registers; the transpose is O(OC*P), the product O(K*OC*P).
      simd::transpose(OC, P, dz, P, dyt, OCp);
      simd::gemm(K1, OC, P, col, Pp, 1, dyt, OCp, dw_t, OCp, true);
    } else {
      // dW1 (OC, K1) += dz (OC, P) * col^T (P, K1): dot products over the pixels.
      simd::gemm_abt(OC, K1, P, dz, P, col, Pp, dw_t, K1);
    }
    return;
  }
#endif
  (void)OCp, (void)transposed, (void)dyt;
  RowMajorMap<T>(dw_t, Eigen::Index(OC), Eigen::Index(K1)).noalias() +=
      ConstRowMajorMap<T>(dz, Eigen::Index(OC), Eigen::Index(P)) *
      ConstStridedMap<T>(col, Eigen::Index(K1), Eigen::Index(P), Eigen::OuterStride<>(Eigen::Index(Pp))).transpose();
}

/// One sample's input gradient: dcol (K, P) = W^T (K, OC) * dz (OC, P), then col2im into dx
/// (C, H, W), overwritten. dcol (K, Pp) and plane (padded_plane_size) are scratch.
template <class T>
void conv_data_gradient(const Conv2DParams& p, const T* dz, const T* w, T* dcol, std::size_t Pp, T* plane, T* dx) {
  const std::size_t K = p.patch_size(), P = p.out_pixels(), OC = p.out_channels;
#if FALTUNG_HAS_SIMD_GEMM
  if constexpr (use_simd_gemm<T>()) {
    // W (OC, K) read transposed in place.
    simd::gemm(K, P, OC, w, 1, K, dz, P, dcol, Pp, false);
    col2im(p, dcol, dx, Pp, plane);
    return;
  }
#endif
  StridedMap<T>(dcol, Eigen::Index(K), Eigen::Index(P), Eigen::OuterStride<>(Eigen::Index(Pp))).noalias() =
      ConstRowMajorMap<T>(w, Eigen::Index(OC), Eigen::Index(K)).transpose() *
      ConstRowMajorMap<T>(dz, Eigen::Index(OC), Eigen::Index(P));
  col2im(p, dcol, dx, Pp, plane);
}
}  // namespace detail

// ---------------------------------------------------------------------------------------------
// Implicit GEMM: stride 1, float with AVX-512 / AVX2, K > 32. No column matrix is formed.
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

namespace detail {
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

/// Adds the per-thread partial weight gradients of conv2d_backward into dw (OC, K) and db, in
/// thread order (deterministic); parallel over the output channels. Called by every thread of
/// the team, after the barrier that completes the partials. Partial u starts at
/// base + u * stride; its element (o, k) is at o * row_step + k * col_step, k == K the bias.
template <class T>
void add_weight_partials(const T* base, std::size_t stride, int team, std::size_t OC, std::size_t K,
                         std::size_t row_step, std::size_t col_step, T* dw, T* db) {
  FALTUNG_OMP(for schedule(static))
  for (std::ptrdiff_t o = 0; o < std::ptrdiff_t(OC); ++o) {
    for (int u = 0; u < team; ++u) {
      const T* part = base + std::size_t(u) * stride + std::size_t(o) * row_step;
      for (std::size_t k = 0; k < K; ++k) dw[std::size_t(o) * K + k] += part[k * col_step];
      if (db) db[o] += part[K * col_step];
    }
  }
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
  const int threads = std::max(1, std::min<int>(num_threads(), int(p.batch)));
  const std::size_t per_thread = xs.size() + OC * wide + (pool ? OC * P : 0);
  workspace.resize({std::size_t(threads), per_thread});
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
///   dW:  x's padded planes, then a row of ones (P') | dz wide (OC, P') | its transpose (P', OCp) |
///        the partial dW1^T (K + 1, OCp)
///   dx:  dz's padded planes | dx wide (C, H * Wq)
/// and once, shared: the flipped kernel (C, OC * KH * KW) for dx.
inline void conv2d_backward_implicit(const Conv2DParams& p, const float* x, const float* w, const float* y,
                                     const float* dy, bool relu, float* dw, float* db, float* dx,
                                     Tensor<float>& workspace, const FusedMaxPool<float>* pool) {
  const std::size_t K = p.patch_size(), K1 = K + 1, OC = p.out_channels, C = p.in_channels;
  const std::size_t KH = p.h.window, KW = p.w.window, taps = KH * KW, OK = OC * taps;
  const std::size_t OH = p.h.out, OW = p.w.out, P = OH * OW, H = p.h.in, W = p.w.in, OCp = round_up16(OC);
  const std::size_t in_sample = C * p.in_pixels();
  const int threads = std::max(1, std::min<int>(num_threads(), int(p.batch)));
  const PlaneStack xs = input_planes(p), zs = gradient_planes(p);
  const std::size_t x_wide = OH * xs.ld, dx_wide = H * zs.ld;
  // Per-thread slices; a size is 0 for a pass that is not wanted.
  const std::size_t planes_size = dw ? xs.size() + x_wide : 0, dz_wide_size = dw ? OC * x_wide : 0,
                    dzt_size = dw ? x_wide * OCp : 0, part_size = dw ? K1 * OCp : 0;
  const std::size_t dz_planes_size = dx ? zs.size() : 0, dx_wide_size = dx ? C * dx_wide : 0;
  const std::size_t unpooled_size = pool ? OC * P : 0;
  const std::size_t per_thread =
      planes_size + dz_wide_size + dzt_size + part_size + dz_planes_size + dx_wide_size + unpooled_size;
  const std::size_t part_offset = planes_size + dz_wide_size + dzt_size;
  workspace.resize({std::size_t(threads) * per_thread + (dx ? C * OK : 0)});
  float* const w_flipped = workspace.data() + std::size_t(threads) * per_thread;  // (C, OC * KH * KW)
  std::vector<std::ptrdiff_t>& table = offset_table_scratch();
  table.resize(K1 + OK);
  std::ptrdiff_t* const x_rows = table.data();      // A rows of dW: x's taps, then the row of ones
  std::ptrdiff_t* const dz_rows = x_rows + K1;      // B rows of dx: dz's taps
  xs.window_offsets(KH, KW, x_rows);
  x_rows[K] = std::ptrdiff_t(xs.size());
  zs.window_offsets(KH, KW, dz_rows);
  int team = 1;  // the threads that actually run (fewer than asked inside another parallel region)
  FALTUNG_OMP(parallel num_threads(threads))
  {
    float* const planes = workspace.data() + std::size_t(thread_index()) * per_thread;
    float* const dz_wide = planes + planes_size;  // (OC, OH, Wp)
    float* const dzt = dz_wide + dz_wide_size;     // (OH * Wp, OCp)
    float* const part = dzt + dzt_size;            // (K + 1, OCp)
    float* const dz_planes = part + part_size;
    float* const dx_w = dz_planes + dz_planes_size;  // (C, H, Wq)
    float* const unpooled = dx_w + dx_wide_size;     // (OC, OH, OW) dz_n from a fused pool
    if (thread_index() == 0) team = thread_count();
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
    simd::GemmArgs gw;  // dW1^T (K + 1, OC) += X (K + 1, P') * dZ^T (P', OC)
    gw.depth = x_wide;
    gw.a = planes;
    gw.a_rows = x_rows;
    gw.b = dzt;
    gw.ldb = OCp;
    gw.c = part;
    gw.ldc = OCp;
    gw.accumulate = true;
    // dX' (C, H * Wq) = W' (C, OC * KH * KW) * the taps of dz's planes
    const simd::GemmArgs gx = taps_gemm(w_flipped, OK, dz_planes, dz_rows, dx_w, dx_wide);
    FALTUNG_OMP(for schedule(static))
    for (std::ptrdiff_t n = 0; n < std::ptrdiff_t(p.batch); ++n) {
      const float* dyn = unpooled;  // (OC, OH, OW)
      const float* gate = nullptr;
      if (pool) {
        pool->backward_sample(std::size_t(n), unpooled, relu);
      } else {
        dyn = dy + std::size_t(n) * OC * P;
        gate = relu ? y + std::size_t(n) * OC * P : nullptr;
      }
      if (dw) {
        xs.fill(planes, x + std::size_t(n) * in_sample);
        copy_rows(dyn, OW, dz_wide, xs.ld, OC * OH, OW, gate);
        simd::transpose(OC, x_wide, dz_wide, x_wide, dzt, OCp);
        simd::gemm(K1, OC, gw);
      }
      if (dx) {
        zs.fill(dz_planes, dyn, gate);
        simd::gemm(C, dx_wide, gx);
        copy_rows(dx_w, zs.ld, dx + std::size_t(n) * in_sample, W, C * H, W);  // drop the extra columns
      }
    }
    // The implicit barrier above: every partial is complete.
    if (dw) add_weight_partials(workspace.data() + part_offset, per_thread, team, OC, K, 1, OCp, dw, db);
  }
}
#endif
}  // namespace detail

/// y (N, OC, OH, OW) = conv(x, w) + b, or max(that, 0) when `relu` (a fused activation: one pass
/// over y fewer). b may be null. With `pool`, y is not written (it may be null): each sample's
/// output goes through the pool into pool->out and pool->argmax instead. workspace, per thread: a
/// (K, Pp) column buffer, an (Hp, Wp) padded plane and, with a pool, the sample's (OC, P) output.
template <class T>
void conv2d_forward(const Conv2DParams& p, const T* x, const T* w, const T* b, T* y, Tensor<T>& workspace, bool relu,
                    const FusedMaxPool<T>* pool = nullptr) {
  FALTUNG_CHECK(!pool || (pool->p.batch == p.batch && pool->p.channels == p.out_channels &&
                          pool->p.h.in == p.h.out && pool->p.w.in == p.w.out),
                "conv2d_forward: the fused pool's input does not match the convolution's output");
#if FALTUNG_HAS_SIMD_GEMM
  if constexpr (detail::use_simd_gemm<T>())
    if (detail::implicit_gemm_applies<T>(p))
      return detail::conv2d_forward_implicit(p, x, w, b, y, workspace, relu, pool);
#endif
  const std::size_t K = p.patch_size(), P = p.out_pixels(), OC = p.out_channels, Pp = detail::round_up16(P);
  const std::size_t in_sample = p.in_channels * p.in_pixels(), plane_size = padded_plane_size(p);
  const int threads = num_threads();
  const std::size_t per_thread = K * Pp + plane_size + (pool ? OC * P : 0);
  workspace.resize({std::size_t(threads), per_thread});
  // One sample per iteration: its column buffer (K x Pp floats, 225 KiB for 32->64 on 14x14)
  // stays in L2 between im2col and the GEMM that reads it.
FALTUNG_OMP(parallel for schedule(static) num_threads(threads))
  for (std::ptrdiff_t n = 0; n < std::ptrdiff_t(p.batch); ++n) {
    T* col = workspace.data() + std::size_t(thread_index()) * per_thread;  // (K, Pp)
    T* plane = col + K * Pp;                                                // (Hp, Wp)
    im2col(p, x + std::size_t(n) * in_sample, col, Pp, plane);
    T* yn = pool ? plane + plane_size : y + std::size_t(n) * OC * P;  // (OC, P)
    if constexpr (detail::use_simd_gemm<T>()) {
#if FALTUNG_HAS_SIMD_GEMM
      // Y_n (OC, P) = b + W (OC, K) * col (K, P)
      simd::gemm(OC, P, K, w, K, 1, col, Pp, yn, P, false, b, relu);
#endif
    } else {
      RowMajorMap<T> Y(yn, Eigen::Index(OC), Eigen::Index(P));
      Y.noalias() = ConstRowMajorMap<T>(w, Eigen::Index(OC), Eigen::Index(K)) *
                    ConstStridedMap<T>(col, Eigen::Index(K), Eigen::Index(P), Eigen::OuterStride<>(Eigen::Index(Pp)));
      if (b)
        for (std::size_t o = 0; o < OC; ++o) Y.row(Eigen::Index(o)).array() += b[o];
      if (relu) Y = Y.cwiseMax(T(0));
    }
    if (pool) pool->forward_sample(std::size_t(n), yn);
  }
}

/// y (N, OC, OH, OW) = conv(x, w) + b. b may be null. workspace: one (K, Pp) column buffer per thread.
template <class T>
void conv2d_forward(const Conv2DParams& p, const T* x, const T* w, const T* b, T* y, Tensor<T>& workspace) {
  conv2d_forward(p, x, w, b, y, workspace, false);
}

/// The backward pass of a convolution, in one parallel loop over the samples:
///   dz = relu ? dy * [y > 0] : dy                  (a ReLU fused into the forward's store)
///   dw (OC, C, KH, KW) += corr(x, dz), db (OC) += sum dz     when dw is not null
///   dx (N, C, H, W) = conv^T(dz, w), overwritten             when dx is not null
/// x (N, C, H, W) is needed for dw, w (OC, C, KH, KW) for dx, y (N, OC, OH, OW) for relu; db may
/// be null. With `pool` (FusedMaxPool), dy and y are not read: dz_n is unpooled from pool->dy
/// and gated by the pooled y. Per sample, dz_n (OC, P) is made once and used while it is in L2 by both products;
/// a separate ReLU pass over the whole batch and a second parallel region cost more than either
/// product on the first convolution.
///
/// The bias gradient rides along in the weight-gradient GEMM: the column buffer gets a row of
/// ones below its K rows, so column K of the partial dW is sum_P dz (a separate scalar sum over
/// the pixels is one dependent add per element and cost as much as the whole K = 9 product).
///
/// Each thread sums its own samples into its own partial dW (no atomics); after the loop the
/// partials are added in thread order, output channel by output channel in parallel, so the
/// result is the same for the same thread count.
///
/// workspace, per thread: col (K + 1, Pp) (im2col of x_n with the row of ones, then dcol for
/// dx) | plane (Hp, Wp) (im2col's and col2im's padded plane) | dyt (P, OCp) (dz_n transposed;
/// SIMD path with K > 32) | dz (OC, P) (relu or pool only) | partial dW: (K + 1, OCp) when
/// transposed, else (OC, K + 1).
template <class T>
void conv2d_backward(const Conv2DParams& p, const T* x, const T* w, const T* y, const T* dy, bool relu, T* dw, T* db,
                     T* dx, Tensor<T>& workspace, const FusedMaxPool<T>* pool = nullptr) {
  FALTUNG_CHECK(!pool || (pool->p.batch == p.batch && pool->p.channels == p.out_channels &&
                          pool->p.h.in == p.h.out && pool->p.w.in == p.w.out),
                "conv2d_backward: the fused pool's input does not match the convolution's output");
#if FALTUNG_HAS_SIMD_GEMM
  if constexpr (detail::use_simd_gemm<T>())
    if (detail::implicit_gemm_applies<T>(p))
      return detail::conv2d_backward_implicit(p, x, w, y, dy, relu, dw, db, dx, workspace, pool);
#endif
  const std::size_t K = p.patch_size(), K1 = K + 1, P = p.out_pixels(), OC = p.out_channels;
  const std::size_t Pp = detail::round_up16(P), OCp = detail::round_up16(OC), in_sample = p.in_channels * p.in_pixels();
  const int threads = std::max(1, std::min<int>(num_threads(), int(p.batch)));
  const bool weights = dw != nullptr;
  constexpr bool simd_path = detail::use_simd_gemm<T>();
  // Two SIMD forms for dW (see the loop): with few patch rows (K <= 32, a first layer) the
  // dot-product form on dz and col as they are; otherwise the broadcast form on a transposed dz.
  const bool transposed = weights && simd_path && K > 32;
  const std::size_t col_size = K1 * Pp, dyt_size = transposed ? P * OCp : 0, dz_size = relu || pool ? OC * P : 0;
  const std::size_t dw_size = !weights ? 0 : transposed ? K1 * OCp : OC * K1;
  const std::size_t plane_size = padded_plane_size(p);
  const std::size_t per_thread = col_size + plane_size + dyt_size + dz_size + dw_size;
  workspace.resize({std::size_t(threads), per_thread});
  int team = 1;  // the threads that actually run (fewer than asked inside another parallel region)
  FALTUNG_OMP(parallel num_threads(threads))
  {
    const std::size_t t = std::size_t(thread_index());
    T* col = workspace.data() + t * per_thread;  // (K + 1, Pp)
    T* plane = col + col_size;                   // (Hp, Wp)
    T* dyt = plane + plane_size;                 // (P, OCp)
    T* dz_t = dyt + dyt_size;                    // (OC, P)
    T* dw_t = dz_t + dz_size;                    // partial dW, with db in column / row K
    if (t == 0) team = thread_count();
    if (weights) {
      std::fill(dw_t, dw_t + dw_size, T(0));
      std::fill(col + K * Pp, col + K * Pp + P, T(1));  // the row of ones: db = dz * 1
    }
    FALTUNG_OMP(for schedule(static))
    for (std::ptrdiff_t n = 0; n < std::ptrdiff_t(p.batch); ++n) {
      const T* dzn = dz_t;  // (OC, P)
      if (pool) {
        pool->backward_sample(std::size_t(n), dz_t, relu);
      } else if (relu) {
        detail::copy_row(dz_t, dy + std::size_t(n) * OC * P, OC * P, y + std::size_t(n) * OC * P);
      } else {
        dzn = dy + std::size_t(n) * OC * P;
      }
      if (weights) {
        im2col(p, x + std::size_t(n) * in_sample, col, Pp, plane);
        detail::conv_weight_gradient(OC, K1, P, Pp, OCp, transposed, dzn, col, dyt, dw_t);
      }
      if (dx) detail::conv_data_gradient(p, dzn, w, col, Pp, plane, dx + std::size_t(n) * in_sample);
    }
    // The implicit barrier above: every partial is complete. Each thread now adds up the
    // partials of its own output channels, in thread order.
    if (weights)  // element (o, k) of a partial: (k, o) of the transposed (K + 1, OCp) layout
      detail::add_weight_partials(workspace.data() + col_size + plane_size + dyt_size + dz_size, per_thread, team, OC,
                                  K, transposed ? 1 : K1, transposed ? OCp : 1, dw, db);
  }
}

/// dx (N, C, H, W) = dL/dx, overwritten; see conv2d_backward.
template <class T>
void conv2d_backward_data(const Conv2DParams& p, const T* dy, const T* w, T* dx, Tensor<T>& workspace) {
  conv2d_backward(p, static_cast<const T*>(nullptr), w, static_cast<const T*>(nullptr), dy, false,
                  static_cast<T*>(nullptr), static_cast<T*>(nullptr), dx, workspace);
}

/// dw (OC, C, KH, KW) and db (OC) are ADDED to (db may be null); see conv2d_backward.
template <class T>
void conv2d_backward_weights(const Conv2DParams& p, const T* x, const T* dy, T* dw, T* db, Tensor<T>& workspace) {
  conv2d_backward(p, x, static_cast<const T*>(nullptr), static_cast<const T*>(nullptr), dy, false, dw, db,
                  static_cast<T*>(nullptr), workspace);
}

}  // namespace kernels
}  // namespace faltung
