#pragma once
// A seeded split of a table into a training and a test set (scikit-learn's train_test_split):
//
//   auto [train, test] = train_test_split(data, 0.2, /*seed=*/42);
//
// The rows are shuffled with faltung's Random (the same seed gives the same split with any
// compiler), the first ceil(fraction * N) of the permutation become the test set and the rest
// the training set, each in permutation order. Without shuffling, the last rows are the test set.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <numeric>
#include <vector>

#include "faltung/config.hpp"
#include "faltung/data/tabular.hpp"
#include "faltung/random.hpp"

FALTUNG_BEGIN_NAMESPACE

template <class T>
struct TrainTestSplit {
  TabularData<T> train;
  TabularData<T> test;
};

namespace detail {
/// The rows of `data` listed in rows[first, first + count), with its names.
template <class T>
TabularData<T> take_rows(const TabularData<T>& data, const std::vector<std::size_t>& rows, std::size_t first,
                         std::size_t count) {
  TabularData<T> out;
  out.feature_names = data.feature_names;
  out.label_name = data.label_name;
  out.class_names = data.class_names;
  const std::size_t f = data.num_features();
  out.x.resize(Shape{count, f});
  out.y.resize(Shape{count, 1});
  for (std::size_t i = 0; i < count; ++i) {
    const std::size_t r = rows[first + i];
    std::copy(data.x.data() + r * f, data.x.data() + (r + 1) * f, out.x.data() + i * f);
    out.y[i] = data.y[r];
  }
  return out;
}
}  // namespace detail

/// Splits `data` into train and test sets, test_fraction of the rows (rounded up) in the test set.
/// Throws faltung::Error when test_fraction is not in (0, 1) or leaves either set empty.
template <class T>
TrainTestSplit<T> train_test_split(const TabularData<T>& data, double test_fraction = 0.25, std::uint64_t seed = 42,
                                   bool shuffle = true) {
  data.check("train_test_split");
  FALTUNG_CHECK(test_fraction > 0 && test_fraction < 1, "train_test_split: test_fraction must be in (0, 1), got ",
                test_fraction);
  const std::size_t n = data.size();
  const std::size_t n_test = std::size_t(std::ceil(test_fraction * double(n)));
  FALTUNG_CHECK(n_test > 0 && n_test < n, "train_test_split: a test fraction of ", test_fraction, " of ", n,
                " rows leaves ", n_test, " for testing and ", n - std::min(n, n_test), " for training; both need rows");
  std::vector<std::size_t> order(n);
  std::iota(order.begin(), order.end(), std::size_t(0));
  TrainTestSplit<T> split;
  if (shuffle) {
    Random rng(seed);
    rng.shuffle(order);
    split.test = detail::take_rows(data, order, 0, n_test);
    split.train = detail::take_rows(data, order, n_test, n - n_test);
  } else {
    split.train = detail::take_rows(data, order, 0, n - n_test);
    split.test = detail::take_rows(data, order, n - n_test, n_test);
  }
  return split;
}

FALTUNG_END_NAMESPACE
