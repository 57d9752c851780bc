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
#include "faltung/kernels/blocks.hpp"
#include "faltung/random.hpp"

FALTUNG_BEGIN_NAMESPACE
namespace kernels {

/// The factor of a kept element: 1 / (1 - rate).
template <class T>
T dropout_scale(double rate) {
  return T(1.0 / (1.0 - rate));
}

/// dropout_forward on elements [first, last). Everything arrives by value: a store to keep
/// (bytes, which may alias anything) would otherwise make the compiler reload every captured
/// variable of a lambda on each element, and keep the loop scalar.
template <class T>
void dropout_forward_block(const T* x, T* y, std::uint8_t* keep, std::size_t first, std::size_t last, double rate,
                           T scale, std::uint64_t seed) {
  for (std::size_t i = first; i < last; ++i) {
    const bool kept = unit_double(splitmix64(seed + std::uint64_t(i))) >= rate;
    keep[i] = std::uint8_t(kept);
    y[i] = x[i] * (kept ? scale : T(0));
  }
}

/// y = x * (keep[i] ? scale : 0). keep (count) is written for backward, one byte per element:
/// a quarter of the memory, and of the traffic, of a mask of floats.
template <class T>
void dropout_forward(const T* x, T* y, std::uint8_t* keep, std::size_t count, double rate, std::uint64_t seed) {
  const T scale = dropout_scale<T>(rate);
  for_each_block(count, count, kMinElementsPerThread, [=](std::size_t first, std::size_t last) {
    dropout_forward_block(x, y, keep, first, last, rate, scale, seed);
  });
}

/// dx = dy * (keep[i] ? scale : 0), with the keep of the forward at the same rate.
template <class T>
void dropout_backward(const T* dy, const std::uint8_t* keep, T* dx, std::size_t count, double rate) {
  const T scale = dropout_scale<T>(rate);
  for_each_block(count, count, kMinElementsPerThread, [=](std::size_t first, std::size_t last) {
    for (std::size_t i = first; i < last; ++i) dx[i] = dy[i] * (keep[i] ? scale : T(0));
  });
}

}  // namespace kernels
FALTUNG_END_NAMESPACE
