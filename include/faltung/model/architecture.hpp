#pragma once
// The architecture language: a whole Sequential model in one line, as students type it after
// `--arch` and as model files store it.
//
//   conv:32:3:same:relu,pool:2,drop:0.25,flatten,dense:128:relu,dense:10
//
// Layers are separated by commas; each is a name and colon-separated fields. Spaces around
// tokens are ignored and names are case-insensitive. Every layer's spec() prints the canonical
// form, which this parser reads back, so parse(spec).spec() is a fixed point.
//
//   conv:FILTERS:KERNEL[:options]   Conv2D. KERNEL is 3 or 3x5. Options, in any order, each at
//                                   most once: same | valid | pN | pHxW (padding), sN | sHxW
//                                   (stride), an activation, nobias, an initialiser.
//   pool:SIZE[:options]             MaxPool2D. SIZE is 2 or 2x3. Options: sN | sHxW, same | valid.
//   drop:RATE                       Dropout, RATE in [0, 1).
//   flatten                         Flatten.
//   dense:UNITS[:options]           Dense. Options: an activation, nobias, an initialiser.
//   relu | leaky_relu[=ALPHA] | sigmoid | tanh | softmax | linear
//                                   an activation layer.
//   activations:  relu, leaky_relu, leaky_relu=ALPHA, sigmoid, tanh, softmax, linear
//   initialisers: glorot_uniform (the default), he_uniform, he_normal, zeros
//
// Aliases are accepted and printed canonically: conv2d, convolution -> conv; maxpool,
// max_pool, maxpool2d, max_pool2d, max_pooling2d -> pool; dropout -> drop; fc -> dense;
// leakyrelu -> leaky_relu; no_bias -> nobias; xavier_uniform -> glorot_uniform.
//
// A bad spec is a faltung::Error that names the layer by number and text, the bad token, and
// what was expected:
//   --arch: layer 3 'conv:64:x': kernel size 'x' is not a number (expected conv:FILTERS:KERNEL[:options])

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "faltung/initializers.hpp"
#include "faltung/kernels/activation.hpp"
#include "faltung/kernels/geometry.hpp"
#include "faltung/layers/activation.hpp"
#include "faltung/layers/conv2d.hpp"
#include "faltung/layers/dense.hpp"
#include "faltung/layers/dropout.hpp"
#include "faltung/layers/flatten.hpp"
#include "faltung/layers/max_pool2d.hpp"
#include "faltung/model/sequential.hpp"
#include "faltung/text.hpp"

FALTUNG_BEGIN_NAMESPACE

/// One layer of an architecture, parsed but not yet a Layer<T>: the parse tree of the language.
struct LayerSpec {
  enum class Kind { Conv2D, MaxPool2D, Dropout, Flatten, Dense, Activation };
  Kind kind = Kind::Flatten;
  Conv2DOptions conv{1, 1};     ///< Kind::Conv2D
  MaxPool2DOptions pool{1};     ///< Kind::MaxPool2D
  DenseOptions dense{1};        ///< Kind::Dense
  double rate = 0;              ///< Kind::Dropout
  Activation activation;        ///< Kind::Activation
  std::string text;             ///< the layer as it was typed (trimmed), for messages
};

namespace detail {

inline std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

inline std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  for (;;) {
    const std::size_t at = s.find(sep, start);
    parts.push_back(s.substr(start, at == std::string::npos ? std::string::npos : at - start));
    if (at == std::string::npos) return parts;
    start = at + 1;
  }
}

/// Edits (insert, delete, replace, swap two neighbours) between a and b: "rleu" is 1 from "relu".
inline std::size_t edit_distance(const std::string& a, const std::string& b) {
  const std::size_t n = a.size(), m = b.size();
  std::vector<std::size_t> d((n + 1) * (m + 1));
  auto at = [&](std::size_t i, std::size_t j) -> std::size_t& { return d[i * (m + 1) + j]; };
  for (std::size_t i = 0; i <= n; ++i) at(i, 0) = i;
  for (std::size_t j = 0; j <= m; ++j) at(0, j) = j;
  for (std::size_t i = 1; i <= n; ++i)
    for (std::size_t j = 1; j <= m; ++j) {
      at(i, j) = std::min({at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + (a[i - 1] == b[j - 1] ? 0 : 1)});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        at(i, j) = std::min(at(i, j), at(i - 2, j - 2) + 1);
    }
  return at(n, m);
}

/// "; did you mean 'conv'?" for a near miss (one typo in a short word, two in a longer one), else "".
inline std::string did_you_mean(const std::string& word, const std::vector<std::string>& known) {
  std::string best;
  std::size_t best_d = word.size() <= 4 ? 2 : 3;
  for (const std::string& k : known) {
    // The distance is at least the difference in length: a long token (a damaged model file's)
    // is not compared, which would cost its length times each name's in time and memory.
    if (word.size() >= k.size() + best_d || k.size() >= word.size() + best_d) continue;
    const std::size_t d = edit_distance(word, k);
    if (d < best_d) {
      best_d = d;
      best = k;
    }
  }
  return best.empty() ? std::string() : "; did you mean '" + best + "'?";
}

/// Parses one architecture string. Every error names the source ("--arch", a model file), the
/// layer's number and text, the bad token and the expected form.
class ArchitectureParser {
 public:
  explicit ArchitectureParser(std::string source) : source_(std::move(source)) {}

  std::vector<LayerSpec> parse(const std::string& spec) {
    if (trim(spec).empty())
      fail(source_, ": the architecture is empty (expected layers separated by commas, e.g. "
                    "conv:32:3:same:relu,pool:2,flatten,dense:10)");
    const std::vector<std::string> pieces = split(spec, ',');
    std::vector<LayerSpec> layers;
    for (std::size_t i = 0; i < pieces.size(); ++i) {
      const std::string text(trim(pieces[i]));
      if (text.empty()) {
        const std::string prev(i > 0 ? trim(pieces[i - 1]) : std::string_view());
        if (i == 0) fail(source_, ": layer 1 is empty: the architecture starts with a comma");
        if (i + 1 == pieces.size()) fail(source_, ": layer ", i + 1, " is empty: trailing comma after '", prev, "'");
        fail(source_, ": layer ", i + 1, " is empty: two commas in a row after '", prev, "'");
      }
      layers.push_back(parse_layer(text, i + 1));
    }
    return layers;
  }

 private:
  using Kind = LayerSpec::Kind;

  LayerSpec parse_layer(const std::string& text, std::size_t number) {
    text_ = text;
    number_ = number;
    LayerSpec l;
    l.text = text;
    std::vector<std::string> fields = split(text, ':');
    for (std::string& f : fields) f = std::string(trim(f));
    const std::string name = lower(fields[0]);
    usage_ = usage_of(name);
    for (std::size_t i = 1; i < fields.size(); ++i)
      if (fields[i].empty()) error(i + 1 == fields.size() ? "trailing colon" : "empty field (two colons in a row)");

    if (name == "conv" || name == "conv2d" || name == "convolution") {
      l.kind = Kind::Conv2D;
      if (fields.size() < 2) error("missing the number of filters");
      if (fields.size() < 3) error("missing the kernel size");
      l.conv = Conv2DOptions(count(fields[1], "filters"), 1);
      const auto k = size_pair(fields[2], "kernel size");
      l.conv.kernel_size(k.first, k.second);
      parse_conv_options(l.conv, fields);
    } else if (name == "pool" || name == "maxpool" || name == "max_pool" || name == "maxpool2d" ||
               name == "max_pool2d" || name == "max_pooling2d") {
      l.kind = Kind::MaxPool2D;
      if (fields.size() < 2) error("missing the pool size");
      const auto p = size_pair(fields[1], "pool size");
      l.pool.pool_size(p.first, p.second);
      parse_pool_options(l.pool, fields);
    } else if (name == "drop" || name == "dropout") {
      l.kind = Kind::Dropout;
      if (fields.size() < 2) error("missing the rate");
      if (fields.size() > 2) error("unexpected '", fields[2], "' after the rate");
      l.rate = rate(fields[1]);
    } else if (name == "flatten") {
      l.kind = Kind::Flatten;
      if (fields.size() > 1) error("flatten takes no options, got '", fields[1], "'");
    } else if (name == "dense" || name == "fc") {
      l.kind = Kind::Dense;
      if (fields.size() < 2) error("missing the number of units");
      l.dense = DenseOptions(count(fields[1], "units"));
      parse_dense_options(l.dense, fields);
    } else if (is_activation_name(name)) {
      l.kind = Kind::Activation;
      if (fields.size() > 1) {
        if (lower(fields[0]) == "leaky_relu" || lower(fields[0]) == "leakyrelu")
          error("unexpected '", fields[1], "'; the slope is written leaky_relu=", fields[1]);
        error(fields[0], " takes no options, got '", fields[1], "'");
      }
      if (!parse_activation(fields[0], l.activation)) error("bad activation '", fields[0], "'");
    } else {
      std::vector<std::string> known = {"conv", "pool", "drop", "flatten", "dense", "dropout", "maxpool",
                                        "relu", "leaky_relu", "sigmoid", "tanh", "softmax", "linear"};
      error("unknown layer '", fields[0], "'", did_you_mean(name, known));
    }
    return l;
  }

  // -- options ----------------------------------------------------------------------------------

  void parse_conv_options(Conv2DOptions& o, const std::vector<std::string>& fields) {
    Seen seen;
    for (std::size_t i = 3; i < fields.size(); ++i) {
      const std::string& tok = fields[i];
      const std::string t = lower(tok);
      Activation a;
      Initializer init;
      if (t == "same" || t == "valid") {
        seen.once(*this, "padding", tok);
        o.padding(t == "same" ? Padding::Same : Padding::Valid);
      } else if (t.size() > 1 && t[0] == 'p' && std::isdigit(static_cast<unsigned char>(t[1]))) {
        seen.once(*this, "padding", tok);
        const auto p = size_pair(tok.substr(1), "padding", tok, true);
        o.padding(p.first, p.second);
      } else if (t.size() > 1 && t[0] == 's' && std::isdigit(static_cast<unsigned char>(t[1]))) {
        seen.once(*this, "stride", tok);
        const auto s = size_pair(tok.substr(1), "stride", tok);
        o.stride(s.first, s.second);
      } else if (parse_activation(tok, a)) {
        seen.once(*this, "activation", tok);
        o.activation(a);
      } else if (t == "nobias" || t == "no_bias") {
        seen.once(*this, "bias", tok);
        o.use_bias(false);
      } else if (parse_initializer(t, init)) {
        seen.once(*this, "initialiser", tok);
        o.kernel_initializer(init);
      } else {
        unknown_option(tok, "conv", "same, valid, pN, pHxW, sN, sHxW, an activation (relu, leaky_relu[=A], sigmoid, "
                                    "tanh, softmax, linear), nobias, or an initialiser (glorot_uniform, he_uniform, "
                                    "he_normal, zeros)",
                       {"same", "valid", "nobias", "relu", "leaky_relu", "sigmoid", "tanh", "softmax", "linear",
                        "glorot_uniform", "he_uniform", "he_normal", "zeros"});
      }
    }
  }

  void parse_pool_options(MaxPool2DOptions& o, const std::vector<std::string>& fields) {
    Seen seen;
    for (std::size_t i = 2; i < fields.size(); ++i) {
      const std::string& tok = fields[i];
      const std::string t = lower(tok);
      if (t == "same" || t == "valid") {
        seen.once(*this, "padding", tok);
        o.padding(t == "same" ? Padding::Same : Padding::Valid);
      } else if (t.size() > 1 && t[0] == 's' && std::isdigit(static_cast<unsigned char>(t[1]))) {
        seen.once(*this, "stride", tok);
        const auto s = size_pair(tok.substr(1), "stride", tok);
        o.stride(s.first, s.second);
      } else if (t.size() > 1 && t[0] == 'p' && std::isdigit(static_cast<unsigned char>(t[1]))) {
        error("pooling takes no explicit padding '", tok, "'; use same or valid");
      } else {
        unknown_option(tok, "pool", "sN, sHxW, same or valid", {"same", "valid"});
      }
    }
  }

  void parse_dense_options(DenseOptions& o, const std::vector<std::string>& fields) {
    Seen seen;
    for (std::size_t i = 2; i < fields.size(); ++i) {
      const std::string& tok = fields[i];
      const std::string t = lower(tok);
      Activation a;
      Initializer init;
      if (parse_activation(tok, a)) {
        seen.once(*this, "activation", tok);
        o.activation(a);
      } else if (t == "nobias" || t == "no_bias") {
        seen.once(*this, "bias", tok);
        o.use_bias(false);
      } else if (parse_initializer(t, init)) {
        seen.once(*this, "initialiser", tok);
        o.kernel_initializer(init);
      } else {
        unknown_option(tok, "dense", "an activation (relu, leaky_relu[=A], sigmoid, tanh, softmax, linear), nobias, or "
                                     "an initialiser (glorot_uniform, he_uniform, he_normal, zeros)",
                       {"nobias", "relu", "leaky_relu", "sigmoid", "tanh", "softmax", "linear", "glorot_uniform",
                        "he_uniform", "he_normal", "zeros"});
      }
    }
  }

  /// Which option groups a layer has been given, so that "same:valid" is an error.
  struct Seen {
    std::vector<std::pair<std::string, std::string>> groups;  // (group, token)
    void once(ArchitectureParser& p, const std::string& group, const std::string& tok) {
      for (const auto& g : groups)
        if (g.first == group) p.error("duplicate ", group, " option '", tok, "' (already given as '", g.second, "')");
      groups.emplace_back(group, tok);
    }
  };

  [[noreturn]] void unknown_option(const std::string& tok, const char* layer, const char* expected,
                                   const std::vector<std::string>& known) {
    usage_ = std::string(layer) + " options: " + expected;
    std::string name = lower(tok);
    name = name.substr(0, name.find('='));
    error("unknown option '", tok, "'", did_you_mean(name, known));
  }

  static bool is_activation_name(const std::string& t) {
    const std::string base = t.substr(0, t.find('='));
    return base == "relu" || base == "leaky_relu" || base == "leakyrelu" || base == "sigmoid" || base == "tanh" ||
           base == "softmax" || base == "linear";
  }

  /// "relu", "leaky_relu", "leaky_relu=0.1", ... Returns false when `tok` is not an
  /// activation; throws when it is one with a bad parameter.
  bool parse_activation(const std::string& tok, Activation& a) {
    const std::string t = lower(tok);
    if (!is_activation_name(t)) return false;
    const std::size_t eq = t.find('=');
    const std::string base = t.substr(0, eq);
    if (base == "leaky_relu" || base == "leakyrelu") {
      double alpha = 0.3;
      if (eq != std::string::npos) {
        const std::string v = tok.substr(eq + 1);
        if (!parse_double(v, alpha)) error("leaky_relu slope '", v, "' is not a number");
        if (!detail::leaky_relu_slope_ok(alpha)) error("leaky_relu slope '", v, "' must be positive and finite");
      }
      a = Activation(ActivationKind::LeakyReLU, alpha);
      return true;
    }
    if (eq != std::string::npos) error(base, " takes no parameter, got '", tok, "' (only leaky_relu=ALPHA has one)");
    a = base == "relu"      ? Activation(ActivationKind::ReLU)
        : base == "sigmoid" ? Activation(ActivationKind::Sigmoid)
        : base == "tanh"    ? Activation(ActivationKind::Tanh)
        : base == "softmax" ? Activation(ActivationKind::Softmax)
                            : Activation(ActivationKind::Linear);
    return true;
  }

  static bool parse_initializer(const std::string& t, Initializer& init) {
    if (t == "glorot_uniform" || t == "xavier_uniform") init = Initializer::GlorotUniform;
    else if (t == "he_uniform") init = Initializer::HeUniform;
    else if (t == "he_normal") init = Initializer::HeNormal;
    else if (t == "zeros") init = Initializer::Zeros;
    else return false;
    return true;
  }

  // -- numbers --------------------------------------------------------------------------------

  static bool parse_size(const std::string& s, std::size_t& v) {
    if (s.empty() || s.size() > 9) return false;  // nine digits: far beyond any real layer, no overflow
    v = 0;
    for (char c : s) {
      if (!std::isdigit(static_cast<unsigned char>(c))) return false;
      v = v * 10 + std::size_t(c - '0');
    }
    return true;
  }

  static bool parse_double(const std::string& s, double& v) {
    if (s.empty() || std::isspace(static_cast<unsigned char>(s[0]))) return false;
    char* end = nullptr;
    v = std::strtod(s.c_str(), &end);
    return end == s.c_str() + s.size() && std::isfinite(v);
  }

  /// A positive whole number: filters, units.
  std::size_t count(const std::string& tok, const char* what) {
    std::size_t v = 0;
    if (!parse_size(tok, v)) error(what, " '", tok, "' is not a whole number");
    if (v == 0) error(what, " '", tok, "' must be positive");
    return v;
  }

  /// "3" -> (3, 3), "3x5" -> (3, 5). `shown` is the token as typed ("s2x1"), for messages.
  std::pair<std::size_t, std::size_t> size_pair(const std::string& s, const char* what, std::string shown = "",
                                                bool zero_ok = false) {
    if (shown.empty()) shown = s;
    const std::string t = lower(s);
    const std::size_t x = t.find('x');
    std::size_t a = 0, b = 0;
    bool ok;
    if (x == std::string::npos) {
      ok = parse_size(t, a);
      b = a;
    } else {
      ok = parse_size(t.substr(0, x), a) && parse_size(t.substr(x + 1), b);
    }
    if (!ok) error(what, " '", shown, "' is not a number");
    if (!zero_ok && (a == 0 || b == 0)) error(what, " '", shown, "' must be positive");
    return {a, b};
  }

  double rate(const std::string& tok) {
    double r = 0;
    if (!parse_double(tok, r)) error("rate '", tok, "' is not a number");
    if (!(r >= 0.0 && r < 1.0)) error("rate '", tok, "' is out of range [0, 1)");
    return r;
  }

  // -- errors ---------------------------------------------------------------------------------

  static std::string usage_of(const std::string& name) {
    if (name == "conv" || name == "conv2d" || name == "convolution") return "conv:FILTERS:KERNEL[:options]";
    if (name == "pool" || name == "maxpool" || name == "max_pool" || name == "maxpool2d" || name == "max_pool2d" ||
        name == "max_pooling2d")
      return "pool:SIZE[:options]";
    if (name == "drop" || name == "dropout") return "drop:RATE";
    if (name == "flatten") return "flatten";
    if (name == "dense" || name == "fc") return "dense:UNITS[:options]";
    if (is_activation_name(name)) return "an activation: relu, leaky_relu[=ALPHA], sigmoid, tanh, softmax or linear";
    return "a layer: conv, pool, drop, flatten, dense, relu, leaky_relu, sigmoid, tanh, softmax or linear";
  }

  template <class... Args>
  [[noreturn]] void error(const Args&... what) {
    std::ostringstream os;
    os << source_ << ": layer " << number_ << " '" << text_ << "': ";
    (os << ... << what);
    if (!usage_.empty()) os << " (expected " << usage_ << ")";
    throw Error(os.str());
  }

  std::string source_, text_, usage_;
  std::size_t number_ = 0;
};

}  // namespace detail

/// Parses an architecture into its layers without making any. `source` begins every error
/// message ("--arch", "model file 'x.faltung'").
inline std::vector<LayerSpec> parse_architecture(const std::string& spec, const std::string& source = "--arch") {
  return detail::ArchitectureParser(source).parse(spec);
}

/// A new, unbuilt layer from its parsed spec.
template <class T>
std::unique_ptr<Layer<T>> make_layer(const LayerSpec& l) {
  switch (l.kind) {
    case LayerSpec::Kind::Conv2D: return std::make_unique<Conv2D<T>>(l.conv);
    case LayerSpec::Kind::MaxPool2D: return std::make_unique<MaxPool2D<T>>(l.pool);
    case LayerSpec::Kind::Dropout: return std::make_unique<Dropout<T>>(l.rate);
    case LayerSpec::Kind::Flatten: return std::make_unique<Flatten<T>>();
    case LayerSpec::Kind::Dense: return std::make_unique<Dense<T>>(l.dense);
    case LayerSpec::Kind::Activation:
      switch (l.activation.kind) {
        case ActivationKind::ReLU: return std::make_unique<ReLU<T>>();
        case ActivationKind::LeakyReLU: return std::make_unique<LeakyReLU<T>>(l.activation.alpha);
        case ActivationKind::Sigmoid: return std::make_unique<Sigmoid<T>>();
        case ActivationKind::Tanh: return std::make_unique<Tanh<T>>();
        case ActivationKind::Softmax: return std::make_unique<Softmax<T>>();
        case ActivationKind::Linear: return std::make_unique<ActivationLayer<T>>(l.activation);
      }
  }
  detail::fail("make_layer: unknown layer kind");
}

/// Appends the layers of `spec` to `net` (all or none: a bad spec adds nothing).
template <class T>
void add_layers(Sequential<T>& net, const std::string& spec, const std::string& source = "--arch") {
  const std::vector<LayerSpec> layers = parse_architecture(spec, source);
  for (const LayerSpec& l : layers) net.add(make_layer<T>(l));
}

/// A model built from `spec` for the per-sample `input_shape`, initialised from `seed`.
template <class T>
Sequential<T> make_sequential(const std::string& spec, const Shape& input_shape, std::uint64_t seed = 42,
                              const std::string& source = "--arch") {
  Sequential<T> net(seed);
  add_layers(net, spec, source);
  net.build(input_shape);
  return net;
}

/// The canonical form of `spec`: aliases replaced, defaults dropped, options in a fixed order.
inline std::string canonical_spec(const std::string& spec, const std::string& source = "--arch") {
  std::string s;
  for (const LayerSpec& l : parse_architecture(spec, source))
    s += (s.empty() ? "" : ",") + make_layer<float>(l)->spec();
  return s;
}

FALTUNG_END_NAMESPACE
