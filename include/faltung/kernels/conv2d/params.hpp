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
#include "faltung/sizes.hpp"
#include "faltung/tensor.hpp"

FALTUNG_BEGIN_NAMESPACE
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

/// Checks that every buffer the kernels below size from p fits in one tensor
/// (SizeLimits::max_tensor_elements), each size computed overflow-checked: one sample's input and
/// output, the kernel, the column matrix (K + 1, P rounded up), the transposed gradient, the padded
/// planes of x and of dz. Conv2D calls it when it infers its output shape, so a convolution whose
/// buffers cannot exist is refused at build, before anything is allocated; the kernels call it
/// again on entry, so that their own size arithmetic, on terms bounded here, cannot overflow.
/// Some bounds are a little generous (KH where a buffer has KH - 1) to keep them few.
inline void check_conv2d_sizes(const Conv2DParams& p, const char* what) {
  const auto mul = [what](std::size_t a, std::size_t b) { return checked_mul(a, b, what, ": a buffer size"); };
  const auto add = [what](std::size_t a, std::size_t b) { return checked_add(a, b, what, ": a buffer size"); };
  const auto fits = [what](std::size_t n, const char* buffer) { check_tensor_elements(n, what, ": ", buffer); };
  const std::size_t C = p.in_channels, OC = p.out_channels, KH = p.h.window, KW = p.w.window;
  const std::size_t K1 = add(mul(mul(C, KH), KW), 1), P = mul(p.h.out, p.w.out);
  const std::size_t Pp = add(P, 15), OCp = add(OC, 15);  // at least round_up16 of each
  fits(mul(C, mul(p.h.in, p.w.in)), "one sample's input (channels x height x width)");
  fits(mul(OC, P), "one sample's output (filters x out height x out width)");
  fits(mul(OCp, K1), "the kernel and bias (filters x (channels x kernel height x kernel width + 1))");
  fits(mul(K1, Pp), "the column matrix ((channels x kernel height x kernel width + 1) x output pixels)");
  fits(mul(OCp, Pp), "the transposed output gradient (output pixels x filters)");
  const std::size_t hp = add(mul(p.h.out, p.h.stride), KH), wp = add(mul(p.w.out, p.w.stride), KW);
  fits(mul(hp, wp), "the padded input plane");
  fits(mul(std::max(C, OCp), mul(add(p.h.out, KH), add(p.w.out, KW))), "the padded input planes");
  fits(mul(std::max(C, OCp), mul(add(p.h.in, KH), add(p.w.in, KW))), "the padded gradient planes");
}

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

/// Sizes a kernel's workspace as `threads` slices of `per_thread` elements and then `shared`
/// more, the total overflow-checked and held to SizeLimits, with a message naming the kernel.
template <class T>
void resize_workspace(Tensor<T>& workspace, int threads, std::size_t per_thread, std::size_t shared,
                      const char* kernel) {
  const std::size_t n =
      checked_add(checked_mul(std::size_t(threads), per_thread, kernel, ": the workspace"), shared, kernel,
                  ": the workspace");
  check_tensor_elements(n, kernel, ": the workspace (", threads, " threads x ", per_thread, " + ", shared, ")");
  workspace.resize(Shape{n});
}

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
FALTUNG_END_NAMESPACE
