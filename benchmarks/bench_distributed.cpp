// bench_distributed: data-parallel training of the two reference networks over MPI, with what the
// gradient sum costs in it. A plain program (not Google Benchmark: every process must run the
// same timed loop in step with the others). Run it under mpirun, and alone for the baseline:
//
//   mpirun -np 2 --oversubscribe build/benchmarks/bench_distributed --threads 1
//       (as root, with OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 in the environment)
//   build/benchmarks/bench_distributed --threads 2          (1 process x 2 threads)
//
// For each network it prints one line (rank 0 only):
//   step_ms, images_per_s  a distributed fit over `--steps` global batches (after one warm-up
//                          batch), wall-clock time per step and images per second of all processes
//   allreduce_ms           one sum of the trainable gradients over the processes in one fused
//                          buffer (GradientReducer, as fit does it), timed alone, median of --steps;
//                          for the rank-order sum of MpiCommunicator and for MPI_Allreduce
//   algbw_GBps             gradient bytes / allreduce time
//   busbw_GBps             algbw * 2(N-1)/N: the bytes each process sends and receives, as NCCL
//                          reports it (a ring allreduce's traffic)
//   allreduce_share        allreduce_ms (rank order) / step_ms
// and the load average, since the machine may be shared.
//
// Options: --networks small,notebook  --steps N (default 8)  --threads T (OpenMP threads per process)

#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include <faltung/distributed/mpi.hpp>
#include <faltung/faltung.hpp>

#include "bench_common.hpp"
#include "reference_networks.hpp"

namespace {

using Clock = std::chrono::steady_clock;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

/// Median seconds of one gradient sum over the processes, `reps` times after one untimed.
double allreduce_seconds(faltung::Sequential<float>& net, faltung::MpiCommunicator& comm, faltung::MpiReduction how,
                         int reps) {
  comm.set_reduction(how);
  faltung::GradientReducer<float> reducer;
  reducer.sum(net.step_parameters(), comm);
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    MPI_Barrier(MPI_COMM_WORLD);  // every process starts together: the time is the collective's
    const auto start = Clock::now();
    reducer.sum(net.step_parameters(), comm);
    double s = std::chrono::duration<double>(Clock::now() - start).count();
    MPI_Allreduce(MPI_IN_PLACE, &s, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);  // the slowest process's
    t.push_back(s);
  }
  comm.set_reduction(faltung::MpiReduction::rank_order);
  return median(t);
}

}  // namespace

int main(int argc, char** argv) {
  faltung::MpiEnvironment mpi(&argc, &argv);
  faltung::MpiCommunicator comm;
  std::vector<std::string> nets = {"small", "notebook"};
  int steps = 8, threads = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--steps" && i + 1 < argc) {
      steps = std::max(1, std::atoi(argv[++i]));
    } else if (a == "--threads" && i + 1 < argc) {
      threads = std::atoi(argv[++i]);
    } else if (a == "--networks" && i + 1 < argc) {
      nets.clear();
      std::stringstream ss(argv[++i]);
      for (std::string n; std::getline(ss, n, ',');) nets.push_back(n);
    } else {
      if (comm.rank() == 0) std::fprintf(stderr, "usage: bench_distributed [--networks small,notebook] [--steps N] [--threads T]\n");
      return 2;
    }
  }
  if (threads > 0) faltung::set_num_threads(threads);
  const int n = comm.size();
  if (comm.rank() == 0)
    std::printf("bench_distributed: %d process(es) x %d thread(s), load average %.2f at start\n", n,
                faltung::num_threads(), bench::load_average());

  for (const std::string& name : nets) {
    faltung::Sequential<float> net = bench::make_network(name);
    const std::size_t batch = bench::reference_network(name).batch, images = batch * std::size_t(steps + 1);
    faltung::Random rng(5);
    faltung::Tensor<float> x = faltung::random_tensor<float>(faltung::Shape{images, 1, 28, 28}, rng, 0.0, 1.0);
    faltung::Tensor<float> y(faltung::Shape{images});
    for (std::size_t i = 0; i < images; ++i) y[i] = float(i % 10);

    // One warm-up batch (buffers at their final sizes), then the timed steps, as fit runs them.
    faltung::FitOptions warm = faltung::FitOptions().epochs(1).batch_size(batch).shuffle(false).verbose(0);
    faltung::FitOptions timed = warm;
    if (n > 1) {
      warm.distributed(comm);
      timed.distributed(comm);
    }
    faltung::Tensor<float> wx, wy, tx, ty;
    faltung::detail::slice_rows(x, 0, batch, wx);
    faltung::detail::slice_rows(y, 0, batch, wy);
    faltung::detail::slice_rows(x, batch, batch * std::size_t(steps), tx);
    faltung::detail::slice_rows(y, batch, batch * std::size_t(steps), ty);
    net.fit(wx, wy, warm);
    MPI_Barrier(MPI_COMM_WORLD);
    const auto start = Clock::now();
    net.fit(tx, ty, timed);
    MPI_Barrier(MPI_COMM_WORLD);
    const double step_s = std::chrono::duration<double>(Clock::now() - start).count() / steps;

    const double ordered = n > 1 ? allreduce_seconds(net, comm, faltung::MpiReduction::rank_order, steps) : 0.0;
    const double native = n > 1 ? allreduce_seconds(net, comm, faltung::MpiReduction::mpi_allreduce, steps) : 0.0;
    const double bytes = double(net.trainable_parameter_count()) * sizeof(float);
    if (comm.rank() == 0) {
      std::printf("net=%s processes=%d threads=%d batch=%zu gradient_bytes=%.0f step_ms=%.1f images_per_s=%.1f", name.c_str(),
                  n, faltung::num_threads(), batch, bytes, 1e3 * step_s, double(batch) / step_s);
      if (n > 1)
        std::printf(" allreduce_ms=%.3f algbw_GBps=%.2f busbw_GBps=%.2f allreduce_share=%.1f%% mpi_allreduce_ms=%.3f",
                    1e3 * ordered, bytes / ordered / 1e9, bytes / ordered / 1e9 * 2.0 * (n - 1) / n,
                    100.0 * ordered / step_s, 1e3 * native);
      std::printf(" load=%.2f\n", bench::load_average());
      std::fflush(stdout);
    }
  }
  return 0;
}
