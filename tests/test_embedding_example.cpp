// examples/embedding, the program itself: it trains a tiny CNN and saves it, then loads the file
// for inference only and classifies test images from 8 threads at once, each answer bitwise
// what one call over all the images gives; and it measures the resident memory both ways.
// Needs Fashion-MNIST (Debian's dataset-fashion-mnist, or $FALTUNG_FASHION_MNIST_DIR); skipped
// without it.
//
// Compiled in when examples/CMakeLists.txt names the program (FALTUNG_TEST_EMBEDDING_PROGRAM);
// without the examples this program has no tests.

#include <gtest/gtest.h>

#ifdef FALTUNG_TEST_EMBEDDING_PROGRAM

#include <algorithm>
#include <filesystem>
#include <iomanip>
#include <sstream>
#include <string>
#include <vector>

#include "faltung/faltung.hpp"
#include "test_support.hpp"

namespace {

using namespace faltung;
using test::contains;

bool data_installed() {
  const std::string dir = default_fashion_mnist_dir();
  return std::filesystem::exists(dir + "/train-images-idx3-ubyte.gz") ||
         std::filesystem::exists(dir + "/train-images-idx3-ubyte");
}

test::ProgramRun embedding(const std::vector<std::string>& args, const test::TempDir& tmp) {
  return test::run_program(FALTUNG_TEST_EMBEDDING_PROGRAM, args, tmp);
}

TEST(EmbeddingExample, TrainsSavesAndPredictsFromEightThreads) {
  if (!data_installed()) GTEST_SKIP() << "Fashion-MNIST is not installed in " << default_fashion_mnist_dir();
  test::TempDir tmp;
  const std::string model = tmp.path("tiny.faltung");
  test::ProgramRun r =
      embedding({"train", model, "--arch", "conv:4:3:relu,pool:2,flatten,dense:10", "--images", "500"}, tmp);
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_TRUE(contains(r.out, "test accuracy")) << r.out;
  ASSERT_TRUE(std::filesystem::exists(model));

  r = embedding({"predict", model, "--threads", "8", "--images", "20"}, tmp);
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_TRUE(contains(r.out, "20 images from 8 threads at once")) << r.out;
  EXPECT_TRUE(contains(r.out, "every answer is bitwise what one call over all the images gives")) << r.out;
  EXPECT_TRUE(contains(r.out, "Ankle boot")) << r.out;  // test image 0's true class
  // Each answer's probabilities: the printed first choice is the model's own, a softmax's.
  const Tensor<float> x = load_fashion_mnist().test.images<float>(0, 1);
  const Tensor<float> p =
      load_inference_model<float>(model, InferenceOptions().output_activation(ActivationKind::Softmax)).predict(x);
  float best = 0;
  for (float v : p) best = std::max(best, v);
  std::ostringstream printed;
  printed << std::fixed << std::setprecision(1) << 100.0 * best << " %";
  EXPECT_TRUE(contains(r.out, printed.str())) << printed.str() << "\n" << r.out;

  for (const char* as : {"inference", "training"}) {
    r = embedding({"memory", model, "--as", as}, tmp);
    ASSERT_EQ(r.status, 0) << r.out << r.err;
    EXPECT_TRUE(contains(r.out, std::string("as ") + as + ": resident")) << r.out;
  }

  r = embedding({"predict", tmp.path("missing.faltung")}, tmp);
  EXPECT_EQ(r.status, 2) << r.out << r.err;
  r = embedding({"predict", model, "--threads", "0"}, tmp);
  EXPECT_EQ(r.status, 2) << r.out << r.err;
}

}  // namespace

#endif  // FALTUNG_TEST_EMBEDDING_PROGRAM
