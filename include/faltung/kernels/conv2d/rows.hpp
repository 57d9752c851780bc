#pragma once
// Operations on one short row (one image row of 14 or 28 floats): add, copy, and the copy gated
// by a ReLU's output. With the SIMD GEMM compiled, they run in whole vectors and one masked
// vector: for rows this short a compiler-vectorised loop runs mostly its scalar tail.

#include <algorithm>
#include <cstddef>
#include <type_traits>

#include "faltung/kernels/gemm.hpp"

FALTUNG_BEGIN_NAMESPACE
namespace kernels {

#if FALTUNG_HAS_SIMD_GEMM
/// Calls op(j, load, store) for j = 0, L, 2L, ... < n (L = simd::VecF::lanes), where load(ptr)
/// and store(ptr, reg) cover lanes j .. min(j + L, n) - 1: whole vectors, then one masked.
template <class Op>
inline void for_lanes(std::size_t n, Op op) {
  using V = simd::VecF;
  std::size_t j = 0;
  for (; j + V::lanes <= n; j += V::lanes)
    op(j, [](const float* ptr) { return V::load(ptr); }, [](float* ptr, V::Reg v) { V::store(ptr, v); });
  if (j < n) {
    const V::Mask m = V::first(int(n - j));
    op(j, [m](const float* ptr) { return V::load(ptr, m); }, [m](float* ptr, V::Reg v) { V::store(ptr, v, m); });
  }
}
#endif

/// dst[j] += src[j] for j < n.
template <class T>
inline void add_row(T* dst, const T* src, std::size_t n) {
#if FALTUNG_HAS_SIMD_GEMM
  if constexpr (std::is_same<T, float>::value) {
    using V = simd::VecF;
    for_lanes(n, [&](std::size_t j, auto load, auto store) { store(dst + j, V::add(load(dst + j), load(src + j))); });
    return;
  }
#endif
  for (std::size_t j = 0; j < n; ++j) dst[j] += src[j];
}

/// dst[j] = src[j] for j < n; or, with a gate, src[j] where gate[j] > 0 and 0 elsewhere (the
/// gradient through a fused ReLU whose output was gate).
template <class T>
inline void copy_row(T* dst, const T* src, std::size_t n, const T* gate = nullptr) {
#if FALTUNG_HAS_SIMD_GEMM
  if constexpr (std::is_same<T, float>::value) {
    using V = simd::VecF;
    if (gate)
      for_lanes(n, [&](std::size_t j, auto load, auto store) {
        store(dst + j, V::where_positive(load(gate + j), load(src + j)));
      });
    else
      for_lanes(n, [&](std::size_t j, auto load, auto store) { store(dst + j, load(src + j)); });
    return;
  }
#endif
  if (gate)
    for (std::size_t j = 0; j < n; ++j) dst[j] = gate[j] > T(0) ? src[j] : T(0);
  else
    std::copy(src, src + n, dst);
}

/// copy_row over `rows` rows: src's rows src_ld apart (gate's as src's), dst's dst_ld apart.
template <class T>
inline void copy_rows(const T* src, std::size_t src_ld, T* dst, std::size_t dst_ld, std::size_t rows,
                      std::size_t cols, const T* gate = nullptr) {
  for (std::size_t r = 0; r < rows; ++r)
    copy_row(dst + r * dst_ld, src + r * src_ld, cols, gate ? gate + r * src_ld : nullptr);
}

}  // namespace kernels
FALTUNG_END_NAMESPACE
