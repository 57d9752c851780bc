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
// With stride 1, K > 32 and the SIMD GEMM, no matrix is formed: the implicit GEMM
// (conv2d/implicit_gemm.hpp) reads the rows of col_n straight from zero-padded copies of the
// input planes, and backward-data runs as a forward convolution of the padded dZ_n with the
// flipped kernel.
// With AVX-512 / AVX2 and float the GEMMs are kernels/gemm.hpp's register-blocked tiles (pixels
// on the vector lanes; backward-weights with K > 32 transposes dZ_n so the output channels are);
// otherwise (double, or no SIMD) Eigen. One GEMM per sample rather than one per batch: the sample's
// column buffer stays in L2 between im2col and the GEMM, and the batch is the parallel loop.
// OpenMP runs over the samples of the batch. Forward and backward-data write only their own
// sample. Backward-weights sums over samples, so the batch is split into a fixed number of chunks
// (conv2d/gradients.hpp GradientChunks), each accumulating into its own slice of the workspace,
// and the slices are added in chunk order afterwards, each thread adding those of its own output
// channels: no atomics, and the same result for any thread count.
// A max pool can be fused behind the convolution (FusedMaxPool): each sample's output is pooled
// while it is in cache, and its gradient unpooled there, so the full-size output never goes to
// memory.
//
// The pieces, one concern per header under kernels/conv2d/:
//   params.hpp         Conv2DParams and what every kernel shares
//   naive.hpp          the naive references the tests compare against
//   rows.hpp           add / copy / gated copy of one short row (SIMD)
//   im2col.hpp         im2col and col2im for one sample
//   gradients.hpp      one sample's weight and input gradient; the batch's chunks and the sum of
//                      their partial weight gradients
//   implicit_gemm.hpp  the stride-1 convolutions without a column matrix
//   fused_pool.hpp     FusedMaxPool, the pool run behind a convolution
// and here the dispatch: conv2d_forward and conv2d_backward, which pick the implicit GEMM or
// im2col + GEMM and run the batch on the OpenMP threads. `workspace` is resized as needed and
// kept by the caller across batches.

#include <Eigen/Core>
#include <algorithm>
#include <cstddef>

#include "faltung/kernels/activation.hpp"
#include "faltung/kernels/conv2d/fused_pool.hpp"
#include "faltung/kernels/conv2d/gradients.hpp"
#include "faltung/kernels/conv2d/im2col.hpp"
#include "faltung/kernels/conv2d/implicit_gemm.hpp"
#include "faltung/kernels/conv2d/naive.hpp"
#include "faltung/kernels/conv2d/params.hpp"
#include "faltung/kernels/conv2d/rows.hpp"
#include "faltung/kernels/gemm.hpp"
#include "faltung/tensor.hpp"
#include "faltung/threading.hpp"

FALTUNG_BEGIN_NAMESPACE
namespace kernels {

/// y (N, OC, OH, OW) = conv(x, w) + b, or relu(that) when `relu` (a fused activation: one pass
/// over y fewer). b may be null. With `pool`, y is not written (it may be null): each sample's
/// output goes through the pool into pool->out and pool->argmax instead. workspace, per thread: a
/// (K, Pp) column buffer, an (Hp, Wp) padded plane and, with a pool, the sample's (OC, P) output.
template <class T>
void conv2d_forward(const Conv2DParams& p, const T* x, const T* w, const T* b, T* y, Tensor<T>& workspace, bool relu,
                    const FusedMaxPool<T>* pool = nullptr) {
  FALTUNG_CHECK(!pool || (pool->p.batch == p.batch && pool->p.channels == p.out_channels &&
                          pool->p.h.in == p.h.out && pool->p.w.in == p.w.out),
                "conv2d_forward: the fused pool's input does not match the convolution's output");
  check_conv2d_sizes(p, "conv2d_forward");
#if FALTUNG_HAS_SIMD_GEMM
  if constexpr (use_simd_gemm<T>())
    if (implicit_gemm_applies<T>(p))
      return conv2d_forward_implicit(p, x, w, b, y, workspace, relu, pool);
#endif
  const std::size_t K = p.patch_size(), P = p.out_pixels(), OC = p.out_channels, Pp = round_up16(P);
  const std::size_t in_sample = p.in_channels * p.in_pixels(), plane_size = padded_plane_size(p);
  const int threads = conv_threads(p, 1);
  const std::size_t per_thread = K * Pp + plane_size + (pool ? OC * P : 0);
  resize_workspace(workspace, threads, per_thread, 0, "conv2d_forward");
  // One sample per iteration: its column buffer (K x Pp floats, 225 KiB for 32->64 on 14x14)
  // stays in L2 between im2col and the GEMM that reads it.
FALTUNG_OMP(parallel for schedule(static) num_threads(threads))
  for (std::ptrdiff_t n = 0; n < std::ptrdiff_t(p.batch); ++n) {
    T* col = workspace.data() + std::size_t(thread_index()) * per_thread;  // (K, Pp)
    T* plane = col + K * Pp;                                                // (Hp, Wp)
    im2col(p, x + std::size_t(n) * in_sample, col, Pp, plane);
    T* yn = pool ? plane + plane_size : y + std::size_t(n) * OC * P;  // (OC, P)
    if constexpr (use_simd_gemm<T>()) {
#if FALTUNG_HAS_SIMD_GEMM
      // Y_n (OC, P) = b + W (OC, K) * col (K, P)
      simd::gemm(OC, P, K, w, K, 1, col, Pp, yn, P, false, b, relu);
#endif
    } else {
      const ScopedNumThreads eigen_on_this_thread(1);
      RowMajorMap<T> Y(yn, Eigen::Index(OC), Eigen::Index(P));
      Y.noalias() = ConstRowMajorMap<T>(w, Eigen::Index(OC), Eigen::Index(K)) *
                    ConstStridedMap<T>(col, Eigen::Index(K), Eigen::Index(P), Eigen::OuterStride<>(Eigen::Index(Pp)));
      if (b)
        for (std::size_t o = 0; o < OC; ++o) Y.row(Eigen::Index(o)).array() += b[o];
      if (relu) Y = Y.unaryExpr([](T v) { return kernels::relu(v); });
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
/// The batch is split into chunks of consecutive samples (GradientChunks), the unit of the
/// parallel loop: each chunk sums its own samples into its own partial dW (no atomics), and after
/// the loop the partials are added in chunk order, output channel by output channel in parallel,
/// so the result is the same for any thread count.
///
/// workspace, per thread: col (K + 1, Pp) (im2col of x_n with the row of ones, then dcol for
/// dx) | plane (Hp, Wp) (im2col's and col2im's padded plane) | dyt (P, OCp) (dz_n transposed;
/// SIMD path with K > 32) | dz (OC, P) (relu or pool only); then, per chunk, its partial dW:
/// (K + 1, OCp) when transposed, else (OC, K + 1).
template <class T>
void conv2d_backward(const Conv2DParams& p, const T* x, const T* w, const T* y, const T* dy, bool relu, T* dw, T* db,
                     T* dx, Tensor<T>& workspace, const FusedMaxPool<T>* pool = nullptr) {
  FALTUNG_CHECK(!pool || (pool->p.batch == p.batch && pool->p.channels == p.out_channels &&
                          pool->p.h.in == p.h.out && pool->p.w.in == p.w.out),
                "conv2d_backward: the fused pool's input does not match the convolution's output");
  check_conv2d_sizes(p, "conv2d_backward");
#if FALTUNG_HAS_SIMD_GEMM
  if constexpr (use_simd_gemm<T>())
    if (implicit_gemm_applies<T>(p))
      return conv2d_backward_implicit(p, x, w, y, dy, relu, dw, db, dx, workspace, pool);
#endif
  const std::size_t K = p.patch_size(), K1 = K + 1, P = p.out_pixels(), OC = p.out_channels;
  const std::size_t Pp = round_up16(P), OCp = round_up16(OC), in_sample = p.in_channels * p.in_pixels();
  const bool weights = dw != nullptr;
  constexpr bool simd_path = use_simd_gemm<T>();
  // Two SIMD forms for dW (see the loop): with few patch rows (K <= 32, a first layer) the
  // dot-product form on dz and col as they are; otherwise the broadcast form on a transposed dz.
  const bool transposed = weights && simd_path && K > 32;
  const std::size_t col_size = K1 * Pp, dyt_size = transposed ? P * OCp : 0, dz_size = relu || pool ? OC * P : 0;
  const std::size_t dw_size = !weights ? 0 : transposed ? K1 * OCp : OC * K1;
  const std::size_t plane_size = padded_plane_size(p);
  const std::size_t per_thread = col_size + plane_size + dyt_size + dz_size;
  const GradientChunks chunks(p.batch, dw_size);
  const int threads =
      std::max(1, std::min(conv_threads(p, std::size_t(weights) + std::size_t(dx != nullptr)), int(chunks.count)));
  resize_workspace(workspace, threads, per_thread, checked_mul(chunks.count, dw_size, "conv2d_backward: the workspace"),
                   "conv2d_backward");
  T* const partials = workspace.data() + std::size_t(threads) * per_thread;  // chunk g's at g * dw_size
  FALTUNG_OMP(parallel num_threads(threads))
  {
    const std::size_t t = std::size_t(thread_index());
    T* col = workspace.data() + t * per_thread;  // (K + 1, Pp)
    T* plane = col + col_size;                   // (Hp, Wp)
    T* dyt = plane + plane_size;                 // (P, OCp)
    T* dz_t = dyt + dyt_size;                    // (OC, P)
    if (weights) std::fill(col + K * Pp, col + K * Pp + P, T(1));  // the row of ones: db = dz * 1
    FALTUNG_OMP(for schedule(static))
    for (std::ptrdiff_t g = 0; g < std::ptrdiff_t(chunks.count); ++g) {
      T* dw_g = partials + std::size_t(g) * dw_size;  // the chunk's partial dW, with db in column / row K
      std::fill(dw_g, dw_g + dw_size, T(0));
      for (std::size_t n = chunks.first(std::size_t(g)); n < chunks.first(std::size_t(g) + 1); ++n) {
        const T* dzn = dz_t;  // (OC, P)
        if (pool) {
          pool->backward_sample(n, dz_t, relu);
        } else if (relu) {
          copy_row(dz_t, dy + n * OC * P, OC * P, y + n * OC * P);
        } else {
          dzn = dy + n * OC * P;
        }
        if (weights) {
          im2col(p, x + n * in_sample, col, Pp, plane);
          conv_weight_gradient(OC, K1, P, Pp, OCp, transposed, dzn, col, dyt, dw_g);
        }
        if (dx) conv_data_gradient(p, dzn, w, col, Pp, plane, dx + n * in_sample);
      }
    }
    // The implicit barrier above: every partial is complete. Each thread now adds up the
    // partials of its own output channels, in chunk order.
    if (weights)  // element (o, k) of a partial: (k, o) of the transposed (K + 1, OCp) layout
      add_weight_partials(partials, dw_size, chunks.count, OC, K, transposed ? 1 : K1, transposed ? OCp : 1, dw, db);
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
FALTUNG_END_NAMESPACE
