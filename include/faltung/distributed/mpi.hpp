#pragma once
// Communicator over MPI, for data-parallel training on several processes or machines:
//
//   #include <faltung/distributed/mpi.hpp>      // link faltung::mpi (CMake: find_package(MPI))
//   faltung::MpiEnvironment mpi(&argc, &argv);   // MPI_Init ... MPI_Finalize
//   faltung::MpiCommunicator comm;               // MPI_COMM_WORLD
//   net.fit(x, y, FitOptions().batch_size(64).distributed(comm));
//   mpirun -np 4 ./program
//
// The only faltung header that includes <mpi.h>; the rest of the library sees a Communicator
// (distributed/communicator.hpp).
//
// The sum that averages gradients is bandwidth-optimal and deterministic: a reduce-scatter by
// MPI_Alltoallv (rank c receives every rank's c-th chunk of the buffer and adds them in rank
// order), then MPI_Allgatherv of the summed chunks. Each process sends and receives (N-1)/N of
// the buffer in each half, 2(N-1)/N in all, as a ring allreduce does; but the order of the
// additions is fixed, where MPI_Allreduce's depends on the algorithm Open MPI picks for the
// message size and process count. MpiReduction::mpi_allreduce uses MPI_Allreduce instead (for
// comparison; with two processes it is also exact, since a + b == b + a).

#include <mpi.h>

#include <algorithm>
#include <climits>
#include <cstddef>
#include <cstdlib>
#include <exception>
#include <vector>

#include "faltung/config.hpp"
#include "faltung/distributed/communicator.hpp"
#include "faltung/kernels/copy.hpp"

FALTUNG_BEGIN_NAMESPACE

/// MPI for the lifetime of this object: MPI_Init_thread (only the main thread calls MPI; OpenMP
/// threads compute in between) unless MPI is initialised already, MPI_Finalize at the end. Left
/// by an exception, it calls MPI_Abort instead, which ends every process of the job: a process
/// that fails alone must not leave the others waiting in a collective.
class MpiEnvironment {
 public:
  MpiEnvironment() : MpiEnvironment(nullptr, nullptr) {}
  MpiEnvironment(int* argc, char*** argv) : exceptions_(std::uncaught_exceptions()) {
    int done = 0;
    MPI_Initialized(&done);
    if (done) return;
    int provided = 0;
    MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
    owner_ = true;
  }
  MpiEnvironment(const MpiEnvironment&) = delete;
  MpiEnvironment& operator=(const MpiEnvironment&) = delete;
  ~MpiEnvironment() {
    if (!owner_) return;
    if (std::uncaught_exceptions() > exceptions_) MPI_Abort(MPI_COMM_WORLD, 1);
    MPI_Finalize();
  }

  /// True when this process was started by an MPI launcher (mpirun, mpiexec, srun): a program
  /// can then train distributed, and otherwise train as one process without touching MPI.
  static bool launched() {
    for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"})
      if (std::getenv(v)) return true;
    return false;
  }

 private:
  int exceptions_;
  bool owner_ = false;
};

/// How MpiCommunicator::sum adds: in rank order (the default: bitwise the same in every run and
/// with any transport), or by MPI_Allreduce (the MPI library's order).
enum class MpiReduction { rank_order, mpi_allreduce };

/// A Communicator over an MPI communicator (MPI_COMM_WORLD by default), which must stay valid as
/// long as this object is used. Call it from the thread that initialised MPI.
class MpiCommunicator : public Communicator {
 public:
  explicit MpiCommunicator(MPI_Comm comm = MPI_COMM_WORLD, MpiReduction reduction = MpiReduction::rank_order)
      : comm_(comm), reduction_(reduction) {
    int initialized = 0;
    MPI_Initialized(&initialized);
    FALTUNG_CHECK(initialized, "MpiCommunicator: MPI is not initialised (create a faltung::MpiEnvironment first)");
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  MpiReduction reduction() const { return reduction_; }
  void set_reduction(MpiReduction r) { reduction_ = r; }

  void sum(float* data, std::size_t count) override { sum_impl(data, count, MPI_FLOAT); }
  void sum(double* data, std::size_t count) override { sum_impl(data, count, MPI_DOUBLE); }

  void broadcast(void* data, std::size_t bytes, int root) override {
    char* p = static_cast<char*>(data);
    for (std::size_t done = 0; done < bytes;) {  // MPI counts are int: at most INT_MAX bytes a call
      const std::size_t n = std::min<std::size_t>(bytes - done, INT_MAX);
      MPI_Bcast(p + done, int(n), MPI_BYTE, root, comm_);
      done += n;
    }
  }

  void all_gather(const void* in, std::size_t bytes, void* out) override {
    FALTUNG_CHECK(bytes <= std::size_t(INT_MAX), "MpiCommunicator::all_gather: ", bytes, " bytes is more than one call sends");
    MPI_Allgather(in, int(bytes), MPI_BYTE, out, int(bytes), MPI_BYTE, comm_);
  }

  /// Ends every process of the job with `code` (MPI_Abort).
  [[noreturn]] void abort(int code) {
    MPI_Abort(comm_, code);
    std::abort();  // MPI_Abort does not return; this tells the compiler so
  }

 private:
  template <class U>
  void sum_impl(U* data, std::size_t count, MPI_Datatype type) {
    if (size_ == 1 || count == 0) return;
    FALTUNG_CHECK(count <= std::size_t(INT_MAX), "MpiCommunicator::sum: ", count,
                  " values is more than one MPI call takes (INT_MAX)");
    if (reduction_ == MpiReduction::mpi_allreduce) {
      MPI_Allreduce(MPI_IN_PLACE, data, int(count), type, MPI_SUM, comm_);
      return;
    }
    // Chunk c of the buffer is rank c's to add up: share_of splits it as it splits a batch.
    const std::size_t n = std::size_t(size_);
    counts_.resize(n);
    displs_.resize(n);
    for (std::size_t c = 0; c < n; ++c) {
      const detail::Share s = detail::share_of(count, int(c), size_);
      counts_[c] = int(s.count);
      displs_[c] = int(s.first);
    }
    const detail::Share mine = detail::share_of(count, rank_, size_);
    recv_counts_.assign(n, int(mine.count));
    recv_displs_.resize(n);
    for (std::size_t r = 0; r < n; ++r) recv_displs_[r] = int(r * mine.count);
    recv_.resize(n * mine.count * sizeof(U));  // capacity is kept
    U* recv = reinterpret_cast<U*>(recv_.data());
    MPI_Alltoallv(data, counts_.data(), displs_.data(), type, recv, recv_counts_.data(), recv_displs_.data(), type,
                  comm_);
    // Rank r's copy of this chunk is recv[r * mine.count ...]; added in rank order.
    U* out = data + mine.first;
    const std::size_t m = mine.count;
    kernels::for_each_block(m, m * n, kernels::kMinElementsPerThread, [&](std::size_t begin, std::size_t end) {
      for (std::size_t i = begin; i < end; ++i) out[i] = recv[i];
      for (std::size_t r = 1; r < n; ++r) {
        const U* from = recv + r * m;
        for (std::size_t i = begin; i < end; ++i) out[i] += from[i];
      }
    });
    MPI_Allgatherv(MPI_IN_PLACE, 0, type, data, counts_.data(), displs_.data(), type, comm_);
  }

  MPI_Comm comm_;
  MpiReduction reduction_;
  int rank_ = 0, size_ = 1;
  std::vector<int> counts_, displs_, recv_counts_, recv_displs_;  // per rank, for the collectives
  std::vector<char> recv_;  // every rank's copy of this rank's chunk, (ranks, chunk)
};

FALTUNG_END_NAMESPACE
