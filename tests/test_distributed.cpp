// Data-parallel training over MPI (distributed/). ctest runs this program under mpirun with 2 and
// with 3 processes; each test runs on every process, and every process checks its own results.
//
// What is checked, for each optimizer and for uneven data:
//  - the weights after distributed training are bitwise the same on every process;
//  - bitwise those of the same split done in one process (each share's gradient computed alone,
//    the shares' gradients added in rank order, one step): the reduction order is fixed;
//  - equal to one process trained with the same global batch, to a tolerance: the only difference
//    is that a batch's rows are added in one GEMM there and share by share here (reassociation).
// And: validation and evaluation give every process the same numbers; only rank 0 prints and
// saves; processes that disagree on the model or the data fail at the start, every one of them;
// a bad label on one process stops all of them.

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

#include "faltung/distributed/mpi.hpp"
#include "faltung/faltung.hpp"
#include "model_fixtures.hpp"

namespace faltung::test {
namespace {

MpiCommunicator& world() {
  static MpiCommunicator comm;
  return comm;
}

/// n samples of 6 features, 3 classes: the class is where the first three features peak, with noise.
template <class T>
struct Data {
  Tensor<T> x, y;
  explicit Data(std::size_t n, std::uint64_t seed = 11) : x(Shape{n, 6}), y(Shape{n}) {
    Random rng(seed);
    for (std::size_t i = 0; i < n; ++i) {
      const std::size_t c = rng.uniform_int(3);
      y[i] = T(c);
      for (std::size_t j = 0; j < 6; ++j) x[i * 6 + j] = T((j == c ? 1.5 : 0.0) + rng.normal());
    }
  }
};

/// Dense(16, relu) [-> Dropout(0.25)] -> Dense(3), compiled with optimizer number `which`:
/// 0 SGD with momentum, 1 Adam, 2 RMSProp, 3 Adagrad.
template <class T>
Sequential<T> make_net(int which, bool dropout = false, std::size_t hidden = 16, std::uint64_t seed = 3) {
  Sequential<T> net(seed);
  net.template add<Dense>(DenseOptions(hidden).activation(ActivationKind::ReLU));
  if (dropout) net.template add<Dropout>(0.25);
  net.template add<Dense>(3);
  net.build({6});
  switch (which) {
    case 0: net.compile(SparseCrossEntropy{}, SGD<T>(SGDOptions(0.1).momentum(0.9))); break;
    case 1: net.compile(SparseCrossEntropy{}, Adam<T>(AdamOptions(0.01))); break;
    case 2: net.compile(SparseCrossEntropy{}, RMSProp<T>(RMSPropOptions(0.01))); break;
    default: net.compile(SparseCrossEntropy{}, Adagrad<T>(AdagradOptions(0.1))); break;
  }
  return net;
}

const char* optimizer_name(int which) {
  static const char* names[] = {"SGD(momentum)", "Adam", "RMSProp", "Adagrad"};
  return names[which];
}

/// True when `w` is bitwise the same on every process (compared with rank 0's).
template <class T>
bool same_on_every_rank(const std::vector<Tensor<T>>& w) {
  std::vector<T> mine, first;
  for (const Tensor<T>& t : w) mine.insert(mine.end(), t.data(), t.data() + t.size());
  first = mine;
  world().broadcast(first.data(), first.size() * sizeof(T), 0);
  int same = std::memcmp(first.data(), mine.data(), mine.size() * sizeof(T)) == 0 ? 1 : 0;
  std::vector<int> all(std::size_t(world().size()));
  world().all_gather(&same, sizeof same, all.data());
  return std::all_of(all.begin(), all.end(), [](int s) { return s == 1; });
}

/// The largest |a - b| over every weight.
template <class T>
double max_difference(const std::vector<Tensor<T>>& a, const std::vector<Tensor<T>>& b) {
  double d = 0;
  for (std::size_t i = 0; i < a.size(); ++i)
    for (std::size_t j = 0; j < a[i].size(); ++j) d = std::max(d, std::abs(double(a[i][j]) - double(b[i][j])));
  return d;
}

/// fit's distributed training done by one process: for each global batch, each rank's share
/// forward and backward on its own (with its dropout rows and its loss scaling), the shares'
/// gradients added in rank order, one optimizer step. What `ranks` processes compute together.
template <class T>
void emulate_distributed_fit(Sequential<T>& net, const Tensor<T>& x, const Tensor<T>& y, int epochs,
                             std::size_t batch, int ranks) {
  const std::size_t n = x.dim(0);
  std::vector<std::size_t> order(n);
  std::iota(order.begin(), order.end(), std::size_t(0));
  std::vector<Dropout<T>*> dropouts;
  for (std::size_t i = 0; i < net.size(); ++i)
    if (auto* d = dynamic_cast<Dropout<T>*>(&net.layer(i))) dropouts.push_back(d);
  Tensor<T> bx, by, grad;
  std::vector<std::vector<T>> rank_grads(static_cast<std::size_t>(ranks));
  for (int e = 0; e < epochs; ++e) {
    net.random().shuffle(order);
    for (std::size_t first = 0; first < n; first += batch) {
      const std::size_t m = std::min(batch, n - first);
      std::vector<std::uint64_t> seeds;
      for (auto* d : dropouts) seeds.push_back(d->mask_seed());
      for (int r = 0; r < ranks; ++r) {
        for (std::size_t k = 0; k < dropouts.size(); ++k) dropouts[k]->set_mask_seed(seeds[k]);  // one forward per rank
        const detail::Share s = detail::share_of(m, r, ranks);
        rank_grads[std::size_t(r)].clear();
        net.set_training(true);
        for (auto* d : dropouts) d->set_first_row(s.first);
        const std::size_t rows = std::max<std::size_t>(s.count, 1);
        detail::gather_rows(x, order, s.count ? first + s.first : first, rows, bx);
        detail::gather_rows(y, order, s.count ? first + s.first : first, rows, by);
        const Tensor<T>& out = net.forward(bx);
        net.zero_grad();
        if (s.count) {
          net.loss().value_and_gradient(out, by, grad);
          if (s.count != m) grad.as_vector() *= T(double(s.count) / double(m));
          net.backward(grad);
        }
        for (Parameter<T>* p : net.parameters())
          rank_grads[std::size_t(r)].insert(rank_grads[std::size_t(r)].end(), p->grad.data(), p->grad.data() + p->grad.size());
      }
      std::vector<T> total = rank_grads[0];
      for (int r = 1; r < ranks; ++r)
        for (std::size_t i = 0; i < total.size(); ++i) total[i] += rank_grads[std::size_t(r)][i];
      std::size_t at = 0;
      for (Parameter<T>* p : net.parameters()) {
        std::copy(total.begin() + std::ptrdiff_t(at), total.begin() + std::ptrdiff_t(at + p->grad.size()), p->grad.data());
        at += p->grad.size();
      }
      net.optimizer().step(net.step_parameters());
    }
  }
  for (auto* d : dropouts) d->set_first_row(0);
}

struct Case {
  std::size_t samples, batch;
  int epochs;
  bool dropout;
};

/// Trains distributed and checks it against the emulation (bitwise) and one process (to `tolerance`).
template <class T>
void check_training(int which, const Case& c, double tolerance) {
  SCOPED_TRACE(std::string(optimizer_name(which)) + ", " + std::to_string(c.samples) + " samples, batch " +
               std::to_string(c.batch) + (c.dropout ? ", dropout" : ""));
  const Data<T> d(c.samples);
  // Every rank starts from other weights: fit must take rank 0's.
  Sequential<T> dist = make_net<T>(which, c.dropout, 16, 3 + std::uint64_t(world().rank()));
  Sequential<T> emulated = make_net<T>(which, c.dropout), single = make_net<T>(which, c.dropout);
  dist.fit(d.x, d.y, FitOptions().epochs(c.epochs).batch_size(c.batch).verbose(0).distributed(world()));
  emulate_distributed_fit(emulated, d.x, d.y, c.epochs, c.batch, world().size());
  single.fit(d.x, d.y, FitOptions().epochs(c.epochs).batch_size(c.batch).verbose(0));

  const auto w = weights_of(dist);
  EXPECT_TRUE(same_on_every_rank(w));
  EXPECT_TRUE(bitwise_equal(w, weights_of(emulated))) << "differs from the emulation by "
                                                       << max_difference(w, weights_of(emulated));
  const double diff = max_difference(w, weights_of(single));
  EXPECT_LE(diff, tolerance);
  // The training moved the weights by far more than the tolerance: the comparison means something.
  Sequential<T> untrained = make_net<T>(which, c.dropout);
  EXPECT_GT(max_difference(w, weights_of(untrained)), 1000 * tolerance);
}

// Tolerances: the weights move by ~0.1-1 over these steps; they differ from one process's by
// rounding of the batch sums alone, a few units in the last place (measured with 2 and 3
// processes: at most 4.4e-16 in double, 1.2e-7 in float). The tolerances leave a factor of ~100
// and ~15 for other machines' GEMM blockings. Adam's, RMSProp's and Adagrad's division by a root
// of the squared gradients does not magnify the differences: their epsilon bounds the division.
constexpr double kDouble = 5e-14, kFloat = 2e-6;
TEST(Distributed, EachOptimizerMatchesOneProcessDouble) {
  for (int which = 0; which < 4; ++which) check_training<double>(which, {64, 16, 3, false}, kDouble);
}

TEST(Distributed, EachOptimizerMatchesOneProcessFloat) {
  for (int which = 0; which < 4; ++which) check_training<float>(which, {64, 16, 3, false}, kFloat);
}

TEST(Distributed, UnevenDataMatchesOneProcess) {
  // 37 = 4 batches of 8 and one of 5 (shares 3 + 2, or 2 + 2 + 1); 33 ends with a batch of one
  // row, which leaves the other processes a stand-in row; batch 7 does not divide between 2 or 3.
  for (const Case& c : {Case{37, 8, 2, false}, Case{33, 8, 2, false}, Case{30, 7, 2, false}})
    for (int which : {0, 1}) check_training<double>(which, c, kDouble);
}

TEST(Distributed, DropoutMasksAreOneProcessMasks) {
  // Each share draws the mask its rows get in the whole batch: the result is one process's.
  for (int which : {0, 1}) check_training<double>(which, {40, 10, 2, true}, kDouble);
  check_training<double>(1, {33, 8, 2, true}, kDouble);
}

TEST(Distributed, ValidationAndEvaluationAreTheSameOnEveryProcess) {
  const Data<double> d(53);
  Sequential<double> dist = make_net<double>(1), single = make_net<double>(1);
  const FitOptions o = FitOptions().epochs(2).batch_size(8).validation_split(0.25).verbose(0);
  const History hd = dist.fit(d.x, d.y, FitOptions(o).distributed(world()));
  const History hs = single.fit(d.x, d.y, o);
  ASSERT_EQ(hd.val_loss.size(), 2u);
  std::vector<Tensor<double>> metrics(1, Tensor<double>(Shape{8}));
  for (std::size_t e = 0; e < 2; ++e) {
    metrics[0][4 * e + 0] = hd.loss[e];
    metrics[0][4 * e + 1] = hd.accuracy[e];
    metrics[0][4 * e + 2] = hd.val_loss[e];
    metrics[0][4 * e + 3] = hd.val_accuracy[e];
    EXPECT_NEAR(hd.loss[e], hs.loss[e], 1e-12);
    EXPECT_EQ(hd.accuracy[e], hs.accuracy[e]);
    EXPECT_NEAR(hd.val_loss[e], hs.val_loss[e], 1e-12);
    EXPECT_EQ(hd.val_accuracy[e], hs.val_accuracy[e]);
  }
  EXPECT_TRUE(same_on_every_rank(metrics));

  // evaluate: each process its share of the 53 rows (not divisible by 2 or 3), the same totals.
  const Evaluation ed = dist.evaluate(d.x, d.y, world(), 10), es = single.evaluate(d.x, d.y, 10);
  EXPECT_NEAR(ed.loss, es.loss, 1e-12);
  EXPECT_EQ(ed.accuracy, es.accuracy);
  std::vector<Tensor<double>> e(1, Tensor<double>(Shape{2}));
  e[0][0] = ed.loss;
  e[0][1] = ed.accuracy;
  EXPECT_TRUE(same_on_every_rank(e));
}

TEST(Distributed, OnlyRankZeroPrintsAndSaves) {
  const Data<float> d(40);
  Sequential<float> net = make_net<float>(1);
  const std::string path = "test_distributed_checkpoint_rank" + std::to_string(world().rank()) + ".faltung";
  std::remove(path.c_str());
  std::ostringstream out;
  net.fit(d.x, d.y,
          FitOptions().epochs(2).batch_size(8).verbose(2).output(out).validation_split(0.2).distributed(world())
              .callback(ModelCheckpoint(path)));
  const bool saved = std::ifstream(path).good();
  std::remove(path.c_str());
  if (world().rank() == 0) {
    EXPECT_NE(out.str().find("val_loss"), std::string::npos) << out.str();
    EXPECT_TRUE(saved);
  } else {
    EXPECT_EQ(out.str(), "");
    EXPECT_FALSE(saved);
  }
}

TEST(Distributed, ResumesFromRankZerosCheckpoint) {
  // 2 epochs with a checkpoint (written by rank 0 alone), then resumed to 4: bitwise the weights
  // of 4 epochs uninterrupted. The directory is shared here, as it must be between machines.
  const Data<float> d(45);
  const std::string dir = "test_distributed_resume";
  if (world().rank() == 0) {
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
  }
  MPI_Barrier(MPI_COMM_WORLD);
  const FitOptions o = FitOptions().batch_size(8).verbose(0).distributed(world());
  // `resumed` starts from other weights and generators: only the checkpoint can make it `whole`.
  Sequential<float> whole = make_net<float>(1, true), first = make_net<float>(1, true),
                    resumed = make_net<float>(1, true, 16, 99);
  const History hw = whole.fit(d.x, d.y, FitOptions(o).epochs(4));
  first.fit(d.x, d.y, FitOptions(o).epochs(2).callback(BackupAndRestore(dir)));
  const History h = resumed.fit(d.x, d.y, FitOptions(o).epochs(4).callback(BackupAndRestore(dir)));
  EXPECT_EQ(h.loss, hw.loss);  // the first two epochs from the checkpoint's History
  EXPECT_TRUE(bitwise_equal(weights_of(resumed), weights_of(whole)));
  EXPECT_TRUE(same_on_every_rank(weights_of(resumed)));
  MPI_Barrier(MPI_COMM_WORLD);
  if (world().rank() == 0) std::filesystem::remove_all(dir);
}

/// Runs f, which must throw a faltung::Error on this process; returns its message.
template <class F>
std::string error_of(F f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "no faltung::Error";
  return "";
}

TEST(Distributed, DisagreementOnTheModelFailsOnEveryProcess) {
  const Data<float> d(40);
  // Rank 1 has 17 hidden units instead of 16.
  Sequential<float> net = make_net<float>(1, false, world().rank() == 1 ? 17 : 16);
  const std::string msg =
      error_of([&] { net.fit(d.x, d.y, FitOptions().batch_size(8).verbose(0).distributed(world())); });
  EXPECT_NE(msg.find("disagree on the model"), std::string::npos) << msg;
  EXPECT_NE(msg.find("dense:16:relu"), std::string::npos) << msg;  // rank 0's
  EXPECT_NE(msg.find("rank 1"), std::string::npos) << msg;
}

TEST(Distributed, DisagreementOnTheDataFailsOnEveryProcess) {
  const Data<float> d(40), more(41);
  Sequential<float> net = make_net<float>(1);
  const Data<float>& mine = world().rank() == world().size() - 1 ? more : d;
  const std::string msg =
      error_of([&] { net.fit(mine.x, mine.y, FitOptions().batch_size(8).verbose(0).distributed(world())); });
  EXPECT_NE(msg.find("number of samples in x: rank 0 has 40, rank " + std::to_string(world().size() - 1) +
                     " has 41"),
            std::string::npos)
      << msg;
  // And a disagreement on the options.
  const std::string batch = error_of([&] {
    net.fit(d.x, d.y, FitOptions().batch_size(world().rank() == 0 ? 8 : 9).verbose(0).distributed(world()));
  });
  EXPECT_NE(batch.find("batch size: rank 0 has 8, rank 1 has 9"), std::string::npos) << batch;
  // A model compiled on rank 0 alone: every process fails (none waits for the others).
  Sequential<float> half(3);
  half.add<Dense>(3);
  half.build({6});
  if (world().rank() == 0) half.compile(SparseCrossEntropy{}, Adam<float>());
  const std::string compiled = error_of([&] { half.fit(d.x, d.y, FitOptions().verbose(0).distributed(world())); });
  EXPECT_NE(compiled.find("disagree on the model"), std::string::npos) << compiled;
  // The processes are still in step: a good fit works afterwards.
  EXPECT_NO_THROW(net.fit(d.x, d.y, FitOptions().batch_size(8).verbose(0).distributed(world())));
}

TEST(Distributed, ABadLabelStopsEveryProcess) {
  Data<float> d(40);
  d.y[13] = 7;  // not a class of 3
  Sequential<float> net = make_net<float>(1);
  const auto w0 = weights_of(net);
  const std::string msg =
      error_of([&] { net.fit(d.x, d.y, FitOptions().batch_size(40).shuffle(false).verbose(0).distributed(world())); });
  // Row 13 of 40 is in rank 0's share with 2 or 3 processes: it names the row; the others point to it.
  if (world().rank() == 0)
    EXPECT_NE(msg.find("row 13 of y"), std::string::npos) << msg;
  else
    EXPECT_NE(msg.find("1 other process failed"), std::string::npos) << msg;
  EXPECT_TRUE(same_on_every_rank(weights_of(net)));
}

TEST(Distributed, AverageGradientsInAnOwnLoop) {
  // Each process computes the gradient of its own 8 rows; the average is the 8 * size() rows' gradient.
  const std::size_t per = 8, ranks = std::size_t(world().size());
  const Data<double> d(per * ranks);
  Sequential<double> net = make_net<double>(0), whole = make_net<double>(0);
  broadcast_model_state(net, world());
  Tensor<double> bx, by, grad;
  detail::slice_rows(d.x, per * std::size_t(world().rank()), per, bx);
  detail::slice_rows(d.y, per * std::size_t(world().rank()), per, by);
  net.set_training(true);
  net.loss().value_and_gradient(net.forward(bx), by, grad);
  net.zero_grad();
  net.backward(grad);
  average_gradients(net, world());

  whole.set_training(true);
  whole.loss().value_and_gradient(whole.forward(d.x), d.y, grad);
  whole.zero_grad();
  whole.backward(grad);
  std::vector<Tensor<double>> g, expected;
  for (Parameter<double>* p : net.parameters()) g.push_back(p->grad);
  for (Parameter<double>* p : whole.parameters()) expected.push_back(p->grad);
  EXPECT_TRUE(same_on_every_rank(g));
  EXPECT_LE(max_difference(g, expected), 1e-15);
  EXPECT_GT(expected[0].as_vector().norm(), 0.0);
}

TEST(Distributed, SumIsInRankOrder) {
  // Values whose sum depends on the order of addition: 1e16 + rank-dependent small values.
  std::vector<double> v(5);
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = world().rank() == 0 ? 1e16 : 1.0 + double(i);
  world().sum(v.data(), v.size());
  for (std::size_t i = 0; i < v.size(); ++i) {
    double expected = 1e16;
    for (int r = 1; r < world().size(); ++r) expected += 1.0 + double(i);
    EXPECT_EQ(v[i], expected) << i;
  }
}

/// Prints only failures, with the rank: for every process but rank 0, whose output is gtest's own.
class FailurePrinter : public ::testing::EmptyTestEventListener {
 public:
  void OnTestPartResult(const ::testing::TestPartResult& r) override {
    if (r.failed())
      std::printf("[rank %d] %s:%d: failure\n%s\n", world().rank(), r.file_name() ? r.file_name() : "?", r.line_number(),
                  r.message());
  }
};

}  // namespace
}  // namespace faltung::test

int main(int argc, char** argv) {
  faltung::MpiEnvironment mpi(&argc, &argv);
  ::testing::InitGoogleTest(&argc, argv);
  auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
  if (faltung::test::world().rank() != 0) {
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new faltung::test::FailurePrinter);
  }
  int failed = RUN_ALL_TESTS() != 0 ? 1 : 0;
  int any = 0;
  MPI_Allreduce(&failed, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);  // every process exits alike
  return any;
}
