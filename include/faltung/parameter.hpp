#pragma once
// A trainable tensor and its gradient. Layers own their Parameters; optimizers receive pointers
// to them through Sequential::parameters(), in a fixed order.

#include <string>

#include "faltung/kernels/copy.hpp"
#include "faltung/tensor.hpp"

FALTUNG_BEGIN_NAMESPACE

template <class T>
struct Parameter {
  std::string name;      ///< "kernel" or "bias"; the owning layer's name is added by Sequential
  Tensor<T> value;       ///< the weights
  Tensor<T> grad;        ///< d loss / d value; backward() ADDS into it, zero_grad() clears it
  bool trainable = true; ///< false: optimizers skip it (how transfer learning freezes a base)

  Parameter() = default;
  Parameter(std::string name_, const Shape& shape) : name(std::move(name_)), value(shape), grad(shape) {}

  void zero_grad() { kernels::parallel_fill(grad.data(), grad.size(), T(0)); }
};

/// A parameter and the name of the layer that owns it (Sequential::named_parameters).
template <class T>
struct NamedParameter {
  std::string layer;  ///< "dense_1"
  Parameter<T>* parameter;
};

FALTUNG_END_NAMESPACE
