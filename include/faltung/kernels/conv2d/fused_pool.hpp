#pragma once
// A max pool fused behind a convolution: each sample's output is pooled while it is in cache,
// and its gradient unpooled there, so the full-size output never goes to memory.

#include <cstddef>
#include <cstdint>

#include "faltung/kernels/pool2d.hpp"

FALTUNG_BEGIN_NAMESPACE
namespace kernels {

/// A max pool fused behind a convolution (ConvPool, layers/conv_pool.hpp, runs this). The
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

}  // namespace kernels
FALTUNG_END_NAMESPACE
