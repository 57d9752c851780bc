// Tests for the IDX reader and the Fashion-MNIST loader: small files written here, good ones
// and every kind of bad one, and the real dataset when it is installed.

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <new>
#include <random>
#include <string>
#include <vector>

#include "faltung/data/fashion_mnist.hpp"
#include "faltung/data/idx.hpp"

#if FALTUNG_HAS_ZLIB
#include <zlib.h>
#endif

// The largest single allocation since the last reset: how the tests see that a header's claim
// is not allocated before data backs it.
namespace {
std::atomic<std::size_t> g_largest_allocation{0};
// Called through a pointer the compiler cannot see through: GCC 12 otherwise inlines the
// replaced operator delete into callers and warns (-Wmismatched-new-delete) that free() gets a
// pointer from operator new, which is exactly what these replacements intend.
void (*volatile g_free)(void*) = std::free;
}  // namespace

void* operator new(std::size_t n) {
  std::size_t prev = g_largest_allocation.load(std::memory_order_relaxed);
  while (n > prev && !g_largest_allocation.compare_exchange_weak(prev, n, std::memory_order_relaxed)) {
  }
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { g_free(p); }
void operator delete(void* p, std::size_t) noexcept { g_free(p); }

namespace fs = std::filesystem;
using faltung::Error;
using faltung::IdxArray;
using faltung::ImageDataset;
using Bytes = std::vector<std::uint8_t>;

namespace {

Bytes idx_bytes(const std::vector<std::uint32_t>& dims, const Bytes& data, std::uint8_t type = 0x08) {
  Bytes b = {0, 0, type, static_cast<std::uint8_t>(dims.size())};
  for (std::uint32_t d : dims)
    for (int shift = 24; shift >= 0; shift -= 8) b.push_back(static_cast<std::uint8_t>(d >> shift));
  b.insert(b.end(), data.begin(), data.end());
  return b;
}

Bytes iota_bytes(std::size_t n, std::uint8_t start = 0) {
  Bytes b(n);
  for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<std::uint8_t>(start + i);
  return b;
}

#if FALTUNG_HAS_ZLIB
// One gzip member, as gzip(1) writes it (windowBits 15 + 16 asks zlib for the gzip wrapper).
Bytes gzip_bytes(const Bytes& in) {
  z_stream zs{};
  EXPECT_EQ(deflateInit2(&zs, 9, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
  Bytes out(deflateBound(&zs, static_cast<uLong>(in.size())));
  zs.next_in = const_cast<Bytef*>(in.data());
  zs.avail_in = static_cast<uInt>(in.size());
  zs.next_out = out.data();
  zs.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(deflate(&zs, Z_FINISH), Z_STREAM_END);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}
#endif

class DataTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::random_device rd;
    dir_ = fs::temp_directory_path() / ("faltung_test_data_" + std::to_string(rd()) + std::to_string(rd()));
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  std::string write(const std::string& name, const Bytes& bytes) {
    const std::string path = (dir_ / name).string();
    std::ofstream f(path, std::ios::binary);
    f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    EXPECT_TRUE(f.good()) << path;
    return path;
  }

  // The message of the faltung::Error that `fn` throws; fails the test when it throws nothing.
  template <class Fn>
  static std::string error_of(Fn fn) {
    try {
      fn();
    } catch (const Error& e) {
      return e.what();
    }
    ADD_FAILURE() << "expected a faltung::Error";
    return "";
  }

  // Writes Fashion-MNIST-like files for one split: n images of h x w, labels given.
  void write_split(const std::string& prefix, std::size_t n, std::uint32_t h, std::uint32_t w, const Bytes& labels,
                   bool gz) {
    Bytes images = idx_bytes({static_cast<std::uint32_t>(n), h, w}, iota_bytes(n * h * w, 7));
    Bytes lbl = idx_bytes({static_cast<std::uint32_t>(labels.size())}, labels);
#if FALTUNG_HAS_ZLIB
    if (gz) {
      write(prefix + "-images-idx3-ubyte.gz", gzip_bytes(images));
      write(prefix + "-labels-idx1-ubyte.gz", gzip_bytes(lbl));
      return;
    }
#endif
    (void)gz;
    write(prefix + "-images-idx3-ubyte", images);
    write(prefix + "-labels-idx1-ubyte", lbl);
  }

  fs::path dir_;
};

#define EXPECT_CONTAINS(haystack, needle) EXPECT_NE((haystack).find(needle), std::string::npos) << (haystack)

// ---------------------------------------------------------------------------------------------
// read_idx: good files

TEST_F(DataTest, ReadsRawIdx) {
  const std::string path = write("raw.idx", idx_bytes({2, 3, 4}, iota_bytes(24, 100)));
  IdxArray a = faltung::read_idx(path);
  EXPECT_EQ(a.dims, (std::vector<std::uint32_t>{2, 3, 4}));
  EXPECT_EQ(a.numel(), 24u);
  EXPECT_EQ(a.data, iota_bytes(24, 100));
}

TEST_F(DataTest, ReadsDimensionsBigEndian) {
  // 258 = 0x00000102: a little-endian reader would see 0x02010000.
  const std::string path = write("be.idx", idx_bytes({258}, iota_bytes(258)));
  IdxArray a = faltung::read_idx(path);
  EXPECT_EQ(a.dims, (std::vector<std::uint32_t>{258}));
  EXPECT_EQ(a.data.size(), 258u);
}

TEST_F(DataTest, ReadsEmptyArray) {
  const std::string path = write("empty.idx", idx_bytes({0, 28, 28}, {}));
  IdxArray a = faltung::read_idx(path);
  EXPECT_EQ(a.dims, (std::vector<std::uint32_t>{0, 28, 28}));
  EXPECT_TRUE(a.data.empty());
}

TEST_F(DataTest, ReadsLargeRawFileAcrossBufferBoundaries) {
  // Larger than the reader's input buffer and its first data chunk, so both grow and refill.
  Bytes data(300 * 1000 + 17);
  std::mt19937 rng(1);
  for (auto& b : data) b = static_cast<std::uint8_t>(rng());
  const std::string path = write("big.idx", idx_bytes({static_cast<std::uint32_t>(data.size())}, data));
  EXPECT_EQ(faltung::read_idx(path).data, data);
}

#if FALTUNG_HAS_ZLIB
TEST_F(DataTest, DetectsGzipByMagicNotByName) {
  const Bytes idx = idx_bytes({3, 5}, iota_bytes(15, 1));
  // gzip data without .gz, and plain data with .gz: both read by what they are.
  const std::string gz_no_suffix = write("compressed.idx", gzip_bytes(idx));
  const std::string raw_with_suffix = write("plain.idx.gz", idx);
  for (const std::string& path : {gz_no_suffix, raw_with_suffix}) {
    IdxArray a = faltung::read_idx(path);
    EXPECT_EQ(a.dims, (std::vector<std::uint32_t>{3, 5})) << path;
    EXPECT_EQ(a.data, iota_bytes(15, 1)) << path;
  }
}

TEST_F(DataTest, ReadsLargeGzipAcrossBufferBoundaries) {
  // Incompressible data, so the compressed input spans several input buffers too.
  Bytes data(2 * 1000 * 1000);
  std::mt19937 rng(2);
  for (auto& b : data) b = static_cast<std::uint8_t>(rng());
  const std::string path = write("big.idx.gz", gzip_bytes(idx_bytes({1000, 2000}, data)));
  IdxArray a = faltung::read_idx(path);
  EXPECT_EQ(a.dims, (std::vector<std::uint32_t>{1000, 2000}));
  EXPECT_EQ(a.data, data);
}

TEST_F(DataTest, ReadsConcatenatedGzipMembers) {
  // `cat header.gz data.gz` is a valid gzip file and gunzip reads it whole.
  const Bytes idx = idx_bytes({4, 4}, iota_bytes(16, 50));
  Bytes gz = gzip_bytes(Bytes(idx.begin(), idx.begin() + 10));
  const Bytes rest = gzip_bytes(Bytes(idx.begin() + 10, idx.end()));
  gz.insert(gz.end(), rest.begin(), rest.end());
  IdxArray a = faltung::read_idx(write("two_members.gz", gz));
  EXPECT_EQ(a.data, iota_bytes(16, 50));
}
#endif

// ---------------------------------------------------------------------------------------------
// read_idx: bad files. Each message must name the file and the problem.

TEST_F(DataTest, MissingFileIsAnError) {
  const std::string path = (dir_ / "does_not_exist.gz").string();
  const std::string msg = error_of([&] { faltung::read_idx(path); });
  EXPECT_CONTAINS(msg, path);
  EXPECT_CONTAINS(msg, "cannot open");
}

TEST_F(DataTest, DirectoryIsAnError) {
  const std::string path = dir_.string();
  const std::string msg = error_of([&] { faltung::read_idx(path); });
  EXPECT_CONTAINS(msg, path);
}

TEST_F(DataTest, WrongMagicIsAnError) {
  Bytes b = idx_bytes({2, 2}, iota_bytes(4));
  b[1] = 0x01;
  const std::string path = write("bad_magic.idx", b);
  const std::string msg = error_of([&] { faltung::read_idx(path); });
  EXPECT_CONTAINS(msg, path);
  EXPECT_CONTAINS(msg, "magic");
}

TEST_F(DataTest, UnsupportedTypeIsAnError) {
  const std::string path = write("float.idx", idx_bytes({2}, iota_bytes(8), 0x0D));
  const std::string msg = error_of([&] { faltung::read_idx(path); });
  EXPECT_CONTAINS(msg, path);
  EXPECT_CONTAINS(msg, "unsupported IDX element type 0x0d");
}

TEST_F(DataTest, ZeroDimensionsIsAnError) {
  const std::string path = write("scalar.idx", Bytes{0, 0, 8, 0, 42});
  const std::string msg = error_of([&] { faltung::read_idx(path); });
  EXPECT_CONTAINS(msg, path);
  EXPECT_CONTAINS(msg, "0 dimensions");
}

TEST_F(DataTest, TruncatedHeaderIsAnError) {
  const Bytes full = idx_bytes({60000, 28, 28}, {});
  for (std::size_t len = 0; len < full.size(); ++len) {
    const std::string path = write("short_header.idx", Bytes(full.begin(), full.begin() + len));
    const std::string msg = error_of([&] { faltung::read_idx(path); });
    EXPECT_CONTAINS(msg, path);
    EXPECT_CONTAINS(msg, "ends inside the IDX header");
  }
}

TEST_F(DataTest, TooFewDataBytesIsAnError) {
  const std::string path = write("short.idx", idx_bytes({3, 4}, iota_bytes(11)));
  const std::string msg = error_of([&] { faltung::read_idx(path); });
  EXPECT_CONTAINS(msg, path);
  EXPECT_CONTAINS(msg, "describe 12 data bytes");
  EXPECT_CONTAINS(msg, "only 11");
  EXPECT_CONTAINS(msg, "too few");
}

TEST_F(DataTest, TooManyDataBytesIsAnError) {
  const std::string path = write("long.idx", idx_bytes({3, 4}, iota_bytes(13)));
  const std::string msg = error_of([&] { faltung::read_idx(path); });
  EXPECT_CONTAINS(msg, path);
  EXPECT_CONTAINS(msg, "describe 12 data bytes");
  EXPECT_CONTAINS(msg, "too many");
}

TEST_F(DataTest, OverflowingDimensionsAreAnError) {
  const std::string path = write("overflow.idx", idx_bytes({0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu}, iota_bytes(8)));
  const std::string msg = error_of([&] { faltung::read_idx(path); });
  EXPECT_CONTAINS(msg, path);
  EXPECT_CONTAINS(msg, "overflow");
}

TEST_F(DataTest, HugeClaimInTinyFileAllocatesLittle) {
  // 4294967295 x 28 x 28 images claimed, 20 bytes present.
  Bytes idx = idx_bytes({0xFFFFFFFFu, 28, 28}, iota_bytes(20));
  std::vector<std::string> paths = {write("huge_claim.idx", idx)};
#if FALTUNG_HAS_ZLIB
  paths.push_back(write("huge_claim.idx.gz", gzip_bytes(idx)));
#endif
  for (const std::string& path : paths) {
    g_largest_allocation = 0;
    const std::string msg = error_of([&] { faltung::read_idx(path); });
    EXPECT_LT(g_largest_allocation.load(), std::size_t(1) << 20) << path;
    EXPECT_CONTAINS(msg, path);
    EXPECT_CONTAINS(msg, "only 20");
  }
}

#if FALTUNG_HAS_ZLIB
TEST_F(DataTest, GzipDataNotMatchingDimensionsIsAnError) {
  const std::string short_path = write("short.gz", gzip_bytes(idx_bytes({3, 4}, iota_bytes(11))));
  std::string msg = error_of([&] { faltung::read_idx(short_path); });
  EXPECT_CONTAINS(msg, short_path);
  EXPECT_CONTAINS(msg, "too few");
  const std::string long_path = write("long.gz", gzip_bytes(idx_bytes({3, 4}, iota_bytes(13))));
  msg = error_of([&] { faltung::read_idx(long_path); });
  EXPECT_CONTAINS(msg, long_path);
  EXPECT_CONTAINS(msg, "too many");
}

TEST_F(DataTest, GzipBombBehindSmallHeaderIsCutOff) {
  // 8 MB of zeros compress to ~8 KB; the header claims 16 bytes. Reading must stop right
  // after them, not inflate everything.
  const Bytes gz = gzip_bytes(idx_bytes({16}, Bytes(8u << 20, 0)));
  const std::string path = write("bomb.gz", gz);
  g_largest_allocation = 0;
  const std::string msg = error_of([&] { faltung::read_idx(path); });
  EXPECT_CONTAINS(msg, "too many");
  EXPECT_LT(g_largest_allocation.load(), std::size_t(1) << 20);
}

TEST_F(DataTest, TruncatedGzipIsAnErrorAtEveryCut) {
  const Bytes gz = gzip_bytes(idx_bytes({5, 7}, iota_bytes(35)));
  // From 2 bytes on the file still starts with the gzip magic, so every cut is a truncated stream,
  // including cuts inside the 8-byte trailer after all the data has come out.
  for (std::size_t len = 2; len < gz.size(); ++len) {
    const std::string path = write("cut.gz", Bytes(gz.begin(), gz.begin() + len));
    const std::string msg = error_of([&] { faltung::read_idx(path); });
    EXPECT_CONTAINS(msg, path);
    EXPECT_CONTAINS(msg, "truncated gzip stream") << " at length " << len;
  }
}

TEST_F(DataTest, CorruptGzipCrcIsAnError) {
  Bytes gz = gzip_bytes(idx_bytes({5, 7}, iota_bytes(35)));
  gz[gz.size() - 8] ^= 0x01;  // the trailer's CRC-32
  const std::string path = write("bad_crc.gz", gz);
  const std::string msg = error_of([&] { faltung::read_idx(path); });
  EXPECT_CONTAINS(msg, path);
  EXPECT_CONTAINS(msg, "corrupt gzip stream");
  EXPECT_CONTAINS(msg, "incorrect data check");
}

TEST_F(DataTest, CorruptGzipLengthIsAnError) {
  Bytes gz = gzip_bytes(idx_bytes({5, 7}, iota_bytes(35)));
  gz[gz.size() - 4] ^= 0x01;  // the trailer's length
  const std::string path = write("bad_len.gz", gz);
  const std::string msg = error_of([&] { faltung::read_idx(path); });
  EXPECT_CONTAINS(msg, path);
  EXPECT_CONTAINS(msg, "incorrect length check");
}

TEST_F(DataTest, CorruptGzipDataIsAnErrorAtEveryByte) {
  const Bytes good = gzip_bytes(idx_bytes({6, 9}, iota_bytes(54, 3)));
  // Every byte after the 10-byte gzip header: the deflate data and the trailer. A changed byte
  // is caught by deflate's own checks, the CRC, the length, or the IDX checks; never read as good.
  for (std::size_t i = 10; i < good.size(); ++i) {
    Bytes gz = good;
    gz[i] ^= 0xA5;
    const std::string path = write("flipped.gz", gz);
    const std::string msg = error_of([&] { faltung::read_idx(path); });
    EXPECT_CONTAINS(msg, path) << " flipped byte " << i;
  }
  // A plainly invalid deflate block type (binary 11) is reported by zlib as bad data.
  Bytes gz = good;
  gz[10] |= 0x06;
  const std::string path = write("bad_block.gz", gz);
  const std::string msg = error_of([&] { faltung::read_idx(path); });
  EXPECT_CONTAINS(msg, "corrupt gzip stream");
  EXPECT_CONTAINS(msg, "invalid block type");
}

TEST_F(DataTest, GarbageAfterGzipStreamIsAnError) {
  Bytes gz = gzip_bytes(idx_bytes({2, 2}, iota_bytes(4)));
  gz.push_back(0x00);
  gz.push_back(0x42);
  const std::string path = write("trailing.gz", gz);
  const std::string msg = error_of([&] { faltung::read_idx(path); });
  EXPECT_CONTAINS(msg, path);
  EXPECT_CONTAINS(msg, "after the end of the gzip data");
}
#else
TEST_F(DataTest, GzipWithoutZlibIsAClearError) {
  const std::string path = write("x.gz", Bytes{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3});
  const std::string msg = error_of([&] { faltung::read_idx(path); });
  EXPECT_CONTAINS(msg, path);
  EXPECT_CONTAINS(msg, "without zlib");
}
#endif

// ---------------------------------------------------------------------------------------------
// ImageDataset and the loaders

TEST_F(DataTest, ImageDatasetConvertsRangesAndBatches) {
  const std::string images = write("img", idx_bytes({3, 2, 2}, {0, 51, 102, 255, 1, 2, 3, 4, 10, 20, 30, 40}));
  const std::string labels = write("lbl", idx_bytes({3}, {4, 0, 9}));
  const ImageDataset d = faltung::load_idx_image_dataset(images, labels, 10);
  EXPECT_EQ(d.size(), 3u);
  EXPECT_EQ(d.sample_shape(), (faltung::Shape{1, 2, 2}));

  const faltung::Tensor<double> all = d.images<double>();
  EXPECT_EQ(all.shape(), (faltung::Shape{3, 1, 2, 2}));
  EXPECT_EQ(all[0], 0.0);
  EXPECT_EQ(all[1], 51.0 / 255.0);
  EXPECT_EQ(all[3], 1.0);
  EXPECT_EQ(all[11], 40.0 / 255.0);

  const faltung::Tensor<float> mid = d.images<float>(1, 1);
  EXPECT_EQ(mid.shape(), (faltung::Shape{1, 1, 2, 2}));
  EXPECT_EQ(mid[0], 1.0f / 255.0f);
  EXPECT_EQ(mid[3], 4.0f / 255.0f);
  EXPECT_EQ(d.images<float>(3).shape(), (faltung::Shape{0, 1, 2, 2}));

  const faltung::Tensor<float> y = d.label_tensor<float>(1);
  EXPECT_EQ(y.shape(), (faltung::Shape{2}));
  EXPECT_EQ(y[0], 0.0f);
  EXPECT_EQ(y[1], 9.0f);

  const faltung::Tensor<double> gx = d.gather_images<double>({2, 0});
  EXPECT_EQ(gx.shape(), (faltung::Shape{2, 1, 2, 2}));
  EXPECT_EQ(gx[0], 10.0 / 255.0);
  EXPECT_EQ(gx[7], 1.0);
  const faltung::Tensor<double> gy = d.gather_labels<double>({2, 0});
  EXPECT_EQ(gy[0], 9.0);
  EXPECT_EQ(gy[1], 4.0);

  const ImageDataset h = d.head(2);
  EXPECT_EQ(h.count, 2u);
  EXPECT_EQ(h.pixels, Bytes(d.pixels.begin(), d.pixels.begin() + 8));
  EXPECT_EQ(h.labels, (Bytes{4, 0}));
  const ImageDataset s = d.slice(1, 2);
  EXPECT_EQ(s.labels, (Bytes{0, 9}));
  EXPECT_EQ(s.images<float>()[0], 1.0f / 255.0f);
}

TEST_F(DataTest, ImageDatasetRejectsOutOfRangeRequests) {
  const std::string images = write("img", idx_bytes({3, 1, 1}, {1, 2, 3}));
  const std::string labels = write("lbl", idx_bytes({3}, {0, 1, 2}));
  ImageDataset d = faltung::load_idx_image_dataset(images, labels, 3);
  EXPECT_CONTAINS(error_of([&] { d.images<float>(2, 2); }), "exceed the 3 samples");
  EXPECT_CONTAINS(error_of([&] { d.images<float>(4); }), "beyond");
  EXPECT_CONTAINS(error_of([&] { d.label_tensor<float>(1, ImageDataset::all - 1); }), "exceed");
  EXPECT_CONTAINS(error_of([&] { d.head(4); }), "exceed the 3 samples");
  EXPECT_CONTAINS(error_of([&] { d.gather_images<float>({0, 3}); }), "index 3 out of range");
  EXPECT_CONTAINS(error_of([&] { d.gather_labels<float>({5}); }), "index 5 out of range");
  d.pixels.pop_back();
  EXPECT_CONTAINS(error_of([&] { d.images<float>(); }), "ImageDataset");
}

TEST_F(DataTest, CountMismatchIsAnError) {
  const std::string images = write("img", idx_bytes({3, 2, 2}, iota_bytes(12)));
  const std::string labels = write("lbl", idx_bytes({2}, {0, 1}));
  const std::string msg = error_of([&] { faltung::load_idx_image_dataset(images, labels, 10); });
  EXPECT_CONTAINS(msg, images);
  EXPECT_CONTAINS(msg, labels);
  EXPECT_CONTAINS(msg, "counts differ");
}

TEST_F(DataTest, LabelOutOfRangeIsAnError) {
  const std::string images = write("img", idx_bytes({3, 2, 2}, iota_bytes(12)));
  const std::string labels = write("lbl", idx_bytes({3}, {0, 10, 1}));
  const std::string msg = error_of([&] { faltung::load_idx_image_dataset(images, labels, 10); });
  EXPECT_CONTAINS(msg, labels);
  EXPECT_CONTAINS(msg, "label 10 of sample 1 is out of range");
  // 9 is the largest valid label of ten classes.
  write("lbl", idx_bytes({3}, {0, 9, 1}));
  EXPECT_NO_THROW(faltung::load_idx_image_dataset(images, labels, 10));
}

TEST_F(DataTest, WrongRankIsAnError) {
  const std::string images = write("img", idx_bytes({12}, iota_bytes(12)));
  const std::string labels = write("lbl", idx_bytes({3, 1}, {0, 1, 2}));
  EXPECT_CONTAINS(error_of([&] { faltung::load_idx_image_dataset(images, labels, 10); }), images);
  const std::string images3 = write("img3", idx_bytes({3, 2, 2}, iota_bytes(12)));
  EXPECT_CONTAINS(error_of([&] { faltung::load_idx_image_dataset(images3, labels, 10); }), labels);
}

TEST_F(DataTest, LoadsFashionMnistLayoutGzipped) {
  write_split("train", 3, 28, 28, {9, 0, 5}, true);
  write_split("t10k", 2, 28, 28, {1, 2}, true);
  const faltung::FashionMnist f = faltung::load_fashion_mnist(dir_.string());
  EXPECT_EQ(f.train.count, 3u);
  EXPECT_EQ(f.test.count, 2u);
  EXPECT_EQ(f.train.sample_shape(), (faltung::Shape{1, 28, 28}));
  EXPECT_EQ(f.train.labels, (Bytes{9, 0, 5}));
  EXPECT_EQ(f.test.labels, (Bytes{1, 2}));
  const faltung::Tensor<float> x = f.train.images<float>();
  EXPECT_EQ(x.shape(), (faltung::Shape{3, 1, 28, 28}));
  EXPECT_EQ(x[0], 7.0f / 255.0f);  // iota from 7
  EXPECT_EQ(x.at({1, 0, 0, 0}), static_cast<float>((7 + 784) % 256) / 255.0f);
}

TEST_F(DataTest, LoadsFashionMnistLayoutUncompressed) {
  write_split("train", 2, 28, 28, {3, 4}, false);
  write_split("t10k", 1, 28, 28, {8}, false);
  const faltung::FashionMnist f = faltung::load_fashion_mnist(dir_.string() + "/");
  EXPECT_EQ(f.train.count, 2u);
  EXPECT_EQ(f.test.labels, (Bytes{8}));
}

TEST_F(DataTest, FashionMnistMissingFileIsAnError) {
  write_split("train", 2, 28, 28, {3, 4}, true);
  const std::string msg = error_of([&] { faltung::load_fashion_mnist(dir_.string()); });
  EXPECT_CONTAINS(msg, (dir_ / "t10k-images-idx3-ubyte").string());
  EXPECT_CONTAINS(msg, "cannot open");
}

TEST_F(DataTest, FashionMnistRejectsOtherImageSizes) {
  write_split("train", 2, 32, 32, {3, 4}, true);
  write_split("t10k", 1, 28, 28, {8}, true);
  const std::string msg = error_of([&] { faltung::load_fashion_mnist(dir_.string()); });
  EXPECT_CONTAINS(msg, (dir_ / "train-images-idx3-ubyte").string());
  EXPECT_CONTAINS(msg, "(1, 32, 32)");
  EXPECT_CONTAINS(msg, "(1, 28, 28)");
}

TEST_F(DataTest, FashionMnistRejectsCountMismatchAndBadLabels) {
  write_split("train", 2, 28, 28, {3, 4, 5}, true);
  write_split("t10k", 1, 28, 28, {8}, true);
  EXPECT_CONTAINS(error_of([&] { faltung::load_fashion_mnist(dir_.string()); }), "counts differ");
  write_split("train", 2, 28, 28, {3, 10}, true);
  EXPECT_CONTAINS(error_of([&] { faltung::load_fashion_mnist(dir_.string()); }), "label 10 of sample 1");
}

TEST(FashionMnist, ClassNames) {
  const auto& names = faltung::FashionMnist::class_names();
  ASSERT_EQ(names.size(), 10u);
  EXPECT_EQ(names[0], "T-shirt/top");
  EXPECT_EQ(names[1], "Trouser");
  EXPECT_EQ(names[2], "Pullover");
  EXPECT_EQ(names[3], "Dress");
  EXPECT_EQ(names[4], "Coat");
  EXPECT_EQ(names[5], "Sandal");
  EXPECT_EQ(names[6], "Shirt");
  EXPECT_EQ(names[7], "Sneaker");
  EXPECT_EQ(names[8], "Bag");
  EXPECT_EQ(names[9], "Ankle boot");
}

// ---------------------------------------------------------------------------------------------
// The real dataset

TEST(FashionMnist, RealData) {
  const std::string dir = faltung::default_fashion_mnist_dir();
  if (!fs::is_directory(dir)) GTEST_SKIP() << "Fashion-MNIST not found in " << dir
                                           << " (install dataset-fashion-mnist or set FALTUNG_FASHION_MNIST_DIR)";
#if !FALTUNG_HAS_ZLIB
  if (!fs::exists(fs::path(dir) / "t10k-labels-idx1-ubyte"))
    GTEST_SKIP() << "built without zlib, and " << dir << " holds no uncompressed files";
#endif
  const faltung::FashionMnist f = faltung::load_fashion_mnist(dir);
  ASSERT_EQ(f.train.count, 60000u);
  ASSERT_EQ(f.test.count, 10000u);
  EXPECT_EQ(f.train.sample_shape(), (faltung::Shape{1, 28, 28}));
  EXPECT_EQ(f.test.sample_shape(), (faltung::Shape{1, 28, 28}));

  // The published files: balanced classes, known first labels, known pixel sums (which only a
  // byte-exact decompression reproduces).
  std::vector<std::size_t> train_per_class(10), test_per_class(10);
  for (std::uint8_t l : f.train.labels) ++train_per_class.at(l);
  for (std::uint8_t l : f.test.labels) ++test_per_class.at(l);
  EXPECT_EQ(train_per_class, std::vector<std::size_t>(10, 6000));
  EXPECT_EQ(test_per_class, std::vector<std::size_t>(10, 1000));
  EXPECT_EQ(f.train.labels[0], 9);  // an ankle boot
  EXPECT_EQ(f.test.labels[1], 2);
  std::uint64_t train_sum = 0, test_sum = 0, first_sum = 0;
  for (std::uint8_t p : f.train.pixels) train_sum += p;
  for (std::uint8_t p : f.test.pixels) test_sum += p;
  for (std::size_t i = 0; i < 784; ++i) first_sum += f.train.pixels[i];
  EXPECT_EQ(train_sum, 3431114169u);
  EXPECT_EQ(test_sum, 573469082u);
  EXPECT_EQ(first_sum, 76247u);

  const faltung::Tensor<float> x = f.test.images<float>();
  EXPECT_EQ(x.shape(), (faltung::Shape{10000, 1, 28, 28}));
  EXPECT_EQ(*std::min_element(x.begin(), x.end()), 0.0f);
  EXPECT_EQ(*std::max_element(x.begin(), x.end()), 1.0f);
  const faltung::Tensor<float> y = f.test.label_tensor<float>();
  EXPECT_EQ(y.shape(), (faltung::Shape{10000}));
  EXPECT_EQ(*std::min_element(y.begin(), y.end()), 0.0f);
  EXPECT_EQ(*std::max_element(y.begin(), y.end()), 9.0f);

  const faltung::Tensor<double> head = f.train.head(100).images<double>();
  EXPECT_EQ(head.shape(), (faltung::Shape{100, 1, 28, 28}));
  double s = 0;
  for (std::size_t i = 0; i < 784; ++i) s += head[i];
  EXPECT_NEAR(s, 76247.0 / 255.0, 1e-9);
}

}  // namespace
