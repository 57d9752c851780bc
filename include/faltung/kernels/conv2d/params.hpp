#pragma once
// The geometry of one convolution, and the small pieces every convolution kernel shares: the
// row padding of the work buffers, which GEMM a scalar type takes, and Eigen views of raw rows.

#include <Eigen/Core>
#include <algorithm>
#include <cstddef>
#include <type_traits>

#include "faltung/kernels/blocks.hpp"
#include "faltung/kernels/gemm.hpp"
#include "faltung/kernels/geometry.hpp"

namespace faltung {
namespace kernels {

struct Conv2DParams {
  std::size_t batch = 0, in_channels = 0, out_channels = 0;
  WindowAxis h, w;  // vertical and horizontal geometry

  std::size_t patch_size() const { return in_channels * h.window * w.window; }  // K
  std::size_t out_pixels() const { return h.out * w.out; }                       // P
  std::size_t in_pixels() const { return h.in * w.in; }
  /// Multiply-adds of one pass (forward, backward-data or backward-weights) over the batch.
  std::size_t multiply_adds() const { return batch * out_channels * patch_size() * out_pixels(); }
};

// The column buffers have their rows padded to a multiple of 16 floats (Pp >= P), so every row
// starts on a 64-byte boundary. With AVX-512 or AVX2 (and T = float) the GEMMs are
// kernels/gemm.hpp's register-blocked tiles, which read the operands in place; otherwise Eigen.

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

/// n rounded up to a multiple of 16 (one cache line of floats).
inline std::size_t round_up16(std::size_t n) { return (n + 15) / 16 * 16; }

/// The threads of a convolution kernel doing `passes` of its products: as many as the work
/// deserves (blocks.hpp), at most one per sample, since the samples are what is split.
inline int conv_threads(const Conv2DParams& p, std::size_t passes) {
  return std::max(1, int(std::min<std::size_t>(std::size_t(threads_for(p.multiply_adds() * passes, kMinMultiplyAddsPerThread)),
                                               p.batch)));
}

template <class T>
constexpr bool use_simd_gemm() {
  return FALTUNG_HAS_SIMD_GEMM && std::is_same<T, float>::value;
}

}  // namespace kernels
}  // namespace faltung
