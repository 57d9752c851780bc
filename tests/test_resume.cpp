// Checkpoints and resuming (io/training_state.hpp, BackupAndRestore), and the per-epoch
// learning-rate callbacks ReduceLROnPlateau and LearningRateScheduler.
//
// The resume tests train a model with dropout, shuffling, a validation split and both rate
// callbacks for 6 epochs without a break, and again as 3 epochs, then a fresh model (as a new
// process would build it) resuming from the checkpoint up to 6: the weights must be bitwise the
// same, for each optimizer. Two controls show that the comparison can fail: resuming from a
// checkpoint whose optimizer state or random generator was dropped ends elsewhere.

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "faltung/faltung.hpp"
#include "model_fixtures.hpp"
#include "test_support.hpp"

using namespace faltung;
using faltung::test::bitwise_equal;
using faltung::test::Blobs;
using faltung::test::contains;
using faltung::test::error_of;
using faltung::test::TempDir;
using faltung::test::weights_of;

namespace {

// ---------------------------------------------------------------------------------------------
// The learning-rate callbacks against hand-computed schedules, through a model stand-in.

/// A ModelAccess that only has a learning rate.
class RateOnly : public ModelAccess {
 public:
  explicit RateOnly(double lr) : lr_(lr) {}
  std::any snapshot_weights() const override { return {}; }
  void restore_weights(const std::any&) override {}
  void save(const std::string&) const override {}
  double learning_rate() const override { return lr_; }
  void set_learning_rate(double lr) override { lr_ = lr; }

 private:
  double lr_;
};

/// The rate after each epoch's on_epoch_end, feeding `monitor` the given values.
std::vector<double> rates_after(Callback& c, double lr, const std::string& monitor, const std::vector<double>& values) {
  RateOnly model(lr);
  TrainingState s;
  s.model = &model;
  c.on_train_begin(s);
  std::vector<double> rates;
  for (std::size_t e = 0; e < values.size(); ++e) {
    s.epoch = int(e);
    c.on_epoch_begin(s);
    s.logs = {{monitor, values[e]}};
    c.on_epoch_end(s);
    rates.push_back(model.learning_rate());
  }
  return rates;
}

TEST(ReduceLROnPlateau, FollowsTheHandComputedSchedule) {
  // patience 2, cooldown 1, min_delta 0.1, factor 0.5, min_lr 0.2 (see the comments per epoch):
  //  0: 1.0 best            3: cooldown ends; 0.5 best     6: cooldown ends; wait 1
  //  1: 0.95 not by 0.1: w1  4: w1                          7: w2: 0.25 -> max(0.125, 0.2) = 0.2
  //  2: w2: 1 -> 0.5, cd 1   5: w2: 0.5 -> 0.25, cd 1       8: cooldown ends; w1   9: w2, lr at min: kept
  ReduceLROnPlateau r = ReduceLROnPlateau().patience(2).cooldown(1).min_delta(0.1).factor(0.5).min_lr(0.2);
  const std::vector<double> rates = rates_after(r, 1.0, "val_loss", {1.0, 0.95, 0.9, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5});
  EXPECT_EQ(rates, (std::vector<double>{1, 1, 0.5, 0.5, 0.5, 0.25, 0.25, 0.2, 0.2, 0.2}));
  EXPECT_EQ(r.reductions(), 3);
}

TEST(ReduceLROnPlateau, MaximisesAccuraciesAndFollowsTheMode) {
  // Rising accuracy is an improvement in "auto" mode: no drop.
  ReduceLROnPlateau up = ReduceLROnPlateau().monitor("val_accuracy").patience(1).factor(0.5).min_delta(0);
  EXPECT_EQ(rates_after(up, 1.0, "val_accuracy", {0.1, 0.2, 0.3}), (std::vector<double>{1, 1, 1}));
  // The same values with mode "min": every epoch after the first is no improvement.
  ReduceLROnPlateau down = ReduceLROnPlateau().monitor("val_accuracy").mode("min").patience(1).factor(0.5).min_delta(0);
  EXPECT_EQ(rates_after(down, 1.0, "val_accuracy", {0.1, 0.2, 0.3}), (std::vector<double>{1, 0.5, 0.25}));
  // patience 0 drops at the first epoch without improvement.
  ReduceLROnPlateau eager = ReduceLROnPlateau().patience(0).factor(0.5).min_delta(0).mode("max");
  EXPECT_EQ(rates_after(eager, 1.0, "val_loss", {1.0, 1.0, 2.0}), (std::vector<double>{1, 0.5, 1 * 0.5}));
}

TEST(ReduceLROnPlateau, StateContinuesAnInterruptedSequence) {
  const std::vector<double> values = {1.0, 0.95, 0.9, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5};
  auto make = [] { return ReduceLROnPlateau().patience(2).cooldown(1).min_delta(0.1).factor(0.5).min_lr(0.2); };
  ReduceLROnPlateau whole = make();
  const std::vector<double> expected = rates_after(whole, 1.0, "val_loss", values);
  for (std::size_t k = 1; k < values.size(); ++k) {
    ReduceLROnPlateau first = make(), second = make();
    const std::vector<double> head(values.begin(), values.begin() + std::ptrdiff_t(k));
    const std::vector<double> a = rates_after(first, 1.0, "val_loss", head);
    RateOnly model(a.back());
    TrainingState s;
    s.model = &model;
    second.on_train_begin(s);
    second.set_state(first.state());
    for (std::size_t e = k; e < values.size(); ++e) {
      s.logs = {{"val_loss", values[e]}};
      second.on_epoch_end(s);
      EXPECT_EQ(model.learning_rate(), expected[e]) << "interrupted after " << k << " epochs, epoch " << e;
    }
  }
}

TEST(ReduceLROnPlateau, RefusesBadArguments) {
  EXPECT_TRUE(contains(error_of([] { ReduceLROnPlateau().factor(1.0); }), "factor must be in [0, 1)"));
  EXPECT_TRUE(contains(error_of([] { ReduceLROnPlateau().factor(-0.5); }), "factor"));
  EXPECT_TRUE(contains(error_of([] { ReduceLROnPlateau().patience(-1); }), "patience must be >= 0"));
  EXPECT_TRUE(contains(error_of([] { ReduceLROnPlateau().cooldown(-1); }), "cooldown must be >= 0"));
  EXPECT_TRUE(contains(error_of([] { ReduceLROnPlateau().min_delta(std::nan("")); }), "min_delta"));
  EXPECT_TRUE(contains(error_of([] { ReduceLROnPlateau().min_lr(-1); }), "min_lr"));
  EXPECT_TRUE(contains(error_of([] { ReduceLROnPlateau().mode("lowest"); }), "mode must be auto, min or max"));
  EXPECT_TRUE(contains(error_of([] { ReduceLROnPlateau().set_state({1, 2}); }), "ReduceLROnPlateau: a saved state of 2"));
  // A metric fit does not report fails before training.
  Blobs b(30);
  Sequential<float> net = faltung::test::blob_classifier();
  net.compile(SparseCrossEntropy{}, SGD<float>());
  const std::string e = error_of([&] { net.fit(b.x, b.y, FitOptions().verbose(0).callback(ReduceLROnPlateau())); });
  EXPECT_TRUE(contains(e, "ReduceLROnPlateau: monitored metric 'val_loss' is not available")) << e;
}

TEST(LearningRateScheduler, FollowsTheSchedule) {
  LearningRateScheduler s([](int epoch, double lr) { return epoch < 2 ? lr : lr * 0.5; });
  EXPECT_EQ(rates_after(s, 0.8, "loss", {1, 1, 1, 1, 1}), (std::vector<double>{0.8, 0.8, 0.4, 0.2, 0.1}));
  // In fit: the History records each epoch's rate, the schedule's.
  Blobs b(30);
  Sequential<float> net = faltung::test::blob_classifier();
  net.compile(SparseCrossEntropy{}, SGD<float>(SGDOptions(0.1)));
  History h = net.fit(b.x, b.y,
                      FitOptions().epochs(3).verbose(0).callback(
                          LearningRateScheduler([](int epoch, double) { return 0.1 / (epoch + 1); })));
  EXPECT_EQ(h.learning_rate, (std::vector<double>{0.1, 0.1 / 2, 0.1 / 3}));
}

TEST(LearningRateScheduler, RefusesABadScheduleOrRate) {
  EXPECT_TRUE(contains(error_of([] { LearningRateScheduler(nullptr); }), "empty function"));
  LearningRateScheduler nan([](int, double) { return std::nan(""); });
  const std::string e = error_of([&] { rates_after(nan, 0.1, "loss", {1}); });
  EXPECT_TRUE(contains(e, "LearningRateScheduler: the schedule gave nan for epoch 0")) << e;
  LearningRateScheduler negative([](int epoch, double) { return 0.1 - epoch; });
  EXPECT_TRUE(contains(error_of([&] { rates_after(negative, 0.1, "loss", {1, 1}); }), "for epoch 1"));
}

// ---------------------------------------------------------------------------------------------
// Bitwise resume

enum class Opt { SGDMomentum, Adam, RMSProp, Adagrad };

std::string opt_name(Opt o) {
  switch (o) {
    case Opt::SGDMomentum: return "SGDMomentum";
    case Opt::Adam: return "Adam";
    case Opt::RMSProp: return "RMSProp";
    case Opt::Adagrad: return "Adagrad";
  }
  return "";
}

/// Dense(16, relu) -> Dropout(0.3) -> Dense(3), seeded, compiled with the optimizer.
Sequential<float> model_for(Opt o) {
  Sequential<float> net(5);
  net.add<Dense>(DenseOptions(16).activation(ActivationKind::ReLU)).add<Dropout>(0.3).add<Dense>(3);
  net.build({4});
  switch (o) {
    case Opt::SGDMomentum: net.compile(SparseCrossEntropy{}, SGD<float>(SGDOptions(0.05).momentum(0.9))); break;
    case Opt::Adam: net.compile(SparseCrossEntropy{}, Adam<float>(AdamOptions(0.01))); break;
    case Opt::RMSProp:
      net.compile(SparseCrossEntropy{}, RMSProp<float>(RMSPropOptions(0.01).momentum(0.5).centered(true)));
      break;
    case Opt::Adagrad: net.compile(SparseCrossEntropy{}, Adagrad<float>(AdagradOptions(0.05))); break;
  }
  return net;
}

/// Shuffling, a validation split, both rate callbacks (fresh ones: each fit is a new process),
/// and a checkpoint every epoch when `dir` is given. ReduceLROnPlateau with min_delta 1 never
/// sees an improvement after the first epoch, so it drops the rate with patience 2, cooldown 1:
/// its wait and cooldown cross the interruption.
FitOptions options_for(int epochs, const std::string& dir = "") {
  FitOptions o = FitOptions().epochs(epochs).batch_size(8).validation_split(0.2).verbose(0);
  o.callback(LearningRateScheduler([](int epoch, double lr) { return epoch == 0 ? lr : lr * 0.9; }));
  o.callback(ReduceLROnPlateau().monitor("val_loss").patience(2).cooldown(1).min_delta(1.0).factor(0.5));
  if (!dir.empty()) o.callback(BackupAndRestore(dir));
  return o;
}

class Resume : public ::testing::TestWithParam<Opt> {};

TEST_P(Resume, InterruptedAndResumedEndsWithBitwiseTheWeightsOfOneRun) {
  const Blobs b(100);
  Sequential<float> whole = model_for(GetParam());
  const History expected = whole.fit(b.x, b.y, options_for(6));
  ASSERT_EQ(expected.epochs(), 6u);
  ASSERT_LT(expected.learning_rate.back(), expected.learning_rate.front() * 0.9 * 0.9);  // the callbacks acted

  TempDir tmp;
  const std::string dir = tmp.path("ckpt");
  Sequential<float> first = model_for(GetParam());
  first.fit(b.x, b.y, options_for(3, dir));
  ASSERT_TRUE(checkpoint_exists(dir));
  ASSERT_FALSE(bitwise_equal(weights_of(first), weights_of(whole)));

  Sequential<float> resumed = model_for(GetParam());  // as a new process builds it
  const History h = resumed.fit(b.x, b.y, options_for(6, dir));
  EXPECT_TRUE(bitwise_equal(weights_of(resumed), weights_of(whole)));
  EXPECT_EQ(h.loss, expected.loss);
  EXPECT_EQ(h.val_loss, expected.val_loss);
  EXPECT_EQ(h.learning_rate, expected.learning_rate);
  EXPECT_EQ(resumed.optimizer().iterations(), whole.optimizer().iterations());

  // The checkpoint is of epoch 6 now; the model file in it is an ordinary one.
  Sequential<float> loaded = load_model<float>(checkpoint_model_path(dir));
  EXPECT_TRUE(bitwise_equal(weights_of(loaded), weights_of(whole)));
  EXPECT_EQ(read_checkpoint<float>(dir).progress.epoch, 6);
}

INSTANTIATE_TEST_SUITE_P(EachOptimizer, Resume,
                         ::testing::Values(Opt::SGDMomentum, Opt::Adam, Opt::RMSProp, Opt::Adagrad),
                         [](const ::testing::TestParamInfo<Opt>& i) { return opt_name(i.param); });

/// Trains 3 epochs into `dir`, then rewrites the checkpoint after `damage` changed the restored
/// model (its optimizer or generator), and resumes to 6 epochs: the weights it ends with.
template <class Damage>
std::vector<Tensor<float>> resumed_after(Opt o, const std::string& dir, Damage damage) {
  const Blobs b(100);
  Sequential<float> first = model_for(o);
  first.fit(b.x, b.y, options_for(3, dir));
  Checkpoint<float> c = read_checkpoint<float>(dir);
  Sequential<float> middle = model_for(o);
  restore_checkpoint(middle, c);
  damage(middle);
  save_checkpoint(middle, dir, c.progress);
  Sequential<float> resumed = model_for(o);
  resumed.fit(b.x, b.y, options_for(6, dir));
  return weights_of(resumed);
}

TEST(Resume, TheComparisonCanFail) {
  const Blobs b(100);
  Sequential<float> whole = model_for(Opt::Adam);
  whole.fit(b.x, b.y, options_for(6));
  TempDir tmp;
  // Unchanged, the rewritten checkpoint resumes exactly: what differs below is the damage.
  EXPECT_TRUE(bitwise_equal(resumed_after(Opt::Adam, tmp.path("same"), [](Sequential<float>&) {}), weights_of(whole)));
  // Without the optimizer's state (Adam's moments and step count) the run ends elsewhere.
  EXPECT_FALSE(bitwise_equal(
      resumed_after(Opt::Adam, tmp.path("no_optimizer"), [](Sequential<float>& m) { m.optimizer().reset(); }),
      weights_of(whole)));
  // So it does with another shuffling and dropout generator.
  EXPECT_FALSE(bitwise_equal(
      resumed_after(Opt::Adam, tmp.path("no_random"), [](Sequential<float>& m) { m.random().seed(12345); }),
      weights_of(whole)));
  // And with another dropout stream alone.
  EXPECT_FALSE(bitwise_equal(resumed_after(Opt::Adam, tmp.path("no_dropout_stream"),
                                           [](Sequential<float>& m) { m.layer(1).set_random_state({777}); }),
                             weights_of(whole)));
}

TEST(Resume, ACheckpointAtTheLastEpochTrainsNoFurther) {
  const Blobs b(60);
  TempDir tmp;
  const std::string dir = tmp.path("ckpt");
  Sequential<float> first = model_for(Opt::SGDMomentum);
  const History h1 = first.fit(b.x, b.y, options_for(2, dir));
  Sequential<float> again = model_for(Opt::SGDMomentum);
  const History h2 = again.fit(b.x, b.y, options_for(2, dir));
  EXPECT_TRUE(bitwise_equal(weights_of(again), weights_of(first)));
  EXPECT_EQ(h2.loss, h1.loss);
}

TEST(Resume, ARunThatStoppedEarlyStaysStopped) {
  const Blobs b(60);
  auto options = [](const std::string& dir) {
    // min_delta 10: no epoch after the first improves, so patience 2 stops after epoch 3 of 8.
    return FitOptions().epochs(8).batch_size(8).verbose(0).callback(EarlyStopping().monitor("loss").min_delta(10).patience(2))
        .callback(BackupAndRestore(dir));
  };
  TempDir tmp;
  Sequential<float> first = model_for(Opt::Adam);
  const History h1 = first.fit(b.x, b.y, options(tmp.path("ckpt")));
  ASSERT_EQ(h1.epochs(), 3u);
  Sequential<float> again = model_for(Opt::Adam);
  const History h2 = again.fit(b.x, b.y, options(tmp.path("ckpt")));
  EXPECT_EQ(h2.epochs(), 3u);
  EXPECT_EQ(h2.stop_reason, h1.stop_reason);
  EXPECT_TRUE(bitwise_equal(weights_of(again), weights_of(first)));
}

TEST(Resume, ADoubleModelResumesToo) {
  const Blobs blobs(60);
  Tensor<double> x(blobs.x.shape()), y(blobs.y.shape());
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = double(blobs.x[i]);
  for (std::size_t i = 0; i < y.size(); ++i) y[i] = double(blobs.y[i]);
  auto model = [] {
    Sequential<double> net(9);
    net.add<Dense>(DenseOptions(8).activation(ActivationKind::Tanh)).add<Dropout>(0.2).add<Dense>(3);
    net.build({4});
    net.compile(SparseCrossEntropy{}, RMSProp<double>(RMSPropOptions(0.01).momentum(0.9)));
    return net;
  };
  auto options = [](int epochs, const std::string& dir) {
    FitOptions o = FitOptions().epochs(epochs).batch_size(8).verbose(0);
    if (!dir.empty()) o.callback(BackupAndRestore(dir));
    return o;
  };
  Sequential<double> whole = model();
  whole.fit(x, y, options(4, ""));
  TempDir tmp;
  const std::string dir = tmp.path("ckpt");
  Sequential<double> first = model();
  first.fit(x, y, options(2, dir));
  Sequential<double> resumed = model();
  resumed.fit(x, y, options(4, dir));
  EXPECT_TRUE(bitwise_equal(weights_of(resumed), weights_of(whole)));
  // A float model cannot take a double model's optimizer state.
  const std::string e = error_of([&] { read_checkpoint<float>(dir); });
  EXPECT_TRUE(contains(e, "of a double model, not of a float one")) << e;
}

// ---------------------------------------------------------------------------------------------
// What a resume refuses, and damaged files

/// A checkpoint of 2 Adam epochs in `dir`.
void make_checkpoint(const std::string& dir, const Blobs& b) {
  Sequential<float> net = model_for(Opt::Adam);
  net.fit(b.x, b.y, options_for(2, dir));
}

/// The data and a checkpoint of 2 Adam epochs on it, in a directory of the test's own.
class SavedCheckpoint : public ::testing::Test {
 protected:
  SavedCheckpoint() { make_checkpoint(dir, b); }
  const Blobs b{60};
  TempDir tmp;
  const std::string dir = tmp.path("ckpt");
  const std::string state = checkpoint_state_path(dir);
};

std::vector<unsigned char> bytes_of(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<unsigned char>(std::istreambuf_iterator<char>(in), {});
}
void write_bytes(const std::string& path, const std::vector<unsigned char>& b) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(b.data()), std::streamsize(b.size()));
}
/// Writes v little-endian at b[at..at+8) (bounds-checked).
void set_u64(std::vector<unsigned char>& b, std::size_t at, std::uint64_t v) {
  for (std::size_t i = 0; i < 8; ++i) b.at(at + i) = static_cast<unsigned char>(v >> (8 * i));
}
/// Rewrites the trailing FNV-1a checksum, so that a test reaches the checks after it.
void fix_checksum(std::vector<unsigned char>& b) {
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (std::size_t i = 0; i + 8 < b.size(); ++i) {
    h ^= b[i];
    h *= 0x100000001b3ull;
  }
  set_u64(b, b.size() - 8, h);
}

TEST_F(SavedCheckpoint, RefusesAnotherOptimizerBatchOrCallbacks) {

  Sequential<float> sgd = model_for(Opt::SGDMomentum);
  std::string e = error_of([&] { sgd.fit(b.x, b.y, options_for(4, dir)); });
  EXPECT_TRUE(contains(e, "cannot resume from '" + state + "'")) << e;
  EXPECT_TRUE(contains(e, "Adam(lr=")) << e;
  EXPECT_TRUE(contains(e, "compiled with SGD(")) << e;

  Sequential<float> other_adam = model_for(Opt::Adam);
  other_adam.compile(SparseCrossEntropy{}, Adam<float>(AdamOptions(0.01).beta_1(0.8)));
  e = error_of([&] { other_adam.fit(b.x, b.y, options_for(4, dir)); });
  EXPECT_TRUE(contains(e, "beta_1=0.8")) << e;

  Sequential<float> net = model_for(Opt::Adam);
  e = error_of([&] { net.fit(b.x, b.y, options_for(4, dir).batch_size(16)); });
  EXPECT_TRUE(contains(e, "it was made with batch size 8, this fit has 16")) << e;
  e = error_of([&] { net.fit(b.x, b.y, FitOptions().epochs(4).batch_size(8).validation_split(0.2).verbose(0).callback(BackupAndRestore(dir))); });
  EXPECT_TRUE(contains(e, "callbacks (ReduceLROnPlateau), this fit has (none)")) << e;
  e = error_of([&] { net.fit(b.x, b.y, options_for(4, dir).validation_split(0.5)); });
  EXPECT_TRUE(contains(e, "it was made training on 48 samples, this fit trains on 30")) << e;

  // Another architecture: the model file names both.
  Sequential<float> wide(5);
  wide.add<Dense>(DenseOptions(17).activation(ActivationKind::ReLU)).add<Dropout>(0.3).add<Dense>(3);
  wide.build({4});
  wide.compile(SparseCrossEntropy{}, Adam<float>(AdamOptions(0.01)));
  e = error_of([&] { wide.fit(b.x, b.y, options_for(4, dir)); });
  EXPECT_TRUE(contains(e, "another architecture")) << e;
  // Every refusal left the model untouched.
  Sequential<float> fresh = model_for(Opt::Adam);
  EXPECT_TRUE(bitwise_equal(weights_of(net), weights_of(fresh)));
  EXPECT_EQ(net.optimizer().iterations(), 0);
}

TEST_F(SavedCheckpoint, EveryTruncationAndCorruptionIsAClearError) {
  const std::vector<unsigned char> good = bytes_of(state);
  ASSERT_GT(good.size(), 100u);
  for (std::size_t n = 0; n < good.size(); ++n) {
    write_bytes(state, std::vector<unsigned char>(good.begin(), good.begin() + std::ptrdiff_t(n)));
    const std::string e = error_of([&] { read_checkpoint<float>(dir); });
    EXPECT_TRUE(contains(e, "cannot load '" + state + "'")) << n << ": " << e;
  }
  std::vector<unsigned char> flipped = good;
  flipped[good.size() / 2] ^= 0x10;
  write_bytes(state, flipped);
  EXPECT_TRUE(contains(error_of([&] { read_checkpoint<float>(dir); }), "checksum mismatch"));

  // A huge count with a valid checksum: refused before anything is allocated for it.
  std::vector<unsigned char> huge = good;
  const std::size_t order_count = 8 + 4 + 4 + 8 + 8 + 8 + 4;
  set_u64(huge, order_count, ~std::uint64_t(0));
  fix_checksum(huge);
  write_bytes(state, huge);
  std::string e = error_of([&] { read_checkpoint<float>(dir); });
  EXPECT_TRUE(contains(e, "samples in the order")) << e;

  // An order that is no permutation: refused, not used as indices.
  std::vector<unsigned char> bad_order = good;
  set_u64(bad_order, order_count + 8, 0x7f7f7f7f7f7f7f7full);
  fix_checksum(bad_order);
  write_bytes(state, bad_order);
  e = error_of([&] { read_checkpoint<float>(dir); });
  EXPECT_TRUE(contains(e, "not a permutation")) << e;

  write_bytes(state, {'n', 'o', 'p', 'e'});
  EXPECT_TRUE(contains(error_of([&] { read_checkpoint<float>(dir); }), "not a faltung training state file"));
  EXPECT_TRUE(contains(error_of([&] { read_checkpoint<double>(dir + "_missing"); }), "holds no checkpoint"));

  // A double model cannot take a float model's optimizer state.
  write_bytes(state, good);
  EXPECT_TRUE(contains(error_of([&] { read_checkpoint<double>(dir); }), "of a float model, not of a double one"));
}

TEST_F(SavedCheckpoint, RefusesAModelFileFromAnotherSave) {
  Sequential<float> other = model_for(Opt::Adam);
  other.fit(b.x, b.y, options_for(1));
  other.save(checkpoint_model_path(dir));
  const std::string e = error_of([&] { read_checkpoint<float>(dir); });
  EXPECT_TRUE(contains(e, "was not saved with")) << e;
}

TEST_F(SavedCheckpoint, AFailedSaveKeepsThePreviousCheckpoint) {
  const std::vector<unsigned char> model = bytes_of(checkpoint_model_path(dir));
  const std::vector<unsigned char> state = bytes_of(checkpoint_state_path(dir));
  // The model file cannot be written: a directory is in the way of its temporary name.
  std::filesystem::create_directories(checkpoint_model_path(dir) + ".new");
  Sequential<float> net = model_for(Opt::Adam);
  const std::string e = error_of([&] { net.fit(b.x, b.y, options_for(4, dir)); });
  EXPECT_TRUE(contains(e, "cannot save")) << e;
  EXPECT_EQ(bytes_of(checkpoint_model_path(dir)), model);
  EXPECT_EQ(bytes_of(checkpoint_state_path(dir)), state);
  EXPECT_EQ(read_checkpoint<float>(dir).progress.epoch, 2);
}

TEST(OptimizerState, RestoreRefusesAnotherLayoutAndChangesNothing) {
  Adam<float> adam;
  const std::vector<Shape> layout = {Shape{2, 3}, Shape{3}};
  std::vector<Optimizer<float>::StateSlot> slots = {{"m", {Tensor<float>(Shape{2, 3}), Tensor<float>(Shape{3})}},
                                                     {"v", {Tensor<float>(Shape{2, 3}), Tensor<float>(Shape{3})}}};
  adam.restore(7, 0.5, layout, slots);
  EXPECT_EQ(adam.iterations(), 7);
  EXPECT_EQ(adam.base_learning_rate(), 0.5);
  EXPECT_EQ(adam.state().size(), 2u);
  auto wrong_shape = slots;
  wrong_shape[1].second[1] = Tensor<float>(Shape{4});
  EXPECT_TRUE(contains(error_of([&] { adam.restore(9, 0.1, layout, wrong_shape); }), "saved state 'v' 1 has shape (4)"));
  EXPECT_TRUE(contains(error_of([&] { adam.restore(9, 0.1, layout, {slots[0]}); }), "keeps (m, v)"));
  EXPECT_EQ(adam.iterations(), 7);
  SGD<float> plain;
  EXPECT_TRUE(contains(error_of([&] { plain.restore(1, 0.1, layout, slots); }), "keeps (none)"));
}

}  // namespace
