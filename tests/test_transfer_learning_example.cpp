// The pieces of examples/transfer_learning on a tiny configuration: the tasks' sets, the three
// ways of learning task B (each beats chance by far; the frozen base stays bitwise), the table,
// the plot and the options' checks. Needs Fashion-MNIST (Debian's dataset-fashion-mnist, or
// $FALTUNG_FASHION_MNIST_DIR); skipped without it.
//
// Compiled in when examples/CMakeLists.txt gives this test the examples' directory
// (FALTUNG_TEST_EXAMPLE_PIECES); without the examples this program has no tests.

#include <gtest/gtest.h>

#ifdef FALTUNG_TEST_EXAMPLE_PIECES

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "test_support.hpp"
#include "transfer_learning/transfer.hpp"

using faltung::test::contains;

namespace {

// One thread, as the other example tests: ctest runs two programs at once on two cores.
class OneThread : public ::testing::Environment {
 public:
  void SetUp() override { faltung::set_num_threads(1); }
};
const auto* const one_thread = ::testing::AddGlobalTestEnvironment(new OneThread);

transfer::Options parse(std::vector<std::string> args) {
  CLI::App app("test");
  transfer::Options o;
  transfer::add_options(app, o);
  std::reverse(args.begin(), args.end());  // CLI11 takes them last first
  app.parse(args);
  transfer::validate(o);
  return o;
}

bool data_installed() {
  const std::string dir = faltung::default_fashion_mnist_dir();
  return std::filesystem::exists(dir + "/train-images-idx3-ubyte.gz") ||
         std::filesystem::exists(dir + "/train-images-idx3-ubyte");
}

// A tiny run: a base on 1500 images, task B from 150.
std::vector<std::string> tiny() {
  return {"--base-images", "1500", "--base-epochs", "2", "--new-images", "150", "--validation-images", "250",
          "--test-images", "500", "--epochs", "6", "--warmup-epochs", "2", "--head", "dense:32:relu"};
}

TEST(TransferLearningExample, TheTasksAreBalancedAndDisjoint) {
  if (!data_installed()) GTEST_SKIP() << "Fashion-MNIST not installed";
  const transfer::Options o = parse(tiny());
  const transfer::Data d = transfer::load_data(o);
  EXPECT_EQ(d.base_train.size(), 1500u);
  EXPECT_EQ(d.base_test.size(), 500u);
  EXPECT_EQ(d.new_train.size(), 150u);
  EXPECT_EQ(d.new_validation.size(), 250u);
  EXPECT_EQ(d.new_test.size(), 500u);
  EXPECT_EQ(d.new_train.x.shape(), (faltung::Shape{150, 1, 28, 28}));
  for (const transfer::Set* s : {&d.base_train, &d.new_train, &d.new_validation, &d.new_test}) {
    std::vector<int> per_class(5, 0);
    for (float y : s->y) {
      ASSERT_TRUE(y >= 0 && y < 5 && y == float(int(y))) << y;
      ++per_class[std::size_t(y)];
    }
    for (int c : per_class) EXPECT_EQ(c, int(s->size() / 5));
  }
  // No image of task B's validation set is one it trains on.
  std::set<std::string> train_images;
  for (std::size_t i = 0; i < d.new_train.size(); ++i)
    train_images.insert(std::string(reinterpret_cast<const char*>(d.new_train.x.data() + i * 784), 784 * sizeof(float)));
  for (std::size_t i = 0; i < d.new_validation.size(); ++i)
    EXPECT_EQ(train_images.count(std::string(reinterpret_cast<const char*>(d.new_validation.x.data() + i * 784),
                                             784 * sizeof(float))),
              0u)
        << "validation image " << i;
}

TEST(TransferLearningExample, AllThreeWaysLearnTheNewClassesAndTheFrozenBaseStays) {
  if (!data_installed()) GTEST_SKIP() << "Fashion-MNIST not installed";
  const transfer::Options o = parse(tiny());
  const transfer::Data d = transfer::load_data(o);
  std::ostringstream log;
  transfer::Result base;
  faltung::Sequential<float> base_model = transfer::train_base(d, o, base, log);
  EXPECT_GT(base.test_accuracy, 0.7);  // chance is 0.2

  std::vector<transfer::Result> results;
  for (const transfer::Method m :
       {transfer::Method::FromScratch, transfer::Method::FrozenBase, transfer::Method::FineTuned}) {
    faltung::Sequential<float> net = transfer::model_for(m, base_model, o);
    ASSERT_EQ(net.spec(), base_model.spec());
    results.push_back(transfer::learn_new_classes(m, net, d, o, log));
    const auto params = net.parameters();
    const auto base_params = base_model.parameters();
    if (m == transfer::Method::FrozenBase) {
      // Both convolutions (kernel and bias) kept bitwise; the head is the only thing trained.
      for (std::size_t i = 0; i < 4; ++i) {
        EXPECT_FALSE(params[i]->trainable);
        EXPECT_EQ(std::memcmp(params[i]->value.data(), base_params[i]->value.data(),
                              params[i]->value.size() * sizeof(float)),
                  0)
            << "base parameter " << i;
      }
      EXPECT_EQ(results.back().trainable, 7u * 7u * 32u * 32u + 32u + 32u * 5u + 5u);  // Dense(32), Dense(5)
    } else {
      EXPECT_EQ(results.back().trainable, results.back().parameters);
    }
    if (m == transfer::Method::FineTuned) {  // the base joined after the warm-up
      EXPECT_NE(std::memcmp(params[0]->value.data(), base_params[0]->value.data(), params[0]->value.size() * sizeof(float)),
                0);
    }
    EXPECT_EQ(results.back().val_accuracy.size(), 6u);
  }
  // Chance is 0.2; each way reached 0.79-0.86 on seeds 42 and 7, the frozen base the best.
  EXPECT_GT(results[0].test_accuracy, 0.6) << "from scratch";
  EXPECT_GT(results[1].test_accuracy, 0.75) << "frozen base";
  EXPECT_GT(results[2].test_accuracy, 0.6) << "fine-tuned";

  const std::string table = transfer::results_table(results);
  EXPECT_TRUE(contains(table, "| method | trained parameters | test accuracy | training time |")) << table;
  EXPECT_TRUE(contains(table, "| frozen base, new head | " + std::to_string(results[1].trainable) + " of ")) << table;
  EXPECT_TRUE(contains(table, "| fine-tuned (head alone 2 epochs, then all at lr 0.0001) | ")) << table;
  const std::string svg = transfer::learning_curves_svg(results, "curves").str();
  for (const transfer::Result& r : results) EXPECT_TRUE(contains(svg, r.method)) << r.method;
  EXPECT_TRUE(contains(svg, "curves"));
  std::size_t curves = 0;
  for (std::size_t at = svg.find("<polyline"); at != std::string::npos; at = svg.find("<polyline", at + 1)) ++curves;
  EXPECT_GE(curves, 3u);
}

TEST(TransferLearningExample, BadOptions) {
  auto error = [](std::vector<std::string> args) {
    try {
      parse(std::move(args));
    } catch (const std::exception& e) {
      return std::string(e.what());
    }
    return std::string("(nothing thrown)");
  };
  EXPECT_TRUE(contains(error({"--new-images", "20000", "--validation-images", "20000"}), "exceed the 30000"));
  EXPECT_TRUE(contains(error({"--base-images", "30001"}), "--base-images"));
  EXPECT_TRUE(contains(error({"--head", "conv:4:3"}), "cannot take the output of 'flatten'"))
      << error({"--head", "conv:4:3"});
  EXPECT_TRUE(contains(error({"--base", "dense:8"}), "cannot take the output of the input"))
      << error({"--base", "dense:8"});
  EXPECT_TRUE(contains(error({"--base", ""}), "at least one layer"));
  EXPECT_TRUE(contains(error({"--fine-tune-lr", "-1"}), "not a positive number"));
  EXPECT_TRUE(contains(error({"--data", "/nonexistent"}), "(nothing thrown)"));  // found when loading
  EXPECT_TRUE(contains(
      [] {
        try {
          transfer::load_data(parse({"--data", "/nonexistent"}));
        } catch (const faltung::Error& e) {
          return std::string(e.what());
        }
        return std::string();
      }(),
      "cannot open '/nonexistent/train-images-idx3-ubyte.gz'"));
}

}  // namespace

#endif  // FALTUNG_TEST_EXAMPLE_PIECES
