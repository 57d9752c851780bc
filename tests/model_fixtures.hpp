#pragma once
// A small classification problem and a model for it, shared by the model and training tests.

#include <cstdint>

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

}  // namespace faltung::test
