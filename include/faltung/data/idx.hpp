#pragma once
// Reading IDX files, the format of MNIST and Fashion-MNIST, plain or gzip-compressed.
//
// An IDX file is two zero bytes, a type byte, a byte giving the number of dimensions, one
// big-endian uint32 per dimension (outermost first), then the elements in row-major order.
// A file is gzip-compressed when it starts with the gzip magic bytes 1f 8b, whatever its name:
// downloads get renamed, and a name is not evidence.
//
// Files are untrusted input. read_idx checks every claim of the header against the bytes that
// are really there, and never allocates from the header's claim alone: the data buffer grows as
// bytes arrive, so a 20-byte file claiming 4 billion images costs one small first chunk, and a
// gzip stream is decompressed no further than one byte past what the header describes (a
// decompression bomb behind a modest header is cut off there).

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <sstream>
#include <string>
#include <system_error>
#include <vector>

#include "faltung/config.hpp"
#include "faltung/sizes.hpp"

#if FALTUNG_HAS_ZLIB
#include <zlib.h>
#endif

FALTUNG_BEGIN_NAMESPACE

/// The contents of an IDX file of unsigned bytes (type 0x08).
struct IdxArray {
  std::vector<std::uint32_t> dims;  ///< the dimensions, outermost first: (N, 28, 28) for images
  std::vector<std::uint8_t> data;   ///< the elements, row-major; data.size() == numel()

  /// The number of elements: the product of the dimensions (overflow-checked).
  std::size_t numel() const { return checked_product(dims.begin(), dims.end(), "IdxArray: the number of elements"); }
};

namespace detail {

/// "60000 x 28 x 28"
inline std::string idx_dims_string(const std::vector<std::uint32_t>& dims) {
  std::ostringstream os;
  for (std::size_t i = 0; i < dims.size(); ++i) os << (i ? " x " : "") << dims[i];
  return os.str();
}

inline const char* idx_type_name(std::uint8_t type) {
  switch (type) {
    case 0x08: return "unsigned byte";
    case 0x09: return "signed byte";
    case 0x0B: return "int16";
    case 0x0C: return "int32";
    case 0x0D: return "float32";
    case 0x0E: return "float64";
    default: return "not an IDX type";
  }
}

inline std::string hex_byte(std::uint8_t b) {
  const char* digits = "0123456789abcdef";
  return std::string("0x") + digits[b >> 4] + digits[b & 15];
}

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};

/// The bytes of one file, decompressed on the fly when the file starts with the gzip magic.
/// Every failure throws faltung::Error naming the file.
class IdxByteReader {
 public:
  explicit IdxByteReader(const std::string& path) : path_(path), in_(64 * 1024) {
    file_.reset(std::fopen(path.c_str(), "rb"));
    if (!file_) detail::fail("read_idx: cannot open '", path_, "': ", std::generic_category().message(errno));
    fill_input();
    gzip_ = in_len_ >= 2 && in_[0] == 0x1f && in_[1] == 0x8b;
    if (gzip_) {
#if FALTUNG_HAS_ZLIB
      zs_.next_in = in_.data();
      zs_.avail_in = static_cast<uInt>(in_len_);
      // 15 + 16: the largest window, and a gzip wrapper only (we saw its magic), so zlib checks
      // the gzip trailer's CRC-32 and length for us.
      const int rc = inflateInit2(&zs_, 15 + 16);
      if (rc != Z_OK) detail::fail("read_idx: '", path_, "': cannot start zlib (", rc, ")");
      z_ready_ = true;
#else
      detail::fail("read_idx: '", path_, "' is gzip-compressed, but faltung was built without zlib "
                   "support (FALTUNG_HAS_ZLIB is 0): link zlib (the CMake target does when it finds "
                   "it) or decompress the file first");
#endif
    }
  }
  ~IdxByteReader() {
#if FALTUNG_HAS_ZLIB
    if (z_ready_) inflateEnd(&zs_);
#endif
  }
  IdxByteReader(const IdxByteReader&) = delete;
  IdxByteReader& operator=(const IdxByteReader&) = delete;

  bool gzip() const { return gzip_; }

  /// Reads up to n bytes into dst and returns how many it read: fewer than n only at the end of
  /// the (decompressed) data.
  std::size_t read(std::uint8_t* dst, std::size_t n) { return gzip_ ? read_gzip(dst, n) : read_raw(dst, n); }

 private:
  void fill_input() {
    in_pos_ = 0;
    in_len_ = std::fread(in_.data(), 1, in_.size(), file_.get());
    if (in_len_ < in_.size()) note_end();
  }
  // fread stops short only at the end of the file or on an error; tell them apart once.
  void note_end() {
    if (std::ferror(file_.get()))
      detail::fail("read_idx: read error in '", path_, "': ", std::generic_category().message(errno));
    eof_ = true;
  }

  std::size_t read_raw(std::uint8_t* dst, std::size_t n) {
    std::size_t got = std::min(n, in_len_ - in_pos_);
    std::copy(in_.data() + in_pos_, in_.data() + in_pos_ + got, dst);
    in_pos_ += got;
    if (got < n && !eof_) {
      // Large reads go straight into the caller's buffer, not through ours.
      const std::size_t more = std::fread(dst + got, 1, n - got, file_.get());
      if (more < n - got) note_end();
      got += more;
    }
    return got;
  }

#if FALTUNG_HAS_ZLIB
  std::size_t read_gzip(std::uint8_t* dst, std::size_t n) {
    std::size_t got = 0;
    while (got < n) {
      if (member_ended_) {
        // gzip allows several members back to back (as `cat a.gz b.gz` makes); anything else
        // after the end of a member is garbage, not data.
        if (zs_.avail_in == 0 && !eof_) refill();
        if (zs_.avail_in == 0) break;  // the clean end of the stream
        if (zs_.next_in[0] != 0x1f)
          detail::fail("read_idx: '", path_, "': corrupt gzip stream: bytes after the end of the gzip data "
                       "that do not start another gzip member");
        inflateReset(&zs_);
        member_ended_ = false;
      }
      if (zs_.avail_in == 0 && !eof_) refill();
      // avail_out is 32 bits; a larger request is served over several rounds.
      const std::size_t chunk = std::min<std::size_t>(n - got, std::size_t(1) << 30);
      zs_.next_out = dst + got;
      zs_.avail_out = static_cast<uInt>(chunk);
      const int rc = inflate(&zs_, Z_NO_FLUSH);
      got += chunk - zs_.avail_out;
      switch (rc) {
        case Z_OK: break;
        case Z_STREAM_END: member_ended_ = true; break;
        case Z_BUF_ERROR:
          // No progress was possible: with all input used up, the file ends mid-stream.
          // (Z_BUF_ERROR is also zlib's answer to a second call after a truncated stream, so
          // a loop here cannot spin.)
          detail::fail("read_idx: '", path_, "': truncated gzip stream: the file ends before the "
                       "end of the compressed data");
        case Z_MEM_ERROR: detail::fail("read_idx: '", path_, "': out of memory while decompressing");
        default:  // Z_DATA_ERROR (bad data, bad CRC or length), Z_NEED_DICT, Z_STREAM_ERROR
          detail::fail("read_idx: '", path_, "': corrupt gzip stream: ", zs_.msg ? zs_.msg : "invalid data");
      }
    }
    return got;
  }
  void refill() {
    fill_input();
    zs_.next_in = in_.data();
    zs_.avail_in = static_cast<uInt>(in_len_);
  }
  z_stream zs_{};
  bool z_ready_ = false;
  bool member_ended_ = false;
#else
  std::size_t read_gzip(std::uint8_t*, std::size_t) { return 0; }  // unreachable: the constructor threw
#endif

  std::string path_;
  std::unique_ptr<std::FILE, FileCloser> file_;
  std::vector<std::uint8_t> in_;  // input buffer: raw bytes, or compressed bytes for zlib
  std::size_t in_pos_ = 0, in_len_ = 0;
  bool eof_ = false;
  bool gzip_ = false;
};

}  // namespace detail

/// Reads an IDX file of unsigned bytes (type 0x08), plain or gzip-compressed (detected by the
/// gzip magic bytes, not by the name).
///
/// Throws faltung::Error, naming the file and the problem, when the file cannot be opened or
/// read; when it is gzip-compressed and faltung was built without zlib; when the gzip stream is
/// truncated or corrupt (bad data, bad CRC or length, trailing garbage); when the magic number is
/// wrong, the element type is not 0x08, or the header has no dimensions or ends early; when the
/// product of the dimensions overflows size_t; and when the data holds fewer or more bytes than
/// the dimensions describe.
inline IdxArray read_idx(const std::string& path) {
  detail::IdxByteReader in(path);
  const char* where = in.gzip() ? "the decompressed data" : "the file";

  std::uint8_t magic[4];
  std::size_t got = in.read(magic, 4);
  FALTUNG_CHECK(got == 4, "read_idx: '", path, "': ", where, " ends inside the IDX header (", got,
                " bytes; the magic number alone takes 4)");
  if (magic[0] != 0 || magic[1] != 0)
    detail::fail("read_idx: '", path, "' is not an IDX file: bad magic number ", detail::hex_byte(magic[0]), ' ',
                 detail::hex_byte(magic[1]), ' ', detail::hex_byte(magic[2]), ' ', detail::hex_byte(magic[3]),
                 " (an IDX file starts with two zero bytes", in.gzip() ? ", after decompression" : "", ")");
  if (magic[2] != 0x08)
    detail::fail("read_idx: '", path, "': unsupported IDX element type ", detail::hex_byte(magic[2]), " (",
                 detail::idx_type_name(magic[2]), "); only 0x08 (unsigned byte) is supported");
  const std::size_t ndims = magic[3];
  FALTUNG_CHECK(ndims > 0, "read_idx: '", path, "': the IDX header declares 0 dimensions");

  std::uint8_t dim_bytes[4 * 255];
  got = in.read(dim_bytes, 4 * ndims);
  FALTUNG_CHECK(got == 4 * ndims, "read_idx: '", path, "': ", where, " ends inside the IDX header (", ndims,
                " dimensions take ", 4 + 4 * ndims, " header bytes, only ", 4 + got, " are present)");
  IdxArray a;
  a.dims.resize(ndims);
  for (std::size_t i = 0; i < ndims; ++i) {
    const std::uint8_t* b = dim_bytes + 4 * i;
    a.dims[i] = std::uint32_t(b[0]) << 24 | std::uint32_t(b[1]) << 16 | std::uint32_t(b[2]) << 8 | b[3];
  }
  const std::size_t numel = checked_product(a.dims.begin(), a.dims.end(), "read_idx: '", path, "': dimensions ",
                                            detail::idx_dims_string(a.dims), " overflow");

  // Grow by doubling as bytes arrive, never to more than the header claims: memory follows the
  // data actually present, and the copies cost less than the decompression.
  const std::size_t first_chunk = std::size_t(64) * 1024;
  std::size_t have = 0;
  while (have < numel) {
    const std::size_t want = have == 0 ? std::min(numel, first_chunk)
                                       : (have <= numel / 2 ? 2 * have : numel);
    a.data.resize(want);
    have += in.read(a.data.data() + have, want - have);
    if (have < want)
      detail::fail("read_idx: '", path, "': dimensions ", detail::idx_dims_string(a.dims), " describe ", numel,
                   " data bytes, but ", where, " holds only ", have, " after the header (too few bytes)");
  }
  // Reading past the end also drives zlib through the gzip trailer, so its CRC is checked.
  std::uint8_t extra;
  if (in.read(&extra, 1) != 0)
    detail::fail("read_idx: '", path, "': dimensions ", detail::idx_dims_string(a.dims), " describe ", numel,
                 " data bytes, but ", where, " holds more after the header (too many bytes)");
  return a;
}

FALTUNG_END_NAMESPACE
