#pragma once
// The three products of a Dense layer, threaded by faltung rather than by Eigen.
//
//   forward          Y (N, U)  = X (N, I) * W (I, U)
//   backward-data    dX (N, I) = dZ (N, U) * W^T
//   backward-weights dW (I, U) += X^T * dZ
//
// Eigen would thread these GEMMs itself with OpenMP; then a training step threads at two levels
// (Eigen's here, ours in the convolutions), and on a busy machine Eigen's threads wait on each
// other far longer than they compute. So the rows (or columns) of each result are split into one
// contiguous block per thread and each block is one product (Eigen runs single-threaded inside an
// OpenMP region). Every thread writes only its own blocks, and no element's arithmetic depends on
// the thread count (for_row_blocks): the same bits at any number of threads.
//
// In float with AVX-512 / AVX2, all three run kernels/gemm.hpp's register-blocked GEMM instead
// of Eigen's, with the units (or, for the input gradient, the input features) on the vector
// lanes: it packs nothing, which counts most where the operands spill out of L2 (64 x 3136 x
// 128). The input gradient runs on a transposed copy of W, because the dot form (gemm_abt) on W
// as it is was slower than Eigen.

#include <Eigen/Core>
#include <algorithm>
#include <cstddef>
#include <type_traits>

#include "faltung/config.hpp"
#include "faltung/kernels/blocks.hpp"
#include "faltung/kernels/gemm.hpp"
#include "faltung/tensor.hpp"
#include "faltung/threading.hpp"

FALTUNG_BEGIN_NAMESPACE
namespace kernels {

template <class T>
using DenseMatrix = Eigen::Map<Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>;
template <class T>
using ConstDenseMatrix = Eigen::Map<const Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>;

/// Whether T's products run kernels/gemm.hpp's SIMD GEMM, which computes every element of a
/// result the same way wherever the rows of a block start and end; Eigen's GEMM does not (its
/// cache blocking and the vectorisation of the rows left over after its register tiles follow
/// the block's shape).
template <class T>
constexpr bool rows_split_freely() {
  return FALTUNG_HAS_SIMD_GEMM && std::is_same<T, float>::value;
}

/// The most blocks an Eigen product is cut into, and the fewest rows of one: the blocks must not
/// follow the thread count (see for_row_blocks), so there are a fixed number of them, enough to
/// share among 2, 4 or 8 threads, and none so thin that packing the other operand for each
/// block costs much beside its product.
constexpr std::size_t kMaxEigenRowBlocks = 8;
constexpr std::size_t kMinEigenBlockRows = 16;

/// Calls block(first_row, row_count) for contiguous blocks of [0, rows), in parallel. The blocks
/// are such that the results are the same at any thread count:
///   SIMD GEMM: one block per thread that the product's `work` multiply-adds deserve
///     (threads_for), at most one per row;
///   Eigen: blocks fixed by the shape and the work alone (at most kMaxEigenRowBlocks, each at
///     least kMinEigenBlockRows rows and one thread's share of work), shared among those threads.
/// Each Eigen block runs with the calling thread's count at 1: Eigen threads a large product
/// itself when called outside a parallel region or in a team of one, with cache blocks that
/// follow its thread count (and a second level of threads is what this splitting avoids).
/// A small product, such as every layer of a tabular MLP at batch 32, runs in one block on the
/// calling thread.
template <class T, class Block>
void for_row_blocks(std::size_t rows, std::size_t work, const Block& block) {
  const int threads =
      int(std::min<std::size_t>(std::size_t(threads_for(work, kMinMultiplyAddsPerThread)), std::max<std::size_t>(rows, 1)));
  const auto run = [&](std::size_t first, std::size_t last) {
    if (last > first) block(first, last - first);
  };
  if constexpr (rows_split_freely<T>()) {
    for_each_block(rows, threads, run);
  } else {
    const std::size_t blocks = std::max<std::size_t>(
        1, std::min({kMaxEigenRowBlocks, rows / kMinEigenBlockRows, work / kMinMultiplyAddsPerThread}));
    for_each_fixed_block(rows, int(blocks), std::min(threads, int(blocks)), [&](std::size_t first, std::size_t last) {
      const ScopedNumThreads eigen_on_this_thread(1);
      run(first, last);
    });
  }
}

/// y (n, units) = x (n, in) * w (in, units)
template <class T>
void dense_forward(const T* x, const T* w, T* y, std::size_t n, std::size_t in, std::size_t units) {
  const ConstDenseMatrix<T> X(x, Eigen::Index(n), Eigen::Index(in));
  const ConstDenseMatrix<T> W(w, Eigen::Index(in), Eigen::Index(units));
  DenseMatrix<T> Y(y, Eigen::Index(n), Eigen::Index(units));
  for_row_blocks<T>(n, n * in * units, [&](std::size_t first, std::size_t count) {
#if FALTUNG_HAS_SIMD_GEMM
    if constexpr (std::is_same<T, float>::value) {
      simd::gemm(count, units, in, x + first * in, in, 1, w, units, y + first * units, units, false);
      return;
    }
#endif
    Y.middleRows(Eigen::Index(first), Eigen::Index(count)).noalias() =
        X.middleRows(Eigen::Index(first), Eigen::Index(count)) * W;
  });
}

/// dx (n, in) = dz (n, units) * w^T, overwritten. workspace: W^T (units, in) on the SIMD path,
/// kept by the caller across batches.
template <class T>
void dense_backward_data(const T* dz, const T* w, T* dx, std::size_t n, std::size_t in, std::size_t units,
                         Tensor<T>& workspace) {
#if FALTUNG_HAS_SIMD_GEMM
  if constexpr (std::is_same<T, float>::value) {
    // The GEMM reads B along its rows, so W^T is formed first: O(in * units) against the
    // product's O(n * in * units). Split over the input features: each thread transposes its
    // own rows of W into its own columns of W^T and computes those columns of dx while they
    // are in its cache, with no barrier in between.
    workspace.resize({units, in});
    float* wt = workspace.data();
    for_row_blocks<T>(in, n * in * units, [&](std::size_t first, std::size_t count) {
      simd::transpose(count, units, w + first * units, units, wt + first, in);
      simd::gemm(n, count, units, dz, units, 1, wt + first, in, dx + first, in, false);
    });
    return;
  }
#endif
  (void)workspace;
  const ConstDenseMatrix<T> dZ(dz, Eigen::Index(n), Eigen::Index(units));
  const ConstDenseMatrix<T> W(w, Eigen::Index(in), Eigen::Index(units));
  DenseMatrix<T> dX(dx, Eigen::Index(n), Eigen::Index(in));
  for_row_blocks<T>(n, n * in * units, [&](std::size_t first, std::size_t count) {
    dX.middleRows(Eigen::Index(first), Eigen::Index(count)).noalias() =
        dZ.middleRows(Eigen::Index(first), Eigen::Index(count)) * W.transpose();
  });
}

/// dw (in, units) += x^T (in, n) * dz (n, units); split over the rows of dw (the input features),
/// so the sum over the batch stays inside one thread.
template <class T>
void dense_backward_weights(const T* x, const T* dz, T* dw, std::size_t n, std::size_t in, std::size_t units) {
  const ConstDenseMatrix<T> X(x, Eigen::Index(n), Eigen::Index(in));
  const ConstDenseMatrix<T> dZ(dz, Eigen::Index(n), Eigen::Index(units));
  DenseMatrix<T> dW(dw, Eigen::Index(in), Eigen::Index(units));
  for_row_blocks<T>(in, n * in * units, [&](std::size_t first, std::size_t count) {
#if FALTUNG_HAS_SIMD_GEMM
    if constexpr (std::is_same<T, float>::value) {
      // dW rows (count, units) += X^T (count, n) * dZ (n, units): X read transposed in place.
      simd::gemm(count, units, n, x + first, 1, in, dz, units, dw + first * units, units, true);
      return;
    }
#endif
    dW.middleRows(Eigen::Index(first), Eigen::Index(count)).noalias() +=
        X.middleCols(Eigen::Index(first), Eigen::Index(count)).transpose() * dZ;
  });
}

}  // namespace kernels
FALTUNG_END_NAMESPACE
