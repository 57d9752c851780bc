#pragma once
// Taking a batch out of a data set: the rows [first, first + count) of a tensor (evaluation,
// prediction) or the rows an index list names (a shuffled training epoch). A row is one sample:
// everything after the first dimension. Both reuse dst's memory and split the copy over the
// OpenMP threads, because a batch copied on one thread is serial work in every step.

#include <algorithm>
#include <cstddef>
#include <vector>

#include "faltung/config.hpp"
#include "faltung/kernels/blocks.hpp"
#include "faltung/kernels/copy.hpp"
#include "faltung/tensor.hpp"

namespace faltung {
namespace detail {

/// Refuses a batch size of 0, with which a loop over the batches would never end.
inline void check_batch_size(const char* who, std::size_t batch_size) {
  FALTUNG_CHECK(batch_size > 0, who, ": batch_size must be positive, got 0");
}

/// Elements per sample of a batch tensor (N, ...).
template <class T>
std::size_t row_size(const Tensor<T>& t) {
  return t.size() / std::max<std::size_t>(t.dim(0), 1);
}

/// dst = rows [first, first + count) of src.
template <class T>
void slice_rows(const Tensor<T>& src, std::size_t first, std::size_t count, Tensor<T>& dst) {
  const std::size_t per = row_size(src);
  Shape s = src.shape();
  s[0] = count;
  dst.resize(s);
  kernels::parallel_copy(src.data() + first * per, count * per, dst.data());
}

/// dst = the rows of src listed in idx[first, first + count).
template <class T>
void gather_rows(const Tensor<T>& src, const std::vector<std::size_t>& idx, std::size_t first, std::size_t count,
                 Tensor<T>& dst) {
  const std::size_t per = row_size(src);
  Shape s = src.shape();
  s[0] = count;
  dst.resize(s);
  // Split by rows, as parallel_copy splits by elements.
  kernels::for_each_block(count, kernels::memory_blocks(count * per), [&](std::size_t begin, std::size_t end) {
    for (std::size_t i = begin; i < end; ++i)
      std::copy(src.data() + idx[first + i] * per, src.data() + (idx[first + i] + 1) * per, dst.data() + i * per);
  });
}

}  // namespace detail
}  // namespace faltung
