#pragma once
// Weight initialisers. Glorot-uniform is the default, as in Keras; biases start at zero.
//   GlorotUniform  U(-l, l), l = sqrt(6 / (fan_in + fan_out))
//   HeUniform      U(-l, l), l = sqrt(6 / fan_in)        (for ReLU networks)
//   HeNormal       N(0, sqrt(2 / fan_in))
//   Zeros
// For a convolution, fan_in = in_channels * kh * kw and fan_out = filters * kh * kw.

#include <cmath>
#include <string>

#include "faltung/random.hpp"
#include "faltung/tensor.hpp"

FALTUNG_BEGIN_NAMESPACE

enum class Initializer { GlorotUniform, HeUniform, HeNormal, Zeros };

inline std::string to_string(Initializer i) {
  switch (i) {
    case Initializer::GlorotUniform: return "glorot_uniform";
    case Initializer::HeUniform: return "he_uniform";
    case Initializer::HeNormal: return "he_normal";
    case Initializer::Zeros: return "zeros";
  }
  return "?";
}

template <class T>
void initialize(Tensor<T>& t, Initializer init, std::size_t fan_in, std::size_t fan_out, Random& rng) {
  switch (init) {
    case Initializer::GlorotUniform: {
      const double limit = std::sqrt(6.0 / double(fan_in + fan_out));
      for (T& v : t) v = T(rng.uniform(-limit, limit));
      return;
    }
    case Initializer::HeUniform: {
      const double limit = std::sqrt(6.0 / double(fan_in));
      for (T& v : t) v = T(rng.uniform(-limit, limit));
      return;
    }
    case Initializer::HeNormal: {
      const double stddev = std::sqrt(2.0 / double(fan_in));
      for (T& v : t) v = T(rng.normal(0.0, stddev));
      return;
    }
    case Initializer::Zeros:
      t.set_zero();
      return;
  }
}

FALTUNG_END_NAMESPACE
