#pragma once
// Build configuration and the error type every check in the library throws.
//
// FALTUNG_HAS_OPENMP is 1 when compiled with OpenMP (the CMake target adds it when found).
// FALTUNG_HAS_ZLIB is 1 when the CMake target found zlib and links it; the IDX reader then
// reads .gz files, and otherwise says clearly that it cannot.

#include <charconv>
#include <sstream>
#include <stdexcept>
#include <string>

#include "faltung/version.hpp"

#if defined(_OPENMP)
#define FALTUNG_HAS_OPENMP 1
#include <omp.h>
#else
#define FALTUNG_HAS_OPENMP 0
#endif

/// FALTUNG_OMP(parallel for schedule(static)) is `#pragma omp parallel for schedule(static)` when
/// compiled with OpenMP and nothing otherwise, so that a program built without -fopenmp gets no
/// -Wunknown-pragmas warnings from faltung's kernels (the only place with OpenMP directives).
#define FALTUNG_OMP_STRINGIFY(...) #__VA_ARGS__
#if FALTUNG_HAS_OPENMP
#define FALTUNG_OMP(...) _Pragma(FALTUNG_OMP_STRINGIFY(omp __VA_ARGS__))
#else
#define FALTUNG_OMP(...)
#endif

/// FALTUNG_UNROLL before a loop with a small constant trip count asks the compiler to unroll it
/// completely. The SIMD micro-kernels need this: their accumulator arrays (acc[MR][NV]) only
/// live in registers once every index is a constant. Without it GCC 12 kept them on the stack
/// and stored all 24 accumulators on every step of the depth loop, which cost the GEMM most of
/// its speed.
#if defined(__clang__)
#define FALTUNG_UNROLL _Pragma("unroll")
#elif defined(__GNUC__)
#define FALTUNG_UNROLL _Pragma("GCC unroll 16")
#else
#define FALTUNG_UNROLL
#endif

#ifndef FALTUNG_HAS_ZLIB
#define FALTUNG_HAS_ZLIB 0
#endif

namespace faltung {

/// Every error faltung reports: a shape that does not fit, a bad file, a bad argument.
/// The message names what went wrong and where.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

// faltung::detail holds what is not API. It is the only namespace of that name: faltung::kernels,
// the inner layer of arithmetic on raw pointers, keeps its helpers beside its kernels, so code
// that says `using namespace faltung;` (and faltung::kernels) meets a single `detail`.
namespace detail {
template <class... Args>
[[noreturn]] inline void fail(const Args&... parts) {
  std::ostringstream os;
  (os << ... << parts);
  throw Error(os.str());
}

/// The shortest text that reads back as exactly `v` ("0.5", "0.1", "1e-07"), so that specs and
/// file headers round-trip without the noise of a fixed precision.
inline std::string shortest(double v) {
  char buf[32];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}
}  // namespace detail

}  // namespace faltung

/// Throws faltung::Error with the streamed message parts when `cond` is false:
///   FALTUNG_CHECK(n > 0, "Dense: units must be positive, got ", n);
#define FALTUNG_CHECK(cond, ...)                         \
  do {                                                   \
    if (!(cond)) ::faltung::detail::fail(__VA_ARGS__);   \
  } while (0)
