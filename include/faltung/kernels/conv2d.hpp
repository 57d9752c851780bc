#pragma once
// 2-D convolution (cross-correlation, as every framework computes it) on NCHW tensors:
// forward, backward-data and backward-weights, each as a naive reference and as the fast kernel.
//
// Shapes:  x (N, C, H, W)   w (OC, C, KH, KW)   b (OC)   y (N, OC, OH, OW)
//   y[n,o,i,j] = b[o] + sum_{c,p,q} w[o,c,p,q] * x[n, c, i*sh + p - pt, j*sw + q - pl]
// where reads outside the input are zero (padding).
//
// The fast kernels lower each sample to a matrix with im2col and call one GEMM per sample:
//   forward          Y_n (OC, P) = W (OC, K) * col_n (K, P),        K = C*KH*KW, P = OH*OW
//   backward-data    dcol (K, P) = W^T (K, OC) * dY_n (OC, P), then col2im adds dcol into dX_n
//   backward-weights dW (OC, K) += dY_n (OC, P) * col_n^T (P, K),  db[o] += sum_P dY_n[o]
// OpenMP runs over the samples of the batch. Forward and backward-data write only their own
// sample. Backward-weights sums over samples, so each thread accumulates into its own slice of
// the workspace and the slices are added in thread order afterwards: no atomics, and the same
// result for the same thread count.

#include <Eigen/Core>
#include <algorithm>
#include <cstddef>
#include <cstring>

#include "faltung/kernels/geometry.hpp"
#include "faltung/tensor.hpp"
#include "faltung/threading.hpp"

namespace faltung {
namespace kernels {

struct Conv2DParams {
  std::size_t batch = 0, in_channels = 0, out_channels = 0;
  WindowAxis h, w;  // vertical and horizontal geometry

  std::size_t patch_size() const { return in_channels * h.window * w.window; }  // K
  std::size_t out_pixels() const { return h.out * w.out; }                       // P
  std::size_t in_pixels() const { return h.in * w.in; }
};

// ---------------------------------------------------------------------------------------------
// Naive references: the definition, loop by loop. The tests compare the fast kernels to these.

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

// ---------------------------------------------------------------------------------------------
// im2col / col2im for one sample.

/// col (K, P): row (c, ki, kj), column (i, j) holds x[c, i*sh + ki - pt, j*sw + kj - pl], 0 outside.
template <class T>
void im2col(const Conv2DParams& p, const T* x, T* col) {
  const std::size_t P = p.out_pixels();
  for (std::size_t c = 0; c < p.in_channels; ++c)
    for (std::size_t ki = 0; ki < p.h.window; ++ki)
      for (std::size_t kj = 0; kj < p.w.window; ++kj) {
        T* row = col + ((c * p.h.window + ki) * p.w.window + kj) * P;
        const T* plane = x + c * p.in_pixels();
        for (std::size_t i = 0; i < p.h.out; ++i) {
          const std::ptrdiff_t r = std::ptrdiff_t(i * p.h.stride + ki) - std::ptrdiff_t(p.h.pad_before);
          T* out = row + i * p.w.out;
          if (r < 0 || r >= std::ptrdiff_t(p.h.in)) {
            std::fill(out, out + p.w.out, T(0));
            continue;
          }
          const T* in_row = plane + std::size_t(r) * p.w.in;
          for (std::size_t j = 0; j < p.w.out; ++j) {
            const std::ptrdiff_t s = std::ptrdiff_t(j * p.w.stride + kj) - std::ptrdiff_t(p.w.pad_before);
            out[j] = (s < 0 || s >= std::ptrdiff_t(p.w.in)) ? T(0) : in_row[s];
          }
        }
      }
}

/// The adjoint of im2col: adds every column entry back to the input pixel it was read from.
/// dx (C, H, W) is overwritten.
template <class T>
void col2im(const Conv2DParams& p, const T* col, T* dx) {
  const std::size_t P = p.out_pixels();
  std::fill(dx, dx + p.in_channels * p.in_pixels(), T(0));
  for (std::size_t c = 0; c < p.in_channels; ++c)
    for (std::size_t ki = 0; ki < p.h.window; ++ki)
      for (std::size_t kj = 0; kj < p.w.window; ++kj) {
        const T* row = col + ((c * p.h.window + ki) * p.w.window + kj) * P;
        T* plane = dx + c * p.in_pixels();
        for (std::size_t i = 0; i < p.h.out; ++i) {
          const std::ptrdiff_t r = std::ptrdiff_t(i * p.h.stride + ki) - std::ptrdiff_t(p.h.pad_before);
          if (r < 0 || r >= std::ptrdiff_t(p.h.in)) continue;
          T* out_row = plane + std::size_t(r) * p.w.in;
          const T* in = row + i * p.w.out;
          for (std::size_t j = 0; j < p.w.out; ++j) {
            const std::ptrdiff_t s = std::ptrdiff_t(j * p.w.stride + kj) - std::ptrdiff_t(p.w.pad_before);
            if (s >= 0 && s < std::ptrdiff_t(p.w.in)) out_row[s] += in[j];
          }
        }
      }
}

// ---------------------------------------------------------------------------------------------
// Fast kernels. `workspace` is resized as needed and kept by the caller across batches.

template <class T>
using RowMajorMap = Eigen::Map<Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>;
template <class T>
using ConstRowMajorMap = Eigen::Map<const Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>;

/// y (N, OC, OH, OW) = conv(x, w) + b. b may be null. workspace: one (K, P) column buffer per thread.
template <class T>
void conv2d_forward(const Conv2DParams& p, const T* x, const T* w, const T* b, T* y, Tensor<T>& workspace) {
  const std::size_t K = p.patch_size(), P = p.out_pixels(), OC = p.out_channels;
  const int threads = num_threads();
  workspace.resize({std::size_t(threads), K * P});
  const ConstRowMajorMap<T> W(w, Eigen::Index(OC), Eigen::Index(K));
#pragma omp parallel for schedule(static) num_threads(threads)
  for (std::ptrdiff_t n = 0; n < std::ptrdiff_t(p.batch); ++n) {
    T* col = workspace.data() + std::size_t(thread_index()) * K * P;
    im2col(p, x + std::size_t(n) * p.in_channels * p.in_pixels(), col);
    RowMajorMap<T> Y(y + std::size_t(n) * OC * P, Eigen::Index(OC), Eigen::Index(P));
    Y.noalias() = W * ConstRowMajorMap<T>(col, Eigen::Index(K), Eigen::Index(P));
    if (b)
      for (std::size_t o = 0; o < OC; ++o) Y.row(Eigen::Index(o)).array() += b[o];
  }
}

/// dx (N, C, H, W) = dL/dx, overwritten. workspace: one (K, P) buffer per thread.
template <class T>
void conv2d_backward_data(const Conv2DParams& p, const T* dy, const T* w, T* dx, Tensor<T>& workspace) {
  const std::size_t K = p.patch_size(), P = p.out_pixels(), OC = p.out_channels;
  const int threads = num_threads();
  workspace.resize({std::size_t(threads), K * P});
  const ConstRowMajorMap<T> W(w, Eigen::Index(OC), Eigen::Index(K));
#pragma omp parallel for schedule(static) num_threads(threads)
  for (std::ptrdiff_t n = 0; n < std::ptrdiff_t(p.batch); ++n) {
    T* dcol = workspace.data() + std::size_t(thread_index()) * K * P;
    RowMajorMap<T> dC(dcol, Eigen::Index(K), Eigen::Index(P));
    dC.noalias() = W.transpose() * ConstRowMajorMap<T>(dy + std::size_t(n) * OC * P, Eigen::Index(OC), Eigen::Index(P));
    col2im(p, dcol, dx + std::size_t(n) * p.in_channels * p.in_pixels());
  }
}

/// dw (OC, C, KH, KW) and db (OC) are ADDED to (db may be null). workspace: per thread one
/// (K, P) column buffer and one (OC, K + 1) partial sum of dw and db.
template <class T>
void conv2d_backward_weights(const Conv2DParams& p, const T* x, const T* dy, T* dw, T* db, Tensor<T>& workspace) {
  const std::size_t K = p.patch_size(), P = p.out_pixels(), OC = p.out_channels;
  const int threads = std::max(1, std::min<int>(num_threads(), int(p.batch)));
  const std::size_t per_thread = K * P + OC * (K + 1);
  workspace.resize({std::size_t(threads), per_thread});
#pragma omp parallel num_threads(threads)
  {
    const std::size_t t = std::size_t(thread_index());
    T* col = workspace.data() + t * per_thread;
    RowMajorMap<T> dW_t(col + K * P, Eigen::Index(OC), Eigen::Index(K));
    T* db_t = col + K * P + OC * K;
    dW_t.setZero();
    std::fill(db_t, db_t + OC, T(0));
#pragma omp for schedule(static)
    for (std::ptrdiff_t n = 0; n < std::ptrdiff_t(p.batch); ++n) {
      im2col(p, x + std::size_t(n) * p.in_channels * p.in_pixels(), col);
      const ConstRowMajorMap<T> dY(dy + std::size_t(n) * OC * P, Eigen::Index(OC), Eigen::Index(P));
      dW_t.noalias() += dY * ConstRowMajorMap<T>(col, Eigen::Index(K), Eigen::Index(P)).transpose();
      for (std::size_t o = 0; o < OC; ++o) db_t[o] += dY.row(Eigen::Index(o)).sum();
    }
  }
  // Reduce the per-thread partial sums in thread order, so the result does not depend on timing.
  for (std::size_t t = 0; t < std::size_t(threads); ++t) {
    const T* part = workspace.data() + t * per_thread + K * P;
    for (std::size_t i = 0; i < OC * K; ++i) dw[i] += part[i];
    if (db)
      for (std::size_t o = 0; o < OC; ++o) db[o] += part[OC * K + o];
  }
}

}  // namespace kernels
}  // namespace faltung
