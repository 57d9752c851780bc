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
// With AVX-512 / AVX2 and float the GEMMs are kernels/gemm.hpp's register-blocked tiles (pixels
// on the vector lanes; backward-weights with K > 32 transposes dZ_n so the output channels are);
// otherwise (double, or no SIMD) Eigen. One GEMM per sample rather than one per batch: the sample's
// column buffer stays in L2 between im2col and the GEMM, and the batch is the parallel loop.
// OpenMP runs over the samples of the batch. Forward and backward-data write only their own
// sample. Backward-weights sums over samples, so each thread accumulates into its own slice of
// the workspace, and the slices are added in thread order afterwards, each thread adding those
// of its own output channels: no atomics, and the same result for the same thread count.

#include <Eigen/Core>
#include <algorithm>
#include <cstddef>
#include <cstring>
#include <type_traits>
#include <vector>

#include "faltung/kernels/gemm.hpp"

#include "faltung/kernels/geometry.hpp"
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
/// dst[j] += src[j] for j < n; with AVX-512 / AVX2 on float in whole vectors and one masked one:
/// the rows here are short (14, 28), where a compiler-vectorised loop runs mostly its scalar tail.
template <class T>
inline void add_row(T* dst, const T* src, std::size_t n) {
#if FALTUNG_HAS_SIMD_GEMM
  if constexpr (std::is_same<T, float>::value) {
    using V = simd::VecF;
    std::size_t j = 0;
    for (; j + V::lanes <= n; j += V::lanes) V::store(dst + j, V::add(V::load(dst + j), V::load(src + j)));
    if (j < n) {
      const V::Mask m = V::first(int(n - j));
      V::store(dst + j, V::add(V::load(dst + j, m), V::load(src + j, m)), m);
    }
    return;
  }
#endif
  for (std::size_t j = 0; j < n; ++j) dst[j] += src[j];
}

/// dst[j] = src[j] for j < n, as add_row.
template <class T>
inline void copy_row(T* dst, const T* src, std::size_t n) {
#if FALTUNG_HAS_SIMD_GEMM
  if constexpr (std::is_same<T, float>::value) {
    using V = simd::VecF;
    std::size_t j = 0;
    for (; j + V::lanes <= n; j += V::lanes) V::store(dst + j, V::load(src + j));
    if (j < n) {
      const V::Mask m = V::first(int(n - j));
      V::store(dst + j, V::load(src + j, m), m);
    }
    return;
  }
#endif
  std::copy(src, src + n, dst);
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

/// y (N, OC, OH, OW) = conv(x, w) + b, or max(that, 0) when `relu` (a fused activation: one pass
/// over y fewer). b may be null. workspace, per thread: a (K, Pp) column buffer and an (Hp, Wp)
/// padded plane.
template <class T>
void conv2d_forward(const Conv2DParams& p, const T* x, const T* w, const T* b, T* y, Tensor<T>& workspace, bool relu) {
  const std::size_t K = p.patch_size(), P = p.out_pixels(), OC = p.out_channels, Pp = detail::round_up16(P);
  const std::size_t in_sample = p.in_channels * p.in_pixels();
  const int threads = num_threads();
  const std::size_t per_thread = K * Pp + padded_plane_size(p);
  workspace.resize({std::size_t(threads), per_thread});
  // One sample per iteration: its column buffer (K x Pp floats, 225 KiB for 32->64 on 14x14)
  // stays in L2 between im2col and the GEMM that reads it.
FALTUNG_OMP(parallel for schedule(static) num_threads(threads))
  for (std::ptrdiff_t n = 0; n < std::ptrdiff_t(p.batch); ++n) {
    T* col = workspace.data() + std::size_t(thread_index()) * per_thread;  // (K, Pp)
    T* plane = col + K * Pp;                                                // (Hp, Wp)
    im2col(p, x + std::size_t(n) * in_sample, col, Pp, plane);
    T* yn = y + std::size_t(n) * OC * P;  // (OC, P)
#if FALTUNG_HAS_SIMD_GEMM
    if constexpr (detail::use_simd_gemm<T>()) {
      // Y_n (OC, P) = b + W (OC, K) * col (K, P)
      simd::gemm(OC, P, K, w, K, 1, col, Pp, yn, P, false, b, relu);
      continue;
    }
#endif
    RowMajorMap<T> Y(yn, Eigen::Index(OC), Eigen::Index(P));
    Y.noalias() = ConstRowMajorMap<T>(w, Eigen::Index(OC), Eigen::Index(K)) *
                  ConstStridedMap<T>(col, Eigen::Index(K), Eigen::Index(P), Eigen::OuterStride<>(Eigen::Index(Pp)));
    if (b)
      for (std::size_t o = 0; o < OC; ++o) Y.row(Eigen::Index(o)).array() += b[o];
    if (relu) Y = Y.cwiseMax(T(0));
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
/// be null. Per sample, dz_n (OC, P) is made once and used while it is in L2 by both products;
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
/// dx) | plane (Hp, Wp) (im2col's and col2im's padded plane) | dyt (P, OCp) (dz_n transposed; SIMD path with K > 32) | dz (OC, P) (relu only) | partial
/// dW: (K + 1, OCp) when transposed, else (OC, K + 1).
template <class T>
void conv2d_backward(const Conv2DParams& p, const T* x, const T* w, const T* y, const T* dy, bool relu, T* dw, T* db,
                     T* dx, Tensor<T>& workspace) {
  const std::size_t K = p.patch_size(), K1 = K + 1, P = p.out_pixels(), OC = p.out_channels;
  const std::size_t Pp = detail::round_up16(P), OCp = detail::round_up16(OC), in_sample = p.in_channels * p.in_pixels();
  const int threads = std::max(1, std::min<int>(num_threads(), int(p.batch)));
  const bool weights = dw != nullptr;
  constexpr bool simd_path = detail::use_simd_gemm<T>();
  // Two SIMD forms for dW (see the loop): with few patch rows (K <= 32, a first layer) the
  // dot-product form on dz and col as they are; otherwise the broadcast form on a transposed dz.
  const bool transposed = weights && simd_path && K > 32;
  const std::size_t col_size = K1 * Pp, dyt_size = transposed ? P * OCp : 0, dz_size = relu ? OC * P : 0;
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
      const T* dyn = dy + std::size_t(n) * OC * P;  // (OC, P)
      const T* dzn = dyn;
      if (relu) {
        const T* yn = y + std::size_t(n) * OC * P;  // (OC, P)
        for (std::size_t i = 0; i < OC * P; ++i) dz_t[i] = yn[i] > T(0) ? dyn[i] : T(0);
        dzn = dz_t;
      }
      if (weights) {
        im2col(p, x + std::size_t(n) * in_sample, col, Pp, plane);
        detail::conv_weight_gradient(OC, K1, P, Pp, OCp, transposed, dzn, col, dyt, dw_t);
      }
      if (dx) detail::conv_data_gradient(p, dzn, w, col, Pp, plane, dx + std::size_t(n) * in_sample);
    }
    // The implicit barrier above: every partial is complete. Each thread now adds up the
    // partials of its own output channels, in thread order.
    if (weights) {
      FALTUNG_OMP(for schedule(static))
      for (std::ptrdiff_t o = 0; o < std::ptrdiff_t(OC); ++o) {
        for (int u = 0; u < team; ++u) {
          const T* part = workspace.data() + std::size_t(u) * per_thread + col_size + plane_size + dyt_size + dz_size;
          // element (o, k) of the partial: (k, o) of the transposed (K + 1, OCp) layout
          const std::size_t rs = transposed ? 1 : K1, cs = transposed ? OCp : 1;
          for (std::size_t k = 0; k < K; ++k) dw[std::size_t(o) * K + k] += part[std::size_t(o) * rs + k * cs];
          if (db) db[o] += part[std::size_t(o) * rs + K * cs];
        }
      }
    }
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
