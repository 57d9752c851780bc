#pragma once
// Splitting [0, n) into one contiguous block per thread: the partition of the Dense products, of
// the element-wise kernels and of whole-tensor copies. The blocks depend only on n and their
// count, so every thread writes the same elements for the same thread count.
//
// How many threads a piece of work gets is decided here too (threads_for), from the amount of
// work, never from a shape: a parallel region costs a few microseconds even on an idle machine
// (starting the team, the barrier at its end), and on a busy one each region is a point where a
// thread may wait for another that is not running. So a thread is only started for a share of
// work that takes it well over that, and work below one share runs on the calling thread without
// entering a parallel region at all (an OpenMP `if(false)` clause still enters the runtime and
// costs about half a region).

#include <algorithm>
#include <cstddef>

#include "faltung/config.hpp"
#include "faltung/threading.hpp"

FALTUNG_BEGIN_NAMESPACE
namespace kernels {

/// The least work per thread, in units of each kind, that pays for a share of a parallel
/// region: about 10 microseconds of one core.
///   multiply-adds of a product (Dense, convolutions; ~100 per nanosecond in the SIMD GEMM)
constexpr std::size_t kMinMultiplyAddsPerThread = std::size_t(1) << 20;
///   elements of a memory-bound pass (copy, fill, ReLU, dropout, pooling: a few bytes per
///   nanosecond each way)
constexpr std::size_t kMinElementsPerThread = std::size_t(1) << 16;
///   elements of a pass that calls exp or tanh per element (several nanoseconds each)
constexpr std::size_t kMinTranscendentalsPerThread = std::size_t(1) << 13;

/// The threads `work` units deserve, `min_per_thread` being the least share worth a thread:
/// between 1 and num_threads().
inline int threads_for(std::size_t work, std::size_t min_per_thread) {
  const std::size_t shares = work / std::max<std::size_t>(min_per_thread, 1);
  return int(std::max<std::size_t>(1, std::min<std::size_t>(std::size_t(num_threads()), shares)));
}

/// Calls block(first, last) on `parts` contiguous blocks of [0, n), in parallel, one per thread;
/// with one part, on the calling thread without starting a team.
template <class Block>
void for_each_block(std::size_t n, int parts, const Block& block) {
  if (parts <= 1) {
    block(std::size_t(0), n);
    return;
  }
  FALTUNG_OMP(parallel for schedule(static) num_threads(parts))
  for (int t = 0; t < parts; ++t)
    block(n * std::size_t(t) / std::size_t(parts), n * std::size_t(t + 1) / std::size_t(parts));
}

/// Calls block(first, last) on `parts` contiguous blocks of [0, n), shared among `threads`
/// threads (consecutive blocks to each); with one thread, all on the calling thread, in order.
/// For work whose results follow its blocks: they stay the same whatever the thread count.
template <class Block>
void for_each_fixed_block(std::size_t n, int parts, int threads, const Block& block) {
  const auto run = [&](int t) {
    block(n * std::size_t(t) / std::size_t(parts), n * std::size_t(t + 1) / std::size_t(parts));
  };
  if (threads <= 1 || parts <= 1) {
    for (int t = 0; t < parts; ++t) run(t);
    return;
  }
  FALTUNG_OMP(parallel for schedule(static) num_threads(threads))
  for (int t = 0; t < parts; ++t) run(t);
}

/// for_each_block over [0, n) with as many blocks as `work` units (of n elements) deserve.
template <class Block>
void for_each_block(std::size_t n, std::size_t work, std::size_t min_per_thread, const Block& block) {
  for_each_block(n, threads_for(work, min_per_thread), block);
}

}  // namespace kernels
FALTUNG_END_NAMESPACE
