#pragma once
// Communicator: what data-parallel training needs from the processes it runs on, without naming
// how they talk. fit (FitOptions::distributed), evaluate and average_gradients use only this
// interface, so no core header includes <mpi.h>; distributed/mpi.hpp implements it over MPI
// (faltung::mpi, optional), and a single process is simply a fit without a communicator.
//
// Every member is collective: every rank calls it, in the same order, with the same sizes.

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "faltung/config.hpp"

FALTUNG_BEGIN_NAMESPACE

class Communicator {
 public:
  virtual ~Communicator() = default;

  /// This process's number, 0 ... size() - 1. Rank 0 prints and writes files.
  virtual int rank() const = 0;
  /// The number of processes.
  virtual int size() const = 0;

  /// data[i] = the sum over ranks of every rank's data[i], added in rank order
  /// (((rank 0 + rank 1) + rank 2) + ...), so the result is bitwise the same on every rank and in
  /// every run, whatever the transport's own reduction order. `count` is the same on every rank.
  virtual void sum(float* data, std::size_t count) = 0;
  virtual void sum(double* data, std::size_t count) = 0;

  /// Copies `bytes` bytes from `root`'s data into every other rank's.
  virtual void broadcast(void* data, std::size_t bytes, int root) = 0;

  /// out (size() * bytes) = every rank's `bytes` bytes of in, in rank order.
  virtual void all_gather(const void* in, std::size_t bytes, void* out) = 0;
};

namespace detail {

/// A contiguous share of `rows` rows: rows [first, first + count) of them.
struct Share {
  std::size_t first = 0, count = 0;
};

/// Rank `rank`'s share when `rows` rows are split between `ranks` processes: consecutive blocks,
/// the first rows % ranks ranks one row larger. A rank gets nothing when rows < ranks.
inline Share share_of(std::size_t rows, int rank, int ranks) {
  const std::size_t n = std::size_t(ranks), r = std::size_t(rank), base = rows / n, extra = rows % n;
  return {r * base + (r < extra ? r : extra), base + (r < extra ? 1 : 0)};
}

/// Every rank's copy of `s` equals rank 0's (its text is broadcast from rank 0).
inline std::string broadcast_string(Communicator& comm, const std::string& s) {
  std::uint64_t n = s.size();
  comm.broadcast(&n, sizeof n, 0);
  std::string out = comm.rank() == 0 ? s : std::string(std::size_t(n), '\0');
  if (n) comm.broadcast(&out[0], std::size_t(n), 0);
  return out;
}

/// Each rank's value of v, in rank order.
inline std::vector<std::uint64_t> all_gather_u64(Communicator& comm, std::uint64_t v) {
  std::vector<std::uint64_t> all(std::size_t(comm.size()));
  comm.all_gather(&v, sizeof v, all.data());
  return all;
}

}  // namespace detail
FALTUNG_END_NAMESPACE
