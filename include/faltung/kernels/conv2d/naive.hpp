#pragma once
// Naive references of the three convolution passes: the definition, loop by loop, with no
// workspace and no threads. The tests compare the fast kernels (kernels/conv2d.hpp) to these.
//   x (N, C, H, W)   w (OC, C, KH, KW)   b (OC)   y (N, OC, OH, OW)

#include <algorithm>
#include <cstddef>

#include "faltung/kernels/conv2d/params.hpp"

FALTUNG_BEGIN_NAMESPACE
namespace kernels {

template <class T>
void conv2d_forward_naive(const Conv2DParams& p, const T* x, const T* w, const T* b, T* y) {
  for (std::size_t n = 0; n < p.batch; ++n)
    for (std::size_t o = 0; o < p.out_channels; ++o)
      for (std::size_t i = 0; i < p.h.out; ++i)
        for (std::size_t j = 0; j < p.w.out; ++j) {
          T acc = b ? b[o] : T(0);
          for (std::size_t c = 0; c < p.in_channels; ++c)
            for (std::size_t ki = 0; ki < p.h.window; ++ki)
              for (std::size_t kj = 0; kj < p.w.window; ++kj) {
                const std::ptrdiff_t r = std::ptrdiff_t(i * p.h.stride + ki) - std::ptrdiff_t(p.h.pad_before);
                const std::ptrdiff_t s = std::ptrdiff_t(j * p.w.stride + kj) - std::ptrdiff_t(p.w.pad_before);
                if (r < 0 || s < 0 || r >= std::ptrdiff_t(p.h.in) || s >= std::ptrdiff_t(p.w.in)) continue;
                acc += w[((o * p.in_channels + c) * p.h.window + ki) * p.w.window + kj] *
                       x[((n * p.in_channels + c) * p.h.in + r) * p.w.in + s];
              }
          y[((n * p.out_channels + o) * p.h.out + i) * p.w.out + j] = acc;
        }
}

/// dx = dL/dx (overwritten).
template <class T>
void conv2d_backward_data_naive(const Conv2DParams& p, const T* dy, const T* w, T* dx) {
  std::fill(dx, dx + p.batch * p.in_channels * p.in_pixels(), T(0));
  for (std::size_t n = 0; n < p.batch; ++n)
    for (std::size_t o = 0; o < p.out_channels; ++o)
      for (std::size_t i = 0; i < p.h.out; ++i)
        for (std::size_t j = 0; j < p.w.out; ++j) {
          const T g = dy[((n * p.out_channels + o) * p.h.out + i) * p.w.out + j];
          for (std::size_t c = 0; c < p.in_channels; ++c)
            for (std::size_t ki = 0; ki < p.h.window; ++ki)
              for (std::size_t kj = 0; kj < p.w.window; ++kj) {
                const std::ptrdiff_t r = std::ptrdiff_t(i * p.h.stride + ki) - std::ptrdiff_t(p.h.pad_before);
                const std::ptrdiff_t s = std::ptrdiff_t(j * p.w.stride + kj) - std::ptrdiff_t(p.w.pad_before);
                if (r < 0 || s < 0 || r >= std::ptrdiff_t(p.h.in) || s >= std::ptrdiff_t(p.w.in)) continue;
                dx[((n * p.in_channels + c) * p.h.in + r) * p.w.in + s] +=
                    g * w[((o * p.in_channels + c) * p.h.window + ki) * p.w.window + kj];
              }
        }
}

/// dw and db are ADDED to (db may be null).
template <class T>
void conv2d_backward_weights_naive(const Conv2DParams& p, const T* x, const T* dy, T* dw, T* db) {
  for (std::size_t n = 0; n < p.batch; ++n)
    for (std::size_t o = 0; o < p.out_channels; ++o)
      for (std::size_t i = 0; i < p.h.out; ++i)
        for (std::size_t j = 0; j < p.w.out; ++j) {
          const T g = dy[((n * p.out_channels + o) * p.h.out + i) * p.w.out + j];
          if (db) db[o] += g;
          for (std::size_t c = 0; c < p.in_channels; ++c)
            for (std::size_t ki = 0; ki < p.h.window; ++ki)
              for (std::size_t kj = 0; kj < p.w.window; ++kj) {
                const std::ptrdiff_t r = std::ptrdiff_t(i * p.h.stride + ki) - std::ptrdiff_t(p.h.pad_before);
                const std::ptrdiff_t s = std::ptrdiff_t(j * p.w.stride + kj) - std::ptrdiff_t(p.w.pad_before);
                if (r < 0 || s < 0 || r >= std::ptrdiff_t(p.h.in) || s >= std::ptrdiff_t(p.w.in)) continue;
                dw[((o * p.in_channels + c) * p.h.window + ki) * p.w.window + kj] +=
                    g * x[((n * p.in_channels + c) * p.h.in + r) * p.w.in + s];
              }
        }
}

}  // namespace kernels
FALTUNG_END_NAMESPACE
