#pragma once
// Build configuration and the error type every check in the library throws.
//
// FALTUNG_HAS_OPENMP is 1 when compiled with OpenMP (the CMake target adds it when found).
// FALTUNG_HAS_ZLIB is 1 when the CMake target found zlib and links it; the IDX reader then
// reads .gz files, and otherwise says clearly that it cannot.
//
// One program, several configurations. faltung is header-only, so every translation unit
// compiles its own copy of each function, and what that copy contains depends on the unit's
// flags: the SIMD kernels exist only with AVX-512F or AVX2+FMA (kernels/gemm.hpp, pool2d.hpp),
// the threading calls only with OpenMP, and FALTUNG_HAS_ZLIB changes the members of the IDX
// reader. A program whose units differ (one linked with faltung::native, one not; one built
// without zlib) would otherwise hold two different definitions under one name, and the linker
// keeps one of them for every caller: the generic unit may run the AVX-512 copy (an illegal
// instruction on an older CPU) or two units may disagree about a class's layout.
//
// So everything faltung defines lives in an inline namespace named after the configuration,
// opened by FALTUNG_BEGIN_NAMESPACE: faltung::abi_avx512_omp_zlib::Sequential<float> in a unit
// built with -march=native on an AVX-512 machine, faltung::abi_base_omp_nozlib::... in a generic
// one without zlib. Code still writes faltung::Sequential<float>; only the linker sees the
// difference, and each unit runs the code it was compiled for. The consequences:
// - Mixing flags across translation units is safe.
// - Objects of differently configured units are distinct types: a faltung::Sequential<float>
//   made in one cannot be passed to a function of the other (it does not link, or does not
//   compile where both see each other's declarations). Exchange a model through its file
//   (save_model / load_model), which is the same in every configuration, or through plain data.
// - faltung::Error alone is outside: its layout and code do not depend on the configuration,
//   so an error thrown by one unit is caught as faltung::Error by any other.
// - Do not forward-declare faltung's classes by hand (namespace faltung { class X; } declares a
//   different X); include the header that defines them.
// - FALTUNG_GEMM_DEPTH_CHUNK, when a unit defines it (an integer literal), is part of the name.
// - Eigen (which faltung calls for the products its own kernels do not cover) and the standard
//   library have no such namespace: their templates instantiated in two differently compiled
//   units still share a name (std::vector<float>'s members, Eigen's GEMM). That is harmless on a
//   CPU that runs every unit's instructions (the usual case: one machine builds and runs), but a
//   program that picks a generic unit at run time to run on a CPU without AVX may still meet
//   their AVX copies.

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

// The configuration's name (see the top of this file): the instruction-set level the kernels
// and the compiler's vectorisation choose between, OpenMP, zlib, and the one tuning macro.
#if defined(__AVX512F__)
#define FALTUNG_ABI_ISA avx512
#elif defined(__AVX2__) && defined(__FMA__)
#define FALTUNG_ABI_ISA avx2_fma
#elif defined(__AVX2__)
#define FALTUNG_ABI_ISA avx2
#elif defined(__AVX__) && defined(__FMA__)
#define FALTUNG_ABI_ISA avx_fma
#elif defined(__AVX__)
#define FALTUNG_ABI_ISA avx
#elif defined(__SSE4_2__)
#define FALTUNG_ABI_ISA sse4_2
#else
#define FALTUNG_ABI_ISA base
#endif
#if FALTUNG_HAS_OPENMP
#define FALTUNG_ABI_OPENMP omp
#else
#define FALTUNG_ABI_OPENMP noomp
#endif
#if FALTUNG_HAS_ZLIB
#define FALTUNG_ABI_ZLIB zlib
#else
#define FALTUNG_ABI_ZLIB nozlib
#endif
#define FALTUNG_ABI_PASTE_(a, b) a##b
#define FALTUNG_ABI_PASTE(a, b) FALTUNG_ABI_PASTE_(a, b)
#if defined(FALTUNG_GEMM_DEPTH_CHUNK)
#define FALTUNG_ABI_TUNING FALTUNG_ABI_PASTE(_k, FALTUNG_GEMM_DEPTH_CHUNK)
#else
#define FALTUNG_ABI_TUNING
#endif
#define FALTUNG_ABI_NAME_(isa, openmp, zlib, tuning) abi_##isa##_##openmp##_##zlib##tuning
#define FALTUNG_ABI_NAME(isa, openmp, zlib, tuning) FALTUNG_ABI_NAME_(isa, openmp, zlib, tuning)
/// The inline namespace of this translation unit's configuration, e.g. abi_avx512_omp_zlib.
#define FALTUNG_ABI_NAMESPACE FALTUNG_ABI_NAME(FALTUNG_ABI_ISA, FALTUNG_ABI_OPENMP, FALTUNG_ABI_ZLIB, FALTUNG_ABI_TUNING)
/// The same as a string, "abi_avx512_omp_zlib", for messages and tests.
#define FALTUNG_ABI_STRINGIFY(name) FALTUNG_OMP_STRINGIFY(name)
#define FALTUNG_ABI_STRING FALTUNG_ABI_STRINGIFY(FALTUNG_ABI_NAMESPACE)

/// Every faltung header opens and closes its namespace with these.
#define FALTUNG_BEGIN_NAMESPACE \
  namespace faltung {           \
  inline namespace FALTUNG_ABI_NAMESPACE {
#define FALTUNG_END_NAMESPACE \
  }                           \
  }

namespace faltung {

/// Every error faltung reports: a shape that does not fit, a bad file, a bad argument.
/// The message names what went wrong and where. Outside the configuration's inline namespace, so
/// that every translation unit catches the same type.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

}  // namespace faltung

FALTUNG_BEGIN_NAMESPACE

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

FALTUNG_END_NAMESPACE

/// Throws faltung::Error with the streamed message parts when `cond` is false:
///   FALTUNG_CHECK(n > 0, "Dense: units must be positive, got ", n);
#define FALTUNG_CHECK(cond, ...)                         \
  do {                                                   \
    if (!(cond)) ::faltung::detail::fail(__VA_ARGS__);   \
  } while (0)
