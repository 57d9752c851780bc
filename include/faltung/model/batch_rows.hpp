#pragma once
// Taking a batch out of a data set: the rows [first, first + count) of a tensor (evaluation,
// prediction) or the rows an index list names (a shuffled training epoch). A row is one sample:
// everything after the first dimension. Both reuse dst's memory and split the copy over the
// OpenMP threads, because a batch copied on one thread is serial work in every step.
// Prediction over a data set in batches, shared by Sequential and InferenceModel, is here too.

#include <algorithm>
#include <cstddef>
#include <vector>

#include "faltung/config.hpp"
#include "faltung/kernels/activation.hpp"
#include "faltung/kernels/blocks.hpp"
#include "faltung/kernels/copy.hpp"
#include "faltung/tensor.hpp"

FALTUNG_BEGIN_NAMESPACE
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

/// The outputs (N, out...) of a model for x (N, ...): `forward` run on batches of at most
/// batch_size rows of x (each copied into `batch`, whose memory is reused), each batch's
/// outputs written through `activation` (over axis 1) into its rows of the result.
/// forward(batch) returns the model's output for the batch, (count, out...).
template <class T, class Forward>
Tensor<T> predict_in_batches(const Tensor<T>& x, std::size_t batch_size, const Shape& output_shape,
                             const Activation& activation, Tensor<T>& batch, const Forward& forward) {
  const std::size_t n = x.dim(0);
  Tensor<T> result(output_shape.with_batch(n));
  const std::size_t per_sample = output_shape.numel();
  for (std::size_t first = 0; first < n; first += batch_size) {
    const std::size_t count = std::min(batch_size, n - first);
    slice_rows(x, first, count, batch);
    const Tensor<T>& out = forward(static_cast<const Tensor<T>&>(batch));
    T* dst = result.data() + first * per_sample;
    kernels::activation_forward(activation, out.data(), dst, count, out.dim(1), per_sample / out.dim(1));
  }
  return result;
}

/// The index of the largest element of each row of p (N, k...): the predicted class of each sample.
template <class T>
std::vector<int> argmax_rows(const Tensor<T>& p) {
  const std::size_t n = p.dim(0), k = row_size(p);
  std::vector<int> classes(n);
  for (std::size_t i = 0; i < n; ++i) {
    const T* row = p.data() + i * k;
    classes[i] = int(std::max_element(row, row + k) - row);
  }
  return classes;
}

}  // namespace detail
FALTUNG_END_NAMESPACE
