#pragma once
// Whole-tensor copies and fills on the OpenMP threads. Both are bound by memory bandwidth,
// which one core does not use up: left on one thread, the reset of the gradients and Flatten's
// copies are serial work in every training step, which the other threads wait for. Each thread
// writes its own contiguous block; the result is the same for any thread count.

#include <algorithm>
#include <cstddef>

#include "faltung/kernels/blocks.hpp"
#include "faltung/threading.hpp"

FALTUNG_BEGIN_NAMESPACE
namespace kernels {

/// The blocks of a copy or fill of n elements: one per kMinElementsPerThread, so that a small one
/// stays on the calling thread, where starting a team would cost more than it saves.
inline int memory_blocks(std::size_t n) { return threads_for(n, kMinElementsPerThread); }

/// dst[0, n) = src[0, n); the ranges must not overlap.
template <class T>
void parallel_copy(const T* src, std::size_t n, T* dst) {
  for_each_block(n, memory_blocks(n), [&](std::size_t first, std::size_t last) {
    std::copy(src + first, src + last, dst + first);
  });
}

/// dst[0, n) = value.
template <class T>
void parallel_fill(T* dst, std::size_t n, T value) {
  for_each_block(n, memory_blocks(n), [&](std::size_t first, std::size_t last) {
    std::fill(dst + first, dst + last, value);
  });
}

}  // namespace kernels
FALTUNG_END_NAMESPACE
