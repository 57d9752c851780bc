// Shape, Tensor, Random and faltung::Error: the containers and the one random generator that
// everything else is built on.

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <set>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "faltung/config.hpp"
#include "faltung/kernels/conv2d.hpp"
#include "faltung/random.hpp"
#include "faltung/tensor.hpp"
#include "faltung/text.hpp"
#include "faltung/threading.hpp"

using namespace faltung;

#include "test_support.hpp"

namespace {

using faltung::test::contains;
using faltung::test::error_of;



bool aligned64(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 64 == 0; }

// =============================================================================================
// Shape

TEST(Shape, Numel) {
  EXPECT_EQ(Shape{}.numel(), 1u);
  EXPECT_EQ(Shape{}.rank(), 0u);
  EXPECT_EQ(Shape{7}.numel(), 7u);
  EXPECT_EQ((Shape{2, 3, 4}).numel(), 24u);
  EXPECT_EQ((Shape{64, 1, 28, 28}).numel(), 50176u);
  EXPECT_EQ((Shape{5, 0, 3}).numel(), 0u);
  EXPECT_EQ((Shape{1, 2, 3, 4, 5, 6}).numel(), 720u);
  EXPECT_EQ((Shape{2, 3, 4}).rank(), 3u);
  EXPECT_EQ((Shape{2, 3, 4})[1], 3u);
}

TEST(Shape, WithAndWithoutBatch) {
  const Shape s{1, 28, 28};
  const Shape b = s.with_batch(32);
  EXPECT_EQ(b, (Shape{32, 1, 28, 28}));
  EXPECT_EQ(b.rank(), 4u);
  EXPECT_EQ(b.without_batch(), s);
  EXPECT_EQ(s, (Shape{1, 28, 28}));  // unchanged
  EXPECT_EQ(Shape{}.with_batch(5), Shape{5});
  EXPECT_EQ(Shape{5}.without_batch(), Shape{});
  const std::string full = error_of([] { (void)Shape({1, 2, 3, 4, 5, 6}).with_batch(2); });
  EXPECT_TRUE(contains(full, "(1, 2, 3, 4, 5, 6)")) << full;
  EXPECT_TRUE(contains(error_of([] { (void)Shape{}.without_batch(); }), "no batch dimension"));
}

TEST(Shape, ToStringAndStream) {
  EXPECT_EQ((Shape{1, 28, 28}).to_string(), "(1, 28, 28)");
  EXPECT_EQ(Shape{10}.to_string(), "(10)");
  EXPECT_EQ(Shape{}.to_string(), "()");
  std::ostringstream os;
  os << Shape{2, 3};
  EXPECT_EQ(os.str(), "(2, 3)");
}

TEST(Shape, Equality) {
  EXPECT_EQ((Shape{2, 3}), (Shape{2, 3}));
  EXPECT_NE((Shape{2, 3}), (Shape{3, 2}));
  EXPECT_NE((Shape{2, 3}), (Shape{2, 3, 1}));  // same prefix and numel, different rank
  EXPECT_NE((Shape{6}), (Shape{2, 3}));
  EXPECT_FALSE((Shape{2, 3}) != (Shape{2, 3}));
  EXPECT_EQ(Shape{}, Shape{});
  Shape pushed;
  pushed.push_back(2);
  pushed.push_back(3);
  EXPECT_EQ(pushed, (Shape{2, 3}));
  // A shape shrunk by without_batch compares equal to one built directly (stale dims ignored).
  EXPECT_EQ((Shape{9, 2, 3}).without_batch(), (Shape{2, 3}));
  Shape edited{2, 3};
  edited[1] = 4;
  EXPECT_EQ(edited, (Shape{2, 4}));
}

TEST(Shape, TooManyDimensions) {
  const std::string msg = error_of([] { Shape s{1, 2, 3, 4, 5, 6, 7}; });
  EXPECT_TRUE(contains(msg, "at most 6 dimensions")) << msg;
  EXPECT_TRUE(contains(msg, "got 7")) << msg;
  Shape six{1, 2, 3, 4, 5, 6};
  EXPECT_TRUE(contains(error_of([&] { six.push_back(7); }), "at most 6"));
}

// =============================================================================================
// Tensor

TEST(Tensor, ZeroInitialisedAndShaped) {
  Tensor<float> t({2, 3, 4});
  EXPECT_EQ(t.shape(), (Shape{2, 3, 4}));
  EXPECT_EQ(t.size(), 24u);
  EXPECT_EQ(t.rank(), 3u);
  EXPECT_EQ(t.dim(1), 3u);
  EXPECT_FALSE(t.empty());
  for (float v : t) EXPECT_EQ(v, 0.0f);
  Tensor<double> big({1000, 37});
  EXPECT_TRUE(std::all_of(big.begin(), big.end(), [](double v) { return v == 0.0; }));
  Tensor<double> filled({3, 2}, 2.5);
  for (double v : filled) EXPECT_EQ(v, 2.5);
  Tensor<double> empty;
  EXPECT_TRUE(empty.empty());
  EXPECT_EQ(empty.size(), 0u);
  EXPECT_EQ(empty.data(), nullptr);
  Tensor<float> zero_sized({4, 0});
  EXPECT_TRUE(zero_sized.empty());
  EXPECT_EQ(zero_sized.begin(), zero_sized.end());
}

TEST(Tensor, FromValues) {
  const Tensor<double> t({2, 3}, {1, 2, 3, 4, 5, 6});
  EXPECT_EQ(t[0], 1.0);
  EXPECT_EQ(t[5], 6.0);
  EXPECT_EQ(t.at({1, 0}), 4.0);
  const std::string msg = error_of([] { Tensor<double> bad({2, 3}, {1, 2, 3, 4, 5}); });
  EXPECT_TRUE(contains(msg, "(2, 3) needs 6 values, got 5")) << msg;
}

TEST(Tensor, Aligned64Bytes) {
  for (std::size_t n : {1u, 3u, 7u, 17u, 64u, 1000u, 12345u}) {
    Tensor<float> f({n});
    Tensor<double> d({n, 3});
    EXPECT_TRUE(aligned64(f.data())) << n;
    EXPECT_TRUE(aligned64(d.data())) << n;
    f.resize({n * 5 + 1});  // a new allocation, still aligned
    EXPECT_TRUE(aligned64(f.data())) << n;
    const Tensor<float> copy = f;
    EXPECT_TRUE(aligned64(copy.data())) << n;
  }
}

TEST(Tensor, ResizeKeepsTheAllocation) {
  Tensor<float> t({100});
  float* p = t.data();
  t.resize({10});
  EXPECT_EQ(t.data(), p) << "shrinking must not reallocate";
  EXPECT_EQ(t.size(), 10u);
  EXPECT_EQ(t.shape(), Shape{10});
  t.resize({4, 25});
  EXPECT_EQ(t.data(), p) << "growing back within the capacity must not reallocate";
  EXPECT_EQ(t.size(), 100u);
  t.resize({2, 5, 10});
  EXPECT_EQ(t.data(), p);

  // Growing beyond the capacity allocates a new, zeroed block.
  t.fill(3.0f);
  t.resize({101});
  EXPECT_NE(t.data(), p);
  EXPECT_EQ(t.size(), 101u);
  for (float v : t) EXPECT_EQ(v, 0.0f);

  // Same shape: the values are kept.
  Tensor<double> same({2, 2}, {1, 2, 3, 4});
  same.resize({2, 2});
  EXPECT_EQ(same[3], 4.0);
}

TEST(Tensor, CopyIsDeep) {
  Tensor<double> a({2, 3}, {1, 2, 3, 4, 5, 6});
  Tensor<double> b = a;
  EXPECT_NE(b.data(), a.data());
  EXPECT_EQ(b.shape(), a.shape());
  b[0] = 100;
  EXPECT_EQ(a[0], 1.0);
  EXPECT_EQ(b[1], 2.0);

  Tensor<double> c({50});
  double* cp = c.data();
  c = a;  // copy-assignment into a larger tensor reuses its allocation
  EXPECT_EQ(c.data(), cp);
  EXPECT_EQ(c.shape(), (Shape{2, 3}));
  c[5] = -1;
  EXPECT_EQ(a[5], 6.0);
  EXPECT_EQ(c[4], 5.0);
  const Tensor<double>& same = c;  // through a reference: Clang warns on a literal `c = c`
  c = same;                         // self-assignment keeps everything
  EXPECT_EQ(c[4], 5.0);
  EXPECT_EQ(c.shape(), (Shape{2, 3}));

  const Tensor<float> empty;
  Tensor<float> from_empty = empty;
  EXPECT_TRUE(from_empty.empty());
}

TEST(Tensor, MoveTransfersTheBlock) {
  static_assert(std::is_nothrow_move_constructible<Tensor<float>>::value, "moves must not throw");
  static_assert(std::is_nothrow_move_assignable<Tensor<float>>::value, "moves must not throw");
  Tensor<float> a({3, 4}, 1.5f);
  float* p = a.data();
  Tensor<float> b = std::move(a);
  EXPECT_EQ(b.data(), p);
  EXPECT_EQ(b.shape(), (Shape{3, 4}));
  EXPECT_EQ(b[11], 1.5f);
  EXPECT_TRUE(a.empty());  // NOLINT(bugprone-use-after-move): moved-from is empty
  EXPECT_EQ(a.data(), nullptr);

  Tensor<float> c({2});
  c = std::move(b);
  EXPECT_EQ(c.data(), p);
  EXPECT_EQ(c.shape(), (Shape{3, 4}));
  // The moved-from tensor is still usable.
  b.resize({5});  // NOLINT(bugprone-use-after-move)
  b.fill(2.0f);
  EXPECT_EQ(b[4], 2.0f);
  EXPECT_EQ(c[0], 1.5f);
}

TEST(Tensor, Reshape) {
  Tensor<double> t({2, 3, 4});
  std::iota(t.begin(), t.end(), 0.0);
  double* p = t.data();
  t.reshape({6, 4});
  EXPECT_EQ(t.shape(), (Shape{6, 4}));
  EXPECT_EQ(t.data(), p);
  EXPECT_EQ(t.at({5, 3}), 23.0);
  const std::string msg = error_of([&] { t.reshape({5, 5}); });
  EXPECT_TRUE(contains(msg, "Tensor::reshape")) << msg;
  EXPECT_TRUE(contains(msg, "(6, 4)")) << msg;
  EXPECT_TRUE(contains(msg, "(5, 5)")) << msg;
  EXPECT_TRUE(contains(msg, "24 elements")) << msg;
  EXPECT_TRUE(contains(msg, "25 elements")) << msg;
  EXPECT_EQ(t.shape(), (Shape{6, 4}));  // unchanged after the failure
}

TEST(Tensor, AtIsRowMajorAndChecked) {
  Tensor<float> t({2, 3, 4, 5});
  std::iota(t.begin(), t.end(), 0.0f);
  EXPECT_EQ(t.at({0, 0, 0, 0}), 0.0f);
  EXPECT_EQ(t.at({1, 2, 3, 4}), 119.0f);
  EXPECT_EQ(t.at({1, 0, 2, 1}), float(((1 * 3 + 0) * 4 + 2) * 5 + 1));
  t.at({0, 1, 0, 0}) = -1.0f;
  EXPECT_EQ(t[20], -1.0f);

  const std::string msg = error_of([&] { (void)t.at({1, 3, 0, 0}); });
  EXPECT_TRUE(contains(msg, "index 3")) << msg;
  EXPECT_TRUE(contains(msg, "dimension 1")) << msg;
  EXPECT_TRUE(contains(msg, "(2, 3, 4, 5)")) << msg;
  const std::string last = error_of([&] { (void)t.at({0, 0, 0, 5}); });
  EXPECT_TRUE(contains(last, "index 5")) << last;
  EXPECT_TRUE(contains(last, "dimension 3")) << last;
  const std::string rank = error_of([&] { (void)t.at({1, 1}); });
  EXPECT_TRUE(contains(rank, "2 indices")) << rank;
  const Tensor<float>& ct = t;
  EXPECT_TRUE(contains(error_of([&] { (void)ct.at({2, 0, 0, 0}); }), "index 2"));
}

TEST(Tensor, MatrixAndVectorViews) {
  Tensor<double> t({2, 3, 4});
  std::iota(t.begin(), t.end(), 0.0);
  auto m = t.as_matrix();  // one row per sample
  EXPECT_EQ(m.rows(), 2);
  EXPECT_EQ(m.cols(), 12);
  EXPECT_EQ(m(1, 0), 12.0);
  EXPECT_EQ(m(0, 11), 11.0);
  EXPECT_EQ(m.data(), t.data());  // a view, not a copy
  m(1, 1) = -5;
  EXPECT_EQ(t[13], -5.0);

  auto m2 = t.as_matrix(6, 4);
  EXPECT_EQ(m2(2, 3), 11.0);
  const Tensor<double>& ct = t;
  const auto cm = ct.as_matrix(4, 6);
  EXPECT_EQ(cm(3, 5), 23.0);
  const std::string msg = error_of([&] { (void)t.as_matrix(5, 5); });
  EXPECT_TRUE(contains(msg, "5 x 5")) << msg;
  EXPECT_TRUE(contains(msg, "(2, 3, 4)")) << msg;

  auto v = t.as_vector();
  EXPECT_EQ(v.size(), 24);
  EXPECT_EQ(v(23), 23.0);
  v(0) = 42;
  EXPECT_EQ(t[0], 42.0);
  EXPECT_EQ(ct.as_vector().sum(), t.as_vector().sum());

  // Eigen arithmetic through the views.
  Tensor<double> a({2, 2}, {1, 2, 3, 4}), b({2, 2}, {0, 1, 1, 0}), c({2, 2});
  c.as_matrix().noalias() = a.as_matrix() * b.as_matrix();
  EXPECT_EQ(c[0], 2.0);  // row-major: [[1,2],[3,4]] * [[0,1],[1,0]] = [[2,1],[4,3]]
  EXPECT_EQ(c[1], 1.0);
  EXPECT_EQ(c[2], 4.0);
  EXPECT_EQ(c[3], 3.0);
}

TEST(Tensor, FillCastAndSetZero) {
  Tensor<float> f({3, 3});
  f.fill(0.1f);
  const Tensor<double> d = tensor_cast<double>(f);
  EXPECT_EQ(d.shape(), f.shape());
  EXPECT_EQ(d[8], double(0.1f));
  const Tensor<float> back = tensor_cast<float>(d);
  EXPECT_EQ(back[4], 0.1f);
  f.set_zero();
  for (float v : f) EXPECT_EQ(v, 0.0f);
}

// =============================================================================================
// Random

TEST(Random, SameSeedSameSequence) {
  Random a(123), b(123);
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(a.next_u64(), b.next_u64()) << i;
  for (int i = 0; i < 100; ++i) {
    ASSERT_EQ(a.uniform(), b.uniform());
    ASSERT_EQ(a.normal(), b.normal());
    ASSERT_EQ(a.uniform_int(17), b.uniform_int(17));
  }
  // seed() restarts the sequence, and forgets a pending spare normal.
  Random c(5);
  const double first = c.normal();
  (void)c.normal();
  (void)c.normal();  // a spare is pending now
  c.seed(5);
  EXPECT_EQ(c.normal(), first);
  // Known values: the generator is ours (xoshiro256** seeded by splitmix64), the same everywhere.
  EXPECT_EQ(splitmix64(0), 0xE220A8397B1DCDAFull);
  Random d(0);
  Random e(0);
  EXPECT_EQ(d.next_u64(), e.next_u64());
  EXPECT_EQ(Random().next_u64(), Random(42).next_u64());  // the default seed is 42
}

TEST(Random, DifferentSeedsDiffer) {
  for (std::uint64_t s : {0ull, 1ull, 2ull, 42ull, 0xFFFFFFFFFFFFFFFFull}) {
    Random a(s), b(s + 1);
    int equal = 0;
    for (int i = 0; i < 1000; ++i) equal += a.next_u64() == b.next_u64();
    EXPECT_EQ(equal, 0) << s;
  }
  std::set<std::uint64_t> firsts;
  for (std::uint64_t s = 0; s < 1000; ++s) firsts.insert(Random(s).next_u64());
  EXPECT_EQ(firsts.size(), 1000u);
}

TEST(Random, UniformRangeAndMoments) {
  Random r(7);
  const int n = 200000;
  double sum = 0, sum_sq = 0, lo_seen = 1e9, hi_seen = -1e9;
  for (int i = 0; i < n; ++i) {
    const double v = r.uniform(-2.0, 3.0);
    ASSERT_GE(v, -2.0);
    ASSERT_LT(v, 3.0);
    lo_seen = std::min(lo_seen, v);
    hi_seen = std::max(hi_seen, v);
    sum += v;
    sum_sq += v * v;
  }
  const double mean = sum / n, var = sum_sq / n - mean * mean;
  // Uniform(-2, 3): mean 0.5, variance 25 / 12; stddev of the sample mean sqrt(25/12 / n).
  EXPECT_NEAR(mean, 0.5, 6 * std::sqrt(25.0 / 12 / n));
  EXPECT_NEAR(var, 25.0 / 12, 0.03);
  EXPECT_LT(lo_seen, -1.99);
  EXPECT_GT(hi_seen, 2.99);
  for (int i = 0; i < 10000; ++i) {
    const double u = r.uniform();
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
  }
  // unit_double covers [0, 1) exactly at its ends.
  EXPECT_EQ(unit_double(0), 0.0);
  EXPECT_LT(unit_double(~0ull), 1.0);
  EXPECT_GT(unit_double(~0ull), 1.0 - 1e-15);
}

TEST(Random, NormalMoments) {
  Random r(8);
  const int n = 200000;
  double sum = 0, sum_sq = 0, sum_4 = 0;
  int within_one = 0;
  for (int i = 0; i < n; ++i) {
    const double v = r.normal(2.0, 3.0);
    ASSERT_TRUE(std::isfinite(v));
    sum += v;
    sum_sq += (v - 2.0) * (v - 2.0);
    sum_4 += std::pow((v - 2.0) / 3.0, 4);
    within_one += std::abs(v - 2.0) < 3.0;
  }
  const double mean = sum / n, stddev = std::sqrt(sum_sq / n);
  EXPECT_NEAR(mean, 2.0, 6 * 3.0 / std::sqrt(double(n)));
  EXPECT_NEAR(stddev, 3.0, 6 * 3.0 / std::sqrt(2.0 * n));
  EXPECT_NEAR(double(within_one) / n, 0.682689, 6 * std::sqrt(0.68 * 0.32 / n));
  EXPECT_NEAR(sum_4 / n, 3.0, 0.1);  // kurtosis of a normal
  // Consecutive values (the Box-Muller pair) are uncorrelated.
  double cross = 0;
  for (int i = 0; i < n / 2; ++i) cross += r.normal() * r.normal();
  EXPECT_NEAR(cross / (n / 2), 0.0, 6 / std::sqrt(n / 2.0));
}

TEST(Random, UniformIntInRangeAndUnbiased) {
  Random r(9);
  EXPECT_EQ(r.uniform_int(1), 0u);
  const std::uint64_t k = 7;
  const int n = 70000;
  std::vector<int> counts(k, 0);
  for (int i = 0; i < n; ++i) {
    const std::uint64_t v = r.uniform_int(k);
    ASSERT_LT(v, k);
    ++counts[v];
  }
  double chi2 = 0;
  for (int c : counts) chi2 += (c - double(n) / k) * (c - double(n) / k) / (double(n) / k);
  EXPECT_LT(chi2, 30.0) << "chi-square with 6 degrees of freedom";  // p ~ 4e-5

  // A bound just above 2^63 shows modulo bias plainly: x % n would put values below 2^63 - ...
  // twice as often. With n = 3 * 2^62, values below n / 3 must come a third of the time,
  // not a half.
  const std::uint64_t big = 3ull << 62;
  int below = 0;
  const int m = 30000;
  for (int i = 0; i < m; ++i) {
    const std::uint64_t v = r.uniform_int(big);
    ASSERT_LT(v, big);
    below += v < big / 3;
  }
  EXPECT_NEAR(double(below) / m, 1.0 / 3, 6 * std::sqrt(2.0 / 9 / m));
  // The largest bound works too.
  for (int i = 0; i < 100; ++i) ASSERT_LT(r.uniform_int(~0ull), ~0ull);
}

TEST(Random, ShuffleIsAUniformPermutation) {
  Random r(10);
  std::vector<int> v(100);
  std::iota(v.begin(), v.end(), 0);
  std::vector<int> shuffled = v;
  r.shuffle(shuffled);
  EXPECT_NE(shuffled, v) << "a shuffle of 100 left everything in place";
  std::vector<int> sorted = shuffled;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(sorted, v) << "not a permutation";

  // Each of 4 elements lands in each of 4 positions a quarter of the time.
  const int n = 20000;
  int where[4][4] = {};
  for (int i = 0; i < n; ++i) {
    std::vector<int> s = {0, 1, 2, 3};
    r.shuffle(s);
    for (int pos = 0; pos < 4; ++pos) ++where[s[pos]][pos];
  }
  for (int e = 0; e < 4; ++e)
    for (int pos = 0; pos < 4; ++pos)
      EXPECT_NEAR(double(where[e][pos]) / n, 0.25, 6 * std::sqrt(0.25 * 0.75 / n)) << e << " at " << pos;

  // All 6 orders of 3 elements appear, evenly.
  std::vector<int> orders(6, 0);
  for (int i = 0; i < 6000; ++i) {
    std::vector<int> s = {0, 1, 2};
    r.shuffle(s);
    ++orders[std::size_t(s[0] * 2 + (s[1] > s[2] ? 1 : 0))];
  }
  for (int c : orders) EXPECT_NEAR(c, 1000, 6 * std::sqrt(1000.0));

  std::vector<double> none, one = {3.5};
  r.shuffle(none);
  r.shuffle(one);
  EXPECT_TRUE(none.empty());
  EXPECT_EQ(one, std::vector<double>{3.5});

  // Same seed, same shuffle.
  Random a(77), b(77);
  std::vector<int> x = v, y = v;
  a.shuffle(x);
  b.shuffle(y);
  EXPECT_EQ(x, y);
}

// =============================================================================================
// faltung::Error

TEST(Error, IsARuntimeErrorWithTheStreamedMessage) {
  try {
    FALTUNG_CHECK(1 + 1 == 3, "arithmetic: ", 1, " + ", 1.5, " is not ", 'x', ' ', std::string("ok"));
    FAIL() << "FALTUNG_CHECK did not throw";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(dynamic_cast<const Error*>(&e), nullptr);
    EXPECT_EQ(std::string(e.what()), "arithmetic: 1 + 1.5 is not x ok");
  }
  EXPECT_NO_THROW(FALTUNG_CHECK(true, "never"));
  // The condition is evaluated once, the message only on failure.
  int evaluated = 0, formatted = 0;
  auto message = [&] {
    ++formatted;
    return "m";
  };
  FALTUNG_CHECK(++evaluated == 1, message());
  EXPECT_EQ(evaluated, 1);
  EXPECT_EQ(formatted, 0);
  const Error e("plain");
  EXPECT_STREQ(e.what(), "plain");
  EXPECT_TRUE(contains(error_of([] { set_num_threads(0); }), "at least one thread"));
}

TEST(Threading, SetAndGetThreadCount) {
  const int saved = num_threads();
  set_num_threads(1);
  EXPECT_EQ(num_threads(), 1);
#if FALTUNG_HAS_OPENMP
  set_num_threads(2);
  EXPECT_EQ(num_threads(), 2);
#endif
  EXPECT_EQ(thread_index(), 0);
  set_num_threads(saved);
}

// ---------------------------------------------------------------------------------------------
// The text helpers (text.hpp), and the one `detail` namespace

TEST(Text, TrimAndGroupDigits) {
  EXPECT_EQ(detail::trim("  relu \t\n"), "relu");
  EXPECT_EQ(detail::trim(" \t "), "");
  EXPECT_EQ(detail::trim(""), "");
  EXPECT_EQ(detail::trim(" \v1.5\r", " \t"), "\v1.5\r");  // only the characters asked for
  EXPECT_EQ(detail::trim("\t 1.5 \t", " \t"), "1.5");
  EXPECT_EQ(detail::group_digits(0), "0");
  EXPECT_EQ(detail::group_digits(999), "999");
  EXPECT_EQ(detail::group_digits(1000), "1,000");
  EXPECT_EQ(detail::group_digits(1815114), "1,815,114");
}

namespace uses_faltung_and_its_kernels {
using namespace faltung::kernels;  // with faltung's names in scope too (the file's using)
// Compiles only while faltung::kernels has no `detail` of its own: `detail::` names one namespace.
inline std::string grouped(std::size_t n) { return detail::group_digits(n); }
}  // namespace uses_faltung_and_its_kernels

TEST(Text, OneDetailNamespaceForFaltungAndItsKernels) {
  EXPECT_EQ(uses_faltung_and_its_kernels::grouped(421642), "421,642");
}

}  // namespace
