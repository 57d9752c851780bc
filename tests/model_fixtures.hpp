#pragma once
// A small classification problem, a model for it, and weight comparisons, shared by the model
// and training tests.

#include <cstdint>
#include <cstring>
#include <vector>

#include "faltung/faltung.hpp"

namespace faltung::test {

/// Three Gaussian blobs in 4-D, labels 0, 1, 2.
struct Blobs {
  Tensor<float> x, y;
  explicit Blobs(std::size_t n, std::uint64_t seed = 7) : x(Shape{n, 4}), y(Shape{n}) {
    Random rng(seed);
    for (std::size_t i = 0; i < n; ++i) {
      const std::size_t c = i % 3;
      y[i] = float(c);
      for (std::size_t j = 0; j < 4; ++j) x[i * 4 + j] = float((j == c ? 2.0 : 0.0) + 0.5 * rng.normal());
    }
  }
};

/// Dense(8, tanh) -> Dense(3), built for the blobs.
inline Sequential<float> blob_classifier(std::uint64_t seed = 1) {
  Sequential<float> net(seed);
  net.add<Dense>(DenseOptions(8).activation(ActivationKind::Tanh)).add<Dense>(3);
  net.build({4});
  return net;
}

/// A tensor of `shape` with elements uniform in [-1, 1), drawn from a generator seeded `seed`.
template <class T>
Tensor<T> random_tensor(const Shape& shape, std::uint64_t seed) {
  Random rng(seed);
  return faltung::random_tensor<T>(shape, rng);
}

/// Every parameter of a model, copied.
template <class T>
std::vector<Tensor<T>> weights_of(Sequential<T>& net) {
  std::vector<Tensor<T>> w;
  for (Parameter<T>* p : net.parameters()) w.push_back(p->value);
  return w;
}

template <class T>
bool bitwise_equal(const Tensor<T>& a, const Tensor<T>& b) {
  return a.shape() == b.shape() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

template <class T>
bool bitwise_equal(const std::vector<Tensor<T>>& a, const std::vector<Tensor<T>>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (!bitwise_equal(a[i], b[i])) return false;
  return true;
}

}  // namespace faltung::test
