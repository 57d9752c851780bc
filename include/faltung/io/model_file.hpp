#pragma once
// Model files: a model's architecture and weights in one versioned, checksummed file, written
// atomically.
//
//   save_model(net, "fmnist.faltung");        // or net.save(...)
//   load_weights(net, "fmnist.faltung");      // into a built model of the same architecture
//   auto net2 = load_model<float>("fmnist.faltung");  // io/load_model.hpp: rebuilds it
//
// The format, version 1. Every integer is little-endian, whatever the host; floats are IEEE-754
// binary32 or binary64 stored as their little-endian bit patterns.
//
//   offset  size       field
//   0       8          magic "FALTUNG\n"
//   8       u32        format version (1)
//   12      u32        scalar size in bytes: 4 (float) or 8 (double)
//           u32        input rank R (at most Shape::max_rank), then R x u64 dims: the
//                      per-sample input shape the model was built for, e.g. (1, 28, 28)
//           u32 + n    the architecture (Sequential::spec()), length then UTF-8 bytes
//           u32        parameter tensor count P, then P times:
//             u32 + n    the parameter's name ("kernel", "bias"), length then bytes
//             u32 + 8R   its rank R and R x u64 dims
//             numel x s  its values, row-major, s = the scalar size
//           u64        FNV-1a 64 (offset basis 0xcbf29ce484222325, prime 0x100000001b3) of
//                      every preceding byte, magic included
//
// Reading checks, in this order, and names the file in every error: the magic ("not a faltung
// model file"), the version, the structure against the file size (a truncated file; no length
// field is trusted beyond the bytes that are really there, so a corrupt one cannot make us
// allocate gigabytes), the checksum ("corrupt"), then the architecture, the input shape and each
// parameter's shape against the model's. Only when all of it matches are the weights copied in,
// so a failed load leaves the model as it was. A float file loads into a double model and a
// double file into a float model, converted value by value (double -> float rounds to nearest):
// one can train in float and check gradients in double.
//
// Writing is atomic (io/atomic_file.hpp): a failed save (no such directory, disk full, an
// exception from the model half-way) leaves the previous file as it was.
//
// The functions are templates over the model, so this header does not need Sequential: a Model
// provides spec(), input_shape(), built() and parameters() (a std::vector<Parameter<T>*>).

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "faltung/config.hpp"
#include "faltung/io/atomic_file.hpp"
#include "faltung/parameter.hpp"
#include "faltung/tensor.hpp"

FALTUNG_BEGIN_NAMESPACE

inline constexpr char model_file_magic[8] = {'F', 'A', 'L', 'T', 'U', 'N', 'G', '\n'};
inline constexpr std::uint32_t model_file_version = 1;

/// One parameter tensor as stored in a model file; its values stay in ModelFile::bytes.
struct ModelFileTensor {
  std::string name;
  Shape shape;
  std::size_t offset = 0;  ///< where its values start in ModelFile::bytes
};

/// A model file read into memory and fully validated (structure and checksum), but not yet
/// compared with any model.
struct ModelFile {
  std::string path;
  std::uint32_t version = 0;
  std::uint32_t scalar_size = 0;  ///< 4 (float) or 8 (double)
  Shape input_shape;
  std::string spec;
  std::vector<ModelFileTensor> tensors;
  std::vector<unsigned char> bytes;  ///< the whole file
};

namespace detail {

inline bool host_is_little_endian() {
  const std::uint16_t one = 1;
  unsigned char first;
  std::memcpy(&first, &one, 1);
  return first == 1;
}

inline std::string hex64(std::uint64_t v) {
  char s[19] = "0x";
  for (int i = 0; i < 16; ++i) s[2 + i] = "0123456789abcdef"[(v >> (60 - 4 * i)) & 0xf];
  s[18] = '\0';
  return s;
}

/// FNV-1a 64, continued from `h`.
inline std::uint64_t fnv1a64(const unsigned char* p, std::size_t n, std::uint64_t h = 0xcbf29ce484222325ull) {
  for (std::size_t i = 0; i < n; ++i) {
    h ^= p[i];
    h *= 0x100000001b3ull;
  }
  return h;
}

// ---------------------------------------------------------------------------------------------
// Writing

/// Little-endian encoder that checksums everything it writes and passes it on in large blocks.
class ModelFileWriter {
 public:
  explicit ModelFileWriter(AtomicFile& out) : out_(out) { buffer_.reserve(capacity); }

  void bytes(const void* p, std::size_t n) {
    const auto* c = static_cast<const unsigned char*>(p);
    hash_ = fnv1a64(c, n, hash_);
    if (buffer_.size() + n > capacity) flush();
    if (n >= capacity) {
      out_.write(c, n);
    } else {
      buffer_.insert(buffer_.end(), c, c + n);
    }
  }
  void u32(std::uint32_t v) { unsigned_le(v, 4); }
  void u64(std::uint64_t v) { unsigned_le(v, 8); }
  void string(const std::string& s, const char* what) {
    FALTUNG_CHECK(s.size() <= 0xffffffffu, "cannot save: the ", what, " is too long (", s.size(), " bytes)");
    u32(std::uint32_t(s.size()));
    bytes(s.data(), s.size());
  }
  void shape(const Shape& s) {
    u32(std::uint32_t(s.rank()));
    for (std::size_t d : s) u64(d);
  }
  /// Raw values; byte-swapped on a big-endian host.
  template <class T>
  void values(const T* p, std::size_t n) {
    if (host_is_little_endian()) {
      bytes(p, n * sizeof(T));
      return;
    }
    using U = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;
    for (std::size_t i = 0; i < n; ++i) {
      U u;
      std::memcpy(&u, p + i, sizeof(T));
      unsigned_le(u, sizeof(T));
    }
  }
  /// Appends the checksum of everything so far, unhashed, and writes out the rest.
  void finish() {
    const std::uint64_t h = hash_;
    unsigned_le(h, 8);
    flush();
  }

 private:
  static constexpr std::size_t capacity = std::size_t(1) << 20;

  void unsigned_le(std::uint64_t v, int n) {
    unsigned char b[8];
    for (int i = 0; i < n; ++i) b[i] = static_cast<unsigned char>(v >> (8 * i));
    bytes(b, std::size_t(n));
  }
  void flush() {
    out_.write(buffer_.data(), buffer_.size());
    buffer_.clear();
  }

  AtomicFile& out_;
  std::vector<unsigned char> buffer_;
  std::uint64_t hash_ = 0xcbf29ce484222325ull;
};

/// The scalar type of a model, from what its parameters() returns.
template <class P>
struct parameter_scalar;
template <class T>
struct parameter_scalar<Parameter<T>*> {
  using type = T;
};

// ---------------------------------------------------------------------------------------------
// Reading

/// Bounds-checked little-endian decoder over the file's bytes. Running out of bytes is a
/// "truncated" error naming the field it was reading.
class ModelFileReader {
 public:
  ModelFileReader(const std::string& path, const std::vector<unsigned char>& b, std::size_t end)
      : path_(path), b_(b), end_(end) {}

  std::size_t position() const { return pos_; }
  void seek(std::size_t pos) { pos_ = pos; }
  std::size_t remaining() const { return end_ - pos_; }

  void need(std::size_t n, const std::string& what) {
    if (n > remaining())
      fail("cannot load '", path_, "': the file is truncated: it ends (", b_.size(), " bytes) in ", what,
           " at byte ", pos_, (n == std::size_t(-1) ? std::string() : ", which needs " + std::to_string(n) + " bytes"),
           " (or a length field is corrupt)");
  }
  std::uint64_t unsigned_le(int n, const std::string& what) {
    need(std::size_t(n), what);
    std::uint64_t v = 0;
    for (int i = 0; i < n; ++i) v |= std::uint64_t(b_[pos_ + std::size_t(i)]) << (8 * i);
    pos_ += std::size_t(n);
    return v;
  }
  std::uint32_t u32(const std::string& what) { return std::uint32_t(unsigned_le(4, what)); }
  std::uint64_t u64(const std::string& what) { return unsigned_le(8, what); }
  std::string string(const std::string& what) {
    const std::uint32_t n = u32(what + " length");
    need(n, what);  // checked before allocating
    std::string s(reinterpret_cast<const char*>(b_.data() + pos_), n);
    pos_ += n;
    return s;
  }
  Shape shape(const std::string& what) {
    const std::uint32_t rank = u32(what + " rank");
    if (rank > Shape::max_rank)
      fail("cannot load '", path_, "': the file is corrupt: ", what, " has rank ", rank, " (at most ",
           Shape::max_rank, ")");
    Shape s;
    for (std::uint32_t i = 0; i < rank; ++i) {
      const std::uint64_t d = u64(what);
      if constexpr (sizeof(std::size_t) < sizeof(std::uint64_t))
        if (d > std::uint64_t(std::size_t(-1)))
          fail("cannot load '", path_, "': the file is corrupt: ", what, " dimension ", d, " is too large");
      s.push_back(std::size_t(d));
    }
    return s;
  }
  /// Skips `numel` values of `scalar_size` bytes, checking (without overflow) that they are there.
  std::size_t skip_values(const Shape& s, std::size_t scalar_size, const std::string& what) {
    std::size_t bytes = scalar_size;
    for (std::size_t d : s) {
      if (d != 0 && bytes > std::size_t(-1) / d) need(std::size_t(-1), what);  // beyond any file
      bytes *= d;
    }
    need(bytes, what);
    const std::size_t at = pos_;
    pos_ += bytes;
    return at;
  }

 private:
  const std::string& path_;
  const std::vector<unsigned char>& b_;
  std::size_t end_;
  std::size_t pos_ = 0;
};

/// Reads a whole file. Reads in blocks rather than trusting a size from the file system, so
/// pipes work and nothing is allocated beyond what is really there.
inline std::vector<unsigned char> read_file_bytes(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) fail("cannot load '", path, "': cannot open it: ", errno_text(errno));
  std::vector<unsigned char> bytes;
  std::size_t got = 0;
  for (;;) {
    const std::size_t block = std::size_t(1) << 20;
    bytes.resize(got + block);
    const std::size_t n = std::fread(bytes.data() + got, 1, block, f);
    got += n;
    if (n < block) break;
  }
  const bool error = std::ferror(f) != 0;
  const int err = errno;
  std::fclose(f);
  if (error) fail("cannot load '", path, "': cannot read it: ", errno_text(err));
  bytes.resize(got);
  bytes.shrink_to_fit();
  return bytes;
}

/// dst[i] = src[i] for `n` little-endian values of type `From` at `src`, converted to T.
template <class T, class From>
void decode_values(const unsigned char* src, std::size_t n, T* dst) {
  using U = std::conditional_t<sizeof(From) == 4, std::uint32_t, std::uint64_t>;
  if (std::is_same<T, From>::value && host_is_little_endian()) {
    std::memcpy(dst, src, n * sizeof(T));
    return;
  }
  for (std::size_t i = 0; i < n; ++i) {
    U u = 0;
    for (std::size_t k = 0; k < sizeof(U); ++k) u |= U(src[i * sizeof(U) + k]) << (8 * k);
    From v;
    std::memcpy(&v, &u, sizeof(From));
    dst[i] = static_cast<T>(v);
  }
}

}  // namespace detail

/// Reads and validates a model file: magic, version, structure, checksum. Throws
/// faltung::Error naming the file and what is wrong.
inline ModelFile read_model_file(const std::string& path) {
  ModelFile f;
  f.path = path;
  f.bytes = detail::read_file_bytes(path);
  const std::vector<unsigned char>& b = f.bytes;
  const std::size_t n = b.size();

  // The magic first: anything else is simply not ours, whatever its length.
  const std::size_t m = std::min<std::size_t>(n, sizeof(model_file_magic));
  if (n == 0 || std::memcmp(b.data(), model_file_magic, m) != 0)
    detail::fail("cannot load '", path, "': not a faltung model file (",
                 n == 0 ? "it is empty" : "it does not start with the bytes \"FALTUNG\\n\"", ")");

  // The version before anything else: a later version may be laid out or checksummed differently.
  detail::ModelFileReader header(path, b, n);
  header.need(sizeof(model_file_magic), "the magic bytes");
  header.seek(sizeof(model_file_magic));
  f.version = header.u32("the format version");
  if (f.version != model_file_version)
    detail::fail("cannot load '", path, "': it has format version ", f.version, ", but this faltung (",
                 FALTUNG_VERSION_MAJOR, ".", FALTUNG_VERSION_MINOR, ".", FALTUNG_VERSION_PATCH,
                 ") reads only version ", model_file_version);
  f.scalar_size = header.u32("the scalar size");
  if (f.scalar_size != 4 && f.scalar_size != 8)
    detail::fail("cannot load '", path, "': the file is corrupt: scalar size ", f.scalar_size, " (expected 4 or 8)");

  // The structure, within the bytes before the 8-byte checksum.
  const std::size_t body_start = header.position();
  if (n < body_start + 8)
    detail::fail("cannot load '", path, "': the file is truncated: it ends (", n, " bytes) in the header");
  detail::ModelFileReader r(path, b, n - 8);
  r.seek(body_start);
  f.input_shape = r.shape("the input shape");
  f.spec = r.string("the architecture");
  const std::uint32_t count = r.u32("the parameter count");
  // Each tensor takes at least 8 bytes (name length and rank): a corrupt count cannot make us
  // reserve more than the file could hold.
  if (count > r.remaining() / 8)
    detail::fail("cannot load '", path, "': the file is truncated: it claims ", count,
                 " parameter tensors but has only ", r.remaining(), " bytes left for them (or the count is corrupt)");
  f.tensors.reserve(count);
  for (std::uint32_t i = 0; i < count; ++i) {
    const std::string which = "parameter " + std::to_string(i);
    ModelFileTensor t;
    t.name = r.string(which + "'s name");
    t.shape = r.shape(which + " ('" + t.name + "') shape");
    t.offset = r.skip_values(t.shape, f.scalar_size, which + " ('" + t.name + "') values");
    f.tensors.push_back(std::move(t));
  }
  if (r.remaining() != 0)
    detail::fail("cannot load '", path, "': the file is corrupt: ", r.remaining(),
                 " unexpected bytes after the last parameter");

  std::uint64_t stored = 0;
  for (int i = 0; i < 8; ++i) stored |= std::uint64_t(b[n - 8 + std::size_t(i)]) << (8 * i);
  const std::uint64_t actual = detail::fnv1a64(b.data(), n - 8);
  if (stored != actual)
    detail::fail("cannot load '", path, "': the file is corrupt: checksum mismatch (stored ", detail::hex64(stored),
                 ", computed ", detail::hex64(actual), "); it was damaged after it was written");
  return f;
}

/// Copies the weights of a validated file into a built model of the same architecture and
/// input shape. Checks everything before changing anything.
template <class Model>
void load_weights(Model& m, const ModelFile& f) {
  using T = typename detail::parameter_scalar<typename decltype(m.parameters())::value_type>::type;
  const std::string spec = m.spec();
  if (spec != f.spec)
    detail::fail("cannot load '", f.path, "' into this model: the file holds another architecture\n  file:  ", f.spec,
                 "\n  model: ", spec);
  FALTUNG_CHECK(m.built(), "cannot load '", f.path, "' into this model: build it first (the file is for input shape ",
                f.input_shape, "), or use load_model");
  if (m.input_shape() != f.input_shape)
    detail::fail("cannot load '", f.path, "' into this model: the file is for input shape ", f.input_shape,
                 ", the model was built for ", m.input_shape());
  const auto params = m.parameters();
  if (params.size() != f.tensors.size())
    detail::fail("cannot load '", f.path, "' into this model: the file has ", f.tensors.size(),
                 " parameter tensors, the model ", params.size());
  for (std::size_t i = 0; i < params.size(); ++i)
    if (params[i]->value.shape() != f.tensors[i].shape || params[i]->name != f.tensors[i].name)
      detail::fail("cannot load '", f.path, "' into this model: parameter ", i, " is '", f.tensors[i].name,
                   "' of shape ", f.tensors[i].shape, " in the file but '", params[i]->name, "' of shape ",
                   params[i]->value.shape(), " in the model");
  for (std::size_t i = 0; i < params.size(); ++i) {
    const unsigned char* src = f.bytes.data() + f.tensors[i].offset;
    T* dst = params[i]->value.data();
    const std::size_t count = params[i]->value.size();
    if (f.scalar_size == 4)
      detail::decode_values<T, float>(src, count, dst);
    else
      detail::decode_values<T, double>(src, count, dst);
  }
}

/// Loads the weights in `path` into the built model `m`, which must have the file's
/// architecture (m.spec()) and input shape. float and double files both load (converted).
template <class Model>
void load_weights(Model& m, const std::string& path) {
  load_weights(m, read_model_file(path));
}

/// Writes the model's architecture and weights to `path` atomically (see the top of this file).
template <class Model>
void save_model(Model& m, const std::string& path) {
  using T = typename detail::parameter_scalar<typename decltype(m.parameters())::value_type>::type;
  static_assert(sizeof(T) == 4 || sizeof(T) == 8, "save_model: the scalar must be float or double");
  FALTUNG_CHECK(m.built(), "cannot save '", path, "': build the model first");
  const std::string spec = m.spec();
  detail::AtomicFile file(path);
  detail::ModelFileWriter w(file);
  w.bytes(model_file_magic, sizeof(model_file_magic));
  w.u32(model_file_version);
  w.u32(std::uint32_t(sizeof(T)));
  w.shape(m.input_shape());
  w.string(spec, "architecture");
  const auto params = m.parameters();
  w.u32(std::uint32_t(params.size()));
  for (const Parameter<T>* p : params) {
    w.string(p->name, "parameter name");
    w.shape(p->value.shape());
    w.values(p->value.data(), p->value.size());
  }
  w.finish();
  file.commit();
}

FALTUNG_END_NAMESPACE
