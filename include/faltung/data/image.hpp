#pragma once
// Reading your own pictures as model inputs: PNG, JPEG, BMP and binary PGM/PPM files, decoded by
// stb_image and preprocessed as Fashion-MNIST was made (data/image_preprocess.hpp).
//
//   Sequential<float> net = load_model<float>("fmnist.faltung");
//   Tensor<float> x = load_image<float>("shirt.jpg");              // (1, 1, 28, 28)
//   Tensor<float> batch = load_images<float>({"a.png", "b.jpg"});  // (2, 1, 28, 28)
//
// stb_image is a separate library: this header is not part of <faltung/faltung.hpp>. In CMake,
// link faltung::image, which faltung defines when it finds stb (Debian: libstb-dev, whose
// libstb.so holds stb_image's compiled code):
//
//   find_package(faltung 0.1 REQUIRED COMPONENTS image)
//   target_link_libraries(my_app PRIVATE faltung::image)
//
// Without CMake, compile with `pkg-config --cflags --libs stb`. With a header-only copy of stb
// (vcpkg, conan, a vendored stb_image.h) and no libstb, put stb_image's implementation into
// exactly one .cpp file of your program:
//
//   #define STB_IMAGE_IMPLEMENTATION
//   #include <stb_image.h>
//
// This header never defines STB_IMAGE_IMPLEMENTATION itself: a header included by many
// translation units would define stb's functions once in each.
//
// Files are untrusted input. The format is recognised by its first bytes, not its name; the
// dimensions are read from the header and checked (ImageOptions::max_pixels) before any pixel is
// decoded; the file's size is bounded (ImageOptions::max_file_bytes); and a truncated file is an
// error, not an image with a black or grey lower part (stb_image fills missing BMP and PGM rows
// with zeros, so their expected sizes are checked here). Every error is a faltung::Error naming
// the file.
//
// Thread safety: load_image may be called from several threads at once (Debian's libstb keeps
// stb_image's error text per thread). It reads pictures top row first as long as the program
// leaves stb_image's global stbi_set_flip_vertically_on_load at its default (off).

#include <stb_image.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

#include "faltung/config.hpp"
#include "faltung/data/idx.hpp"  // FileCloser, hex_byte
#include "faltung/data/image_preprocess.hpp"
#include "faltung/tensor.hpp"

FALTUNG_BEGIN_NAMESPACE

namespace detail {

enum class ImageFormat { Png, Jpeg, Bmp, Pnm };

inline const char* image_format_name(ImageFormat f) {
  switch (f) {
    case ImageFormat::Png: return "PNG";
    case ImageFormat::Jpeg: return "JPEG";
    case ImageFormat::Bmp: return "BMP";
    case ImageFormat::Pnm: return "PGM/PPM";
  }
  return "?";
}

/// The whole file, at most `max_bytes` of it. An error naming the file when it cannot be opened
/// (missing, a directory, no permission), cannot be read, is empty or is larger.
inline std::vector<unsigned char> read_image_file(const std::string& path, std::size_t max_bytes) {
  std::unique_ptr<std::FILE, FileCloser> f(std::fopen(path.c_str(), "rb"));
  if (!f) fail("load_image: cannot open '", path, "': ", std::generic_category().message(errno));
  std::vector<unsigned char> bytes;
  unsigned char chunk[64 * 1024];
  for (;;) {
    const std::size_t got = std::fread(chunk, 1, sizeof chunk, f.get());
    if (got > max_bytes - bytes.size())
      fail("load_image: '", path, "' is larger than ", max_bytes, " bytes (ImageOptions::max_file_bytes)");
    bytes.insert(bytes.end(), chunk, chunk + got);
    if (got < sizeof chunk) break;
  }
  // fopen succeeds on a directory; reading it fails with EISDIR.
  if (std::ferror(f.get())) fail("load_image: cannot read '", path, "': ", std::generic_category().message(errno));
  if (bytes.empty()) fail("load_image: '", path, "' is empty (0 bytes), not an image");
  return bytes;
}

inline std::uint32_t read_le(const unsigned char* p, int bytes) {
  std::uint32_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}
inline std::uint32_t read_be32(const unsigned char* p) {
  return std::uint32_t(p[0]) << 24 | std::uint32_t(p[1]) << 16 | std::uint32_t(p[2]) << 8 | p[3];
}

/// The format from the first bytes. An error naming the file for anything else, with a hint for
/// the formats stb_image cannot read or that this header does not check.
inline ImageFormat sniff_image_format(const std::vector<unsigned char>& b, const std::string& path) {
  auto starts = [&](const char* magic, std::size_t n) {
    return b.size() >= n && std::equal(magic, magic + n, b.begin(), [](char m, unsigned char c) {
             return static_cast<unsigned char>(m) == c;
           });
  };
  if (starts("\x89PNG\r\n\x1a\n", 8)) return ImageFormat::Png;
  if (starts("\xff\xd8\xff", 3)) return ImageFormat::Jpeg;
  if (starts("BM", 2)) return ImageFormat::Bmp;
  if (starts("P5", 2) || starts("P6", 2)) return ImageFormat::Pnm;
  if (b.size() >= 2 && b[0] == 'P' && b[1] >= '1' && b[1] <= '4')
    fail("load_image: '", path, "' is a plain (ASCII) or 1-bit PBM/PGM/PPM file (P", char(b[1]),
         "), which cannot be read: save it as a binary PGM (P5) or PPM (P6), or as PNG");
  if (starts("GIF8", 4) || starts("RIFF", 4) || starts("II*\0", 4) || starts("MM\0*", 4))
    fail("load_image: '", path, "' is a GIF, WebP or TIFF image, which cannot be read: convert it to PNG or JPEG");
  std::string first;
  for (std::size_t i = 0; i < b.size() && i < 8; ++i) first += (i ? " " : "") + hex_byte(b[i]);
  fail("load_image: '", path, "' is not a PNG, JPEG, BMP or PGM/PPM image (it starts with bytes ", first, ")");
}

/// A truncated PNG: walks the chunks up to IEND, each of which must lie inside the file.
inline void check_png_complete(const std::vector<unsigned char>& b, const std::string& path) {
  std::size_t at = 8;
  for (;;) {
    if (b.size() - at < 12)
      fail("load_image: '", path, "' is truncated: the PNG ends after ", b.size(), " bytes, before its IEND chunk");
    const std::size_t length = read_be32(&b[at]);
    if (length > b.size() - at - 12)
      fail("load_image: '", path, "' is truncated: a PNG chunk of ", length, " bytes at offset ", at,
           " runs past the end of the file (", b.size(), " bytes)");
    if (std::equal(&b[at + 4], &b[at + 8], "IEND")) return;
    at += 12 + length;
  }
}

/// A truncated uncompressed BMP: its pixel rows must all be in the file. (stb_image reads
/// missing bytes as zeros.) Headers it does not know are left to stb_image to judge.
inline void check_bmp_complete(const std::vector<unsigned char>& b, const std::string& path) {
  if (b.size() < 26) fail("load_image: '", path, "' is truncated: ", b.size(), " bytes, too few for a BMP header");
  const std::uint64_t data_offset = read_le(&b[10], 4), header = read_le(&b[14], 4);
  std::uint64_t width, height, bpp, compression = 0;
  if (header == 12) {  // OS/2 BITMAPCOREHEADER
    width = read_le(&b[18], 2);
    height = read_le(&b[20], 2);
    bpp = read_le(&b[24], 2);
  } else {
    if (b.size() < 34) fail("load_image: '", path, "' is truncated: ", b.size(), " bytes, too few for its BMP header");
    width = read_le(&b[18], 4);
    const std::int32_t h = std::int32_t(read_le(&b[22], 4));  // negative: rows stored top-down
    height = h < 0 ? std::uint64_t(-std::int64_t(h)) : std::uint64_t(h);
    bpp = read_le(&b[28], 2);
    compression = read_le(&b[30], 4);
  }
  // BI_RGB, BI_BITFIELDS and BI_ALPHABITFIELDS store every row in full; the RLE forms are
  // compressed (and stb_image refuses them).
  if (!(compression == 0 || compression == 3 || compression == 6) || width == 0 || height == 0 || bpp == 0 ||
      bpp > 32 || width > (std::uint64_t(1) << 24) || height > (std::uint64_t(1) << 24))
    return;
  const std::uint64_t row_bytes = (width * bpp + 31) / 32 * 4;
  const std::uint64_t needed = data_offset + row_bytes * height;
  if (b.size() < needed)
    fail("load_image: '", path, "' is truncated: its ", width, " x ", height, " BMP pixels need ", needed,
         " bytes, the file has ", b.size());
}

/// A truncated binary PGM/PPM: the header (magic, width, height, maxval, then one whitespace
/// byte) and width x height samples of 1 byte (maxval < 256) or 2 must all be in the file.
inline void check_pnm_complete(const std::vector<unsigned char>& b, const std::string& path) {
  std::size_t at = 2;
  auto is_space = [](unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; };
  auto number = [&](std::uint64_t& v) {
    for (;;) {  // whitespace and comments ('#' to the end of the line)
      while (at < b.size() && is_space(b[at])) ++at;
      if (at < b.size() && b[at] == '#') {
        while (at < b.size() && b[at] != '\n' && b[at] != '\r') ++at;
        continue;
      }
      break;
    }
    if (at >= b.size() || b[at] < '0' || b[at] > '9') return false;
    v = 0;
    while (at < b.size() && b[at] >= '0' && b[at] <= '9') {
      if (v > (std::uint64_t(1) << 40)) return false;
      v = v * 10 + (b[at++] - '0');
    }
    return true;
  };
  std::uint64_t width = 0, height = 0, maxval = 0;
  if (!number(width) || !number(height) || !number(maxval))
    fail("load_image: '", path, "' is truncated or damaged: its PGM/PPM header (width, height, maximum value) is incomplete");
  // stb_image judges these (and refuses sides over 2^24).
  if (width == 0 || height == 0 || width > (1u << 24) || height > (1u << 24) || maxval == 0 || maxval > 65535) return;
  ++at;  // the single whitespace byte before the samples
  const std::uint64_t samples = width * height * (b[1] == '6' ? 3 : 1) * (maxval > 255 ? 2 : 1);
  if (at > b.size() || b.size() - at < samples)
    fail("load_image: '", path, "' is truncated: its ", width, " x ", height, " pixels need ", samples,
         " bytes after the header, the file has ", at > b.size() ? 0 : b.size() - at);
}

struct StbiFree {
  void operator()(stbi_uc* p) const { stbi_image_free(p); }
};

/// A decoded picture: width x height pixels of `channels` interleaved bytes.
struct DecodedImage {
  std::unique_ptr<stbi_uc, StbiFree> pixels;
  std::size_t width = 0, height = 0, channels = 0;
};

/// Reads, recognises, checks and decodes the file; every failure a faltung::Error naming it.
inline DecodedImage decode_image_file(const std::string& path, const ImageOptions& options) {
  const std::vector<unsigned char> bytes = read_image_file(path, options.max_file_bytes_);
  FALTUNG_CHECK(bytes.size() <= std::size_t(std::numeric_limits<int>::max()), "load_image: '", path,
                "' is larger than stb_image can read (2 GiB)");
  const ImageFormat format = sniff_image_format(bytes, path);
  const int size = int(bytes.size());
  int w = 0, h = 0, channels = 0;  // channels: unused, stbi_info needs somewhere to put it
  auto check_claim = [&](std::uint64_t width, std::uint64_t height) {
    if (width > 0 && height > 0 && width > options.max_pixels_ / height)
      fail("load_image: '", path, "' claims ", width, " x ", height, " pixels, more than the limit of ",
           options.max_pixels_, " (ImageOptions::max_pixels)");
  };
  auto check_complete = [&] {
    switch (format) {
      case ImageFormat::Png: check_png_complete(bytes, path); break;
      case ImageFormat::Bmp: check_bmp_complete(bytes, path); break;
      case ImageFormat::Pnm: check_pnm_complete(bytes, path); break;
      case ImageFormat::Jpeg: break;  // stb_image reports a JPEG that ends early ("expected marker")
    }
  };
  // The header alone: the dimensions are checked before stb_image allocates for the pixels.
  if (!stbi_info_from_memory(bytes.data(), size, &w, &h, &channels)) {
    // stb_image refuses a PNG over 2^30 bytes of pixels in its header check already; say why.
    if (format == ImageFormat::Png && bytes.size() >= 24 && std::equal(&bytes[12], &bytes[16], "IHDR"))
      check_claim(read_be32(&bytes[16]), read_be32(&bytes[20]));
    check_complete();  // a cut header is "truncated", not "damaged"
    fail("load_image: '", path, "' is a damaged ", image_format_name(format), " file: its header cannot be read (",
         stbi_failure_reason(), ")");
  }
  check_claim(std::uint64_t(std::max(w, 0)), std::uint64_t(std::max(h, 0)));
  check_complete();
  if (w <= 0 || h <= 0) fail("load_image: '", path, "' has no pixels: it is ", w, " x ", h);
  // The channels as stored (grey, grey + alpha, RGB or RGBA; palettes expanded): the grey
  // conversion and the compositing are data/image_preprocess.hpp's.
  DecodedImage d;
  int w2 = 0, h2 = 0, stored = 0;
  d.pixels.reset(stbi_load_from_memory(bytes.data(), size, &w2, &h2, &stored, 0));
  if (!d.pixels)
    fail("load_image: cannot decode '", path, "' (", image_format_name(format), "): ", stbi_failure_reason(),
         " (stb_image); the file is damaged or truncated, or uses a variant stb_image does not read");
  FALTUNG_CHECK(w2 == w && h2 == h && stored >= 1 && stored <= 4, "load_image: '", path, "': its header says ", w,
                " x ", h, " but it decoded as ", w2, " x ", h2, " with ", stored, " channels");
  d.width = std::size_t(w);
  d.height = std::size_t(h);
  d.channels = std::size_t(stored);
  return d;
}

}  // namespace detail

/// The picture in `path` as a Fashion-MNIST model input, (1, 1, side, side) with values in
/// [0, 1] (see data/image_preprocess.hpp for each step). Reads PNG, JPEG, baseline BMP and
/// binary PGM/PPM. Throws faltung::Error naming the file when it is missing or unreadable, empty,
/// not one of those formats, truncated or damaged, has no pixels, or exceeds
/// options.max_pixels or options.max_file_bytes.
template <class T>
Tensor<T> load_image(const std::string& path, const ImageOptions& options = ImageOptions()) {
  const detail::DecodedImage d = detail::decode_image_file(path, options);
  return preprocess_image<T>(d.pixels.get(), d.width, d.height, d.channels, options);
}

/// Several pictures as one batch, (paths.size(), 1, side, side), in the order given. Throws as
/// load_image does for the first file that fails, naming it.
template <class T>
Tensor<T> load_images(const std::vector<std::string>& paths, const ImageOptions& options = ImageOptions()) {
  FALTUNG_CHECK(options.side_ >= 1 && options.side_ <= detail::max_image_side, "load_images: side ", options.side_,
                " is not in [1, ", detail::max_image_side, "]");
  const std::size_t per_image = options.side_ * options.side_;
  Tensor<T> batch(Shape{paths.size(), 1, options.side_, options.side_});
  for (std::size_t i = 0; i < paths.size(); ++i) {
    const detail::DecodedImage d = detail::decode_image_file(paths[i], options);
    detail::preprocess_image_into(d.pixels.get(), d.width, d.height, d.channels, options, batch.data() + i * per_image);
  }
  return batch;
}

FALTUNG_END_NAMESPACE
