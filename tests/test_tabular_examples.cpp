// The pieces of examples/tabular and examples/regression (and the scatter plots of the shared
// SVG writer): each example learns on small data, in a second or two, with a bound on its
// accuracy or R^2; CSV input goes through them; bad options are refused.
//
// Compiled in when examples/CMakeLists.txt gives this test the examples' directory
// (FALTUNG_TEST_EXAMPLE_PIECES); without the examples this program has no tests.

#include <gtest/gtest.h>

#ifdef FALTUNG_TEST_EXAMPLE_PIECES

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "common/svg_plot.hpp"
#include "regression/regression.hpp"
#include "tabular/tabular.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;
using faltung::test::contains;

namespace {

// One thread: ctest runs two test programs at once on the 2-core CI machine, and a second
// OpenMP thread per program would only wait for a core (see benchmarks/bench_tabular.cpp for
// what that costs a small step).
class Examples : public ::testing::Environment {
 public:
  void SetUp() override { faltung::set_num_threads(1); }
};
const auto* const examples_environment = ::testing::AddGlobalTestEnvironment(new Examples);

struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() / ("faltung_test_tabular_" + std::to_string(std::random_device{}()));
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string operator/(const std::string& name) const { return (path / name).string(); }
};

/// Parses a command line into the example's options the way main does; throws what main catches.
template <class Options, class Add, class Validate>
Options parse(const std::vector<std::string>& args, Add add, Validate validate) {
  CLI::App app("test");
  Options o;
  add(app, o);
  std::vector<std::string> reversed(args.rbegin(), args.rend());  // CLI11 takes them last first
  app.parse(reversed);
  validate(o);
  return o;
}
tabular::Options tabular_options(const std::vector<std::string>& args) {
  return parse<tabular::Options>(args, tabular::add_options, tabular::validate);
}
regression::Options regression_options(const std::vector<std::string>& args) {
  return parse<regression::Options>(args, regression::add_options, regression::validate);
}

std::string invalid(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(nothing thrown)";
}

std::size_t count(const std::string& s, const std::string& part) {
  std::size_t n = 0;
  for (std::size_t at = s.find(part); at != std::string::npos; at = s.find(part, at + 1)) ++n;
  return n;
}

// ---------------------------------------------------------------------------------------------
// tabular

TEST(TabularExample, BothModelsLearnTheGeneratedSet) {
  const auto o = tabular_options({"--samples", "4000", "--features", "10", "--epochs", "5"});
  auto data = tabular::load_data(o);
  EXPECT_EQ(data.train.size(), 3200u);
  EXPECT_EQ(data.test.size(), 800u);
  faltung_examples::standardize(data);
  std::ostringstream log;
  const tabular::Result logreg = tabular::train_and_test("logreg", data, o, log);
  const tabular::Result mlp = tabular::train_and_test("mlp", data, o, log);
  EXPECT_EQ(logreg.model, "logistic regression");
  EXPECT_EQ(mlp.model, "MLP 10-64-32-1");
  EXPECT_EQ(mlp.steps, 5u * 100u);
  // The clusters of data seed 7 face each other across a line: logistic regression learns
  // them, and the MLP learns their shapes too.
  EXPECT_GT(logreg.accuracy, 0.85);
  EXPECT_GT(mlp.accuracy, 0.90);
  EXPECT_GE(mlp.accuracy, logreg.accuracy);
  const std::string table = tabular::results_table({logreg, mlp}, 32);
  EXPECT_TRUE(contains(table, "| model | accuracy | training time | us per step (batch 32) |"));
  EXPECT_TRUE(contains(table, "| faltung MLP 10-64-32-1 (5 epochs) | 0."));
}

TEST(TabularExample, ManyClassesTrainASoftmaxHead) {
  const auto o = tabular_options({"--samples", "3000", "--features", "8", "--epochs", "5", "--models", "mlp"});
  faltung::TabularData<float> d = faltung::make_classification<float>(
      faltung::MakeClassificationOptions().samples(3000).features(8).informative(4).classes(3).class_sep(2));
  auto split = faltung::train_test_split(d, 0.2, 1);
  faltung_examples::standardize(split);
  std::ostringstream log;
  const auto r = tabular::train_and_test("mlp", split, o, log);
  EXPECT_EQ(r.model, "MLP 8-64-32-3");
  EXPECT_GT(r.accuracy, 0.8);  // chance is 1/3
}

TEST(TabularExample, CsvFilesWithNamedClasses) {
  // Two files whose label is a class name; the test file lacks one class, so its own sorting
  // would number the classes differently: the example must map them by name.
  TempDir dir;
  faltung::TabularData<float> d = faltung::make_classification<float>(
      faltung::MakeClassificationOptions().samples(2000).features(6).informative(3).classes(3).class_sep(2).seed(3));
  d.class_names = {"ant", "bee", "cat"};
  auto split = faltung::train_test_split(d, 0.25, 5);
  faltung::TabularData<float> test_without_ant;
  std::vector<std::size_t> keep;
  for (std::size_t i = 0; i < split.test.size(); ++i)
    if (split.test.y[i] != 0) keep.push_back(i);
  test_without_ant = faltung::detail::take_rows(split.test, keep, 0, keep.size());
  faltung::write_csv(dir / "train.csv", split.train);
  faltung::write_csv(dir / "test.csv", test_without_ant);

  const auto o = tabular_options({"--csv", dir / "train.csv", "--test-csv", dir / "test.csv", "--label", "label",
                                  "--epochs", "5", "--models", "mlp"});
  auto data = tabular::load_data(o);
  EXPECT_EQ(data.train.class_names, (std::vector<std::string>{"ant", "bee", "cat"}));
  EXPECT_EQ(data.test.class_names, data.train.class_names);
  for (float y : data.test.y) EXPECT_NE(y, 0.0f);  // bee and cat keep their training indices
  faltung_examples::standardize(data);
  std::ostringstream log;
  EXPECT_GT(tabular::train_and_test("mlp", data, o, log).accuracy, 0.75);

  // A label by index, and one file split by the seed.
  const auto by_index = tabular_options({"--csv", dir / "train.csv", "--label", "-1", "--test-fraction", "0.5"});
  EXPECT_EQ(tabular::load_data(by_index).test.size(), split.train.size() / 2);

  // A test class the training data never shows cannot be predicted: an error.
  faltung::write_csv(dir / "train_no_ant.csv", test_without_ant);
  faltung::write_csv(dir / "test_all.csv", split.test);
  EXPECT_TRUE(contains(invalid([&] {
                         tabular::load_data(tabular_options({"--csv", dir / "train_no_ant.csv", "--test-csv",
                                                             dir / "test_all.csv", "--label", "label"}));
                       }),
                       "class 'ant' of the test data is not in the training data"));
}

TEST(TabularExample, ABundledRealDataSet) {
  // Breast cancer diagnosis (569 x 30), as Debian's python3-sklearn ships it: a preamble line of
  // counts and class names, no header row, the label last.
  const std::string path = "/usr/lib/python3/dist-packages/sklearn/datasets/data/breast_cancer.csv";
  if (!fs::exists(path)) GTEST_SKIP() << path << " not installed (python3-sklearn)";
  const auto o = tabular_options({"--csv", path, "--no-header", "--skip-lines", "1", "--label", "-1", "--epochs", "20"});
  auto data = tabular::load_data(o);
  EXPECT_EQ(data.train.num_features(), 30u);
  EXPECT_EQ(data.train.size() + data.test.size(), 569u);
  faltung_examples::standardize(data);
  std::ostringstream log;
  EXPECT_GT(tabular::train_and_test("logreg", data, o, log).accuracy, 0.9);
  // Without skipping the preamble the file is ragged, and the error says where.
  EXPECT_TRUE(contains(invalid([&] { tabular::load_data(tabular_options({"--csv", path, "--label", "-1"})); }),
                       "line 2: 31 fields, but the header has 4"));
}

TEST(TabularExample, WritesResultsForScripts) {
  TempDir dir;
  tabular::Result r;
  r.model = "MLP 20-64-32-1";
  r.accuracy = 0.96125;
  r.seconds = 1.5;
  r.steps = 25000;
  r.epochs = 20;
  tabular::write_results_csv(dir / "r.csv", {r}, 2);
  std::ifstream in(dir / "r.csv");
  std::stringstream s;
  s << in.rdbuf();
  EXPECT_EQ(s.str(), "framework,model,accuracy,seconds,epochs,steps,threads\nfaltung,MLP 20-64-32-1,0.96125,1.5,20,25000,2\n");
}

TEST(TabularExample, BadOptions) {
  EXPECT_EQ(invalid([] { tabular_options({"--csv", "data.csv"}); }), "--csv needs --label COLUMN");
  EXPECT_EQ(invalid([] { tabular_options({"--label", "y"}); }), "--label needs --csv FILE");
  EXPECT_TRUE(contains(invalid([] { tabular_options({"--mlp", "dense:x:relu"}); }), "--mlp: layer 1 'dense:x:relu'"));
  EXPECT_TRUE(contains(invalid([] { tabular_options({"--models", "logreg,xgboost"}); }), "xgboost"));
  EXPECT_TRUE(contains(invalid([] { tabular_options({"--lr", "-1"}); }), "'-1' is not a positive number"));
  EXPECT_TRUE(contains(invalid([] { tabular_options({"--test-fraction", "1"}); }), "a fraction in (0, 0.9]"));
  EXPECT_TRUE(contains(invalid([] { tabular_options({"--test-csv", "t.csv"}); }), "--csv"));
  EXPECT_TRUE(contains(invalid([] { tabular::load_data(tabular_options({"--csv", "/no/such.csv", "--label", "y"})); }),
                       "cannot open '/no/such.csv'"));
}

// ---------------------------------------------------------------------------------------------
// regression

TEST(RegressionExample, Metrics) {
  const auto m = regression::regression_metrics({1, 2, 3}, {1, 2, 4});
  EXPECT_DOUBLE_EQ(m.rmse, std::sqrt(1.0 / 3.0));
  EXPECT_DOUBLE_EQ(m.r2, 1 - 1.0 / (42.0 / 9.0));  // SS_tot around the mean 7/3
  EXPECT_DOUBLE_EQ(regression::regression_metrics({2, 2, 2}, {1, 2, 3}).r2, 0.0);  // the mean: R^2 0
  EXPECT_TRUE(std::isnan(regression::regression_metrics({1, 2}, {5, 5}).r2));
  EXPECT_TRUE(contains(invalid([] { regression::regression_metrics({1}, {1, 2}); }), "as many predictions"));
}

TEST(RegressionExample, LearnsFriedmansFunctionAndPlotsIt) {
  const auto o = regression_options({"--samples", "3000", "--epochs", "20"});
  auto data = regression::load_data(o);
  faltung_examples::standardize(data);
  std::ostringstream log;
  const regression::Result linear = regression::train_and_test("linear", data, o, log);
  const regression::Result mlp = regression::train_and_test("mlp", data, o, log);
  EXPECT_EQ(mlp.model, "MLP 10-64-64-1");
  // A line explains about three quarters of Friedman's function; the MLP most of what the noise
  // leaves (the best possible is about 0.96).
  EXPECT_GT(linear.test.r2, 0.6);
  EXPECT_LT(linear.test.r2, 0.8);
  EXPECT_GT(mlp.test.r2, 0.85);
  EXPECT_LT(mlp.test.rmse, linear.test.rmse);
  // The predictions are in the target's units (about 0..30), not standardised ones.
  double mean = 0;
  for (double p : mlp.predictions) mean += p / double(mlp.predictions.size());
  EXPECT_GT(mean, 10);
  EXPECT_LT(mean, 20);

  const std::vector<double> targets(data.test.y.begin(), data.test.y.end());
  const std::string svg = regression::predictions_svg({linear, mlp}, targets, "Friedman").str();
  // A dot per test row and model, and one in each scatter's legend entry.
  EXPECT_EQ(count(svg, "<circle"), 2 * targets.size() + 2);
  EXPECT_EQ(count(svg, "<polyline"), 1u);  // the diagonal
  EXPECT_TRUE(contains(svg, "MLP 10-64-64-1: R^2 0."));
  const std::string table = regression::results_table({linear, mlp});
  EXPECT_TRUE(contains(table, "| model | test RMSE | test R^2 | training time |"));
}

TEST(RegressionExample, ReadsATargetFromCsv) {
  TempDir dir;
  faltung::write_csv(dir / "f.csv",
                     faltung::make_friedman1<float>(faltung::MakeFriedman1Options().samples(500).features(6)));
  const auto o = regression_options({"--csv", dir / "f.csv", "--target", "y", "--epochs", "30", "--lr", "0.01", "--models", "linear"});
  auto data = regression::load_data(o);
  EXPECT_EQ(data.train.num_features(), 6u);
  EXPECT_TRUE(data.train.class_names.empty());
  faltung_examples::standardize(data);
  std::ostringstream log;
  EXPECT_GT(regression::train_and_test("linear", data, o, log).test.r2, 0.5);
  EXPECT_EQ(invalid([] { regression_options({"--csv", "f.csv"}); }), "--csv needs --target COLUMN");
}

// ---------------------------------------------------------------------------------------------
// common/svg_plot.hpp: scatter series

TEST(SvgPlot, ScatterSeriesAreDotsWithoutALine) {
  namespace svg = faltung_examples::svg;
  svg::Series dots;
  dots.label = "dots";
  dots.line = false;
  for (int i = 0; i < 500; ++i) {  // more than line charts would mark
    dots.x.push_back(i);
    dots.y.push_back(i % 7);
  }
  svg::LineChartOptions opt;
  opt.integer_x = false;
  const std::string doc = svg::line_chart({dots}, opt).str();
  EXPECT_EQ(count(doc, "<circle"), 501u);  // 500 points and the legend's dot
  EXPECT_EQ(count(doc, "<polyline"), 0u);
  EXPECT_EQ(count(doc, "fill-opacity=\"0.45\""), 500u);
}

}  // namespace

#endif  // FALTUNG_TEST_EXAMPLE_PIECES
