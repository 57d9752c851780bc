#pragma once
// make_classification: a random classification problem, as scikit-learn's
// sklearn.datasets.make_classification makes it (the algorithm of I. Guyon's "Madelon" data set
// for the NIPS 2003 feature selection challenge), with scikit-learn's defaults:
//
//   auto data = make_classification<float>(MakeClassificationOptions().samples(50000).features(20));
//
// How the data is made, for classes K, clusters per class C, informative features I:
//   1. K * C cluster centres at distinct random vertices of the I-dimensional hypercube with
//      sides 2 * class_sep, centred on the origin: each coordinate is +class_sep or -class_sep.
//   2. Cluster k gets an equal share of the samples (the first clusters one more when N does not
//      divide evenly) and the class k mod K, so the classes are balanced to within one sample per
//      cluster. Its informative features are standard normal draws times a random matrix A_k
//      (I x I, entries uniform in [-1, 1]: each cluster its own covariance) plus its centre.
//   3. Redundant features: the informative ones times one random matrix B (I x R, entries
//      uniform in [-1, 1]): exact linear combinations, which add no information.
//   4. Repeated features: copies of randomly chosen informative or redundant ones.
//   5. The remaining features are noise: standard normal, independent of the class.
//   6. Label noise: each sample's label is, with probability flip_y, replaced by a class drawn
//      uniformly (which may be the same one: a label really changes with probability
//      flip_y * (K - 1) / K).
//   7. Every feature becomes (x + shift) * scale.
//   8. shuffle: the rows are put in random order, and so are the columns.
// The feature names say what each column is: "informative_1", "redundant_2", "repeated_1",
// "noise_3" (they move with their columns when those are shuffled). The label is "label", and the
// classes are named "0", "1", ...
//
// The numbers differ from scikit-learn's for the same seed (faltung has its own generator), but
// the distribution is the same. Each stage draws from its own stream derived from the seed, so
// that flip_y changes only the labels and shuffle only the order: the same seed with flip_y 0
// and 0.1 gives the same features, row for row.
//
// With the defaults (2 informative features, 2 clusters per class) the four clusters sit on the
// four corners of a square, and which corners share a class decides whether a straight line can
// separate the classes: some seeds make an XOR-like problem that a linear model cannot learn.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <numeric>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "faltung/config.hpp"
#include "faltung/data/tabular.hpp"
#include "faltung/random.hpp"
#include "faltung/tensor.hpp"

FALTUNG_BEGIN_NAMESPACE

/// The options of make_classification, with scikit-learn's defaults.
struct MakeClassificationOptions {
  /// Rows N. Default 100.
  MakeClassificationOptions& samples(std::size_t v) { samples_ = v; return *this; }
  /// Columns, all kinds together. Default 20.
  MakeClassificationOptions& features(std::size_t v) { features_ = v; return *this; }
  /// Features that carry the class: the clusters live in their space. Default 2, at least 1.
  MakeClassificationOptions& informative(std::size_t v) { informative_ = v; return *this; }
  /// Random linear combinations of the informative features. Default 2.
  MakeClassificationOptions& redundant(std::size_t v) { redundant_ = v; return *this; }
  /// Copies of informative or redundant features. Default 0.
  MakeClassificationOptions& repeated(std::size_t v) { repeated_ = v; return *this; }
  /// Classes K, at least 2. Default 2.
  MakeClassificationOptions& classes(std::size_t v) { classes_ = v; return *this; }
  /// Gaussian clusters per class. Default 2. classes * clusters_per_class must not exceed
  /// 2^informative, the number of hypercube vertices.
  MakeClassificationOptions& clusters_per_class(std::size_t v) { clusters_per_class_ = v; return *this; }
  /// The probability that a sample's label is replaced by a random class, in [0, 1]. Default 0.01.
  MakeClassificationOptions& flip_y(double v) { flip_y_ = v; return *this; }
  /// Half the side of the hypercube: larger separates the clusters more. Default 1.
  MakeClassificationOptions& class_sep(double v) { class_sep_ = v; return *this; }
  /// Added to every feature. Default 0.
  MakeClassificationOptions& shift(double v) { shift_ = v; return *this; }
  /// Multiplies every feature, after the shift. Default 1.
  MakeClassificationOptions& scale(double v) { scale_ = v; return *this; }
  /// Put the rows and the columns in random order. Default true. Without it the columns come in
  /// the order informative, redundant, repeated, noise, and the rows cluster by cluster.
  MakeClassificationOptions& shuffle(bool v) { shuffle_ = v; return *this; }
  /// Seeds every draw. Default 42.
  MakeClassificationOptions& seed(std::uint64_t v) { seed_ = v; return *this; }

  std::size_t samples_ = 100, features_ = 20, informative_ = 2, redundant_ = 2, repeated_ = 0;
  std::size_t classes_ = 2, clusters_per_class_ = 2;
  double flip_y_ = 0.01, class_sep_ = 1.0, shift_ = 0.0, scale_ = 1.0;
  bool shuffle_ = true;
  std::uint64_t seed_ = 42;
};

namespace detail {

/// `count` distinct vertices of the `dims`-dimensional unit hypercube, as 0/1 coordinates.
/// count <= 2^dims (checked by the caller).
inline std::vector<std::vector<char>> distinct_hypercube_vertices(std::size_t count, std::size_t dims, Random& rng) {
  std::vector<std::vector<char>> vertices;
  if (dims <= 20) {
    // Few enough vertices to draw without replacement: a partial Fisher-Yates over all of them.
    std::vector<std::uint32_t> all(std::size_t(1) << dims);
    std::iota(all.begin(), all.end(), std::uint32_t(0));
    for (std::size_t i = 0; i < count; ++i) {
      std::swap(all[i], all[i + rng.uniform_int(all.size() - i)]);
      std::vector<char> v(dims);
      for (std::size_t d = 0; d < dims; ++d) v[d] = char((all[i] >> d) & 1u);
      vertices.push_back(std::move(v));
    }
  } else {
    // Over a million vertices and at most `samples` clusters: a repeat is rare, so draw and reject.
    std::set<std::vector<char>> seen;
    while (vertices.size() < count) {
      std::vector<char> v(dims);
      for (auto& c : v) c = char(rng.next_u64() >> 63);
      if (seen.insert(v).second) vertices.push_back(std::move(v));
    }
  }
  return vertices;
}

/// Rows and columns of x (rows, cols) put in the random order `rng` draws; names and labels move
/// with them.
template <class T>
void shuffle_table(TabularData<T>& d, Random& rng) {
  const std::size_t n = d.size(), f = d.num_features();
  std::vector<std::size_t> rows(n), cols(f);
  std::iota(rows.begin(), rows.end(), std::size_t(0));
  std::iota(cols.begin(), cols.end(), std::size_t(0));
  rng.shuffle(rows);
  rng.shuffle(cols);
  Tensor<T> x(d.x.shape()), y(d.y.shape());
  for (std::size_t i = 0; i < n; ++i) {
    const T* src = d.x.data() + rows[i] * f;
    T* dst = x.data() + i * f;
    for (std::size_t j = 0; j < f; ++j) dst[j] = src[cols[j]];
    y[i] = d.y[rows[i]];
  }
  std::vector<std::string> names(f);
  for (std::size_t j = 0; j < f; ++j) names[j] = d.feature_names[cols[j]];
  d.x = std::move(x);
  d.y = std::move(y);
  d.feature_names = std::move(names);
}

}  // namespace detail

/// A random classification problem (see the top of this header). Throws faltung::Error for
/// options that do not fit together, naming them.
template <class T>
TabularData<T> make_classification(const MakeClassificationOptions& o) {
  const std::size_t n = o.samples_, f = o.features_, inf = o.informative_, red = o.redundant_, rep = o.repeated_;
  const std::size_t k_classes = o.classes_;
  FALTUNG_CHECK(n > 0 && f > 0, "make_classification: samples and features must be positive, got ", n, " and ", f);
  check_tensor_elements(checked_mul(n, f, "make_classification: samples x features"), "make_classification: ", n,
                        " samples x ", f, " features");
  FALTUNG_CHECK(inf >= 1, "make_classification: need at least one informative feature");
  FALTUNG_CHECK(inf <= f && red <= f - inf && rep <= f - inf - red, "make_classification: ", inf, " informative + ",
                red, " redundant + ", rep, " repeated features exceed the ", f, " features");
  FALTUNG_CHECK(k_classes >= 2, "make_classification: need at least 2 classes, got ", k_classes);
  FALTUNG_CHECK(o.clusters_per_class_ >= 1, "make_classification: need at least one cluster per class");
  const std::size_t clusters =
      checked_mul(k_classes, o.clusters_per_class_, "make_classification: classes x clusters_per_class");
  FALTUNG_CHECK(inf >= 64 || clusters <= (std::uint64_t(1) << inf), "make_classification: ", k_classes, " classes x ",
                o.clusters_per_class_, " clusters per class = ", clusters, " clusters need distinct vertices, but ", inf,
                " informative features give a hypercube with only ", std::uint64_t(1) << std::min<std::size_t>(inf, 63),
                " (raise informative)");
  FALTUNG_CHECK(clusters <= n, "make_classification: ", clusters, " clusters need at least as many samples, got ", n);
  // The mixing matrices A_k (inf, inf) and B (inf, red) below.
  check_tensor_elements(checked_mul(inf, inf, "make_classification: informative x informative"),
                        "make_classification: the covariance factor of ", inf, " informative features");
  check_tensor_elements(checked_mul(inf, red, "make_classification: informative x redundant"),
                        "make_classification: the mixing matrix of ", inf, " informative x ", red, " redundant features");
  FALTUNG_CHECK(o.flip_y_ >= 0 && o.flip_y_ <= 1, "make_classification: flip_y must be in [0, 1], got ", o.flip_y_);
  FALTUNG_CHECK(std::isfinite(o.class_sep_) && o.class_sep_ >= 0,
                "make_classification: class_sep must be finite and not negative, got ", o.class_sep_);
  FALTUNG_CHECK(std::isfinite(o.shift_) && std::isfinite(o.scale_) && o.scale_ != 0,
                "make_classification: shift must be finite and scale finite and non-zero, got ", o.shift_, " and ",
                o.scale_);

  TabularData<T> d;
  d.x.resize(Shape{n, f});
  d.y.resize(Shape{n, 1});
  d.label_name = "label";
  for (std::size_t k = 0; k < k_classes; ++k) d.class_names.push_back(std::to_string(k));
  const auto name = [](const char* kind, std::size_t count) {
    std::vector<std::string> v;
    for (std::size_t i = 1; i <= count; ++i) v.push_back(std::string(kind) + "_" + std::to_string(i));
    return v;
  };
  for (const auto& [kind, count] : {std::pair<const char*, std::size_t>{"informative", inf}, {"redundant", red},
                                    {"repeated", rep}, {"noise", f - inf - red - rep}})
    for (std::string& s : name(kind, count)) d.feature_names.push_back(std::move(s));

  Random clusters_rng = stream_random(o.seed_, 0), noise_rng = stream_random(o.seed_, 1);
  Random flip_rng = stream_random(o.seed_, 2), order_rng = stream_random(o.seed_, 3);

  // 1-2. Clusters: row block k holds cluster k, of class k mod K.
  const auto vertices = detail::distinct_hypercube_vertices(clusters, inf, clusters_rng);
  std::vector<double> z(inf), a(inf * inf);
  std::size_t start = 0;
  for (std::size_t k = 0; k < clusters; ++k) {
    const std::size_t rows = n / clusters + (k < n % clusters ? 1 : 0);
    for (double& v : a) v = clusters_rng.uniform(-1.0, 1.0);  // A_k (inf, inf)
    for (std::size_t i = start; i < start + rows; ++i) {
      for (double& v : z) v = clusters_rng.normal();
      T* row = d.x.data() + i * f;
      for (std::size_t c = 0; c < inf; ++c) {  // row = z A_k + centre
        double s = vertices[k][c] ? o.class_sep_ : -o.class_sep_;
        for (std::size_t r = 0; r < inf; ++r) s += z[r] * a[r * inf + c];
        row[c] = T(s);
      }
      d.y[i] = T(k % k_classes);
    }
    start += rows;
  }

  // 3. Redundant: informative (1, inf) x B (inf, red), from the values as stored.
  std::vector<double> b(inf * red);
  for (double& v : b) v = clusters_rng.uniform(-1.0, 1.0);
  for (std::size_t i = 0; i < n; ++i) {
    T* row = d.x.data() + i * f;
    for (std::size_t c = 0; c < red; ++c) {
      double s = 0;
      for (std::size_t r = 0; r < inf; ++r) s += double(row[r]) * b[r * red + c];
      row[inf + c] = T(s);
    }
  }

  // 4. Repeated: copies of informative or redundant columns.
  std::vector<std::size_t> source(rep);
  for (std::size_t& s : source) s = std::size_t(clusters_rng.uniform_int(inf + red));
  for (std::size_t i = 0; i < n; ++i) {
    T* row = d.x.data() + i * f;
    for (std::size_t c = 0; c < rep; ++c) row[inf + red + c] = row[source[c]];
  }

  // 5. Noise.
  for (std::size_t i = 0; i < n; ++i) {
    T* row = d.x.data() + i * f;
    for (std::size_t c = inf + red + rep; c < f; ++c) row[c] = T(noise_rng.normal());
  }

  // 6. Label noise.
  if (o.flip_y_ > 0)
    for (std::size_t i = 0; i < n; ++i)
      if (flip_rng.uniform() < o.flip_y_) d.y[i] = T(flip_rng.uniform_int(k_classes));

  // 7. Shift and scale.
  if (o.shift_ != 0 || o.scale_ != 1)
    for (T& v : d.x) v = T((double(v) + o.shift_) * o.scale_);

  // 8. Order.
  if (o.shuffle_) detail::shuffle_table(d, order_rng);
  return d;
}

FALTUNG_END_NAMESPACE
