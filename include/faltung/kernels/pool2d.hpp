#pragma once
// 2-D max pooling on NCHW tensors.
//
// Shapes:  x (N, C, H, W)   y (N, C, OH, OW)   argmax (N, C, OH, OW): the index inside the
// (H, W) plane of the input pixel each output took its value from.
// Padded positions never win ('same' pooling pads with -infinity, as Keras does); when several
// pixels tie, the first in row-major order wins, as in PyTorch.
// OpenMP runs over the (n, c) planes: each thread writes only its own planes of y and dx. Small
// inputs (a few samples in inference) stay on one thread: starting a team costs more than they do.

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <type_traits>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "faltung/kernels/blocks.hpp"
#include "faltung/kernels/geometry.hpp"
#include "faltung/threading.hpp"

FALTUNG_BEGIN_NAMESPACE
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
///
/// Without branches (selects on the comparison, the NaN rule as `v != v`): with branches, random
/// data mispredicts about every other window, which made this loop cost as much as the first
/// convolution. The compiler does not vectorise it by itself for the short rows of these
/// networks (OW = 14 or 7, less than one vector), so with AVX-512 each row is one masked vector
/// step, below; this scalar loop is the fallback and the ragged end.
template <class T>
void max_pool2x2_row(const T* __restrict r0, const T* __restrict r1, T* __restrict yr, std::int32_t* __restrict ar,
                     std::ptrdiff_t j_begin, std::ptrdiff_t j_end, std::int32_t base, std::int32_t W) {
  for (std::ptrdiff_t j = j_begin; j < j_end; ++j) {
    const std::int32_t s = base + 2 * std::int32_t(j);  // plane index of the window's first pixel
    const T cand[3] = {r0[2 * j + 1], r1[2 * j], r1[2 * j + 1]};
    const std::int32_t where[3] = {s + 1, s + W, s + W + 1};
    T best = r0[2 * j];
    std::int32_t at = s;
    for (int k = 0; k < 3; ++k) {
      const T v = cand[k];
      const bool take = v > best || (v != v && best == best);  // replaces_max
      best = take ? v : best;
      at = take ? where[k] : at;
    }
    yr[j] = best;
    ar[j] = at;
  }
}

template <class T>
void max_pool2x2_plane(const Pool2DParams& p, const T* xp, T* yp, std::int32_t* ap) {
  const std::int32_t W = std::int32_t(p.w.in);
  const std::ptrdiff_t OW = std::ptrdiff_t(p.w.out);
  for (std::size_t i = 0; i < p.h.out; ++i) {
    const T* r0 = xp + 2 * i * p.w.in;  // the window's two input rows, (W) each
    const T* r1 = r0 + p.w.in;
    T* yr = yp + i * p.w.out;  // (OW)
    std::int32_t* ar = ap + i * p.w.out;
    const std::int32_t base = std::int32_t(2 * i) * W;
    std::ptrdiff_t j = 0;
#if defined(__AVX512F__)
    if constexpr (std::is_same<T, float>::value) {
      // 16 windows per step: two vectors of each input row (32 pixels) split into their even
      // and odd pixels, then the same rule as the scalar loop, lane by lane, under masks.
      const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
      const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
      const __m512i lane2 = _mm512_slli_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), 1);
      for (; j < OW; j += 16) {
        const int n = int(std::min<std::ptrdiff_t>(16, OW - j));  // windows in this step
        const int pixels = 2 * n;                                 // input pixels per row
        const __mmask16 m_lo = __mmask16((1u << std::min(pixels, 16)) - 1u);
        const __mmask16 m_hi = __mmask16((1u << std::max(pixels - 16, 0)) - 1u);
        const __mmask16 m_out = __mmask16((1u << n) - 1u);
        // A vector that is whole is loaded without a mask: a load whose mask is known only at
        // run time is slow on data that comes from memory (as 128 planes of 28x28 per sample
        // do), although on cached data it costs the same as a plain load.
        auto load = [](const float* ptr, int count, __mmask16 m) {
          return count >= 16 ? _mm512_loadu_ps(ptr) : _mm512_maskz_loadu_ps(m, ptr);
        };
        const __m512 a0 = load(r0 + 2 * j, pixels, m_lo), a1 = load(r0 + 2 * j + 16, pixels - 16, m_hi);
        const __m512 b0 = load(r1 + 2 * j, pixels, m_lo), b1 = load(r1 + 2 * j + 16, pixels - 16, m_hi);
        // In row-major order inside each window: r0 even, r0 odd, r1 even, r1 odd.
        const __m512 cand[3] = {_mm512_permutex2var_ps(a0, odd, a1), _mm512_permutex2var_ps(b0, even, b1),
                                _mm512_permutex2var_ps(b0, odd, b1)};
        const __m512i s = _mm512_add_epi32(_mm512_set1_epi32(base + 2 * std::int32_t(j)), lane2);
        const __m512i where[3] = {_mm512_add_epi32(s, _mm512_set1_epi32(1)), _mm512_add_epi32(s, _mm512_set1_epi32(W)),
                                  _mm512_add_epi32(s, _mm512_set1_epi32(W + 1))};
        __m512 best = _mm512_permutex2var_ps(a0, even, a1);
        __m512i at = s;
        FALTUNG_UNROLL
        for (int k = 0; k < 3; ++k) {
          const __mmask16 take = _mm512_cmp_ps_mask(cand[k], best, _CMP_GT_OQ) |
                                 (_mm512_cmp_ps_mask(cand[k], cand[k], _CMP_UNORD_Q) &
                                  _mm512_cmp_ps_mask(best, best, _CMP_ORD_Q));
          best = _mm512_mask_blend_ps(take, best, cand[k]);
          at = _mm512_mask_blend_epi32(take, at, where[k]);
        }
        _mm512_mask_storeu_ps(yr + j, m_out, best);
        _mm512_mask_storeu_epi32(ar + j, m_out, at);
      }
    }
#endif
    max_pool2x2_row(r0, r1, yr, ar, j, OW, base, W);
  }
}

/// Whether the pool is the common 2x2 window with stride 2 inside the input (max_pool2x2_plane).
inline bool is_pool2x2(const Pool2DParams& p) {
  return p.h.window == 2 && p.w.window == 2 && p.h.stride == 2 && p.w.stride == 2 && p.h.pad_before == 0 &&
         p.w.pad_before == 0 && 2 * p.h.out <= p.h.in && 2 * p.w.out <= p.w.in;
}

/// One plane of max_pool2d_forward: xp (H, W), yp and ap (OH, OW). Also what a convolution with
/// the pool fused behind it (kernels/conv2d.hpp) runs on each plane of its output.
template <class T>
void max_pool2d_plane(const Pool2DParams& p, const T* xp, T* yp, std::int32_t* ap) {
  if (is_pool2x2(p)) {
    max_pool2x2_plane(p, xp, yp, ap);
    return;
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

template <class T>
void max_pool2d_forward(const Pool2DParams& p, const T* x, T* y, std::int32_t* argmax) {
  const std::size_t in_plane = p.h.in * p.w.in, out_plane = p.h.out * p.w.out;
  for_each_block(p.planes(), p.planes() * in_plane, kMinElementsPerThread, [&](std::size_t first, std::size_t last) {
    for (std::size_t plane = first; plane < last; ++plane)
      max_pool2d_plane(p, x + plane * in_plane, y + plane * out_plane, argmax + plane * out_plane);
  });
}

/// One plane of max_pool2d_backward: dxp (H, W) is overwritten. With `gate` (the plane of the
/// pool's output y), an output's gradient passes only where its y > 0: the gradient through a
/// ReLU before the pool, whose output at the winning pixel is that y.
template <class T>
void max_pool2d_plane_backward(const Pool2DParams& p, const T* dyp, const std::int32_t* ap, T* dxp,
                               const T* gate = nullptr) {
  const std::size_t in_plane = p.h.in * p.w.in, out_plane = p.h.out * p.w.out;
  for (std::size_t k = 0; k < in_plane; ++k) dxp[k] = T(0);
  if (gate) {
    for (std::size_t k = 0; k < out_plane; ++k)
      if (gate[k] > T(0)) dxp[ap[k]] += dyp[k];
  } else {
    for (std::size_t k = 0; k < out_plane; ++k) dxp[ap[k]] += dyp[k];
  }
}

/// dx (N, C, H, W) is overwritten: each output's gradient goes to the pixel it came from.
template <class T>
void max_pool2d_backward(const Pool2DParams& p, const T* dy, const std::int32_t* argmax, T* dx) {
  const std::size_t in_plane = p.h.in * p.w.in, out_plane = p.h.out * p.w.out;
  for_each_block(p.planes(), p.planes() * in_plane, kMinElementsPerThread, [&](std::size_t first, std::size_t last) {
    for (std::size_t plane = first; plane < last; ++plane)
      max_pool2d_plane_backward(p, dy + plane * out_plane, argmax + plane * out_plane, dx + plane * in_plane);
  });
}

}  // namespace kernels
FALTUNG_END_NAMESPACE
