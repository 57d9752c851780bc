// data/image_preprocess.hpp: pixels in memory to a Fashion-MNIST input (grey, fitted, centred,
// light-on-dark, scaled once). Needs no image library; test_image reads the same through files.

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <faltung/data/image_preprocess.hpp>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

#include "test_support.hpp"

namespace {

using namespace faltung;

using test::error_of;

TEST(AreaWeights, EachOutputSumsToOneAndEachSourcePixelCountsByItsWidth) {
  for (auto [src, dst] : {std::pair<std::size_t, std::size_t>{97, 28}, {28, 28}, {3, 28}, {1, 28}, {28, 1}, {1000, 7}}) {
    const detail::AreaWeights w(src, dst);
    ASSERT_EQ(w.first.size(), dst + 1);
    std::vector<double> per_source(src, 0.0);
    for (std::size_t o = 0; o < dst; ++o) {
      double sum = 0;
      for (std::size_t k = w.first[o]; k < w.first[o + 1]; ++k) {
        ASSERT_LT(w.source[k], src);
        EXPECT_GT(w.weight[k], 0.0);
        sum += w.weight[k];
        per_source[w.source[k]] += w.weight[k];
      }
      EXPECT_NEAR(sum, 1.0, 1e-12) << src << " -> " << dst << ", output " << o;
    }
    for (std::size_t s = 0; s < src; ++s)
      EXPECT_NEAR(per_source[s], double(dst) / double(src), 1e-12) << src << " -> " << dst << ", source " << s;
  }
}

TEST(PreprocessImage, HalvingAveragesEachTwoByTwoBlock) {
  // 56 x 56 grey, value (x + y) % 7 * 30: each output pixel is the mean of its 2 x 2 block.
  std::vector<std::uint8_t> px(56 * 56);
  for (std::size_t y = 0; y < 56; ++y)
    for (std::size_t x = 0; x < 56; ++x) px[y * 56 + x] = std::uint8_t((x * 3 + y * 5) % 7 * 30);
  const Tensor<double> t =
      preprocess_image<double>(px.data(), 56, 56, 1, ImageOptions().invert(Inversion::Never).trim(false));
  ASSERT_EQ(t.shape(), (Shape{1, 1, 28, 28}));
  for (std::size_t y = 0; y < 28; ++y)
    for (std::size_t x = 0; x < 28; ++x) {
      const double mean = (px[2 * y * 56 + 2 * x] + px[2 * y * 56 + 2 * x + 1] + px[(2 * y + 1) * 56 + 2 * x] +
                           px[(2 * y + 1) * 56 + 2 * x + 1]) /
                          4.0;
      EXPECT_NEAR(t[y * 28 + x], mean / 255.0, 1e-12) << y << ", " << x;
    }
}

TEST(PreprocessImage, InversionFollowsTheBorderUnlessForced) {
  // A light border (200) with a dark centre (10): inverted by default, kept with Never.
  std::vector<std::uint8_t> px(28 * 28, 200);
  px[14 * 28 + 14] = 10;
  const ImageOptions whole = ImageOptions().trim(false);
  const Tensor<float> automatic = preprocess_image<float>(px.data(), 28, 28, 1, whole);
  EXPECT_FLOAT_EQ(automatic[0], 55.0f / 255.0f);
  EXPECT_FLOAT_EQ(automatic[14 * 28 + 14], 245.0f / 255.0f);
  const Tensor<float> never = preprocess_image<float>(px.data(), 28, 28, 1, ImageOptions(whole).invert(Inversion::Never));
  EXPECT_FLOAT_EQ(never[0], 200.0f / 255.0f);
  // A dark border: kept by default, inverted with Always.
  std::vector<std::uint8_t> dark(28 * 28, 20);
  EXPECT_FLOAT_EQ(preprocess_image<float>(dark.data(), 28, 28, 1)[5], 20.0f / 255.0f);
  EXPECT_FLOAT_EQ(preprocess_image<float>(dark.data(), 28, 28, 1, ImageOptions().invert(Inversion::Always))[5],
                  235.0f / 255.0f);
}

TEST(PreprocessImage, TheBackgroundIsTheBordersMedianSoAGarmentTouchingTheEdgeDoesNotFlipIt) {
  // White background, a black garment covering the whole left column and most of the top row.
  std::vector<std::uint8_t> px(28 * 28, 255);
  for (std::size_t y = 0; y < 28; ++y) px[y * 28] = 0;
  for (std::size_t x = 0; x < 20; ++x) px[x] = 0;
  const Tensor<float> t = preprocess_image<float>(px.data(), 28, 28, 1, ImageOptions().trim(false));
  EXPECT_FLOAT_EQ(t[27 * 28 + 27], 0.0f);  // the background, inverted
  EXPECT_FLOAT_EQ(t[0], 1.0f);             // the garment
}

TEST(PreprocessImage, TrimmingCutsThePictureToTheGarment) {
  // A white 20 x 10 garment at (30, 40) in a 100 x 100 black photo: trimmed, it becomes 28 x 14,
  // centred at rows 7..20; untrimmed, it is 5.6 x 2.8 pixels of the 28 x 28.
  std::vector<std::uint8_t> px(100 * 100, 0);
  for (std::size_t y = 40; y < 50; ++y)
    for (std::size_t x = 30; x < 50; ++x) px[y * 100 + x] = 255;
  px[99 * 100 + 99] = 12;  // within 5% of the background: not part of the garment
  const Tensor<float> t = preprocess_image<float>(px.data(), 100, 100, 1);
  for (std::size_t y = 0; y < 28; ++y)
    for (std::size_t x = 0; x < 28; ++x) ASSERT_EQ(t[y * 28 + x], y >= 7 && y < 21 ? 1.0f : 0.0f) << x << ", " << y;
  const Tensor<float> whole = preprocess_image<float>(px.data(), 100, 100, 1, ImageOptions().trim(false));
  EXPECT_NEAR(std::accumulate(whole.begin(), whole.end(), 0.0), 20 * 10 * 0.28 * 0.28 + 12 / 255.0 * 0.28 * 0.28, 1e-4);
  // A pixel beyond 5% does count: the box then reaches the corner.
  px[99 * 100 + 99] = 14;
  const Tensor<float> corner = preprocess_image<float>(px.data(), 100, 100, 1);
  EXPECT_GT(corner[25 * 28 + 27], 0.0f);  // the box is 70 x 60: 28 x 24 at rows 2..25
  EXPECT_LT(corner[14 * 28 + 14], 1.0f);  // the garment is no longer the whole box
  // A blank picture has no garment: nothing is cut.
  std::vector<std::uint8_t> blank(30 * 10, 40);
  const Tensor<float> b = preprocess_image<float>(blank.data(), 30, 10, 1);
  EXPECT_TRUE(std::all_of(b.begin(), b.end(), [](float v) { return v == 40.0f / 255.0f; }));
}

TEST(PreprocessImage, SideSetsTheOutputSize) {
  std::vector<std::uint8_t> px(10 * 5, 0);
  const Tensor<float> t = preprocess_image<float>(px.data(), 10, 5, 1, ImageOptions().side(32));
  EXPECT_EQ(t.shape(), (Shape{1, 1, 32, 32}));
}

TEST(PreprocessImage, BadArgumentsAreClearErrors) {
  std::vector<std::uint8_t> px(16, 0);
  EXPECT_NE(error_of([&] { preprocess_image<float>(px.data(), 2, 2, 5); }).find("5 channels"), std::string::npos);
  EXPECT_NE(error_of([&] { preprocess_image<float>(px.data(), 0, 2, 1); }).find("empty (0 x 2)"), std::string::npos);
  EXPECT_NE(error_of([&] { preprocess_image<float>(px.data(), 4, 0, 1); }).find("empty (4 x 0)"), std::string::npos);
  EXPECT_NE(error_of([&] { preprocess_image<float>(nullptr, 4, 4, 1); }).find("null"), std::string::npos);
  EXPECT_NE(error_of([&] { preprocess_image<float>(px.data(), 4, 4, 1, ImageOptions().side(0)); }).find("side 0"),
            std::string::npos);
  EXPECT_NE(error_of([&] { preprocess_image<float>(px.data(), 4, 4, 1, ImageOptions().max_pixels(15)); })
                .find("4 x 4 pixels exceed the limit of 15"),
            std::string::npos);
  // width * height is never formed when it would overflow: the check divides.
  EXPECT_NE(error_of([&] { preprocess_image<float>(px.data(), std::size_t(1) << 40, std::size_t(1) << 40, 1); })
                .find("exceed the limit"),
            std::string::npos);
}

}  // namespace
