#pragma once
// Model files: a model's architecture, layer names, inference configuration and weights in one
// versioned, checksummed file, written atomically.
//
//   save_model(net, "fmnist.faltung");        // or net.save(...)
//   load_weights(net, "fmnist.faltung");      // into a built model of the same architecture
//   load_weights_by_name(net, "fmnist.faltung");  // into the layers of `net` that share a name
//   auto net2 = load_model<float>("fmnist.faltung");  // io/load_model.hpp: rebuilds it, and
//                                                     // net2.predict gives probabilities
//
// The format, version 2. Every integer is little-endian, whatever the host; floats are IEEE-754
// binary32 or binary64 stored as their little-endian bit patterns.
//
//   offset  size       field
//   0       8          magic "FALTUNG\n"
//   8       u32        format version (2)
//   12      u32        scalar size in bytes: 4 (float) or 8 (double)
//           u32        input rank R (at most Shape::max_rank), then R x u64 dims: the
//                      per-sample input shape the model was built for, e.g. (1, 28, 28)
//           u32 + n    the architecture (Sequential::spec()), length then UTF-8 bytes
//           u32        layer count L (0, or one per layer of the architecture), then L times
//             u32 + n    the layer's name ("conv2d", "dense_1", or the user's own)
//           u32 + n    the loss the model was compiled with ("sparse_categorical_crossentropy";
//                      empty when it never was)
//           u32 + n    its output activation, what predict applies: "softmax", "sigmoid",
//                      "linear", ... (Activation::name())
//           f64        the activation's parameter (LeakyReLU's slope; 0.3 for the others)
//           u32        class name count C (0, or one per output of a sample), then C times
//             u32 + n    the class's name
//           u32        parameter tensor count P, then P times:
//             u32 + n    the name of its layer (one of the L names; empty when L is 0)
//             u32 + n    the parameter's name ("kernel", "bias"), length then bytes
//             u32 + 8R   its rank R and R x u64 dims
//             numel x s  its values, row-major, s = the scalar size
//           u64        FNV-1a 64 (offset basis 0xcbf29ce484222325, prime 0x100000001b3) of
//                      every preceding byte, magic included
//
// Version 1, which faltung wrote before, lacks the layer names, the loss, the activation and the
// class names, and its tensors lack their layer's name. It still loads: load_model gives the
// model its default layer names and no loss, so predict() returns the raw outputs (logits, for a
// network that ends in dense:10) until the model is compiled, as it did when the file was
// written; load_weights_by_name refuses it. Saving the loaded model (after compile(), for the
// probabilities) writes version 2.
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
// provides spec(), input_shape(), built() and parameters() (a std::vector<Parameter<T>*>), and
// may provide layer_names() and named_parameters() (the layer names; required by
// load_weights_by_name) and inference_config() (saved when there).

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "faltung/config.hpp"
#include "faltung/io/atomic_file.hpp"
#include "faltung/kernels/activation.hpp"
#include "faltung/model/inference_config.hpp"
#include "faltung/parameter.hpp"
#include "faltung/tensor.hpp"

FALTUNG_BEGIN_NAMESPACE

inline constexpr char model_file_magic[8] = {'F', 'A', 'L', 'T', 'U', 'N', 'G', '\n'};
/// The version save_model writes. Files of version 1 still load (see the top of this file).
inline constexpr std::uint32_t model_file_version = 2;

/// One parameter tensor as stored in a model file; its values stay in ModelFile::bytes.
struct ModelFileTensor {
  std::string layer;  ///< the name of its layer ("" in version 1 files)
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
  std::vector<std::string> layer_names;  ///< one per layer, or none (version 1)
  InferenceConfig inference;             ///< the loss, its output activation, the class names
  std::vector<ModelFileTensor> tensors;
  std::vector<unsigned char> bytes;  ///< the whole file
};

/// Options of Sequential::load_weights(path, options).
struct LoadWeightsOptions {
  /// false (the default): the file must hold the model's architecture, and every weight is
  /// loaded. true: only the layers whose names are in the file are loaded, each checked against
  /// the file's layer of that name; the others keep their weights (load_weights_by_name).
  LoadWeightsOptions& by_name(bool v) { by_name_ = v; return *this; }

  bool by_name_ = false;
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
  void f64(double v) {
    std::uint64_t u;
    std::memcpy(&u, &v, 8);
    u64(u);
  }
  void strings(const std::vector<std::string>& v, const char* what) {
    FALTUNG_CHECK(v.size() <= 0xffffffffu, "cannot save: too many ", what, "s (", v.size(), ")");
    u32(std::uint32_t(v.size()));
    for (const std::string& s : v) string(s, what);
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
  double f64(const std::string& what) {
    const std::uint64_t u = u64(what);
    double v;
    std::memcpy(&v, &u, 8);
    return v;
  }
  /// A count, then that many strings. Each string takes at least its 4-byte length, so a corrupt
  /// count is refused before anything is reserved for it.
  std::vector<std::string> strings(const std::string& what) {
    const std::uint32_t count = u32("the " + what + " count");
    if (count > remaining() / 4)
      fail("cannot load '", path_, "': the file is truncated: it claims ", count, " ", what, "s but has only ",
           remaining(), " bytes left for them (or the count is corrupt)");
    std::vector<std::string> v;
    v.reserve(count);
    for (std::uint32_t i = 0; i < count; ++i) v.push_back(string(what + " " + std::to_string(i)));
    return v;
  }
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
  // Blocks that start small and double up to 1 MiB: a small file costs a small buffer.
  for (std::size_t block = std::size_t(1) << 12;; block = std::min(2 * block, std::size_t(1) << 20)) {
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

/// Validates the bytes of a model file: magic, version, structure, checksum. `path` names the
/// file in messages (it is not opened). Throws faltung::Error naming it and what is wrong.
inline ModelFile parse_model_file(std::vector<unsigned char> bytes, const std::string& path) {
  ModelFile f;
  f.path = path;
  f.bytes = std::move(bytes);
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
  if (f.version < 1 || f.version > model_file_version)
    detail::fail("cannot load '", path, "': it has format version ", f.version, ", but this faltung (",
                 FALTUNG_VERSION_MAJOR, ".", FALTUNG_VERSION_MINOR, ".", FALTUNG_VERSION_PATCH,
                 ") reads versions 1 to ", model_file_version);
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
  std::string activation;
  double alpha = 0;
  if (f.version >= 2) {
    f.layer_names = r.strings("layer name");
    f.inference.loss = r.string("the loss name");
    activation = r.string("the output activation");
    alpha = r.f64("the output activation's parameter");
    f.inference.class_names = r.strings("class name");
  }
  const std::uint32_t count = r.u32("the parameter count");
  // Each tensor takes at least 8 bytes (name length and rank; 12 with its layer's name): a
  // corrupt count cannot make us reserve more than the file could hold.
  if (count > r.remaining() / 8)
    detail::fail("cannot load '", path, "': the file is truncated: it claims ", count,
                 " parameter tensors but has only ", r.remaining(), " bytes left for them (or the count is corrupt)");
  f.tensors.reserve(count);
  for (std::uint32_t i = 0; i < count; ++i) {
    const std::string which = "parameter " + std::to_string(i);
    ModelFileTensor t;
    if (f.version >= 2) t.layer = r.string(which + "'s layer name");
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

  // What the fields say, once the checksum has shown that they are what was written.
  if (f.version >= 2) {
    if (!detail::activation_from_name(activation, alpha, f.inference.output_activation))
      detail::fail("cannot load '", path, "': the file is corrupt: unknown output activation '", activation, "'");
    if (f.inference.output_activation.kind == ActivationKind::LeakyReLU && !detail::leaky_relu_slope_ok(alpha))
      detail::fail("cannot load '", path, "': the file is corrupt: the output activation leaky_relu has slope ", alpha,
                   " (it must be positive and finite)");
    std::vector<std::string> sorted = f.layer_names;
    std::sort(sorted.begin(), sorted.end());
    for (std::size_t i = 0; i < f.tensors.size(); ++i) {
      const std::string& layer = f.tensors[i].layer;
      if (sorted.empty() ? !layer.empty() : !std::binary_search(sorted.begin(), sorted.end(), layer))
        detail::fail("cannot load '", path, "': the file is corrupt: parameter ", i, " ('", f.tensors[i].name,
                     "') belongs to layer '", layer, "', which is not among its layers");
    }
  }
  return f;
}

/// Reads and validates a model file: magic, version, structure, checksum. Throws
/// faltung::Error naming the file and what is wrong.
inline ModelFile read_model_file(const std::string& path) {
  return parse_model_file(detail::read_file_bytes(path), path);
}

namespace detail {

template <class M, class = void>
struct has_layer_names : std::false_type {};
template <class M>
struct has_layer_names<M, std::void_t<decltype(std::declval<M&>().layer_names()),
                                      decltype(std::declval<M&>().named_parameters())>> : std::true_type {};

template <class M, class = void>
struct has_inference_config : std::false_type {};
template <class M>
struct has_inference_config<M, std::void_t<decltype(std::declval<const M&>().inference_config())>>
    : std::true_type {};

/// The values of file tensor `t` into `p`, whose shape the caller has checked.
template <class T>
void copy_values(const ModelFile& f, const ModelFileTensor& t, Parameter<T>& p) {
  const unsigned char* src = f.bytes.data() + t.offset;
  if (f.scalar_size == 4)
    decode_values<T, float>(src, p.value.size(), p.value.data());
  else
    decode_values<T, double>(src, p.value.size(), p.value.data());
}

/// "kernel (3, 2), bias (2)": a layer's parameters, for messages.
inline std::string describe_parameters(const std::vector<std::pair<std::string, Shape>>& ps) {
  if (ps.empty()) return "no parameters";
  std::ostringstream os;
  for (std::size_t i = 0; i < ps.size(); ++i) os << (i ? ", " : "") << ps[i].first << ' ' << ps[i].second;
  return os.str();
}

/// A name that occurs more than once in `names`, or "" when none does.
inline std::string repeated_name(std::vector<std::string> names) {
  std::sort(names.begin(), names.end());
  const auto twice = std::adjacent_find(names.begin(), names.end());
  return twice == names.end() ? std::string() : *twice;
}

}  // namespace detail

/// Copies the weights of a validated file into a built model of the same architecture and
/// input shape. Checks everything before changing anything.
template <class Model>
void load_weights(Model& m, const ModelFile& f) {
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
  for (std::size_t i = 0; i < params.size(); ++i) detail::copy_values(f, f.tensors[i], *params[i]);
}

/// Loads the weights in `path` into the built model `m`, which must have the file's
/// architecture (m.spec()) and input shape. float and double files both load (converted).
template <class Model>
void load_weights(Model& m, const std::string& path) {
  load_weights(m, read_model_file(path));
}

/// Loads, into each layer of the built model `m` whose name is also a layer's name in the file,
/// that layer's weights: for a model that shares only some layers with the saved one (a new
/// head on a trained base, a deeper network that starts as the saved one). The architectures
/// and input shapes need not match; each matched layer's parameters must (their names and
/// shapes), or nothing is loaded and the error names the layer and both sets of parameters. The
/// layers of `m` whose names are not in the file keep their weights; layers of the file that `m`
/// lacks are ignored. Returns the names of the layers loaded, in `m`'s order (layers without
/// parameters are not among them). Needs a file of format version 2, which stores layer names.
template <class Model>
std::vector<std::string> load_weights_by_name(Model& m, const ModelFile& f) {
  static_assert(detail::has_layer_names<Model>::value,
                "load_weights_by_name: the model must provide layer_names() and named_parameters()");
  using T = typename detail::parameter_scalar<typename decltype(m.parameters())::value_type>::type;
  const std::string where = "cannot load '" + f.path + "' by layer name";
  if (f.layer_names.empty())
    detail::fail(where, ": the file stores no layer names (format version ", f.version,
                 "); load it with load_model and save it again to write them");
  FALTUNG_CHECK(m.built(), where, ": build the model first");
  const std::vector<std::string> names = m.layer_names();
  const std::string twice = detail::repeated_name(names);
  if (!twice.empty())
    detail::fail(where, ": the model has two layers named '", twice, "'; give each layer its own name");

  // Each layer's parameters, by name, in the model and in the file.
  using Parameters = std::vector<std::pair<std::string, Shape>>;
  struct Named {
    Parameters model, file;
    std::vector<Parameter<T>*> to;
    std::vector<const ModelFileTensor*> from;
    int in_file = 0;  // how many of the file's layers have this name
  };
  std::map<std::string, Named> layers;
  for (const std::string& name : names) layers[name];
  for (const NamedParameter<T>& p : m.named_parameters()) {
    Named& l = layers[p.layer];
    l.model.emplace_back(p.parameter->name, p.parameter->value.shape());
    l.to.push_back(p.parameter);
  }
  for (const std::string& name : f.layer_names) {
    const auto it = layers.find(name);
    if (it != layers.end()) ++it->second.in_file;
  }
  for (const ModelFileTensor& t : f.tensors) {
    const auto it = layers.find(t.layer);
    if (it == layers.end()) continue;
    it->second.file.emplace_back(t.name, t.shape);
    it->second.from.push_back(&t);
  }

  // Everything checked before anything is copied.
  std::vector<std::string> loaded;
  for (const std::string& name : names) {
    const Named& l = layers[name];
    if (l.in_file == 0) continue;
    if (l.in_file > 1)
      detail::fail(where, ": the file has ", l.in_file, " layers named '", name, "', so which to load is ambiguous");
    if (l.model != l.file)
      detail::fail(where, ": layer '", name, "' has ", detail::describe_parameters(l.file), " in the file but ",
                   detail::describe_parameters(l.model), " in the model");
    if (!l.to.empty()) loaded.push_back(name);
  }
  for (const std::string& name : loaded) {
    const Named& l = layers[name];
    for (std::size_t i = 0; i < l.to.size(); ++i) detail::copy_values(f, *l.from[i], *l.to[i]);
  }
  return loaded;
}

/// load_weights_by_name from the file `path`.
template <class Model>
std::vector<std::string> load_weights_by_name(Model& m, const std::string& path) {
  return load_weights_by_name(m, read_model_file(path));
}

/// Writes the model's architecture, layer names, inference configuration and weights to `path`
/// atomically, in format version 2 (see the top of this file).
template <class Model>
void save_model(Model& m, const std::string& path) {
  using T = typename detail::parameter_scalar<typename decltype(m.parameters())::value_type>::type;
  static_assert(sizeof(T) == 4 || sizeof(T) == 8, "save_model: the scalar must be float or double");
  FALTUNG_CHECK(m.built(), "cannot save '", path, "': build the model first");
  const std::string spec = m.spec();
  std::vector<std::string> layers;
  std::vector<NamedParameter<T>> params;
  if constexpr (detail::has_layer_names<Model>::value) {
    layers = m.layer_names();
    params = m.named_parameters();
  } else {
    for (Parameter<T>* p : m.parameters()) params.push_back({std::string(), p});
  }
  InferenceConfig inference;
  if constexpr (detail::has_inference_config<Model>::value) inference = m.inference_config();

  detail::AtomicFile file(path);
  detail::ModelFileWriter w(file);
  w.bytes(model_file_magic, sizeof(model_file_magic));
  w.u32(model_file_version);
  w.u32(std::uint32_t(sizeof(T)));
  w.shape(m.input_shape());
  w.string(spec, "architecture");
  w.strings(layers, "layer name");
  w.string(inference.loss, "loss name");
  w.string(inference.output_activation.name(), "output activation");
  w.f64(inference.output_activation.alpha);
  w.strings(inference.class_names, "class name");
  w.u32(std::uint32_t(params.size()));
  for (const NamedParameter<T>& p : params) {
    w.string(p.layer, "layer name");
    w.string(p.parameter->name, "parameter name");
    w.shape(p.parameter->value.shape());
    w.values(p.parameter->value.data(), p.parameter->value.size());
  }
  w.finish();
  file.commit();
}

FALTUNG_END_NAMESPACE
