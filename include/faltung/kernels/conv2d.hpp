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
//   backward-data    dcol (K, P) = W^T (K, OC) * dY_n (OC, P), then col2im adds dcol into dX_n
//   backward-weights dW (OC, K) += dY_n (OC, P) * col_n^T (P, K),  db[o] += sum_P dY_n[o]
// With AVX-512 / AVX2 and float the GEMMs are kernels/gemm.hpp's register-blocked tiles (pixels
// on the vector lanes; backward-weights with K > 32 transposes dY_n so the output channels are);
// otherwise (double, or no SIMD) Eigen. One GEMM per sample rather than one per batch: the sample's
// column buffer stays in L2 between im2col and the GEMM, and the batch is the parallel loop.
// OpenMP runs over the samples of the batch. Forward and backward-data write only their own
// sample. Backward-weights sums over samples, so each thread accumulates into its own slice of
// the workspace and the slices are added in thread order afterwards: no atomics, and the same
// result for the same thread count.

#include <Eigen/Core>
#include <algorithm>
#include <cstddef>
#include <cstring>
#include <type_traits>

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

/// The output columns j of one window column kj whose input column s = j*sw + kj - pl lies inside
/// the input: [begin, end). Outside it im2col writes zeros and col2im adds nothing, so the inner
/// loops need no bounds test (and with stride 1 they are plain copies).
inline void valid_out_range(const WindowAxis& a, std::size_t k, std::size_t& begin, std::size_t& end) {
  const std::ptrdiff_t shift = std::ptrdiff_t(k) - std::ptrdiff_t(a.pad_before);  // s = j*stride + shift
  const std::ptrdiff_t st = std::ptrdiff_t(a.stride);
  const std::ptrdiff_t lo = shift >= 0 ? 0 : (-shift + st - 1) / st;
  const std::ptrdiff_t hi_num = std::ptrdiff_t(a.in) - shift;  // need j*stride < in - shift
  const std::ptrdiff_t hi = hi_num <= 0 ? 0 : (hi_num + st - 1) / st;
  begin = std::size_t(std::min<std::ptrdiff_t>(lo, std::ptrdiff_t(a.out)));
  end = std::size_t(std::max<std::ptrdiff_t>(std::min<std::ptrdiff_t>(hi, std::ptrdiff_t(a.out)), std::ptrdiff_t(begin)));
}

/// col (K, ld), ld >= P: row (c, ki, kj), column (i, j) holds x[c, i*sh + ki - pt, j*sw + kj - pl],
/// 0 outside the input. x is one sample (C, H, W). Columns P..ld-1 are left untouched.
template <class T>
void im2col(const Conv2DParams& p, const T* x, T* col, std::size_t ld) {
  const std::size_t OW = p.w.out;
  for (std::size_t c = 0; c < p.in_channels; ++c)
    for (std::size_t ki = 0; ki < p.h.window; ++ki)
      for (std::size_t kj = 0; kj < p.w.window; ++kj) {
        T* row = col + ((c * p.h.window + ki) * p.w.window + kj) * ld;
        const T* plane = x + c * p.in_pixels();
        std::size_t j0, j1;
        valid_out_range(p.w, kj, j0, j1);
        const std::ptrdiff_t s0 = std::ptrdiff_t(j0 * p.w.stride + kj) - std::ptrdiff_t(p.w.pad_before);
        for (std::size_t i = 0; i < p.h.out; ++i) {
          const std::ptrdiff_t r = std::ptrdiff_t(i * p.h.stride + ki) - std::ptrdiff_t(p.h.pad_before);
          T* out = row + i * OW;
          if (r < 0 || r >= std::ptrdiff_t(p.h.in)) {
            std::fill(out, out + OW, T(0));
            continue;
          }
          const T* in = plane + std::size_t(r) * p.w.in + s0;  // input of column j0
          std::fill(out, out + j0, T(0));
          if (p.w.stride == 1)
            std::copy(in, in + (j1 - j0), out + j0);
          else
            for (std::size_t j = j0; j < j1; ++j) out[j] = in[(j - j0) * p.w.stride];
          std::fill(out + j1, out + OW, T(0));
        }
      }
}

/// col (K, P) as above, unpadded.
template <class T>
void im2col(const Conv2DParams& p, const T* x, T* col) {
  im2col(p, x, col, p.out_pixels());
}

/// The adjoint of im2col: adds every column entry back to the input pixel it was read from.
/// col (K, ld), ld >= P; dx (C, H, W) is overwritten.
template <class T>
void col2im(const Conv2DParams& p, const T* col, T* dx, std::size_t ld) {
  std::fill(dx, dx + p.in_channels * p.in_pixels(), T(0));
  // (c, ki, kj) outermost so that each input plane (at most a few KiB) stays in L1 while its
  // KH*KW rows of col are added into it.
  for (std::size_t c = 0; c < p.in_channels; ++c)
    for (std::size_t ki = 0; ki < p.h.window; ++ki)
      for (std::size_t kj = 0; kj < p.w.window; ++kj) {
        const T* row = col + ((c * p.h.window + ki) * p.w.window + kj) * ld;
        T* plane = dx + c * p.in_pixels();
        std::size_t j0, j1;
        valid_out_range(p.w, kj, j0, j1);
        const std::ptrdiff_t s0 = std::ptrdiff_t(j0 * p.w.stride + kj) - std::ptrdiff_t(p.w.pad_before);
        for (std::size_t i = 0; i < p.h.out; ++i) {
          const std::ptrdiff_t r = std::ptrdiff_t(i * p.h.stride + ki) - std::ptrdiff_t(p.h.pad_before);
          if (r < 0 || r >= std::ptrdiff_t(p.h.in)) continue;
          T* out = plane + std::size_t(r) * p.w.in + s0;  // input pixel of column j0
          const T* in = row + i * p.w.out;
          if (p.w.stride == 1) {
            for (std::size_t j = j0; j < j1; ++j) out[j - j0] += in[j];
          } else {
            for (std::size_t j = j0; j < j1; ++j) out[(j - j0) * p.w.stride] += in[j];
          }
        }
      }
}

/// col (K, P) as above, unpadded.
template <class T>
void col2im(const Conv2DParams& p, const T* col, T* dx) {
  col2im(p, col, dx, p.out_pixels());
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
}  // namespace detail

/// y (N, OC, OH, OW) = conv(x, w) + b, or max(that, 0) when `relu` (a fused activation: one pass
/// over y fewer). b may be null. workspace: one (K, Pp) column buffer per thread.
template <class T>
void conv2d_forward(const Conv2DParams& p, const T* x, const T* w, const T* b, T* y, Tensor<T>& workspace, bool relu) {
  const std::size_t K = p.patch_size(), P = p.out_pixels(), OC = p.out_channels, Pp = detail::round_up16(P);
  const std::size_t in_sample = p.in_channels * p.in_pixels();
  const int threads = num_threads();
  workspace.resize({std::size_t(threads), K * Pp});
  // One sample per iteration: its column buffer (K x Pp floats, 225 KiB for 32->64 on 14x14)
  // stays in L2 between im2col and the GEMM that reads it.
#pragma omp parallel for schedule(static) num_threads(threads)
  for (std::ptrdiff_t n = 0; n < std::ptrdiff_t(p.batch); ++n) {
    T* col = workspace.data() + std::size_t(thread_index()) * K * Pp;  // (K, Pp)
    im2col(p, x + std::size_t(n) * in_sample, col, Pp);
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

/// dx (N, C, H, W) = dL/dx, overwritten. workspace: one (K, Pp) buffer per thread.
template <class T>
void conv2d_backward_data(const Conv2DParams& p, const T* dy, const T* w, T* dx, Tensor<T>& workspace) {
  const std::size_t K = p.patch_size(), P = p.out_pixels(), OC = p.out_channels, Pp = detail::round_up16(P);
  const std::size_t in_sample = p.in_channels * p.in_pixels();
  const int threads = num_threads();
  workspace.resize({std::size_t(threads), K * Pp});
  // Over the samples: each thread writes only its own samples of dx.
#pragma omp parallel for schedule(static) num_threads(threads)
  for (std::ptrdiff_t n = 0; n < std::ptrdiff_t(p.batch); ++n) {
    T* dcol = workspace.data() + std::size_t(thread_index()) * K * Pp;  // (K, Pp)
    const T* dyn = dy + std::size_t(n) * OC * P;                        // (OC, P)
#if FALTUNG_HAS_SIMD_GEMM
    if constexpr (detail::use_simd_gemm<T>()) {
      // dcol (K, P) = W^T (K, OC) * dY_n (OC, P): W (OC, K) read transposed in place.
      simd::gemm(K, P, OC, w, 1, K, dyn, P, dcol, Pp, false);
      col2im(p, dcol, dx + std::size_t(n) * in_sample, Pp);
      continue;
    }
#endif
    StridedMap<T> dC(dcol, Eigen::Index(K), Eigen::Index(P), Eigen::OuterStride<>(Eigen::Index(Pp)));
    dC.noalias() = ConstRowMajorMap<T>(w, Eigen::Index(OC), Eigen::Index(K)).transpose() *
                   ConstRowMajorMap<T>(dyn, Eigen::Index(OC), Eigen::Index(P));
    col2im(p, dcol, dx + std::size_t(n) * in_sample, Pp);
  }
}

/// dw (OC, C, KH, KW) and db (OC) are ADDED to (db may be null). workspace, per thread: a (K, Pp)
/// column buffer, a (P, OCp) transposed output gradient (SIMD path, K > 32), and a partial sum of
/// dw and db.
template <class T>
void conv2d_backward_weights(const Conv2DParams& p, const T* x, const T* dy, T* dw, T* db, Tensor<T>& workspace) {
  const std::size_t K = p.patch_size(), P = p.out_pixels(), OC = p.out_channels, Pp = detail::round_up16(P);
  const std::size_t OCp = detail::round_up16(OC), in_sample = p.in_channels * p.in_pixels();
  const int threads = std::max(1, std::min<int>(num_threads(), int(p.batch)));
  constexpr bool simd_path = detail::use_simd_gemm<T>();
  // Two SIMD forms (see the loop): with few patch rows (K <= 32, a first layer) the dot-product
  // form on dY and col as they are; otherwise the broadcast form on a transposed dY.
  const bool transposed = simd_path && K > 32;
  // Per thread: col (K, Pp) | dyT (P, OCp) | partial dW ((K, OCp) when transposed, else (OC, K)) | db (OC)
  const std::size_t dyt_size = transposed ? P * OCp : 0, dw_size = transposed ? K * OCp : OC * K;
  const std::size_t per_thread = K * Pp + dyt_size + dw_size + OCp;
  workspace.resize({std::size_t(threads), per_thread});
#pragma omp parallel num_threads(threads)
  {
    const std::size_t t = std::size_t(thread_index());
    T* col = workspace.data() + t * per_thread;  // (K, Pp)
    T* dyt = col + K * Pp;                       // (P, OCp)
    T* dw_t = dyt + dyt_size;                    // partial dW
    T* db_t = dw_t + dw_size;                    // (OC) partial db
    std::fill(dw_t, dw_t + dw_size + OC, T(0));
    // Each thread sums over its own samples into its own partial: no atomics.
#pragma omp for schedule(static)
    for (std::ptrdiff_t n = 0; n < std::ptrdiff_t(p.batch); ++n) {
      im2col(p, x + std::size_t(n) * in_sample, col, Pp);
      const T* dyn = dy + std::size_t(n) * OC * P;  // (OC, P)
#if FALTUNG_HAS_SIMD_GEMM
      if constexpr (simd_path) {
        if (transposed) {
          // dW^T (K, OC) += col (K, P) * dY_n^T (P, OC). Transposed so that the vector direction
          // is the output channels (contiguous in dyT) and the contraction over the pixels keeps
          // its accumulators in registers; the transpose is O(OC*P), the product O(K*OC*P).
          for (std::size_t o = 0; o < OC; ++o) {
            const T* src = dyn + o * P;
            T sum = T(0);
            for (std::size_t q = 0; q < P; ++q) {
              dyt[q * OCp + o] = src[q];
              sum += src[q];
            }
            db_t[o] += sum;
          }
          simd::gemm(K, OC, P, col, Pp, 1, dyt, OCp, dw_t, OCp, true);
        } else {
          // dW (OC, K) += dY_n (OC, P) * col^T (P, K): dot products over the pixels.
          simd::gemm_abt(OC, K, P, dyn, P, col, Pp, dw_t, K);
          for (std::size_t o = 0; o < OC; ++o) {
            const T* src = dyn + o * P;
            T sum = T(0);
            for (std::size_t q = 0; q < P; ++q) sum += src[q];
            db_t[o] += sum;
          }
        }
        continue;
      }
#endif
      const ConstRowMajorMap<T> dY(dyn, Eigen::Index(OC), Eigen::Index(P));
      RowMajorMap<T>(dw_t, Eigen::Index(OC), Eigen::Index(K)).noalias() +=
          dY * ConstStridedMap<T>(col, Eigen::Index(K), Eigen::Index(P), Eigen::OuterStride<>(Eigen::Index(Pp))).transpose();
      for (std::size_t o = 0; o < OC; ++o) db_t[o] += dY.row(Eigen::Index(o)).sum();
    }
  }
  // Reduce the per-thread partial sums in thread order, so the result does not depend on timing.
  for (std::size_t t = 0; t < std::size_t(threads); ++t) {
    const T* part = workspace.data() + t * per_thread + K * Pp + dyt_size;
    if (transposed) {
      for (std::size_t o = 0; o < OC; ++o)
        for (std::size_t k = 0; k < K; ++k) dw[o * K + k] += part[k * OCp + o];
    } else {
      for (std::size_t i = 0; i < OC * K; ++i) dw[i] += part[i];
    }
    if (db)
      for (std::size_t o = 0; o < OC; ++o) db[o] += part[dw_size + o];
  }
}

}  // namespace kernels
}  // namespace faltung
