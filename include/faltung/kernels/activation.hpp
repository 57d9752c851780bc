#pragma once
// Element-wise activations and softmax, forward and backward. Shared by the activation layers
// and by the `activation` option of Dense and Conv2D, so there is one implementation of each.
//
// Every backward is written in terms of the OUTPUT y (and dy), which all of these allow:
//   relu       y' = [y > 0]            leaky_relu  y' = y > 0 ? 1 : alpha   (alpha > 0)
//   sigmoid    y' = y (1 - y)          tanh        y' = 1 - y^2
//   softmax    dx = y * (dy - sum(dy * y))   over the softmax axis
// so a layer with a fused activation keeps only its output, not the pre-activation. That is why
// a LeakyReLU slope must be positive: only then does y > 0 tell which side x was on.
//
// ReLU passes a NaN on, as PyTorch's does (max(x, 0) would turn it into 0 and hide it from
// fit's check of the loss): relu(x) = x <= 0 ? 0 : x. Every ReLU (this file's, and the one fused
// into the GEMM's store, kernels/gemm.hpp) computes exactly that.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <string>

#include "faltung/config.hpp"
#include "faltung/kernels/blocks.hpp"

FALTUNG_BEGIN_NAMESPACE

enum class ActivationKind { Linear, ReLU, LeakyReLU, Sigmoid, Tanh, Softmax };

/// An activation and its parameter (LeakyReLU's negative slope; Keras's default is 0.3).
struct Activation {
  ActivationKind kind = ActivationKind::Linear;
  double alpha = 0.3;

  Activation() = default;
  Activation(ActivationKind k, double a = 0.3) : kind(k), alpha(a) {}  // NOLINT: implicit on purpose
  bool is_linear() const { return kind == ActivationKind::Linear; }
  friend bool operator==(const Activation& a, const Activation& b) {
    return a.kind == b.kind && (a.kind != ActivationKind::LeakyReLU || a.alpha == b.alpha);
  }

  /// "relu", "leaky_relu", ... as in Keras.
  std::string name() const {
    switch (kind) {
      case ActivationKind::Linear: return "linear";
      case ActivationKind::ReLU: return "relu";
      case ActivationKind::LeakyReLU: return "leaky_relu";
      case ActivationKind::Sigmoid: return "sigmoid";
      case ActivationKind::Tanh: return "tanh";
      case ActivationKind::Softmax: return "softmax";
    }
    return "?";
  }
};

namespace detail {
/// Whether `alpha` can be a LeakyReLU slope: positive (see the top of this file) and finite.
inline bool leaky_relu_slope_ok(double alpha) { return std::isfinite(alpha) && alpha > 0; }

/// The check every entry point applies to an activation (the activation layers, Dense's and
/// Conv2D's options, the architecture parser): `who` starts the message.
inline void check_activation(const char* who, const Activation& f) {
  FALTUNG_CHECK(f.kind != ActivationKind::LeakyReLU || leaky_relu_slope_ok(f.alpha), who,
                ": the leaky_relu slope (alpha) must be positive and finite (the backward reads the derivative off the "
                "output's sign), got ", f.alpha);
}
}  // namespace detail

/// The activation in the architecture language: "relu", "leaky_relu", "leaky_relu=0.1", ...
inline std::string activation_spec(const Activation& f) {
  if (f.kind == ActivationKind::LeakyReLU && f.alpha != 0.3) {
    return "leaky_relu=" + detail::shortest(f.alpha);
  }
  return f.name();
}

namespace kernels {

/// ReLU of one value; a NaN stays NaN, and -0 becomes +0 as in max(x, 0).
template <class T>
inline T relu(T x) {
  return x <= T(0) ? T(0) : x;
}

/// y = f(x) on `count` elements laid out as (outer, axis, inner); softmax normalises over
/// `axis` (the features of a Dense output, the channels of an NCHW map). x and y may alias.
template <class T>
void activation_forward(const Activation& f, const T* x, T* y, std::size_t outer, std::size_t axis,
                        std::size_t inner) {
  const std::size_t count = outer * axis * inner;
  const T alpha = T(f.alpha);
  // Each case runs its loop on blocks of the elements (of the softmax rows), on as many threads
  // as the work deserves (blocks.hpp); a small layer's never enters a parallel region.
  switch (f.kind) {
    case ActivationKind::Linear:
      if (x != y) std::copy(x, x + count, y);
      return;
    case ActivationKind::ReLU:
      for_each_block(count, count, kMinElementsPerThread, [=](std::size_t first, std::size_t last) {
        for (std::size_t i = first; i < last; ++i) y[i] = relu(x[i]);
      });
      return;
    case ActivationKind::LeakyReLU:
      for_each_block(count, count, kMinElementsPerThread, [=](std::size_t first, std::size_t last) {
        for (std::size_t i = first; i < last; ++i) y[i] = x[i] > T(0) ? x[i] : alpha * x[i];
      });
      return;
    case ActivationKind::Sigmoid:
      for_each_block(count, count, kMinTranscendentalsPerThread, [&](std::size_t first, std::size_t last) {
        for (std::size_t i = first; i < last; ++i) {
          // Two branches so exp never overflows.
          if (x[i] >= T(0)) {
            y[i] = T(1) / (T(1) + std::exp(-x[i]));
          } else {
            const T e = std::exp(x[i]);
            y[i] = e / (T(1) + e);
          }
        }
      });
      return;
    case ActivationKind::Tanh:
      for_each_block(count, count, kMinTranscendentalsPerThread, [&](std::size_t first, std::size_t last) {
        for (std::size_t i = first; i < last; ++i) y[i] = std::tanh(x[i]);
      });
      return;
    case ActivationKind::Softmax:
      for_each_block(outer, count, kMinTranscendentalsPerThread, [&](std::size_t first, std::size_t last) {
        for (std::size_t o = first; o < last; ++o)
          for (std::size_t in = 0; in < inner; ++in) {
            const std::size_t base = o * axis * inner + in;
            T m = x[base];
            for (std::size_t a = 1; a < axis; ++a) m = std::max(m, x[base + a * inner]);
            T sum = T(0);
            for (std::size_t a = 0; a < axis; ++a) {
              const T e = std::exp(x[base + a * inner] - m);  // shifted by the max: no overflow
              y[base + a * inner] = e;
              sum += e;
            }
            for (std::size_t a = 0; a < axis; ++a) y[base + a * inner] /= sum;
          }
      });
      return;
  }
}

/// dx = dL/dx from the output y and dy = dL/dy. dx may alias dy.
template <class T>
void activation_backward(const Activation& f, const T* y, const T* dy, T* dx, std::size_t outer, std::size_t axis,
                         std::size_t inner) {
  const std::size_t count = outer * axis * inner;
  const T alpha = T(f.alpha);
  switch (f.kind) {
    case ActivationKind::Linear:
      if (dx != dy) std::copy(dy, dy + count, dx);
      return;
    case ActivationKind::ReLU:
      for_each_block(count, count, kMinElementsPerThread, [=](std::size_t first, std::size_t last) {
        for (std::size_t i = first; i < last; ++i) {
          const T d = dy[i];
          dx[i] = y[i] > T(0) ? d : T(0);
        }
      });
      return;
    case ActivationKind::LeakyReLU:
      for_each_block(count, count, kMinElementsPerThread, [=](std::size_t first, std::size_t last) {
        for (std::size_t i = first; i < last; ++i) {
          const T d = dy[i];
          dx[i] = y[i] > T(0) ? d : alpha * d;
        }
      });
      return;
    case ActivationKind::Sigmoid:
      for_each_block(count, count, kMinElementsPerThread, [=](std::size_t first, std::size_t last) {
        for (std::size_t i = first; i < last; ++i) dx[i] = dy[i] * y[i] * (T(1) - y[i]);
      });
      return;
    case ActivationKind::Tanh:
      for_each_block(count, count, kMinElementsPerThread, [=](std::size_t first, std::size_t last) {
        for (std::size_t i = first; i < last; ++i) dx[i] = dy[i] * (T(1) - y[i] * y[i]);
      });
      return;
    case ActivationKind::Softmax:
      for_each_block(outer, count, kMinElementsPerThread, [&](std::size_t first, std::size_t last) {
        for (std::size_t o = first; o < last; ++o)
          for (std::size_t in = 0; in < inner; ++in) {
            const std::size_t base = o * axis * inner + in;
            T dot = T(0);
            for (std::size_t a = 0; a < axis; ++a) dot += dy[base + a * inner] * y[base + a * inner];
            for (std::size_t a = 0; a < axis; ++a)
              dx[base + a * inner] = y[base + a * inner] * (dy[base + a * inner] - dot);
          }
      });
      return;
  }
}

}  // namespace kernels
FALTUNG_END_NAMESPACE
