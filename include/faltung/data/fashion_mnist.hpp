#pragma once
// Image classification datasets kept as bytes, and the Fashion-MNIST loader.
//
// An ImageDataset stores pixels as uint8 (47 MB for Fashion-MNIST's training set, against 188 MB
// as float) and converts to Tensor<T> only what is asked for: a range, the first N samples, or a
// batch of indices. Pixels become p / 255, in [0, 1]; nothing else is done to them, so a model
// that wants standardised inputs does that itself, once.

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "faltung/config.hpp"
#include "faltung/data/idx.hpp"
#include "faltung/tensor.hpp"

FALTUNG_BEGIN_NAMESPACE

/// Images with one class label each, stored compactly as bytes.
///
/// Invariants (checked by every conversion, since the fields are public):
/// pixels.size() == count * channels * height * width and labels.size() == count.
struct ImageDataset {
  /// "To the end": the default sample count of images() and label_tensor().
  static constexpr std::size_t all = std::numeric_limits<std::size_t>::max();

  std::vector<std::uint8_t> pixels;  ///< (count, channels, height, width), row-major, 0..255
  std::vector<std::uint8_t> labels;  ///< (count), class indices 0..num_classes-1
  std::size_t count = 0;             ///< the number of samples
  std::size_t channels = 1;          ///< 1 for grey images
  std::size_t height = 0;            ///< rows per image
  std::size_t width = 0;             ///< columns per image
  std::size_t num_classes = 0;       ///< labels are below it

  std::size_t size() const { return count; }
  /// Values per sample: channels * height * width.
  std::size_t sample_size() const {
    return checked_mul(checked_mul(channels, height, "ImageDataset: a sample's size"), width,
                       "ImageDataset: a sample's size");
  }
  /// The shape of one sample, (channels, height, width): what a model is built for.
  Shape sample_shape() const { return {channels, height, width}; }

  /// Samples [first, first + n) as a (n, channels, height, width) tensor with values p / 255.
  /// n = all means to the end. Throws faltung::Error when the range leaves [0, count).
  template <class T>
  Tensor<T> images(std::size_t first = 0, std::size_t n = all) const {
    n = checked_range("images", first, n);
    Tensor<T> out(Shape{n, channels, height, width});
    const auto lut = pixel_table<T>();
    const std::uint8_t* src = pixels.data() + first * sample_size();
    for (std::size_t i = 0; i < n * sample_size(); ++i) out[i] = lut[src[i]];
    return out;
  }

  /// Labels [first, first + n) as a (n) tensor of class indices (0, 1, ... as values of T).
  template <class T>
  Tensor<T> label_tensor(std::size_t first = 0, std::size_t n = all) const {
    n = checked_range("label_tensor", first, n);
    Tensor<T> out(Shape{n});
    for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<T>(labels[first + i]);
    return out;
  }

  /// The samples at indices[0..n) as a (n, channels, height, width) batch in `out`, which is
  /// resized and so allocates only when it grows: a training loop reuses one tensor per batch.
  /// Throws faltung::Error for an index >= count.
  template <class T>
  void gather_images(const std::size_t* indices, std::size_t n, Tensor<T>& out) const {
    check_consistent();
    const std::size_t s = sample_size();
    out.resize(Shape{n, channels, height, width});
    const auto lut = pixel_table<T>();
    for (std::size_t i = 0; i < n; ++i) {
      check_index("gather_images", indices[i]);
      const std::uint8_t* src = pixels.data() + indices[i] * s;
      T* dst = out.data() + i * s;
      for (std::size_t j = 0; j < s; ++j) dst[j] = lut[src[j]];
    }
  }

  /// The labels at indices[0..n) as a (n) tensor in `out`. Throws for an index >= count.
  template <class T>
  void gather_labels(const std::size_t* indices, std::size_t n, Tensor<T>& out) const {
    check_consistent();
    out.resize(Shape{n});
    for (std::size_t i = 0; i < n; ++i) {
      check_index("gather_labels", indices[i]);
      out[i] = static_cast<T>(labels[indices[i]]);
    }
  }

  /// gather_images into a new tensor.
  template <class T>
  Tensor<T> gather_images(const std::vector<std::size_t>& indices) const {
    Tensor<T> out;
    gather_images(indices.data(), indices.size(), out);
    return out;
  }

  /// gather_labels into a new tensor.
  template <class T>
  Tensor<T> gather_labels(const std::vector<std::size_t>& indices) const {
    Tensor<T> out;
    gather_labels(indices.data(), indices.size(), out);
    return out;
  }

  /// Samples [first, first + n) as a new dataset, still bytes. n = all means to the end.
  ImageDataset slice(std::size_t first, std::size_t n = all) const {
    n = checked_range("slice", first, n);
    ImageDataset d;
    d.channels = channels;
    d.height = height;
    d.width = width;
    d.num_classes = num_classes;
    d.count = n;
    const std::size_t s = sample_size();
    d.pixels.assign(pixels.begin() + first * s, pixels.begin() + (first + n) * s);
    d.labels.assign(labels.begin() + first, labels.begin() + first + n);
    return d;
  }

  /// The first n samples (a --train-size option): converting them alone, not all 60000.
  /// Throws faltung::Error when n > count, rather than quietly training on fewer.
  ImageDataset head(std::size_t n) const { return slice(0, n); }

 private:
  // All 256 scaled values, computed once per call: a table lookup per pixel is exact (the same
  // p / 255 a division gives) and cheaper than dividing.
  template <class T>
  static std::array<T, 256> pixel_table() {
    std::array<T, 256> lut{};
    for (std::size_t p = 0; p < 256; ++p) lut[p] = static_cast<T>(p) / static_cast<T>(255);
    return lut;
  }

  void check_consistent() const {
    const std::size_t needed = checked_mul(count, sample_size(), "ImageDataset: the pixel count");
    FALTUNG_CHECK(pixels.size() == needed && labels.size() == count,
                  "ImageDataset: ", count, " samples of ", sample_shape(), " need ", needed,
                  " pixels and ", count, " labels, but it holds ", pixels.size(), " and ", labels.size());
  }
  void check_index(const char* what, std::size_t i) const {
    FALTUNG_CHECK(i < count, "ImageDataset::", what, ": index ", i, " out of range for ", count, " samples");
  }
  // Resolves n = all and checks the range without overflowing first + n.
  std::size_t checked_range(const char* what, std::size_t first, std::size_t n) const {
    check_consistent();
    FALTUNG_CHECK(first <= count, "ImageDataset::", what, ": first sample ", first, " is beyond the ", count,
                  " samples");
    if (n == all) return count - first;
    FALTUNG_CHECK(n <= count - first, "ImageDataset::", what, ": samples [", first, ", ", first, " + ", n,
                  ") exceed the ", count, " samples");
    return n;
  }
};

/// Builds an ImageDataset from an IDX file of images (N, H, W) or (N, C, H, W) and an IDX file
/// of labels (N). Throws faltung::Error, naming the file, for anything read_idx rejects, for
/// dimensions of the wrong rank, for image and label counts that differ, and for a label
/// >= num_classes.
inline ImageDataset load_idx_image_dataset(const std::string& images_path, const std::string& labels_path,
                                           std::size_t num_classes) {
  IdxArray images = read_idx(images_path);
  IdxArray labels = read_idx(labels_path);
  FALTUNG_CHECK(images.dims.size() == 3 || images.dims.size() == 4, "'", images_path,
                "': image files have 3 dimensions (N, H, W) or 4 (N, C, H, W), this one has ", images.dims.size(),
                " (", detail::idx_dims_string(images.dims), ")");
  FALTUNG_CHECK(labels.dims.size() == 1, "'", labels_path, "': label files have 1 dimension (N), this one has ",
                labels.dims.size(), " (", detail::idx_dims_string(labels.dims), ")");
  FALTUNG_CHECK(images.dims[0] == labels.dims[0], "image and label counts differ: '", images_path, "' holds ",
                images.dims[0], " images, '", labels_path, "' holds ", labels.dims[0], " labels");
  for (std::size_t i = 0; i < labels.data.size(); ++i)
    FALTUNG_CHECK(labels.data[i] < num_classes, "'", labels_path, "': label ", int(labels.data[i]), " of sample ", i,
                  " is out of range (", num_classes, " classes: 0..", num_classes - 1, ")");
  ImageDataset d;
  d.count = images.dims[0];
  const bool has_channels = images.dims.size() == 4;
  d.channels = has_channels ? images.dims[1] : 1;
  d.height = images.dims[has_channels ? 2 : 1];
  d.width = images.dims[has_channels ? 3 : 2];
  d.num_classes = num_classes;
  d.pixels = std::move(images.data);
  d.labels = std::move(labels.data);
  return d;
}

/// Fashion-MNIST (Zalando, 2017): 28x28 grey images of clothing in ten classes, 60000 for
/// training and 10000 for testing.
struct FashionMnist {
  static constexpr std::size_t num_classes = 10;

  ImageDataset train;  ///< 60000 samples in the published files
  ImageDataset test;   ///< 10000 samples in the published files

  /// The class names, indexed by label: "T-shirt/top", "Trouser", ..., "Ankle boot".
  static const std::array<std::string, num_classes>& class_names() {
    static const std::array<std::string, num_classes> names = {
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};
    return names;
  }
};

/// Where load_fashion_mnist looks by default: $FALTUNG_FASHION_MNIST_DIR when set and not empty,
/// else /usr/share/datasets/fashion-mnist (the Debian package dataset-fashion-mnist).
inline std::string default_fashion_mnist_dir() {
  const char* env = std::getenv("FALTUNG_FASHION_MNIST_DIR");
  return env && *env ? std::string(env) : std::string("/usr/share/datasets/fashion-mnist");
}

namespace detail {
// dir/name.gz when it exists, else dir/name (the same data, decompressed); an error naming both
// when neither does.
inline std::string find_fashion_mnist_file(const std::string& dir, const std::string& name) {
  const std::string base = dir.empty() || dir.back() == '/' ? dir + name : dir + "/" + name;
  for (const std::string& path : {base + ".gz", base}) {
    std::unique_ptr<std::FILE, FileCloser> f(std::fopen(path.c_str(), "rb"));
    if (f) return path;
  }
  fail("load_fashion_mnist: cannot open '", base, ".gz' nor '", base,
       "' (install the Debian package dataset-fashion-mnist, or pass the directory that holds the files)");
}

inline ImageDataset load_fashion_mnist_split(const std::string& dir, const std::string& prefix) {
  const std::string images_path = find_fashion_mnist_file(dir, prefix + "-images-idx3-ubyte");
  const std::string labels_path = find_fashion_mnist_file(dir, prefix + "-labels-idx1-ubyte");
  ImageDataset d = load_idx_image_dataset(images_path, labels_path, FashionMnist::num_classes);
  FALTUNG_CHECK(d.channels == 1 && d.height == 28 && d.width == 28, "load_fashion_mnist: '", images_path,
                "' holds images of ", d.sample_shape(), ", Fashion-MNIST images are (1, 28, 28)");
  return d;
}
}  // namespace detail

/// Loads Fashion-MNIST from `dir`, which holds train-images-idx3-ubyte.gz,
/// train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz (or the
/// same names without .gz). Throws faltung::Error, naming the file, when one is missing or
/// unreadable, fails read_idx's checks, holds images that are not 28x28, holds a different number
/// of images than labels, or holds a label >= 10.
inline FashionMnist load_fashion_mnist(const std::string& dir = default_fashion_mnist_dir()) {
  FashionMnist f;
  f.train = detail::load_fashion_mnist_split(dir, "train");
  f.test = detail::load_fashion_mnist_split(dir, "t10k");
  return f;
}

FALTUNG_END_NAMESPACE
