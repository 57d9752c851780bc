#pragma once
// How many threads faltung's kernels use. OMP_NUM_THREADS is respected, because OpenMP reads
// it at start-up; set_num_threads() overrides it for the calling thread and the kernels it runs.
// OpenMP keeps the count per thread: a std::thread started later begins again at
// OMP_NUM_THREADS (or the core count), whatever another thread has set.

#include "faltung/config.hpp"

FALTUNG_BEGIN_NAMESPACE

/// Sets the number of threads of every faltung kernel (and of OpenMP in general) that the
/// calling thread runs. In a single-threaded program that is every kernel.
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

/// Sets the calling thread's kernel thread count (set_num_threads) for the guard's lifetime and
/// restores the count it had after, also when an exception leaves the scope.
class ScopedNumThreads {
 public:
  explicit ScopedNumThreads(int n) : saved_(num_threads()) {
    if (n != saved_) {
      set_num_threads(n);
      changed_ = true;
    }
  }
  ~ScopedNumThreads() {
    if (changed_) set_num_threads(saved_);
  }
  ScopedNumThreads(const ScopedNumThreads&) = delete;
  ScopedNumThreads& operator=(const ScopedNumThreads&) = delete;

 private:
  int saved_;
  bool changed_ = false;
};

FALTUNG_END_NAMESPACE
