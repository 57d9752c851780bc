#pragma once
// Turning a picture of your own into what a Fashion-MNIST model was trained on.
//
// Fashion-MNIST's images were made from product photos of clothing on a white background:
// converted to grey, the longest edge resized to 28 pixels, centred on a 28x28 canvas, and the
// intensities negated, so a garment is light on a black background. preprocess_image does the
// same to pixels you already have (data/image.hpp reads them from PNG, JPEG, BMP or PGM files):
//
//   1. grey: 0.299 R + 0.587 G + 0.114 B (ITU-R BT.601 luma, as PIL's convert("L") and
//      OpenCV's cvtColor compute it). Transparent pixels are composited over white, or over black
//      when the opaque content is light, so that the garment stands out from the matte either way.
//   2. the background: the median of the outermost rows and columns.
//   3. trimmed to the garment: the smallest rectangle holding every pixel that differs from the
//      background by more than 5% of the range (ImageOptions::trim, on by default).
//   4. fitted into side x side (28) keeping the aspect ratio: the longest edge becomes `side`
//      pixels, the other its proportional share (at least 1). Each output pixel is the average of
//      the source area it covers (partially covered source pixels weigh by their share), so no
//      detail is skipped and the mean brightness is kept: Fashion-MNIST subsampled instead, which
//      aliases fine patterns.
//   5. centred, the margins filled with the background.
//   6. light-on-dark: inverted (255 - v) when the background is light (above mid-grey), as
//      Fashion-MNIST's negation of its white-background photos; a dark background is kept.
//   7. scaled to [0, 1] once: v / 255, the scaling ImageDataset::images applies to the data set.
//      (The lecture's notebook divided by 255 twice, so its model saw a nearly black picture.)
//
// Fashion-MNIST's own steps, from its README: trim the edges close to the corner pixels' colour
// (within 5%), resize the longest edge to 28 by subsampling, sharpen, extend the shortest edge to
// 28 and centre, negate, convert to 8-bit grey. Here the trimming compares grey values with the
// border's median, the resizing averages areas instead of subsampling, and there is no sharpening.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

#include "faltung/config.hpp"
#include "faltung/tensor.hpp"

FALTUNG_BEGIN_NAMESPACE

/// Whether preprocess_image negates the intensities (255 - v).
enum class Inversion {
  Auto,    ///< when the background (the border's median) is lighter than mid-grey
  Always,  ///< dark garments on a light background, whatever the border says
  Never,   ///< light garments on a dark background already
};

/// How preprocess_image and load_image turn a picture into a model input.
struct ImageOptions {
  /// The side of the square result. Default 28, Fashion-MNIST's. At most 4096.
  ImageOptions& side(std::size_t v) { side_ = v; return *this; }
  /// When to negate the intensities. Default Inversion::Auto: a light background is inverted.
  ImageOptions& invert(Inversion v) { invert_ = v; return *this; }
  /// Whether to cut the picture to the garment first: to the smallest rectangle holding every
  /// pixel that differs from the background by more than 5% of the range, as Fashion-MNIST
  /// trimmed its photos. Default true: a garment in the middle of a larger photo then fills the
  /// 28 pixels as the data set's garments do, instead of a small part of them.
  ImageOptions& trim(bool v) { trim_ = v; return *this; }
  /// The largest picture accepted, in pixels (width x height). Default 2^26 (8192 x 8192).
  /// Checked before the pixels are decoded, so a file that claims enormous dimensions is an
  /// error rather than an allocation of gigabytes.
  ImageOptions& max_pixels(std::size_t v) { max_pixels_ = v; return *this; }
  /// The largest file load_image reads, in bytes. Default 256 MiB.
  ImageOptions& max_file_bytes(std::size_t v) { max_file_bytes_ = v; return *this; }

  std::size_t side_ = 28;
  Inversion invert_ = Inversion::Auto;
  bool trim_ = true;
  std::size_t max_pixels_ = std::size_t(1) << 26;
  std::size_t max_file_bytes_ = std::size_t(256) << 20;
};

namespace detail {

constexpr std::size_t max_image_side = 4096;

/// Grey in [0, 255] from interleaved 8-bit pixels of 1 (grey), 2 (grey, alpha), 3 (RGB) or
/// 4 (RGBA) channels, with alpha composited over `matte`.
class GreyPixels {
 public:
  GreyPixels(const std::uint8_t* pixels, std::size_t channels) : px_(pixels), channels_(channels) {}

  bool has_alpha() const { return channels_ == 2 || channels_ == 4; }
  void set_matte(double m) { matte_ = m; }

  /// The colour alone, ignoring alpha.
  double colour(std::size_t i) const {
    const std::uint8_t* p = px_ + i * channels_;
    if (channels_ <= 2) return double(p[0]);
    // In integers, then one division: a grey pixel (r = g = b) keeps its exact value.
    return double(299 * unsigned(p[0]) + 587 * unsigned(p[1]) + 114 * unsigned(p[2])) / 1000.0;
  }
  /// Opacity in [0, 1].
  double alpha(std::size_t i) const { return has_alpha() ? double(px_[i * channels_ + channels_ - 1]) / 255.0 : 1.0; }
  /// The colour composited over the matte.
  double operator()(std::size_t i) const {
    const double a = alpha(i);
    return a == 1.0 ? colour(i) : a * colour(i) + (1.0 - a) * matte_;
  }

 private:
  const std::uint8_t* px_;
  std::size_t channels_;
  double matte_ = 255.0;
};

/// White, or black when the opaque content is light on average: the matte the garment stands out
/// from. Only transparency makes it matter.
inline double choose_matte(const GreyPixels& grey, std::size_t count) {
  if (!grey.has_alpha()) return 255.0;
  double weighted = 0, opacity = 0;
  for (std::size_t i = 0; i < count; ++i) {
    const double a = grey.alpha(i);
    weighted += a * grey.colour(i);
    opacity += a;
  }
  return opacity > 0 && weighted / opacity > 127.5 ? 0.0 : 255.0;
}

/// The median grey of the outermost rows and columns: the background, even where the garment
/// touches the edge on one side.
inline double border_median(const GreyPixels& grey, std::size_t width, std::size_t height) {
  std::vector<double> border;
  border.reserve(2 * (width + height));
  for (std::size_t y = 0; y < height; ++y) {
    if (y == 0 || y + 1 == height) {
      for (std::size_t x = 0; x < width; ++x) border.push_back(grey(y * width + x));
    } else {
      border.push_back(grey(y * width));
      if (width > 1) border.push_back(grey(y * width + width - 1));
    }
  }
  auto mid = border.begin() + std::ptrdiff_t(border.size() / 2);
  std::nth_element(border.begin(), mid, border.end());
  return *mid;
}

/// A rectangle of the picture: columns [x, x + width), rows [y, y + height).
struct Crop {
  std::size_t x, y, width, height;
};

/// The smallest rectangle holding every pixel that differs from the background by more than 5% of
/// the full range, as Fashion-MNIST trimmed its photos; the whole picture when none does.
inline Crop garment_box(const GreyPixels& grey, std::size_t width, std::size_t height, double background) {
  std::size_t x0 = width, y0 = height, x1 = 0, y1 = 0;
  for (std::size_t y = 0; y < height; ++y)
    for (std::size_t x = 0; x < width; ++x)
      if (std::abs(grey(y * width + x) - background) > 0.05 * 255.0) {
        x0 = std::min(x0, x);
        x1 = std::max(x1, x + 1);
        y0 = std::min(y0, y);
        y1 = std::max(y1, y + 1);
      }
  if (x1 == 0) return {0, 0, width, height};
  return {x0, y0, x1 - x0, y1 - y0};
}

/// The source pixels each output pixel covers when `src` pixels are resampled to `dst`, and their
/// weights. In units of 1 / (src * dst) of the row, source pixel s spans [s * dst, (s + 1) * dst)
/// and output pixel o spans [o * src, (o + 1) * src): the overlaps are integers, so the weights
/// (overlap / src) of each output pixel sum to exactly 1 and every source pixel contributes in
/// total exactly its own width.
struct AreaWeights {
  std::vector<std::size_t> first;   ///< (dst + 1): output o uses source pixels [first[o], first[o + 1])...
  std::vector<std::size_t> source;  ///< ... of these indices
  std::vector<double> weight;       ///< ... with these weights

  AreaWeights(std::size_t src, std::size_t dst) {
    first.push_back(0);
    for (std::size_t o = 0; o < dst; ++o) {
      const std::size_t lo = o * src, hi = (o + 1) * src;  // in units of 1 / dst source pixels
      for (std::size_t s = lo / dst; s * dst < hi; ++s) {
        const std::size_t overlap = std::min(hi, (s + 1) * dst) - std::max(lo, s * dst);
        source.push_back(s);
        weight.push_back(double(overlap) / double(src));
      }
      first.push_back(source.size());
    }
  }
};

/// preprocess_image into `out`, side * side values.
template <class T>
void preprocess_image_into(const std::uint8_t* pixels, std::size_t width, std::size_t height, std::size_t channels,
                           const ImageOptions& options, T* out) {
  const std::size_t side = options.side_;
  FALTUNG_CHECK(channels >= 1 && channels <= 4, "preprocess_image: ", channels,
                " channels; expected 1 (grey), 2 (grey, alpha), 3 (RGB) or 4 (RGBA)");
  FALTUNG_CHECK(width > 0 && height > 0, "preprocess_image: the picture is empty (", width, " x ", height, ")");
  FALTUNG_CHECK(side >= 1 && side <= max_image_side, "preprocess_image: side ", side, " is not in [1, ",
                max_image_side, "]");
  FALTUNG_CHECK(width <= options.max_pixels_ / height, "preprocess_image: ", width, " x ", height,
                " pixels exceed the limit of ", options.max_pixels_, " (ImageOptions::max_pixels)");
  FALTUNG_CHECK(pixels != nullptr, "preprocess_image: no pixels (a null pointer) for ", width, " x ", height);

  GreyPixels grey(pixels, channels);
  grey.set_matte(choose_matte(grey, width * height));
  const double background = border_median(grey, width, height);
  const bool invert = options.invert_ == Inversion::Always || (options.invert_ == Inversion::Auto && background > 127.5);

  const Crop crop = options.trim_ ? garment_box(grey, width, height, background) : Crop{0, 0, width, height};

  // The fitted size: the longest edge becomes `side`, the other rounds to its share (at least 1).
  auto share = [&](std::size_t edge, std::size_t longest) {
    return std::max<std::size_t>(1, (2 * edge * side + longest) / (2 * longest));
  };
  const std::size_t fit_w = crop.width >= crop.height ? side : share(crop.width, crop.height);
  const std::size_t fit_h = crop.height >= crop.width ? side : share(crop.height, crop.width);
  const AreaWeights wx(crop.width, fit_w), wy(crop.height, fit_h);

  // Each output row is a weighted sum of source rows, each of them resampled horizontally first.
  // Consecutive output rows share at most one source row (the one their boundary cuts), so the
  // latest resampled row is kept: every source pixel is read at most twice per direction, and the
  // memory is two rows of the output whatever the picture's size.
  std::vector<double> row(fit_w), acc(fit_w);
  std::size_t row_of = std::numeric_limits<std::size_t>::max();
  auto resample_row = [&](std::size_t y) {
    for (std::size_t o = 0; o < fit_w; ++o) {
      double sum = 0;
      for (std::size_t k = wx.first[o]; k < wx.first[o + 1]; ++k)
        sum += wx.weight[k] * grey((crop.y + y) * width + crop.x + wx.source[k]);
      row[o] = sum;
    }
    row_of = y;
  };

  auto finish = [&](double v) {
    const double scaled = (invert ? 255.0 - v : v) / 255.0;  // the one scaling to [0, 1]
    return T(std::min(1.0, std::max(0.0, scaled)));
  };
  std::fill(out, out + side * side, finish(background));
  const std::size_t x0 = (side - fit_w) / 2, y0 = (side - fit_h) / 2;
  for (std::size_t oy = 0; oy < fit_h; ++oy) {
    std::fill(acc.begin(), acc.end(), 0.0);
    for (std::size_t k = wy.first[oy]; k < wy.first[oy + 1]; ++k) {
      if (wy.source[k] != row_of) resample_row(wy.source[k]);
      for (std::size_t ox = 0; ox < fit_w; ++ox) acc[ox] += wy.weight[k] * row[ox];
    }
    for (std::size_t ox = 0; ox < fit_w; ++ox) out[(y0 + oy) * side + x0 + ox] = finish(acc[ox]);
  }
}

}  // namespace detail

/// A picture as a Fashion-MNIST model input: (1, 1, side, side), values in [0, 1], light garment
/// on a dark background (see the top of this file for each step). `pixels` holds height rows of
/// width pixels, each of `channels` interleaved 8-bit values: 1 grey, 2 grey and alpha, 3 RGB,
/// 4 RGBA (what stb_image, libpng or OpenCV after a BGR-to-RGB conversion give).
/// Throws faltung::Error for another channel count, an empty picture, more than
/// options.max_pixels pixels, or a side outside [1, 4096].
template <class T>
Tensor<T> preprocess_image(const std::uint8_t* pixels, std::size_t width, std::size_t height, std::size_t channels,
                           const ImageOptions& options = ImageOptions()) {
  FALTUNG_CHECK(options.side_ >= 1 && options.side_ <= detail::max_image_side, "preprocess_image: side ",
                options.side_, " is not in [1, ", detail::max_image_side, "]");
  Tensor<T> out(Shape{1, 1, options.side_, options.side_});
  detail::preprocess_image_into(pixels, width, height, channels, options, out.data());
  return out;
}

FALTUNG_END_NAMESPACE
