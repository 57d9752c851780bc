#pragma once
// im2col / col2im for one sample: the lowering of a convolution to one GEMM per sample.
//
// Both go through one input channel at a time in a zero-padded copy of its plane, (Hp, Wp): the
// extent the windows cover, with the input at offset (pad top, pad left). Every row of col is
// then OH plain strided copies (stride 1: contiguous) without a bounds test or a zero fill, and
// col2im adds into the padded plane the same way and copies its interior out. Clipping each
// copy to the input instead costs three short loops or calls per row of 14 pixels, more than the
// copy itself.

#include <algorithm>
#include <cstddef>
#include <vector>

#include "faltung/kernels/conv2d/params.hpp"
#include "faltung/kernels/conv2d/rows.hpp"

FALTUNG_BEGIN_NAMESPACE
namespace kernels {

/// Hp * Wp, the floats of the padded plane: the scratch im2col and col2im need.
inline std::size_t padded_plane_size(const Conv2DParams& p) {
  return ((p.h.out - 1) * p.h.stride + p.h.window) * ((p.w.out - 1) * p.w.stride + p.w.window);
}

/// The padded plane's geometry: Hp, Wp, and the window's top-left input pixel's place in it.
struct PaddedPlane {
  std::size_t hp, wp;
  explicit PaddedPlane(const Conv2DParams& p)
      : hp((p.h.out - 1) * p.h.stride + p.h.window), wp((p.w.out - 1) * p.w.stride + p.w.window) {}
  /// The input rows [0, rows) and columns [0, cols) that lie inside the plane (the rest is never
  /// read by a window: 'valid' with a stride that does not divide the input).
  std::size_t rows(const Conv2DParams& p) const { return std::min(p.h.in, hp - std::min(hp, p.h.pad_before)); }
  std::size_t cols(const Conv2DParams& p) const { return std::min(p.w.in, wp - std::min(wp, p.w.pad_before)); }
};

/// col (K, ld), ld >= P: row (c, ki, kj), column (i, j) holds x[c, i*sh + ki - pt, j*sw + kj - pl],
/// 0 outside the input. x is one sample (C, H, W); plane (Hp, Wp) is scratch
/// (padded_plane_size). Columns P..ld-1 are left untouched.
template <class T>
void im2col(const Conv2DParams& p, const T* x, T* col, std::size_t ld, T* plane) {
  const PaddedPlane g(p);
  const std::size_t OW = p.w.out, rows = g.rows(p), cols = g.cols(p);
  std::fill(plane, plane + g.hp * g.wp, T(0));  // the border; the interior is overwritten per channel
  for (std::size_t c = 0; c < p.in_channels; ++c) {
    const T* xc = x + c * p.in_pixels();  // (H, W)
    for (std::size_t r = 0; r < rows; ++r)
      copy_row(plane + (r + p.h.pad_before) * g.wp + p.w.pad_before, xc + r * p.w.in, cols);
    for (std::size_t ki = 0; ki < p.h.window; ++ki)
      for (std::size_t kj = 0; kj < p.w.window; ++kj) {
        T* row = col + ((c * p.h.window + ki) * p.w.window + kj) * ld;
        for (std::size_t i = 0; i < p.h.out; ++i) {
          const T* src = plane + (i * p.h.stride + ki) * g.wp + kj;  // the window's pixel of column (i, 0)
          if (p.w.stride == 1)
            copy_row(row + i * OW, src, OW);
          else
            for (std::size_t j = 0; j < OW; ++j) row[i * OW + j] = src[j * p.w.stride];
        }
      }
  }
}

/// col (K, P) as above, unpadded (a convenience for tests: allocates its scratch).
template <class T>
void im2col(const Conv2DParams& p, const T* x, T* col) {
  std::vector<T> plane(padded_plane_size(p));
  im2col(p, x, col, p.out_pixels(), plane.data());
}

/// The adjoint of im2col: adds every column entry back to the input pixel it was read from.
/// col (K, ld), ld >= P; dx (C, H, W) is overwritten; plane (Hp, Wp) is scratch. Each input
/// pixel receives its terms in (ki, kj, i, j) order, whatever the padding.
template <class T>
void col2im(const Conv2DParams& p, const T* col, T* dx, std::size_t ld, T* plane) {
  const PaddedPlane g(p);
  const std::size_t OW = p.w.out, rows = g.rows(p), cols = g.cols(p);
  if (rows < p.h.in || cols < p.w.in) std::fill(dx, dx + p.in_channels * p.in_pixels(), T(0));  // pixels no window reads
  for (std::size_t c = 0; c < p.in_channels; ++c) {
    // (ki, kj) inside the channel: the padded plane (at most a few KiB) stays in L1 while its
    // KH*KW rows of col are added into it.
    std::fill(plane, plane + g.hp * g.wp, T(0));
    for (std::size_t ki = 0; ki < p.h.window; ++ki)
      for (std::size_t kj = 0; kj < p.w.window; ++kj) {
        const T* row = col + ((c * p.h.window + ki) * p.w.window + kj) * ld;
        for (std::size_t i = 0; i < p.h.out; ++i) {
          T* dst = plane + (i * p.h.stride + ki) * g.wp + kj;
          if (p.w.stride == 1)
            add_row(dst, row + i * OW, OW);
          else
            for (std::size_t j = 0; j < OW; ++j) dst[j * p.w.stride] += row[i * OW + j];
        }
      }
    T* dxc = dx + c * p.in_pixels();  // (H, W)
    for (std::size_t r = 0; r < rows; ++r)
      copy_row(dxc + r * p.w.in, plane + (r + p.h.pad_before) * g.wp + p.w.pad_before, cols);
  }
}

/// col (K, P) as above, unpadded (a convenience for tests: allocates its scratch).
template <class T>
void col2im(const Conv2DParams& p, const T* col, T* dx) {
  std::vector<T> plane(padded_plane_size(p));
  col2im(p, col, dx, p.out_pixels(), plane.data());
}

}  // namespace kernels
FALTUNG_END_NAMESPACE
