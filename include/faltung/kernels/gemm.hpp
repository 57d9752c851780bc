#pragma once
// A small register-blocked single-precision GEMM for the shapes convolution produces:
//
//   C (M, N) = [C or row_init] + A (M, depth) * B (depth, N)
//
// A is read by broadcasting one element at a time, through two strides, so a row-major matrix,
// its transpose, or a slice of either is read in place without packing:
//   A(m, l) = a[m * a_rs + l * a_cs]
// B and C are row-major with leading dimensions ldb, ldc (elements); N is the contiguous
// direction, which is the direction we vectorise: in NCHW the pixels of one channel are
// contiguous, so every convolution pass is arranged to put pixels (or output channels, after a
// transpose) on N.
//
// Why this and not Eigen: the convolution GEMMs are skinny (M = 32..128, N = 196..784) and are
// called once per sample; Eigen packs both operands on every call, and at these shapes its
// kernels stay far from the FMA peak (benchmarks/bench_kernels reports this kernel's share of
// it). This one packs nothing: the
// micro-tile of MR rows x NV vectors keeps MR * NV accumulators in registers (6 x 4 = 24 of the
// 32 AVX-512 registers; 8 and more independent FMA chains hide the FMA latency on two FMA
// pipes), loads NV vectors of B and broadcasts MR elements of A per step of `depth`.
//
// The loops over the tiles run column group outermost inside a depth chunk (kDepthChunk rows of B),
// so one chunk of B's column group (kDepthChunk x 64 floats = 64 KiB at most, mostly L1 and L2) is
// reused by every row tile before the next group is touched.
//
// Only compiled with AVX-512F or AVX2+FMA (FALTUNG_HAS_SIMD_GEMM); otherwise the convolution
// kernels fall back to im2col + Eigen.

#include <algorithm>
#include <cstddef>

#include "faltung/config.hpp"

#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#include <immintrin.h>
#define FALTUNG_HAS_SIMD_GEMM 1
#else
#define FALTUNG_HAS_SIMD_GEMM 0
#endif

FALTUNG_BEGIN_NAMESPACE
namespace kernels {
namespace simd {

#if defined(__AVX512F__)
/// One register of 16 floats, and the few operations the micro-kernels need.
struct VecF {
  using Reg = __m512;
  using Mask = __mmask16;
  static constexpr int lanes = 16;
  static Reg zero() { return _mm512_setzero_ps(); }
  static Reg set1(float v) { return _mm512_set1_ps(v); }
  static Reg load(const float* p) { return _mm512_loadu_ps(p); }
  static Reg load(const float* p, Mask m) { return _mm512_maskz_loadu_ps(m, p); }
  static void store(float* p, Reg v) { _mm512_storeu_ps(p, v); }
  static void store(float* p, Reg v, Mask m) { _mm512_mask_storeu_ps(p, m, v); }
  static Reg fma(Reg a, Reg b, Reg c) { return _mm512_fmadd_ps(a, b, c); }
  static Reg add(Reg a, Reg b) { return _mm512_add_ps(a, b); }
  /// kernels::relu on every lane: 0 where v <= 0, v elsewhere (NaN included).
  static Reg relu(Reg v) { return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(v, zero(), _CMP_NLE_UQ), v); }
  /// v where gate > 0, else 0 (the gradient through a ReLU whose output was gate).
  static Reg where_positive(Reg gate, Reg v) { return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(gate, zero(), _CMP_GT_OQ), v); }
  /// The first n lanes (1 <= n <= 16).
  static Mask first(int n) { return Mask((1u << n) - 1u); }
  static float sum(Reg v) { return _mm512_reduce_add_ps(v); }
};
#elif FALTUNG_HAS_SIMD_GEMM
struct VecF {
  using Reg = __m256;
  using Mask = __m256i;
  static constexpr int lanes = 8;
  static Reg zero() { return _mm256_setzero_ps(); }
  static Reg set1(float v) { return _mm256_set1_ps(v); }
  static Reg load(const float* p) { return _mm256_loadu_ps(p); }
  static Reg load(const float* p, Mask m) { return _mm256_maskload_ps(p, m); }
  static void store(float* p, Reg v) { _mm256_storeu_ps(p, v); }
  static void store(float* p, Reg v, Mask m) { _mm256_maskstore_ps(p, m, v); }
  static Reg fma(Reg a, Reg b, Reg c) { return _mm256_fmadd_ps(a, b, c); }
  static Reg add(Reg a, Reg b) { return _mm256_add_ps(a, b); }
  static Reg relu(Reg v) { return _mm256_andnot_ps(_mm256_cmp_ps(v, zero(), _CMP_LE_OQ), v); }
  static Reg where_positive(Reg gate, Reg v) { return _mm256_and_ps(_mm256_cmp_ps(gate, zero(), _CMP_GT_OQ), v); }
  static Mask first(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static float sum(Reg v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
};
#endif

#if FALTUNG_HAS_SIMD_GEMM
constexpr int kTileRows = 6;     // MR: rows of C per micro-tile (broadcasts of A)
constexpr int kTileVectors = 4;  // NV: vectors of C per micro-tile (loads of B)
#ifndef FALTUNG_GEMM_DEPTH_CHUNK
#define FALTUNG_GEMM_DEPTH_CHUNK 256
#endif
constexpr std::size_t kDepthChunk = FALTUNG_GEMM_DEPTH_CHUNK;  // rows of B per pass over C

/// Arguments shared by every micro-tile of one GEMM call.
/// The operands of one GEMM. Rows of A and of B are found either by a stride or, for the
/// implicit-GEMM convolution (kernels/conv2d.hpp), through a table of row offsets: row l of B at
/// b + b_rows[l] reads a shifted window of a padded image plane, so the matrix im2col would
/// write is never formed.
struct GemmArgs {
  std::size_t depth = 0;                    // inner dimension (of this chunk, inside gemm)
  const float* a = nullptr;                 // A (M, depth): element (m, l) at row_m[l * a_cs], where
  std::size_t a_rs = 0, a_cs = 1;           //   row_m = a + m * a_rs, or a + a_rows[m] when a_rows is set
  const std::ptrdiff_t* a_rows = nullptr;
  const float* b = nullptr;                 // B (depth, N): row l at b + l * ldb, or b + b_rows[l];
  std::size_t ldb = 0;                      //   each row contiguous along N
  const std::ptrdiff_t* b_rows = nullptr;
  float* c = nullptr;                       // C (M, N) row-major, leading dimension ldc
  std::size_t ldc = 0;
  bool accumulate = false;                  // C += A B (true) or C = init + A B (false)
  const float* row_init = nullptr;          // (M) value each row of C starts from when !accumulate; null: 0
  bool relu = false;                        // store relu(C) (kernels/activation.hpp): fused into the last pass over C
};

/// One MR x NV micro-tile at row m0 and vector column col0 of C. With Ragged, the last vector
/// stores only `last_lanes` lanes (the ragged right edge of N; B is read there under the same
/// mask). With TableB, B's rows come from g.b_rows. Both are template parameters, not
/// branches, and the arguments the depth loop uses are copied into locals, so the loop body is
/// straight-line code over registers only.
template <int MR, int NV, bool Ragged, bool TableB>
void gemm_tile_body(const GemmArgs& g, std::size_t m0, std::size_t col0, int last_lanes) {
  using V = VecF;
  using Reg = typename V::Reg;
  constexpr int L = V::lanes;
  const typename V::Mask tail = V::first(last_lanes);
  const std::size_t depth = g.depth, a_cs = g.a_cs, ldb = g.ldb, ldc = g.ldc;
  float* const c0 = g.c + m0 * ldc + col0;
  Reg acc[MR][NV];
  FALTUNG_UNROLL
  for (int m = 0; m < MR; ++m) {
    const float* crow = c0 + std::size_t(m) * ldc;
    FALTUNG_UNROLL
    for (int v = 0; v < NV; ++v) {
      if (g.accumulate)
        acc[m][v] = (Ragged && v == NV - 1) ? V::load(crow + v * L, tail) : V::load(crow + v * L);
      else
        acc[m][v] = g.row_init ? V::set1(g.row_init[m0 + std::size_t(m)]) : V::zero();
    }
  }
  const float* arow[MR];
  FALTUNG_UNROLL
  for (int m = 0; m < MR; ++m)
    arow[m] = g.a + (g.a_rows ? g.a_rows[m0 + std::size_t(m)] : std::ptrdiff_t((m0 + std::size_t(m)) * g.a_rs));
  const float* bp = g.b + col0;
  const std::ptrdiff_t* const b_rows = g.b_rows;
  // The depth loop is innermost: the accumulators stay in registers for the whole chunk.
  std::size_t ao = 0;
  for (std::size_t l = 0; l < depth; ++l, ao += a_cs) {
    const float* brow = TableB ? bp + b_rows[l] : bp;
    if (!TableB) bp += ldb;
    Reg bv[NV];
    FALTUNG_UNROLL
    for (int v = 0; v < NV; ++v)
      bv[v] = (Ragged && v == NV - 1) ? V::load(brow + v * L, tail) : V::load(brow + v * L);
    FALTUNG_UNROLL
    for (int m = 0; m < MR; ++m) {
      const Reg av = V::set1(arow[m][ao]);
      FALTUNG_UNROLL
      for (int v = 0; v < NV; ++v) acc[m][v] = V::fma(av, bv[v], acc[m][v]);
    }
  }
  if (g.relu) {
    FALTUNG_UNROLL
    for (int m = 0; m < MR; ++m) {
      FALTUNG_UNROLL
      for (int v = 0; v < NV; ++v) acc[m][v] = V::relu(acc[m][v]);
    }
  }
  FALTUNG_UNROLL
  for (int m = 0; m < MR; ++m) {
    float* crow = c0 + std::size_t(m) * ldc;
    FALTUNG_UNROLL
    for (int v = 0; v < NV; ++v) {
      if (Ragged && v == NV - 1)
        V::store(crow + v * L, acc[m][v], tail);
      else
        V::store(crow + v * L, acc[m][v]);
    }
  }
}

template <int MR, int NV, bool TableB>
void gemm_tile(const GemmArgs& g, std::size_t m0, std::size_t col0, int last_lanes) {
  if (last_lanes == VecF::lanes)
    gemm_tile_body<MR, NV, false, TableB>(g, m0, col0, last_lanes);
  else
    gemm_tile_body<MR, NV, true, TableB>(g, m0, col0, last_lanes);
}

using TileFn = void (*)(const GemmArgs&, std::size_t, std::size_t, int);

template <int MR, bool TableB>
constexpr TileFn tile_for_vectors(int nv) {
  return nv == 1   ? &gemm_tile<MR, 1, TableB>
         : nv == 2 ? &gemm_tile<MR, 2, TableB>
         : nv == 3 ? &gemm_tile<MR, 3, TableB>
                   : &gemm_tile<MR, 4, TableB>;
}
template <bool TableB>
TileFn tile_for_rows(int mr, int nv) {
  switch (mr) {
    case 1: return tile_for_vectors<1, TableB>(nv);
    case 2: return tile_for_vectors<2, TableB>(nv);
    case 3: return tile_for_vectors<3, TableB>(nv);
    case 4: return tile_for_vectors<4, TableB>(nv);
    case 5: return tile_for_vectors<5, TableB>(nv);
    default: return tile_for_vectors<6, TableB>(nv);
  }
}
/// The micro-tile for mr (1..kTileRows) rows and nv (1..kTileVectors) vectors.
inline TileFn tile_for(int mr, int nv, bool table_b) {
  return table_b ? tile_for_rows<true>(mr, nv) : tile_for_rows<false>(mr, nv);
}

/// C (M, N) = [g.accumulate ? C : g.row_init] + A (M, g.depth) * B (g.depth, N), operands as
/// described in GemmArgs; with g.relu, C = relu(that) instead. Single-threaded: the
/// convolution kernels call it from inside their own parallel loop.
inline void gemm(std::size_t M, std::size_t N, const GemmArgs& args) {
  constexpr int L = VecF::lanes;
  if (M == 0 || N == 0) return;
  const std::size_t vectors = (N + L - 1) / L;
  // Spread the vectors over as few column groups as possible, evenly (13 -> 4, 3, 3, 3), so no
  // group is left with one vector and too few accumulators to hide the FMA latency.
  const std::size_t groups = (vectors + kTileVectors - 1) / kTileVectors;
  const int last_lanes = int(N - (vectors - 1) * L);
  // The rows likewise (32 -> 6, 6, 5, 5, 5, 5 rather than five 6s and a 2: a thin last tile
  // has too few accumulators per load of B).
  const std::size_t row_tiles = (M + kTileRows - 1) / kTileRows;
  const bool table_b = args.b_rows != nullptr;
  GemmArgs g = args;
  std::size_t l0 = 0;
  do {
    g.depth = std::min(kDepthChunk, args.depth - l0);
    g.a = args.a + l0 * args.a_cs;
    if (table_b)
      g.b_rows = args.b_rows + l0;
    else
      g.b = args.b + l0 * args.ldb;
    g.accumulate = args.accumulate || l0 > 0;
    g.relu = args.relu && l0 + g.depth >= args.depth;  // only once the sum is complete
    std::size_t v0 = 0;
    for (std::size_t grp = 0; grp < groups; ++grp) {
      const std::size_t nv = vectors / groups + (grp < vectors % groups ? 1 : 0);
      const int lanes = v0 + nv == vectors ? last_lanes : L;
      std::size_t m0 = 0;
      for (std::size_t t = 0; t < row_tiles; ++t) {
        const int mr = int(M / row_tiles + (t < M % row_tiles ? 1 : 0));
        tile_for(mr, int(nv), table_b)(g, m0, v0 * L, lanes);
        m0 += std::size_t(mr);
      }
      v0 += nv;
    }
    l0 += g.depth;
  } while (l0 < args.depth);
}

/// C (M, N) = [accumulate ? C : row_init] + A (M, depth) * B (depth, N) with strided operands:
/// A(m, l) = a[m * a_rs + l * a_cs], B row-major (ldb); relu: C = relu(that) instead.
inline void gemm(std::size_t M, std::size_t N, std::size_t depth, const float* a, std::size_t a_rs, std::size_t a_cs,
                 const float* b, std::size_t ldb, float* c, std::size_t ldc, bool accumulate,
                 const float* row_init = nullptr, bool relu = false) {
  GemmArgs g;
  g.depth = depth;
  g.a = a;
  g.a_rs = a_rs;
  g.a_cs = a_cs;
  g.b = b;
  g.ldb = ldb;
  g.c = c;
  g.ldc = ldc;
  g.accumulate = accumulate;
  g.row_init = row_init;
  g.relu = relu;
  gemm(M, N, g);
}

// ---------------------------------------------------------------------------------------------
// C (M, N) += A (M, depth) * B (N, depth)^T, with both operands contiguous along depth: the
// "dot product" form. Each of the MR x NR accumulators sums one dot product over depth in a
// vector, reduced to a scalar at the end of the tile. Used where depth is long and M, N are
// small (the weight gradient of a convolution with few input channels: K = 9 rows of col against
// OC rows of dY, over the P = 784 pixels), where the broadcast form would need a transpose of dY
// costing as much as the product itself.
#if defined(__AVX512F__)
// MR x NR = 18 accumulators of the 32 registers, 9 loads per 18 FMAs (4 x 3: 7 per 12): the
// fewer loads per FMA made 3 x 6 the faster shape on the first layer's weight gradient (dz (32
// or 128, 784) against col (10, 784): the 9 taps and the bias row).
constexpr int kDotRows = 3, kDotCols = 6;
#else
constexpr int kDotRows = 4, kDotCols = 3;  // 12 accumulators + 4 operands: AVX2 has 16 registers
#endif

template <int MR, int NR>
void dot_tile(std::size_t depth, const float* a, std::size_t lda, const float* b, std::size_t ldb, float* c,
              std::size_t ldc) {
  using V = VecF;
  using Reg = typename V::Reg;
  constexpr int L = V::lanes;
  Reg acc[MR][NR];
  FALTUNG_UNROLL
  for (int m = 0; m < MR; ++m) {
    FALTUNG_UNROLL
    for (int n = 0; n < NR; ++n) acc[m][n] = V::zero();
  }
  // One step of depth: NR loads of B, MR loads of A, MR x NR FMAs; tail masks the ragged end
  // (masked-off lanes read as 0).
  auto step = [&](std::size_t l, auto load) {
    Reg bv[NR];
    FALTUNG_UNROLL
    for (int n = 0; n < NR; ++n) bv[n] = load(b + std::size_t(n) * ldb + l);
    FALTUNG_UNROLL
    for (int m = 0; m < MR; ++m) {
      const Reg av = load(a + std::size_t(m) * lda + l);
      FALTUNG_UNROLL
      for (int n = 0; n < NR; ++n) acc[m][n] = V::fma(av, bv[n], acc[m][n]);
    }
  };
  std::size_t l = 0;
  for (; l + L <= depth; l += L) step(l, [](const float* p) { return V::load(p); });
  if (l < depth) {
    const typename V::Mask tail = V::first(int(depth - l));
    step(l, [tail](const float* p) { return V::load(p, tail); });
  }
  FALTUNG_UNROLL
  for (int m = 0; m < MR; ++m) {
    FALTUNG_UNROLL
    for (int n = 0; n < NR; ++n) c[std::size_t(m) * ldc + std::size_t(n)] += V::sum(acc[m][n]);
  }
}

using DotTileFn = void (*)(std::size_t, const float*, std::size_t, const float*, std::size_t, float*, std::size_t);

template <int MR>
constexpr DotTileFn dot_tile_for_cols(int nr) {
  switch (nr) {
    case 1: return &dot_tile<MR, 1>;
    case 2: return &dot_tile<MR, 2>;
    case 3: return &dot_tile<MR, 3>;
    case 4: return &dot_tile<MR, 4>;
    case 5: return &dot_tile<MR, 5>;
    default: return &dot_tile<MR, kDotCols>;
  }
}
static_assert(kDotCols <= 6 && kDotRows <= 4, "dot_tile_for_cols and gemm_abt dispatch up to 6 x 4");

/// C (M, N) += A (M, depth) * B (N, depth)^T; rows of A are lda apart, rows of B ldb apart.
inline void gemm_abt(std::size_t M, std::size_t N, std::size_t depth, const float* a, std::size_t lda, const float* b,
                     std::size_t ldb, float* c, std::size_t ldc) {
  // B's NR rows are the inner loop's reused operand, so the columns of C go outermost: one
  // column block of B (NR x depth, 18 KiB for 6 rows at depth 784) stays in L1 while A streams
  // past it.
  for (std::size_t n0 = 0; n0 < N; n0 += kDotCols) {
    const int nr = int(std::min<std::size_t>(kDotCols, N - n0));
    for (std::size_t m0 = 0; m0 < M; m0 += kDotRows) {
      const int mr = int(std::min<std::size_t>(kDotRows, M - m0));
      const DotTileFn f = mr == 1   ? dot_tile_for_cols<1>(nr)
                          : mr == 2 ? dot_tile_for_cols<2>(nr)
                          : mr == 3 ? dot_tile_for_cols<3>(nr)
                                    : dot_tile_for_cols<4>(nr);
      f(depth, a + m0 * lda, lda, b + n0 * ldb, ldb, c + m0 * ldc + n0, ldc);
    }
  }
}
// ---------------------------------------------------------------------------------------------
/// dst (cols, ldd) = src (rows, cols)^T, rows of src lds apart: dst[c * ldd + r] = src[r * lds + c].
/// For the weight gradient's transpose of dz (OC x P): element by element, with stores OCp floats
/// apart, every store touches another cache line. Here 8 x 8 blocks are transposed
/// in registers (the unpack / shuffle / lane-swap sequence of AVX), the ragged edges element by
/// element.
inline void transpose(std::size_t rows, std::size_t cols, const float* src, std::size_t lds, float* dst,
                      std::size_t ldd) {
  const std::size_t rows8 = rows / 8 * 8, cols8 = cols / 8 * 8;
  for (std::size_t r0 = 0; r0 < rows8; r0 += 8) {
    const float* s = src + r0 * lds;
    for (std::size_t c0 = 0; c0 < cols8; c0 += 8) {
      __m256 r[8], t[8];
      FALTUNG_UNROLL
      for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(s + std::size_t(i) * lds + c0);
      FALTUNG_UNROLL
      for (int i = 0; i < 8; i += 2) {  // interleave row pairs: (a0 b0 a1 b1 | a4 b4 a5 b5), ...
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
      }
      FALTUNG_UNROLL
      for (int i = 0; i < 8; i += 4) {  // then pairs of pairs: 4 rows' elements k and k + 4 side by side
        r[i] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(1, 0, 1, 0));
        r[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(3, 2, 3, 2));
        r[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(1, 0, 1, 0));
        r[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(3, 2, 3, 2));
      }
      float* d = dst + c0 * ldd + r0;
      FALTUNG_UNROLL
      for (int i = 0; i < 4; ++i) {  // and the 128-bit halves of rows 0-3 and 4-7 joined
        _mm256_storeu_ps(d + std::size_t(i) * ldd, _mm256_permute2f128_ps(r[i], r[i + 4], 0x20));
        _mm256_storeu_ps(d + std::size_t(i + 4) * ldd, _mm256_permute2f128_ps(r[i], r[i + 4], 0x31));
      }
    }
    for (std::size_t c = cols8; c < cols; ++c)
      for (std::size_t i = r0; i < r0 + 8; ++i) dst[c * ldd + i] = src[i * lds + c];
  }
  for (std::size_t i = rows8; i < rows; ++i)
    for (std::size_t c = 0; c < cols; ++c) dst[c * ldd + i] = src[i * lds + c];
}

#endif  // FALTUNG_HAS_SIMD_GEMM

}  // namespace simd
}  // namespace kernels
FALTUNG_END_NAMESPACE
