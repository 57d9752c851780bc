#pragma once
// Sizes: overflow-checked arithmetic on element counts, and the limits beyond which faltung
// refuses a size instead of trying to allocate it.
//
// Every product of sizes that decides an allocation (a shape's element count, a layer's
// parameter count, a kernel's workspace, a file's claimed dimensions) goes through checked_mul
// and checked_add. A product that wrapped around std::size_t would be a small number: a buffer
// allocated too small and then written past its end. Here it is a faltung::Error instead.
//
// SizeLimits adds ceilings far below std::size_t's range, so that a size that fits in 64 bits
// but no machine can hold (a 2^62-element tensor, an architecture whose padding makes 4.6e18
// parameters) is refused with a message naming the limit, before anything is allocated, rather
// than ending in std::bad_alloc or the out-of-memory killer. The defaults are far beyond what a
// CPU trains in reasonable time; a program that reads untrusted model files or specs can lower
// them (set_size_limits), as the fuzz targets do.

#include <cstddef>
#include <limits>

#include "faltung/config.hpp"

FALTUNG_BEGIN_NAMESPACE

/// The largest sizes faltung accepts. Checked when a shape is inferred (Sequential::build, a
/// layer's output shape and workspace) and when a tensor is allocated (Tensor::resize).
struct SizeLimits {
  /// The most elements one tensor may hold: a batch, a layer's output, a weight matrix, a
  /// kernel's workspace. Default 2^32 (16 GiB of float, 32 GiB of double).
  std::size_t max_tensor_elements = std::size_t(1) << 32;
  /// The most parameters (weights and biases of all layers together) one model may have.
  /// Training keeps about four copies of each (value, gradient, two optimizer moments).
  /// Default 2^31 (8 GiB of float weights).
  std::size_t max_parameters = std::size_t(1) << 31;

  SizeLimits& tensor_elements(std::size_t v) { max_tensor_elements = v; return *this; }
  SizeLimits& parameters(std::size_t v) { max_parameters = v; return *this; }
};

namespace detail {
inline SizeLimits& size_limits_storage() {
  static SizeLimits limits;
  return limits;
}
}  // namespace detail

/// The limits in force for the whole process.
inline const SizeLimits& size_limits() { return detail::size_limits_storage(); }

/// Replaces the process-wide limits. Call it at start-up, before other threads use faltung: the
/// limits are read without synchronisation.
/// Each limit is at most 2^48 (1 PiB of float), so that a sum of a few sizes under it, times a
/// thread count, cannot overflow std::size_t.
inline void set_size_limits(const SizeLimits& limits) {
  constexpr std::size_t ceiling = std::size_t(1) << 48;
  FALTUNG_CHECK(limits.max_tensor_elements > 0 && limits.max_parameters > 0,
                "set_size_limits: limits must be positive, got max_tensor_elements ", limits.max_tensor_elements,
                " and max_parameters ", limits.max_parameters);
  FALTUNG_CHECK(limits.max_tensor_elements <= ceiling && limits.max_parameters <= ceiling,
                "set_size_limits: limits must be at most 2^48, got max_tensor_elements ", limits.max_tensor_elements,
                " and max_parameters ", limits.max_parameters);
  detail::size_limits_storage() = limits;
}

/// a * b, or a faltung::Error "<what...>: a * b overflows 64-bit std::size_t". The message
/// parts are only put together on failure, so a check in a per-batch path allocates nothing.
template <class... What>
std::size_t checked_mul(std::size_t a, std::size_t b, const What&... what) {
  if (a != 0 && b > std::numeric_limits<std::size_t>::max() / a)
    detail::fail(what..., ": ", a, " * ", b, " overflows ", 8 * sizeof(std::size_t), "-bit std::size_t");
  return a * b;
}

/// a + b, or a faltung::Error "<what...>: a + b overflows 64-bit std::size_t".
template <class... What>
std::size_t checked_add(std::size_t a, std::size_t b, const What&... what) {
  if (b > std::numeric_limits<std::size_t>::max() - a)
    detail::fail(what..., ": ", a, " + ", b, " overflows ", 8 * sizeof(std::size_t), "-bit std::size_t");
  return a + b;
}

/// The product of [first, last), checked; 1 for an empty range. A zero anywhere makes the
/// product 0 whatever the other factors are: an empty batch of a huge shape is empty, not an
/// overflow.
template <class It, class... What>
std::size_t checked_product(It first, It last, const What&... what) {
  for (It i = first; i != last; ++i)
    if (*i == 0) return 0;
  std::size_t n = 1;
  for (It i = first; i != last; ++i) n = checked_mul(n, std::size_t(*i), what...);
  return n;
}

/// Throws unless `elements` fits in one tensor (SizeLimits::max_tensor_elements). The message
/// parts `what...` name whose elements they are ("Tensor of shape ", shape).
template <class... What>
void check_tensor_elements(std::size_t elements, const What&... what) {
  const std::size_t limit = size_limits().max_tensor_elements;
  if (elements > limit)
    detail::fail(what..., " has ", elements, " elements, more than faltung's limit of ", limit,
                 " per tensor (SizeLimits::max_tensor_elements)");
}

FALTUNG_END_NAMESPACE
