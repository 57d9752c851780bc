#pragma once
// Splitting [0, n) into one contiguous block per thread: the partition of the Dense products and
// of whole-tensor copies. The blocks depend only on n and their count, so every thread writes
// the same elements for the same thread count.

#include <cstddef>

#include "faltung/config.hpp"
#include "faltung/threading.hpp"

namespace faltung {
namespace kernels {

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

}  // namespace kernels
}  // namespace faltung
