#pragma once
// 2-D max pooling on NCHW tensors.
//
// Shapes:  x (N, C, H, W)   y (N, C, OH, OW)   argmax (N, C, OH, OW): the index inside the
// (H, W) plane of the input pixel each output took its value from.
// Padded positions never win ('same' pooling pads with -infinity, as Keras does); when several
// pixels tie, the first in row-major order wins, as in PyTorch.
// OpenMP runs over the (n, c) planes: each thread writes only its own planes of y and dx.

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>

#include "faltung/kernels/geometry.hpp"
#include "faltung/threading.hpp"

namespace faltung {
namespace kernels {

struct Pool2DParams {
  std::size_t batch = 0, channels = 0;
  WindowAxis h, w;
  std::size_t planes() const { return batch * channels; }
};

/// Whether candidate v replaces the running maximum: a larger value does, and so does the first
/// NaN, which then stays (NaN propagates, as in PyTorch). Ties keep the earlier pixel.
template <class T>
inline bool replaces_max(T v, T best) {
  return v > best || (std::isnan(v) && !std::isnan(best));
}

/// The common case, a 2x2 window with stride 2 and no padding, on one plane: every window lies
/// inside the input, so there are no bounds to clip, and the four candidates are compared in
/// row-major order with the same rule as the general loop (first wins ties, NaN wins).
/// xp (H, W), yp and ap (OH, OW).
template <class T>
void max_pool2x2_plane(const Pool2DParams& p, const T* xp, T* yp, std::int32_t* ap) {
  for (std::size_t i = 0; i < p.h.out; ++i) {
    const T* r0 = xp + 2 * i * p.w.in;
    const T* r1 = r0 + p.w.in;
    const std::int32_t base = std::int32_t(2 * i * p.w.in);
    for (std::size_t j = 0; j < p.w.out; ++j) {
      const std::size_t s = 2 * j;
      T best = r0[s];
      std::int32_t at = base + std::int32_t(s);
      if (replaces_max(r0[s + 1], best)) best = r0[s + 1], at = base + std::int32_t(s + 1);
      if (replaces_max(r1[s], best)) best = r1[s], at = base + std::int32_t(p.w.in + s);
      if (replaces_max(r1[s + 1], best)) best = r1[s + 1], at = base + std::int32_t(p.w.in + s + 1);
      yp[i * p.w.out + j] = best;
      ap[i * p.w.out + j] = at;
    }
  }
}

template <class T>
void max_pool2d_forward(const Pool2DParams& p, const T* x, T* y, std::int32_t* argmax) {
  const std::size_t in_plane = p.h.in * p.w.in, out_plane = p.h.out * p.w.out;
  const bool two_by_two = p.h.window == 2 && p.w.window == 2 && p.h.stride == 2 && p.w.stride == 2 &&
                          p.h.pad_before == 0 && p.w.pad_before == 0 && 2 * p.h.out <= p.h.in && 2 * p.w.out <= p.w.in;
#pragma omp parallel for schedule(static)
  for (std::ptrdiff_t plane = 0; plane < std::ptrdiff_t(p.planes()); ++plane) {
    const T* xp = x + std::size_t(plane) * in_plane;
    T* yp = y + std::size_t(plane) * out_plane;
    std::int32_t* ap = argmax + std::size_t(plane) * out_plane;
    if (two_by_two) {
      max_pool2x2_plane(p, xp, yp, ap);
      continue;
    }
    for (std::size_t i = 0; i < p.h.out; ++i) {
      // Clip the window to the input: padding never wins, so it need not be read.
      const std::ptrdiff_t r0 = std::ptrdiff_t(i * p.h.stride) - std::ptrdiff_t(p.h.pad_before);
      const std::size_t r_begin = std::size_t(std::max<std::ptrdiff_t>(r0, 0));
      const std::size_t r_end = std::size_t(std::min<std::ptrdiff_t>(r0 + std::ptrdiff_t(p.h.window), std::ptrdiff_t(p.h.in)));
      for (std::size_t j = 0; j < p.w.out; ++j) {
        const std::ptrdiff_t s0 = std::ptrdiff_t(j * p.w.stride) - std::ptrdiff_t(p.w.pad_before);
        const std::size_t s_begin = std::size_t(std::max<std::ptrdiff_t>(s0, 0));
        const std::size_t s_end = std::size_t(std::min<std::ptrdiff_t>(s0 + std::ptrdiff_t(p.w.window), std::ptrdiff_t(p.w.in)));
        T best = -std::numeric_limits<T>::infinity();
        std::size_t best_index = r_begin * p.w.in + s_begin;
        for (std::size_t r = r_begin; r < r_end; ++r)
          for (std::size_t s = s_begin; s < s_end; ++s) {
            const T v = xp[r * p.w.in + s];
            if (replaces_max(v, best)) {
              best = v;
              best_index = r * p.w.in + s;
            }
          }
        yp[i * p.w.out + j] = best;
        ap[i * p.w.out + j] = std::int32_t(best_index);
      }
    }
  }
}

/// dx (N, C, H, W) is overwritten: each output's gradient goes to the pixel it came from.
template <class T>
void max_pool2d_backward(const Pool2DParams& p, const T* dy, const std::int32_t* argmax, T* dx) {
  const std::size_t in_plane = p.h.in * p.w.in, out_plane = p.h.out * p.w.out;
#pragma omp parallel for schedule(static)
  for (std::ptrdiff_t plane = 0; plane < std::ptrdiff_t(p.planes()); ++plane) {
    T* dxp = dx + std::size_t(plane) * in_plane;
    const T* dyp = dy + std::size_t(plane) * out_plane;
    const std::int32_t* ap = argmax + std::size_t(plane) * out_plane;
    for (std::size_t k = 0; k < in_plane; ++k) dxp[k] = T(0);
    for (std::size_t k = 0; k < out_plane; ++k) dxp[ap[k]] += dyp[k];
  }
}

}  // namespace kernels
}  // namespace faltung
