#pragma once
// How many threads faltung's kernels use. OMP_NUM_THREADS is respected, because OpenMP reads
// it at start-up; set_num_threads() overrides it for the whole process.

#include "faltung/config.hpp"

namespace faltung {

/// Sets the number of threads of every faltung kernel (and of OpenMP in general).
inline void set_num_threads(int n) {
  FALTUNG_CHECK(n >= 1, "set_num_threads: need at least one thread, got ", n);
#if FALTUNG_HAS_OPENMP
  omp_set_num_threads(n);
#else
  (void)n;
#endif
}

/// The number of threads a parallel kernel will use.
inline int num_threads() {
#if FALTUNG_HAS_OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

/// The index of the calling thread inside a parallel region (0 outside).
inline int thread_index() {
#if FALTUNG_HAS_OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

/// The number of threads running the current parallel region (1 outside one).
inline int thread_count() {
#if FALTUNG_HAS_OPENMP
  return omp_get_num_threads();
#else
  return 1;
#endif
}

}  // namespace faltung
