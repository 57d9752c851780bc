#pragma once
// One sample's share of a convolution's backward pass on the im2col path (weight gradient and
// input gradient), and the split of the batch into chunks whose partial weight gradients both the
// im2col and the implicit-GEMM backward sum in a fixed order.

#include <algorithm>
#include <cstddef>

#include "faltung/config.hpp"
#include "faltung/kernels/conv2d/im2col.hpp"
#include "faltung/kernels/conv2d/params.hpp"
#include "faltung/threading.hpp"

FALTUNG_BEGIN_NAMESPACE
namespace kernels {

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
  const ScopedNumThreads eigen_on_this_thread(1);
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
  const ScopedNumThreads eigen_on_this_thread(1);
  StridedMap<T>(dcol, Eigen::Index(K), Eigen::Index(P), Eigen::OuterStride<>(Eigen::Index(Pp))).noalias() =
      ConstRowMajorMap<T>(w, Eigen::Index(OC), Eigen::Index(K)).transpose() *
      ConstRowMajorMap<T>(dz, Eigen::Index(OC), Eigen::Index(P));
  col2im(p, dcol, dx, Pp, plane);
}

/// How conv2d_backward splits the batch for the weight gradient: into `count` chunks of
/// consecutive samples, chunk g being samples [first(g), first(g + 1)). Each chunk sums its own
/// samples, in order, into its own partial dW, and the partials are added in chunk order, so the
/// result depends on the batch and the layer, never on the thread count: a training run gives
/// the same bits at any number of threads. The chunks are also the unit of the parallel loop,
/// so there are enough of them to balance 2, 4, 8 or 16 threads, and few enough that the
/// partials' memory stays bounded: at most kMaxGradientChunks partials, and fewer (down to
/// kMinGradientChunks) when they would pass kGradientChunksBudget elements together. Without a
/// weight gradient (partial_size 0) every sample is a chunk.
struct GradientChunks {
  static constexpr std::size_t kMaxGradientChunks = 16;
  static constexpr std::size_t kMinGradientChunks = 4;
  static constexpr std::size_t kGradientChunksBudget = std::size_t(1) << 22;  // elements: 16 MiB of floats

  std::size_t batch = 0, count = 0;

  GradientChunks(std::size_t batch_, std::size_t partial_size) : batch(batch_) {
    const std::size_t affordable = partial_size == 0 ? batch : kGradientChunksBudget / partial_size;
    count = partial_size == 0 ? batch
                              : std::min(batch, std::max(kMinGradientChunks, std::min(kMaxGradientChunks, affordable)));
  }
  /// The first sample of chunk g (g <= count; first(count) == batch).
  std::size_t first(std::size_t g) const { return batch * g / count; }
};

/// Adds the partial weight gradients of conv2d_backward's chunks (GradientChunks) into dw (OC, K)
/// and db, in chunk order; parallel over the output channels, each of which sums its partials in
/// the same order whatever the thread count. Called by every thread of the team, after the
/// barrier that completes the partials. Partial u starts at base + u * stride; its element (o, k)
/// is at o * row_step + k * col_step, k == K the bias.
template <class T>
void add_weight_partials(const T* base, std::size_t stride, std::size_t parts, std::size_t OC, std::size_t K,
                         std::size_t row_step, std::size_t col_step, T* dw, T* db) {
  FALTUNG_OMP(for schedule(static))
  for (std::ptrdiff_t o = 0; o < std::ptrdiff_t(OC); ++o) {
    for (std::size_t u = 0; u < parts; ++u) {
      const T* part = base + u * stride + std::size_t(o) * row_step;
      for (std::size_t k = 0; k < K; ++k) dw[std::size_t(o) * K + k] += part[k * col_step];
      if (db) db[o] += part[K * col_step];
    }
  }
}

}  // namespace kernels
FALTUNG_END_NAMESPACE
