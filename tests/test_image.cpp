// data/image.hpp: pictures read from files (PNG, JPEG, BMP, PGM) and preprocessed as
// Fashion-MNIST was made. Every picture is written by the test itself, with stb_image_write
// (compiled into Debian's libstb, like stb_image) or by hand for PGM and damaged files.

#include <gtest/gtest.h>
#include <stb_image_write.h>

#include <algorithm>
#include <cstdint>
#include <faltung/data/fashion_mnist.hpp>
#include <faltung/data/image.hpp>
#include <faltung/random.hpp>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include "test_support.hpp"

namespace {

using namespace faltung;
using test::contains;
using test::error_of;
namespace fs = std::filesystem;

/// An 8-bit picture in memory: height rows of width pixels of `channels` interleaved values.
struct Picture {
  std::size_t width, height, channels;
  std::vector<std::uint8_t> px;
  Picture(std::size_t w, std::size_t h, std::size_t c, std::uint8_t fill = 0)
      : width(w), height(h), channels(c), px(w * h * c, fill) {}
  /// Sets pixel (x, y) to `value` (one value per channel).
  void set(std::size_t x, std::size_t y, std::initializer_list<std::uint8_t> value) {
    std::copy(value.begin(), value.end(), px.begin() + std::ptrdiff_t((y * width + x) * channels));
  }
  /// Fills the rectangle [x0, x1) x [y0, y1).
  void fill(std::size_t x0, std::size_t y0, std::size_t x1, std::size_t y1, std::initializer_list<std::uint8_t> value) {
    for (std::size_t y = y0; y < y1; ++y)
      for (std::size_t x = x0; x < x1; ++x) set(x, y, value);
  }
};

class ImageFileTest : public ::testing::Test {
 protected:
  std::string path(const std::string& name) const { return tmp_.path(name); }

  std::string png(const std::string& name, const Picture& p) const {
    const std::string f = path(name);
    EXPECT_TRUE(stbi_write_png(f.c_str(), int(p.width), int(p.height), int(p.channels), p.px.data(),
                               int(p.width * p.channels)));
    return f;
  }
  std::string bmp(const std::string& name, const Picture& p) const {
    const std::string f = path(name);
    EXPECT_TRUE(stbi_write_bmp(f.c_str(), int(p.width), int(p.height), int(p.channels), p.px.data()));
    return f;
  }
  std::string jpeg(const std::string& name, const Picture& p, int quality = 95) const {
    const std::string f = path(name);
    EXPECT_TRUE(stbi_write_jpg(f.c_str(), int(p.width), int(p.height), int(p.channels), p.px.data(), quality));
    return f;
  }
  /// A binary PGM (P5) of a grey picture, written by hand (stb_image_write has no PGM).
  std::string pgm(const std::string& name, const Picture& p) const {
    std::string header = "P5\n# written by test_image\n" + std::to_string(p.width) + " " + std::to_string(p.height) +
                         "\n255\n";
    std::vector<unsigned char> bytes(header.begin(), header.end());
    bytes.insert(bytes.end(), p.px.begin(), p.px.end());
    return raw(name, bytes);
  }
  std::string raw(const std::string& name, const std::vector<unsigned char>& bytes) const {
    const std::string f = path(name);
    std::ofstream out(f, std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
    EXPECT_TRUE(out.good());
    return f;
  }
  std::string raw(const std::string& name, const std::string& text) const {
    return raw(name, std::vector<unsigned char>(text.begin(), text.end()));
  }
  static std::vector<unsigned char> bytes_of(const std::string& f) {
    std::ifstream in(f, std::ios::binary);
    return std::vector<unsigned char>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  /// The file cut to `keep` bytes, under a new name.
  std::string truncated(const std::string& f, std::size_t keep, const std::string& name) const {
    std::vector<unsigned char> b = bytes_of(f);
    EXPECT_LT(keep, b.size());
    b.resize(keep);
    return raw(name, b);
  }

  test::TempDir tmp_;
};

/// Value (x, y) of a (1, 1, 28, 28) input.
float at(const Tensor<float>& t, std::size_t x, std::size_t y) { return t[y * 28 + x]; }

/// The fitted picture, full width at rows [first_row, first_row + rows), has the grey picture's
/// mean: area averaging counts every source pixel by its area.
void expect_mean_kept(const Picture& p, const Tensor<float>& t, std::size_t first_row, std::size_t rows) {
  double source_mean = 0, fitted_mean = 0;
  for (auto v : p.px) source_mean += v / 255.0;
  source_mean /= double(p.px.size());
  for (std::size_t y = first_row; y < first_row + rows; ++y)
    for (std::size_t x = 0; x < 28; ++x) fitted_mean += at(t, x, y);
  fitted_mean /= 28.0 * double(rows);
  EXPECT_NEAR(fitted_mean, source_mean, 1e-6);
}

// ---------------------------------------------------------------------------------------------
// What the preprocessing does, checked number by number

TEST_F(ImageFileTest, WhiteSquareOnBlackLandsCentredWithValueOne) {
  Picture p(56, 56, 1, 0);
  p.fill(14, 14, 42, 42, {255});
  const Tensor<float> t = load_image<float>(png("square.png", p), ImageOptions().trim(false));
  ASSERT_EQ(t.shape(), (Shape{1, 1, 28, 28}));
  for (std::size_t y = 0; y < 28; ++y)
    for (std::size_t x = 0; x < 28; ++x) {
      const bool inside = x >= 7 && x < 21 && y >= 7 && y < 21;
      ASSERT_EQ(at(t, x, y), inside ? 1.0f : 0.0f) << x << ", " << y;
    }
  // Trimmed (the default), the square is the whole garment and fills the input.
  const Tensor<float> trimmed = load_image<float>(path("square.png"));
  EXPECT_TRUE(std::all_of(trimmed.begin(), trimmed.end(), [](float v) { return v == 1.0f; }));
}

TEST_F(ImageFileTest, ALightBackgroundIsInvertedADarkOneIsNot) {
  Picture light(56, 56, 1, 255), dark(56, 56, 1, 0);
  light.fill(14, 14, 42, 42, {0});   // a black square on white paper
  dark.fill(14, 14, 42, 42, {255});  // the same, already light on dark
  const ImageOptions whole = ImageOptions().trim(false);
  const Tensor<float> a = load_image<float>(png("light.png", light), whole);
  const Tensor<float> b = load_image<float>(png("dark.png", dark), whole);
  EXPECT_TRUE(std::equal(a.begin(), a.end(), b.begin()));
  EXPECT_EQ(at(a, 0, 0), 0.0f);
  EXPECT_EQ(at(a, 14, 14), 1.0f);
  // Inversion::Never keeps the white paper white.
  const Tensor<float> kept = load_image<float>(path("light.png"), ImageOptions(whole).invert(Inversion::Never));
  EXPECT_EQ(at(kept, 0, 0), 1.0f);
  EXPECT_EQ(at(kept, 14, 14), 0.0f);
}

TEST_F(ImageFileTest, AreaAveragingKeepsTheMeanOfAnOddSizedPicture) {
  // 97 x 61 pixels of noise: 28 x 18 after fitting (61 * 28 / 97 = 17.6), centred at row 5.
  Picture p(97, 61, 1);
  Random rng(3);
  for (auto& v : p.px) v = std::uint8_t(rng.next_u64() % 256);
  const Tensor<float> t = load_image<float>(png("noise.png", p), ImageOptions().invert(Inversion::Never).trim(false));
  expect_mean_kept(p, t, 5, 18);
  // Rows 0-4 and 23-27 are the margin, filled with the background (the border's median).
  for (std::size_t x = 0; x < 28; ++x) {
    EXPECT_EQ(at(t, x, 4), at(t, 0, 0));
    EXPECT_EQ(at(t, x, 23), at(t, 0, 0));
  }
}

TEST_F(ImageFileTest, ColourBecomesGreyWithTheLumaWeights) {
  // Solid colours, not inverted: R, G and B alone give 0.299, 0.587 and 0.114 of white.
  struct Colour {
    std::uint8_t r, g, b;
    double grey;
  };
  const Colour colours[] = {
      {255, 0, 0, 0.299}, {0, 255, 0, 0.587}, {0, 0, 255, 0.114}, {100, 150, 200, (299 * 100 + 587 * 150 + 114 * 200) / 1000.0 / 255}};
  int i = 0;
  for (const Colour& c : colours) {
    Picture p(30, 20, 3);
    p.fill(0, 0, 30, 20, {c.r, c.g, c.b});
    const Tensor<float> t = load_image<float>(png("colour" + std::to_string(i++) + ".png", p),
                                              ImageOptions().invert(Inversion::Never));
    EXPECT_FLOAT_EQ(at(t, 13, 13), float(c.grey));
    EXPECT_FLOAT_EQ(at(t, 0, 0), float(c.grey));  // the margin: the same background colour
  }
  // Green is lighter than mid-grey: as a background it is inverted.
  Picture green(30, 20, 3);
  green.fill(0, 0, 30, 20, {0, 255, 0});
  EXPECT_FLOAT_EQ(at(load_image<float>(png("green.png", green)), 13, 13), float(1 - 0.587));
}

TEST_F(ImageFileTest, TransparencyIsCompositedSoTheGarmentStandsOut) {
  // A dark grey (50) opaque garment on a transparent background whose hidden colour is red:
  // composited over white, then inverted.
  Picture dark(40, 40, 4);
  dark.fill(0, 0, 40, 40, {255, 0, 0, 0});
  dark.fill(10, 10, 30, 30, {50, 50, 50, 255});
  dark.fill(18, 18, 22, 22, {0, 0, 0, 128});  // half-transparent black: 127 over white
  const ImageOptions whole = ImageOptions().trim(false);
  const Tensor<float> a = load_image<float>(png("dark_on_clear.png", dark), whole);
  EXPECT_EQ(at(a, 0, 0), 0.0f);
  EXPECT_FLOAT_EQ(at(a, 8, 8), (255.0f - 50.0f) / 255.0f);  // (10..30) / 40 * 28 = 7..21
  EXPECT_NEAR(at(a, 13, 13), 128.0 / 255.0, 1e-6);         // (18..22) -> 12.6..15.4
  // A light garment on a transparent background: composited over black, not inverted.
  Picture light(40, 40, 4);
  light.fill(0, 0, 40, 40, {0, 0, 0, 0});
  light.fill(10, 10, 30, 30, {230, 230, 230, 255});
  const Tensor<float> b = load_image<float>(png("light_on_clear.png", light), whole);
  EXPECT_EQ(at(b, 0, 0), 0.0f);
  EXPECT_FLOAT_EQ(at(b, 8, 8), 230.0f / 255.0f);
  // Grey with alpha (2 channels) is composited the same way.
  Picture grey_alpha(40, 40, 2);
  grey_alpha.fill(10, 10, 30, 30, {50, 255});
  const Tensor<float> c = load_image<float>(png("grey_alpha.png", grey_alpha), whole);
  EXPECT_EQ(at(c, 0, 0), 0.0f);
  EXPECT_FLOAT_EQ(at(c, 8, 8), (255.0f - 50.0f) / 255.0f);
}

TEST_F(ImageFileTest, TallAndWidePicturesKeepTheirAspectRatio) {
  // A white bar with a black frame one pixel wide: the frame is the background.
  auto framed = [](std::size_t w, std::size_t h) {
    Picture p(w, h, 1, 0);
    p.fill(1, 1, w - 1, h - 1, {255});
    return p;
  };
  // 20 x 100: 6 x 28 (20 * 28 / 100 = 5.6), at columns 11..16.
  const ImageOptions whole = ImageOptions().trim(false);
  const Tensor<float> tall = load_image<float>(png("tall.png", framed(20, 100)), whole);
  for (std::size_t x = 0; x < 28; ++x) {
    if (x < 11 || x >= 17)
      EXPECT_EQ(at(tall, x, 14), 0.0f) << x;
    else
      EXPECT_GT(at(tall, x, 14), 0.5f) << x;
  }
  // 100 x 20: the same, turned.
  const Tensor<float> wide = load_image<float>(png("wide.png", framed(100, 20)), whole);
  for (std::size_t y = 0; y < 28; ++y) {
    if (y < 11 || y >= 17)
      EXPECT_EQ(at(wide, 14, y), 0.0f) << y;
    else
      EXPECT_GT(at(wide, 14, y), 0.5f) << y;
  }
}

TEST_F(ImageFileTest, TinyPicturesAreEnlargedBlockByBlock) {
  // 7 x 7 becomes 28 x 28: each pixel a 4 x 4 block of its own value.
  Picture p(7, 7, 1);
  for (std::size_t i = 0; i < p.px.size(); ++i) p.px[i] = std::uint8_t(i * 5);
  const Tensor<float> t = load_image<float>(png("tiny.png", p), ImageOptions().invert(Inversion::Never).trim(false));
  for (std::size_t y = 0; y < 28; ++y)
    for (std::size_t x = 0; x < 28; ++x)
      ASSERT_FLOAT_EQ(at(t, x, y), float(p.px[(y / 4) * 7 + x / 4] / 255.0)) << x << ", " << y;
  // One pixel fills the whole input.
  Picture one(1, 1, 1, 90);
  const Tensor<float> o = load_image<float>(png("one.png", one));
  EXPECT_TRUE(std::all_of(o.begin(), o.end(), [](float v) { return v == 90.0f / 255.0f; }));
}

TEST_F(ImageFileTest, ALargePictureIsReducedWithItsMeanKept) {
  // 2400 x 1600, a horizontal ramp: 28 x 19 (1600 * 28 / 2400 = 18.7), rows 4..22.
  Picture p(2400, 1600, 1);
  for (std::size_t y = 0; y < 1600; ++y)
    for (std::size_t x = 0; x < 2400; ++x) p.px[y * 2400 + x] = std::uint8_t(x * 256 / 2400);
  const Tensor<float> t = load_image<float>(png("large.png", p), ImageOptions().invert(Inversion::Never).trim(false));
  expect_mean_kept(p, t, 4, 19);
  // The ramp: each column is the mean of its 2400 / 28 source columns.
  EXPECT_LT(at(t, 0, 10), 0.02f);
  EXPECT_GT(at(t, 27, 10), 0.98f);
  for (std::size_t x = 1; x < 28; ++x) EXPECT_GT(at(t, x, 10), at(t, x - 1, 10));
}

TEST_F(ImageFileTest, EveryFormatGivesTheSamePixels) {
  Picture grey(45, 30, 1, 0);
  grey.fill(10, 5, 35, 25, {200});
  grey.fill(20, 10, 25, 20, {70});
  Picture rgb(45, 30, 3, 0);
  rgb.fill(10, 5, 35, 25, {200, 200, 200});
  rgb.fill(20, 10, 25, 20, {70, 70, 70});
  const Tensor<float> reference = load_image<float>(png("grey.png", grey));
  for (const std::string& f : {png("rgb.png", rgb), bmp("grey.bmp", grey), bmp("rgb.bmp", rgb), pgm("grey.pgm", grey)}) {
    const Tensor<float> t = load_image<float>(f);
    EXPECT_TRUE(std::equal(t.begin(), t.end(), reference.begin())) << f;
  }
  // JPEG is lossy: close, not equal.
  const Tensor<float> j = load_image<float>(jpeg("rgb.jpg", rgb, 100));
  for (std::size_t i = 0; i < j.size(); ++i) EXPECT_NEAR(j[i], reference[i], 0.05) << i;
}

TEST_F(ImageFileTest, LoadImagesMakesABatchInOrder) {
  Picture a(20, 20, 1, 0), b(20, 20, 1, 255);
  a.fill(5, 5, 15, 15, {255});
  b.fill(2, 2, 8, 8, {0});
  const std::string fa = png("a.png", a), fb = png("b.png", b);
  const Tensor<float> batch = load_images<float>({fa, fb, fa});
  ASSERT_EQ(batch.shape(), (Shape{3, 1, 28, 28}));
  const Tensor<float> one_a = load_image<float>(fa), one_b = load_image<float>(fb);
  EXPECT_TRUE(std::equal(one_a.begin(), one_a.end(), batch.data()));
  EXPECT_TRUE(std::equal(one_b.begin(), one_b.end(), batch.data() + 784));
  EXPECT_TRUE(std::equal(one_a.begin(), one_a.end(), batch.data() + 2 * 784));
  EXPECT_EQ(load_images<double>({}).shape(), (Shape{0, 1, 28, 28}));
  // The first bad file is named.
  const std::string msg = error_of([&] { load_images<float>({fa, path("missing.png"), fb}); });
  EXPECT_TRUE(contains(msg, "missing.png")) << msg;
}

// Fashion-MNIST's own images, printed as product photos are (dark garment on white paper, ten
// times larger) and read back, are the data set's images again: the preprocessing undoes exactly
// what the data set's making did.
TEST_F(ImageFileTest, AFashionMnistImageEnlargedOnWhitePaperComesBackUnchanged) {
  const std::string dir = default_fashion_mnist_dir();
  if (!fs::exists(fs::path(dir) / "t10k-images-idx3-ubyte.gz") && !fs::exists(fs::path(dir) / "t10k-images-idx3-ubyte"))
    GTEST_SKIP() << "Fashion-MNIST is not installed in " << dir;
  const FashionMnist data = load_fashion_mnist(dir);
  for (std::size_t i = 0; i < 20; ++i) {
    Picture photo(280, 280, 3);
    for (std::size_t y = 0; y < 280; ++y)
      for (std::size_t x = 0; x < 280; ++x) {
        const std::uint8_t v = std::uint8_t(255 - data.test.pixels[i * 784 + (y / 10) * 28 + x / 10]);
        photo.set(x, y, {v, v, v});
      }
    const Tensor<float> back = load_image<float>(png("test" + std::to_string(i) + ".png", photo), ImageOptions().trim(false));
    const Tensor<float> original = data.test.images<float>(i, 1);
    for (std::size_t k = 0; k < 784; ++k) ASSERT_FLOAT_EQ(back[k], original[k]) << "test image " << i << ", pixel " << k;
  }
}

// Several threads reading pictures at once, good and bad ones mixed, get what one thread gets:
// stb_image keeps its error text per thread, and load_image shares nothing else.
TEST_F(ImageFileTest, SeveralThreadsLoadAtOnce) {
  Picture p(90, 70, 3, 255);
  p.fill(20, 10, 60, 60, {30, 60, 90});
  // A JPEG cut short: the error text comes from stb_image itself ("expected marker").
  const std::string good = png("good.png", p), jpg = jpeg("whole.jpg", p);
  const std::string bad = truncated(jpg, bytes_of(jpg).size() / 2, "cut.jpg");
  const Tensor<float> expected = load_image<float>(good);
  const std::string expected_error = error_of([&] { load_image<float>(bad); });
  ASSERT_TRUE(contains(expected_error, "(stb_image)")) << expected_error;
  std::vector<int> ok(8, 0);
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < ok.size(); ++t)
    threads.emplace_back([&, t] {
      bool all = true;
      for (int round = 0; round < 20; ++round) {
        if ((round + t) % 2) {
          const Tensor<float> x = load_image<float>(good);
          all = all && std::equal(x.begin(), x.end(), expected.begin());
        } else {
          all = all && error_of([&] { load_image<float>(bad); }) == expected_error;
        }
      }
      ok[t] = all;
    });
  for (std::thread& th : threads) th.join();
  for (std::size_t t = 0; t < ok.size(); ++t) EXPECT_TRUE(ok[t]) << "thread " << t;
}

// ---------------------------------------------------------------------------------------------
// Bad files: each a faltung::Error naming the file

TEST_F(ImageFileTest, MissingEmptyAndDirectoryAreNamed) {
  std::string msg = error_of([&] { load_image<float>(path("nowhere.png")); });
  EXPECT_TRUE(contains(msg, "cannot open") && contains(msg, "nowhere.png")) << msg;
  msg = error_of([&] { load_image<float>(raw("empty.png", std::string())); });
  EXPECT_TRUE(contains(msg, "empty.png' is empty")) << msg;
  fs::create_directories(path("folder.png"));
  msg = error_of([&] { load_image<float>(path("folder.png")); });
  EXPECT_TRUE(contains(msg, "folder.png")) << msg;
}

TEST_F(ImageFileTest, AFileThatIsNotAnImageIsNamed) {
  std::string msg = error_of([&] { load_image<float>(raw("notes.png", "hello, this is text\n")); });
  EXPECT_TRUE(contains(msg, "notes.png' is not a PNG, JPEG, BMP or PGM/PPM image")) << msg;
  EXPECT_TRUE(contains(msg, "0x68 0x65 0x6c")) << msg;  // "hel"
  msg = error_of([&] { load_image<float>(raw("anim.gif", "GIF89a\x01\x00\x01\x00")); });
  EXPECT_TRUE(contains(msg, "anim.gif") && contains(msg, "GIF")) << msg;
  msg = error_of([&] { load_image<float>(raw("ascii.pgm", "P2\n2 1\n255\n0 255\n")); });
  EXPECT_TRUE(contains(msg, "ascii.pgm") && contains(msg, "P5")) << msg;
  // A PNG signature with garbage after it.
  msg = error_of([&] { load_image<float>(raw("fake.png", std::string("\x89PNG\r\n\x1a\n", 8) + "garbage garbage")); });
  EXPECT_TRUE(contains(msg, "fake.png")) << msg;
}

TEST_F(ImageFileTest, TruncatedFilesAreErrorsNotBlackRows) {
  Picture p(40, 30, 3);
  for (std::size_t i = 0; i < p.px.size(); ++i) p.px[i] = std::uint8_t(i * 37 % 251);
  Picture g(40, 30, 1, 99);
  const std::string png_file = png("full.png", p), jpg_file = jpeg("full.jpg", p), bmp_file = bmp("full.bmp", p),
                    pgm_file = pgm("full.pgm", g);
  const std::size_t png_size = bytes_of(png_file).size(), jpg_size = bytes_of(jpg_file).size(),
                    bmp_size = bytes_of(bmp_file).size(), pgm_size = bytes_of(pgm_file).size();
  const std::vector<std::string> cases = {
      truncated(png_file, png_size / 2, "half.png"),
      truncated(png_file, png_size - 4, "no_iend_crc.png"),  // stb_image alone accepts this one
      truncated(png_file, 20, "header_only.png"),            // the IHDR chunk itself is cut
      truncated(jpg_file, jpg_size * 2 / 3, "cut.jpg"),
      truncated(bmp_file, bmp_size - 100, "cut.bmp"),        // stb_image alone fills the rows with zeros
      truncated(bmp_file, 20, "header.bmp"),
      truncated(pgm_file, pgm_size - 1, "cut.pgm"),          // stb_image alone fills the pixel with zero
      truncated(pgm_file, 10, "header.pgm"),
  };
  for (const std::string& file : cases) {
    const std::string msg = error_of([&] { load_image<float>(file); });
    EXPECT_TRUE(contains(msg, fs::path(file).filename().string())) << msg;
    EXPECT_TRUE(contains(msg, "truncated") || contains(msg, "damaged")) << msg;
  }
  // The complete files load.
  for (const std::string& f : {png_file, jpg_file, bmp_file, pgm_file}) EXPECT_NO_THROW(load_image<float>(f)) << f;
}

TEST_F(ImageFileTest, AbsurdDimensionsAreRefusedBeforeDecoding) {
  // A PGM header claiming 100000 x 100000 pixels (10 GB) in a 30-byte file.
  std::string msg = error_of([&] { load_image<float>(raw("huge.pgm", "P5\n100000 100000\n255\n\x01\x02")); });
  EXPECT_TRUE(contains(msg, "huge.pgm' claims 100000 x 100000 pixels")) << msg;
  // A PNG whose IHDR says 60000 x 60000: refused from the header.
  Picture small(4, 4, 1, 7);
  std::vector<unsigned char> b = bytes_of(png("small.png", small));
  for (std::size_t at : {16, 20}) {  // IHDR width and height, big-endian
    b[at] = 0, b[at + 1] = 0, b[at + 2] = 0xea, b[at + 3] = 0x60;
  }
  msg = error_of([&] { load_image<float>(raw("huge.png", b)); });
  EXPECT_TRUE(contains(msg, "huge.png' claims 60000 x 60000 pixels")) << msg;
  // The limits are options.
  msg = error_of([&] { load_image<float>(path("small.png"), ImageOptions().max_pixels(15)); });
  EXPECT_TRUE(contains(msg, "small.png' claims 4 x 4 pixels, more than the limit of 15")) << msg;
  msg = error_of([&] { load_image<float>(path("small.png"), ImageOptions().max_file_bytes(10)); });
  EXPECT_TRUE(contains(msg, "small.png' is larger than 10 bytes")) << msg;
}

TEST_F(ImageFileTest, APictureWithoutPixelsIsNamed) {
  const std::string msg = error_of([&] { load_image<float>(raw("zero.pgm", "P5\n0 3\n255\n")); });
  EXPECT_TRUE(contains(msg, "zero.pgm' has no pixels: it is 0 x 3")) << msg;
}

}  // namespace
