#pragma once
// Inverted dropout: in training each element is kept with probability 1 - rate and scaled by
// 1 / (1 - rate), so inference needs no rescaling.
//
// The mask is counter-based: element i of a call with seed s is kept when
// splitmix64(s + i) maps above `rate`. Any thread can compute any element, so the loop is
// parallel and the mask is the same for every thread count; the seed of each call is drawn
// from the layer's share of the one model generator.

#include <cstddef>
#include <cstdint>

#include "faltung/config.hpp"
#include "faltung/random.hpp"

namespace faltung {
namespace kernels {

/// y = x * mask, mask[i] in {0, scale}. mask (count) is written for backward.
template <class T>
void dropout_forward(const T* x, T* y, T* mask, std::size_t count, double rate, std::uint64_t seed) {
  const T scale = T(1.0 / (1.0 - rate));
FALTUNG_OMP(parallel for schedule(static) if (count > 32768))
  for (std::ptrdiff_t i = 0; i < std::ptrdiff_t(count); ++i) {
    const bool keep = unit_double(splitmix64(seed + std::uint64_t(i))) >= rate;
    mask[i] = keep ? scale : T(0);
    y[i] = x[i] * mask[i];
  }
}

/// dx = dy * mask.
template <class T>
void dropout_backward(const T* dy, const T* mask, T* dx, std::size_t count) {
FALTUNG_OMP(parallel for simd schedule(static) if (count > 32768))
  for (std::ptrdiff_t i = 0; i < std::ptrdiff_t(count); ++i) dx[i] = dy[i] * mask[i];
}

}  // namespace kernels
}  // namespace faltung
