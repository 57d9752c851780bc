#pragma once
// Data-parallel training, as Horovod and PyTorch's DistributedDataParallel do it: every process
// holds the whole model and trains on its share of each global batch; the gradients are summed
// over the processes before an identical optimizer step everywhere. This file has the pieces;
// model/trainer.hpp runs them when fit is given FitOptions().distributed(comm):
//
//   at the start  every rank checks that all agree on the model and the data (check_ranks_agree),
//                 then takes rank 0's weights, random generator and dropout streams
//                 (broadcast_model_state): the same shuffles and the same masks everywhere.
//   each step     rank r computes rows share_of(B, r, N) of the global batch of B rows, with its
//                 loss gradient scaled by (its rows) / B instead of 1 / (its rows), and dropout
//                 masks drawn as those rows would get them in the whole batch; the gradients are
//                 then summed over the ranks in one fused buffer (GradientReducer), which makes
//                 them the gradient of the batch's mean loss.
//
// The sum is added in rank order (Communicator::sum), so every rank gets bitwise the same
// gradient and takes bitwise the same step, in every run. Against one process with batch B the
// weights agree to rounding: one process adds the batch's rows in one GEMM, the ranks add their
// own rows and then the ranks' sums; that reassociation is the only difference (tests/
// test_distributed.cpp checks both: bitwise against the same split done in one process, and to
// a tolerance against one process).
//
// No <mpi.h> here: the transport is a Communicator (distributed/mpi.hpp for MPI).

#include <cstddef>
#include <cstdint>
#include <exception>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "faltung/config.hpp"
#include "faltung/distributed/communicator.hpp"
#include "faltung/kernels/copy.hpp"
#include "faltung/layers/dropout.hpp"
#include "faltung/parameter.hpp"
#include "faltung/random.hpp"

FALTUNG_BEGIN_NAMESPACE

template <class T>
class Sequential;

/// Sums the trainable parameters' gradients over the ranks through one fused buffer: one
/// Communicator::sum per call, not one per tensor. The buffer is kept, so a training loop that
/// reuses one reducer allocates nothing after its first step.
template <class T>
class GradientReducer {
 public:
  /// grad = scale * (the sum over ranks of grad), for every trainable parameter of params (the
  /// same parameters, in the same order, on every rank). Frozen parameters are left alone.
  void sum(const std::vector<Parameter<T>*>& params, Communicator& comm, T scale = T(1)) {
    std::size_t n = 0;
    for (const Parameter<T>* p : params)
      if (p->trainable) n += p->grad.size();
    buffer_.resize(n);  // capacity is kept
    std::size_t at = 0;
    for (const Parameter<T>* p : params)
      if (p->trainable) {
        kernels::parallel_copy(p->grad.data(), p->grad.size(), buffer_.data() + at);
        at += p->grad.size();
      }
    comm.sum(buffer_.data(), n);
    at = 0;
    for (Parameter<T>* p : params)
      if (p->trainable) {
        T* g = p->grad.data();
        const T* b = buffer_.data() + at;
        if (scale == T(1))
          kernels::parallel_copy(b, p->grad.size(), g);
        else
          for (std::size_t i = 0; i < p->grad.size(); ++i) g[i] = b[i] * scale;
        at += p->grad.size();
      }
  }
  /// Bytes summed by the latest call: the gradient bytes each step exchanges.
  std::size_t bytes() const { return buffer_.size() * sizeof(T); }

 private:
  std::vector<T> buffer_;  // every trainable gradient, end to end, in parameter order
};

/// For a training loop of one's own: after each rank's backward on its own batch, makes every
/// trainable gradient the average over the ranks (summed in rank order, then times 1 / size()),
/// so that the optimizer steps that follow are the same everywhere. With equal batches on every
/// rank that is the gradient of the mean loss over all of them. Call broadcast_model_state once
/// before the loop so that the ranks start alike.
template <class T>
void average_gradients(Sequential<T>& model, Communicator& comm, GradientReducer<T>& reducer) {
  reducer.sum(model.step_parameters(), comm, T(1) / T(comm.size()));
}
template <class T>
void average_gradients(Sequential<T>& model, Communicator& comm) {
  GradientReducer<T> reducer;
  average_gradients(model, comm, reducer);
}

/// Makes every rank's model start as rank 0's: its weights, its random generator (the shuffles)
/// and its dropout layers' mask streams. The models must already agree on their architecture
/// (fit checks that first; see check_ranks_agree).
template <class T>
void broadcast_model_state(Sequential<T>& model, Communicator& comm) {
  std::vector<T> weights;
  for (const Parameter<T>* p : model.parameters()) weights.insert(weights.end(), p->value.data(), p->value.data() + p->value.size());
  comm.broadcast(weights.data(), weights.size() * sizeof(T), 0);
  std::size_t at = 0;
  for (Parameter<T>* p : model.parameters()) {
    std::copy(weights.begin() + std::ptrdiff_t(at), weights.begin() + std::ptrdiff_t(at + p->value.size()), p->value.data());
    at += p->value.size();
  }
  static_assert(std::is_trivially_copyable<Random>::value, "Random is broadcast as bytes");
  comm.broadcast(&model.random(), sizeof(Random), 0);
  std::vector<std::uint64_t> seeds;
  for (std::size_t i = 0; i < model.size(); ++i)
    if (auto* d = dynamic_cast<Dropout<T>*>(&model.layer(i))) seeds.push_back(d->mask_seed());
  comm.broadcast(seeds.data(), seeds.size() * sizeof(std::uint64_t), 0);
  at = 0;
  for (std::size_t i = 0; i < model.size(); ++i)
    if (auto* d = dynamic_cast<Dropout<T>*>(&model.layer(i))) d->set_mask_seed(seeds[at++]);
}

namespace detail {

/// Tells each dropout layer of the model which row of the global batch its batches start at
/// (Dropout::set_first_row); 0 again after training.
template <class T>
void set_dropout_first_row(Sequential<T>& model, std::size_t first_row) {
  for (std::size_t i = 0; i < model.size(); ++i)
    if (auto* d = dynamic_cast<Dropout<T>*>(&model.layer(i))) d->set_first_row(first_row);
}

/// Sums a step's or an evaluation's totals over the processes; the last of the four counts the
/// processes that failed (an exception, caught into `error`, before this collective). When any
/// did, every process throws, instead of the others waiting for a collective the failed one
/// never joins: that process its own error, the others one that points to it.
inline void sum_or_rethrow(Communicator& comm, double (&sums)[4], const std::exception_ptr& error, const char* who) {
  comm.sum(sums, 4);
  if (sums[3] == 0) return;
  if (error) std::rethrow_exception(error);
  fail(who, ": ", sums[3], sums[3] == 1 ? " other process" : " other processes",
       " failed (see its error there); this process, rank ", comm.rank(), ", stops too");
}

/// 64-bit FNV-1a of a text, to compare texts between ranks without sending them.
inline std::uint64_t text_hash(const std::string& s) {
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

/// One thing every rank must agree on before training, and its value here.
struct RankFact {
  const char* what;  // "training samples", ...
  std::uint64_t value;
};

/// Throws the same faltung::Error on every rank, before any training, when the ranks disagree on
/// the model (`model_text`: its architecture and input shape) or on any of `facts`: a rank given
/// other data or another model must not leave the others waiting in a collective that never
/// matches. The message names the first disagreement, rank 0's value and the other rank's.
inline void check_ranks_agree(Communicator& comm, const char* who, const std::string& model_text,
                              const std::vector<RankFact>& facts) {
  const std::size_t k = facts.size() + 1, ranks = std::size_t(comm.size());
  std::vector<std::uint64_t> mine(k), all(k * ranks);
  mine[0] = text_hash(model_text);
  for (std::size_t i = 0; i < facts.size(); ++i) mine[i + 1] = facts[i].value;
  comm.all_gather(mine.data(), k * sizeof(std::uint64_t), all.data());
  for (std::size_t r = 1; r < ranks; ++r)
    if (all[r * k] != all[0]) {
      // Every rank sees the same hashes, so every rank takes this branch and the broadcast matches.
      const std::string first = broadcast_string(comm, model_text);
      fail(who, ": the processes disagree on the model: rank 0 has '", first, "', rank ", r,
           " has another (this process, rank ", comm.rank(), ", has '", model_text, "')");
    }
  for (std::size_t i = 1; i < k; ++i)
    for (std::size_t r = 1; r < ranks; ++r)
      if (all[r * k + i] != all[i])
        fail(who, ": the processes disagree on the ", facts[i - 1].what, ": rank 0 has ", all[i], ", rank ", r,
             " has ", all[r * k + i]);
}

}  // namespace detail
FALTUNG_END_NAMESPACE
