#pragma once
// What the libFuzzer targets share: how a broken invariant is reported, and the small size
// limits they run under.

#include <faltung/sizes.hpp>

#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace faltung::fuzz {

/// Reports a broken invariant as a finding: libFuzzer keeps the input that aborted.
[[noreturn]] inline void broken(const char* target, const char* what, const std::string& detail) {
  std::fprintf(stderr, "%s: %s: %s\n", target, what, detail.c_str());
  std::abort();
}

/// Small limits: a model is refused long before it could reach -malloc_limit_mb, and every input
/// runs in milliseconds. A limit that some path ignores shows up as a large allocation.
inline void use_small_size_limits() {
  set_size_limits(SizeLimits().tensor_elements(std::size_t(1) << 18).parameters(std::size_t(1) << 16));
}

}  // namespace faltung::fuzz
