// Tests for the tabular data tools: the generators' documented properties
// (make_classification, make_friedman1), the seeded train/test split and StandardScaler.

#include <gtest/gtest.h>

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "faltung/data/make_classification.hpp"
#include "faltung/data/make_friedman1.hpp"
#include "faltung/data/standard_scaler.hpp"
#include "faltung/data/train_test_split.hpp"
#include "test_support.hpp"

using namespace faltung;
using faltung::test::contains;
using faltung::test::error_of;

namespace {

using Matrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic>;

/// The columns of x whose names start with `kind` ("informative", "noise", ...), as a matrix.
Matrix columns_of(const TabularData<float>& d, const std::string& kind) {
  std::vector<std::size_t> cols;
  for (std::size_t j = 0; j < d.feature_names.size(); ++j)
    if (d.feature_names[j].rfind(kind + "_", 0) == 0) cols.push_back(j);
  Matrix m(Eigen::Index(d.size()), Eigen::Index(cols.size()));
  for (std::size_t i = 0; i < d.size(); ++i)
    for (std::size_t c = 0; c < cols.size(); ++c) m(Eigen::Index(i), Eigen::Index(c)) = d.x[i * d.num_features() + cols[c]];
  return m;
}

/// The share of the variance of `target`'s columns that least squares on `from` explains
/// (R^2 over all columns together).
double explained(const Matrix& from, const Matrix& target) {
  Matrix a(from.rows(), from.cols() + 1);
  a << from, Matrix::Ones(from.rows(), 1);
  const Matrix coef = a.colPivHouseholderQr().solve(target);
  const Matrix residual = target - a * coef;
  const Matrix centred = target.rowwise() - target.colwise().mean();
  return 1 - residual.squaredNorm() / centred.squaredNorm();
}

std::vector<std::size_t> class_counts(const TabularData<float>& d) {
  std::vector<std::size_t> counts(d.num_classes(), 0);
  for (float y : d.y) ++counts[std::size_t(y)];
  return counts;
}

// ---------------------------------------------------------------------------------------------
// make_classification

TEST(MakeClassification, ShapesNamesAndTheLecturesSets) {
  const auto d = make_classification<float>(MakeClassificationOptions().samples(1000));
  EXPECT_EQ(d.x.shape(), (Shape{1000, 20}));
  EXPECT_EQ(d.y.shape(), (Shape{1000, 1}));
  EXPECT_EQ(d.class_names, (std::vector<std::string>{"0", "1"}));
  EXPECT_EQ(d.label_name, "label");
  std::map<std::string, int> kinds;
  for (const auto& name : d.feature_names) ++kinds[name.substr(0, name.find('_'))];
  EXPECT_EQ(kinds, (std::map<std::string, int>{{"informative", 2}, {"noise", 16}, {"redundant", 2}}));
  EXPECT_NO_THROW(d.check("test"));
  // The lecture's two sets.
  EXPECT_EQ(make_classification<float>(MakeClassificationOptions().samples(50000).features(20)).x.shape(),
            (Shape{50000, 20}));
  EXPECT_EQ(make_classification<float>(MakeClassificationOptions().samples(500000).features(30)).x.shape(),
            (Shape{500000, 30}));
}

TEST(MakeClassification, ClassesAreBalancedClusterByCluster) {
  // 6 clusters share 1001 samples: 167 each for the first five, 166 for the last; class k has
  // clusters k and k + 3.
  const auto d = make_classification<float>(
      MakeClassificationOptions().samples(1001).classes(3).informative(3).flip_y(0));
  EXPECT_EQ(class_counts(d), (std::vector<std::size_t>{334, 334, 333}));
}

TEST(MakeClassification, TheSeedFixesEverything) {
  const auto o = MakeClassificationOptions().samples(500).features(8).informative(3).redundant(2).repeated(1);
  const auto a = make_classification<float>(o), b = make_classification<float>(o);
  EXPECT_TRUE(std::equal(a.x.begin(), a.x.end(), b.x.begin()));
  EXPECT_TRUE(std::equal(a.y.begin(), a.y.end(), b.y.begin()));
  EXPECT_EQ(a.feature_names, b.feature_names);
  const auto c = make_classification<float>(MakeClassificationOptions(o).seed(43));
  EXPECT_FALSE(std::equal(a.x.begin(), a.x.end(), c.x.begin()));
}

TEST(MakeClassification, ClustersSitOnDistinctHypercubeVertices) {
  // Unshuffled, with flip_y 0: rows come cluster by cluster, and each cluster's mean in the
  // informative features is its vertex, every coordinate +-class_sep (the random covariance has mean zero).
  const double sep = 1.5;
  const std::size_t per_cluster = 4000;
  const auto d = make_classification<float>(MakeClassificationOptions()
                                                .samples(4 * per_cluster).informative(3).redundant(0).features(5)
                                                .class_sep(sep).flip_y(0).shuffle(false));
  std::set<std::vector<int>> vertices;
  for (std::size_t k = 0; k < 4; ++k) {
    std::vector<int> signs;
    for (std::size_t c = 0; c < 3; ++c) {
      double mean = 0;
      for (std::size_t i = k * per_cluster; i < (k + 1) * per_cluster; ++i) mean += d.x[i * 5 + c];
      mean /= double(per_cluster);
      EXPECT_NEAR(std::abs(mean), sep, 0.06) << "cluster " << k << ", coordinate " << c;
      signs.push_back(mean > 0 ? 1 : -1);
    }
    vertices.insert(signs);
    for (std::size_t i = k * per_cluster; i < (k + 1) * per_cluster; ++i) EXPECT_EQ(d.y[i], float(k % 2));
  }
  EXPECT_EQ(vertices.size(), 4u);
}

TEST(MakeClassification, RedundantRepeatedAndNoiseFeaturesAreWhatTheyAreNamed) {
  const auto d = make_classification<float>(
      MakeClassificationOptions().samples(4000).features(12).informative(4).redundant(3).repeated(2).classes(3));
  const Matrix informative = columns_of(d, "informative"), redundant = columns_of(d, "redundant");
  const Matrix repeated = columns_of(d, "repeated"), noise = columns_of(d, "noise");
  ASSERT_EQ(informative.cols(), 4);
  ASSERT_EQ(noise.cols(), 3);
  // Redundant: linear combinations of the informative features, to float rounding.
  EXPECT_GT(explained(informative, redundant), 1 - 1e-9);
  // Repeated: exact copies of informative or redundant columns.
  Matrix useful(informative.rows(), 7);
  useful << informative, redundant;
  for (Eigen::Index r = 0; r < repeated.cols(); ++r) {
    bool found = false;
    for (Eigen::Index c = 0; c < useful.cols(); ++c) found = found || repeated.col(r) == useful.col(c);
    EXPECT_TRUE(found) << "repeated column " << r;
  }
  // Noise: standard normal, unrelated to the informative features and to the class.
  EXPECT_LT(explained(informative, noise), 0.01);
  for (Eigen::Index c = 0; c < noise.cols(); ++c) {
    const double mean = noise.col(c).mean();
    const double sd = std::sqrt((noise.col(c).array() - mean).square().mean());
    EXPECT_NEAR(mean, 0, 0.06);
    EXPECT_NEAR(sd, 1, 0.05);
  }
  // The class is in the informative features: a least-squares fit of the class indicators
  // explains far more from them than from the noise.
  Matrix onehot = Matrix::Zero(informative.rows(), 3);
  for (Eigen::Index i = 0; i < onehot.rows(); ++i) onehot(i, Eigen::Index(d.y[std::size_t(i)])) = 1;
  EXPECT_GT(explained(informative, onehot), 0.2);
  EXPECT_LT(explained(noise, onehot), 0.01);
}

TEST(MakeClassification, FlipYChangesOnlyLabelsAtItsRate) {
  const std::size_t n = 20000, k = 4;
  const auto o = MakeClassificationOptions().samples(n).classes(k).informative(3).flip_y(0);
  const auto clean = make_classification<float>(o);
  const double flip = 0.3;
  const auto noisy = make_classification<float>(MakeClassificationOptions(o).flip_y(flip));
  EXPECT_TRUE(std::equal(clean.x.begin(), clean.x.end(), noisy.x.begin()));
  std::size_t changed = 0;
  for (std::size_t i = 0; i < n; ++i) changed += clean.y[i] != noisy.y[i];
  // A flipped label gets a uniformly drawn class: it really changes with probability (K-1)/K.
  const double p = flip * double(k - 1) / double(k);
  EXPECT_NEAR(double(changed) / double(n), p, 4 * std::sqrt(p * (1 - p) / double(n)));
}

TEST(MakeClassification, ShiftAndScale) {
  const auto o = MakeClassificationOptions().samples(100);
  const auto plain = make_classification<float>(o);
  const auto moved = make_classification<float>(MakeClassificationOptions(o).shift(3).scale(-2));
  for (std::size_t i = 0; i < plain.x.size(); ++i) EXPECT_FLOAT_EQ(moved.x[i], (plain.x[i] + 3.0f) * -2.0f);
}

TEST(MakeClassification, OptionsThatDoNotFit) {
  const auto fails = [](const MakeClassificationOptions& o) {
    return error_of([&] { make_classification<float>(o); });
  };
  EXPECT_TRUE(contains(fails(MakeClassificationOptions().features(3)), "2 informative + 2 redundant + 0 repeated features exceed the 3 features"));
  EXPECT_TRUE(contains(fails(MakeClassificationOptions().classes(3)), "6 clusters need distinct vertices, but 2 informative features give a hypercube with only 4"));
  EXPECT_TRUE(contains(fails(MakeClassificationOptions().classes(1)), "at least 2 classes"));
  EXPECT_TRUE(contains(fails(MakeClassificationOptions().informative(0)), "at least one informative"));
  EXPECT_TRUE(contains(fails(MakeClassificationOptions().flip_y(1.5)), "flip_y must be in [0, 1]"));
  EXPECT_TRUE(contains(fails(MakeClassificationOptions().class_sep(-1)), "class_sep"));
  EXPECT_TRUE(contains(fails(MakeClassificationOptions().scale(0)), "scale"));
  EXPECT_TRUE(contains(fails(MakeClassificationOptions().samples(0)), "must be positive"));
  EXPECT_TRUE(contains(fails(MakeClassificationOptions().samples(3)), "4 clusters need at least as many samples"));
  EXPECT_TRUE(contains(fails(MakeClassificationOptions().samples(std::size_t(1) << 62)), "overflow"));
}

TEST(MakeClassification, ManyInformativeFeatures) {
  // Beyond 2^20 vertices the centres are drawn and checked for repeats instead.
  const auto d = make_classification<float>(
      MakeClassificationOptions().samples(200).features(30).informative(25).redundant(0).classes(5));
  EXPECT_EQ(class_counts(d).size(), 5u);
}

// ---------------------------------------------------------------------------------------------
// make_friedman1

TEST(MakeFriedman1, TheFunctionAndItsNoise) {
  const auto exact = make_friedman1<double>(MakeFriedman1Options().samples(200).noise(0));
  EXPECT_EQ(exact.x.shape(), (Shape{200, 10}));
  EXPECT_EQ(exact.feature_names.front(), "x1");
  EXPECT_TRUE(exact.class_names.empty());
  for (std::size_t i = 0; i < 200; ++i) {
    const double* x = exact.x.data() + i * 10;
    for (std::size_t j = 0; j < 10; ++j) EXPECT_TRUE(x[j] >= 0 && x[j] < 1);
    const double y = 10 * std::sin(M_PI * x[0] * x[1]) + 20 * (x[2] - 0.5) * (x[2] - 0.5) + 10 * x[3] + 5 * x[4];
    EXPECT_NEAR(exact.y[i], y, 1e-12);
  }
  // Noise of standard deviation 2 on top of the same x.
  const auto noisy = make_friedman1<double>(MakeFriedman1Options().samples(20000).noise(2));
  const auto clean = make_friedman1<double>(MakeFriedman1Options().samples(20000).noise(0));
  double sum = 0, sq = 0;
  for (std::size_t i = 0; i < 20000; ++i) {
    ASSERT_EQ(noisy.x[i * 10], clean.x[i * 10]) << "the noise changes y only; row " << i;
    const double e = noisy.y[i] - clean.y[i];
    sum += e;
    sq += e * e;
  }
  EXPECT_NEAR(sum / 20000, 0, 0.06);
  EXPECT_NEAR(std::sqrt(sq / 20000), 2, 0.05);
  EXPECT_TRUE(contains(error_of([] { make_friedman1<float>(MakeFriedman1Options().features(4)); }), "at least 5 features"));
  EXPECT_TRUE(contains(error_of([] { make_friedman1<float>(MakeFriedman1Options().noise(-1)); }), "noise"));
}

// ---------------------------------------------------------------------------------------------
// train_test_split

/// A table whose first feature is the row's index, to follow rows through a split.
TabularData<float> numbered(std::size_t n) {
  TabularData<float> d;
  d.x.resize({n, 2});
  d.y.resize({n, 1});
  for (std::size_t i = 0; i < n; ++i) {
    d.x[2 * i] = float(i);
    d.x[2 * i + 1] = -float(i);
    d.y[i] = float(i % 2);
  }
  d.feature_names = {"index", "minus"};
  d.label_name = "odd";
  d.class_names = {"even", "odd"};
  return d;
}

TEST(TrainTestSplit, SizesCoverAndSeed) {
  const auto d = numbered(101);
  const auto s = train_test_split(d, 0.2, 7);
  EXPECT_EQ(s.test.size(), 21u);  // ceil(0.2 * 101), as scikit-learn rounds
  EXPECT_EQ(s.train.size(), 80u);
  EXPECT_EQ(s.train.feature_names, d.feature_names);
  EXPECT_EQ(s.test.class_names, d.class_names);
  std::set<float> seen;
  for (const auto* part : {&s.train, &s.test})
    for (std::size_t i = 0; i < part->size(); ++i) {
      const float row = part->x[2 * i];
      EXPECT_EQ(part->x[2 * i + 1], -row);  // rows stay whole
      EXPECT_EQ(part->y[i], float(std::size_t(row) % 2));
      seen.insert(row);
    }
  EXPECT_EQ(seen.size(), 101u);  // every row exactly once
  const auto again = train_test_split(d, 0.2, 7), other = train_test_split(d, 0.2, 8);
  EXPECT_TRUE(std::equal(s.test.x.begin(), s.test.x.end(), again.test.x.begin()));
  EXPECT_FALSE(std::equal(s.test.x.begin(), s.test.x.end(), other.test.x.begin()));
  // Shuffled: not the first or last rows in order.
  EXPECT_FALSE(s.test.x[0] == 80.0f && s.test.x[2] == 81.0f);
}

TEST(TrainTestSplit, WithoutShufflingTheLastRowsAreTheTestSet) {
  const auto s = train_test_split(numbered(10), 0.3, 1, false);
  EXPECT_EQ(s.train.size(), 7u);
  EXPECT_EQ(s.test.x[0], 7.0f);
  EXPECT_EQ(s.train.x[2 * 6], 6.0f);
}

TEST(TrainTestSplit, Errors) {
  EXPECT_TRUE(contains(error_of([] { train_test_split(numbered(10), 0.0); }), "test_fraction must be in (0, 1)"));
  EXPECT_TRUE(contains(error_of([] { train_test_split(numbered(10), 1.0); }), "test_fraction must be in (0, 1)"));
  EXPECT_TRUE(contains(error_of([] { train_test_split(numbered(1), 0.5); }), "both need rows"));
  auto bad = numbered(4);
  bad.y[2] = 5;
  EXPECT_EQ(error_of([&] { train_test_split(bad, 0.5); }),
            "train_test_split: label of row 2 is 5, not a class index in [0, 2)");
  bad.feature_names.pop_back();
  EXPECT_TRUE(contains(error_of([&] { train_test_split(bad, 0.5); }), "2 feature columns but 1 feature names"));
  TabularData<float> empty;
  EXPECT_TRUE(contains(error_of([&] { train_test_split(empty, 0.5); }), "features must be (N, F)"));
}

// ---------------------------------------------------------------------------------------------
// StandardScaler

TEST(StandardScaler, FitsOnTrainingDataAndAppliesThatToOtherData) {
  Tensor<float> train({4, 3}, {1, 10, 5, 2, 20, 5, 3, 30, 5, 4, 40, 5});
  StandardScaler<float> scaler;
  scaler.fit(train);
  EXPECT_EQ(scaler.mean(), (std::vector<double>{2.5, 25, 5}));
  EXPECT_DOUBLE_EQ(scaler.scale()[0], std::sqrt(1.25));  // population standard deviation
  EXPECT_DOUBLE_EQ(scaler.scale()[1], std::sqrt(125.0));
  EXPECT_EQ(scaler.scale()[2], 1.0);  // constant: zeros, not NaN
  Tensor<float> scaled = scaler.transformed(train);
  for (std::size_t j = 0; j < 2; ++j) {
    double mean = 0, sq = 0;
    for (std::size_t i = 0; i < 4; ++i) mean += scaled[i * 3 + j] / 4.0, sq += scaled[i * 3 + j] * scaled[i * 3 + j] / 4.0;
    EXPECT_NEAR(mean, 0, 1e-6);
    EXPECT_NEAR(sq, 1, 1e-6);
  }
  EXPECT_EQ(scaled[2], 0.0f);
  // Test data gets the training statistics, not its own.
  Tensor<float> test({1, 3}, {2.5f, 25 + float(std::sqrt(125.0)), 6});
  scaler.transform(test);
  EXPECT_NEAR(test[0], 0, 1e-6);
  EXPECT_NEAR(test[1], 1, 1e-6);
  EXPECT_NEAR(test[2], 1, 1e-6);
  scaler.inverse_transform(scaled);
  for (std::size_t i = 0; i < train.size(); ++i) EXPECT_NEAR(scaled[i], train[i], 1e-5);
}

TEST(StandardScaler, LargeOffsetsKeepTheirDigits) {
  // One pass of sum and sum of squares would give a variance of 0 (or negative) here.
  Tensor<double> x({3, 1}, {1e9 + 1, 1e9 + 2, 1e9 + 3});
  StandardScaler<double> scaler;
  scaler.fit(x);
  EXPECT_NEAR(scaler.scale()[0], std::sqrt(2.0 / 3.0), 1e-9);
}

TEST(StandardScaler, Errors) {
  StandardScaler<float> scaler;
  Tensor<float> x({2, 2}, {1, 2, 3, 4});
  EXPECT_EQ(error_of([&] { scaler.transform(x); }), "StandardScaler::transform: call fit() first");
  EXPECT_TRUE(contains(error_of([&] { scaler.fit(Tensor<float>({4}, {1, 2, 3, 4})); }), "need (N, F) features"));
  EXPECT_TRUE(contains(error_of([&] { scaler.fit(Tensor<float>({0, 3})); }), "need (N, F) features"));
  x[3] = std::nanf("");
  EXPECT_EQ(error_of([&] { scaler.fit(x); }),
            "StandardScaler::fit: row 1, column 1 is nan; standardisation needs finite values");
  x[3] = 4;
  scaler.fit(x);
  Tensor<float> three({1, 3}, {1, 2, 3});
  EXPECT_EQ(error_of([&] { scaler.transform(three); }), "StandardScaler::transform: fitted on 2 columns, got (1, 3)");
  x[0] = INFINITY;
  EXPECT_TRUE(contains(error_of([&] { scaler.transform(x); }), "row 0, column 0 is inf"));
}

}  // namespace
