// Fashion-MNIST: a short training on the real data (skipped when the Debian package
// dataset-fashion-mnist is not installed), and the pieces of examples/fashion_mnist: its
// command line and sweep files, its SVG writer, and one whole run of the example.
//
// The example's pieces are compiled in when examples/CMakeLists.txt gives this test their
// directory (FALTUNG_TEST_EXAMPLE_PIECES); with examples off, the training test still runs.

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <faltung/faltung.hpp>
#include <faltung/model/architecture.hpp>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#ifdef FALTUNG_TEST_FASHION_MNIST_PROGRAM
#include <stb_image_write.h>
#include <sys/wait.h>

#include <faltung/data/image.hpp>
#endif

#ifdef FALTUNG_TEST_EXAMPLE_PIECES
#include "options.hpp"
#include "plots.hpp"
#include "report.hpp"
#include "run.hpp"
#include "common/svg_plot.hpp"
#include "test_support.hpp"
#endif

namespace {

using namespace faltung;

/// Where the data is, or "" when it is not installed.
std::string data_dir() {
  const std::string dir = default_fashion_mnist_dir();
  std::error_code ec;
  return std::filesystem::exists(std::filesystem::path(dir) / "train-images-idx3-ubyte.gz", ec) ||
                 std::filesystem::exists(std::filesystem::path(dir) / "train-images-idx3-ubyte", ec)
             ? dir
             : std::string();
}

#define SKIP_WITHOUT_DATA()                                                           \
  if (data_dir().empty())                                                             \
  GTEST_SKIP() << "Fashion-MNIST is not installed in " << default_fashion_mnist_dir() \
               << " (apt-get install dataset-fashion-mnist, or set FALTUNG_FASHION_MNIST_DIR)"

/// The data, loaded once for every test that needs it.
const FashionMnist& data() {
  static const FashionMnist d = load_fashion_mnist(data_dir());
  return d;
}

// A small CNN on 5000 training images for two epochs reaches about 0.83 on the whole test set,
// in a few seconds on two cores.
TEST(FashionMnistIntegration, SmallCnnLearnsFromFewThousandImages) {
  SKIP_WITHOUT_DATA();
  const FashionMnist& d = data();
  ASSERT_EQ(d.train.size(), 60000u);
  ASSERT_EQ(d.test.size(), 10000u);
  const ImageDataset train = d.train.head(5000);
  const Tensor<float> x = train.images<float>(), y = train.label_tensor<float>();
  EXPECT_FLOAT_EQ(*std::max_element(x.begin(), x.end()), 1.0f);  // scaled to [0, 1] once
  EXPECT_FLOAT_EQ(*std::min_element(x.begin(), x.end()), 0.0f);

  // One thread: for a net this small the kernels' parallel regions cost more than they save,
  // and far more when ctest runs other tests beside this one (measured under load: 0.6 s with
  // one thread, 2 to 26 s with two).
  const int threads_before = num_threads();
  set_num_threads(1);
  Sequential<float> net = make_sequential<float>("conv:16:5:relu,pool:2,flatten,dense:10", {1, 28, 28}, 7);
  net.compile(SparseCrossEntropy{}, Adam<float>(AdamOptions(2e-3)));
  const auto start = std::chrono::steady_clock::now();
  const History h = net.fit(x, y, FitOptions().epochs(2).batch_size(16).verbose(0));
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  set_num_threads(threads_before);
  ASSERT_EQ(h.epochs(), 2u);
  EXPECT_LT(h.loss[1], h.loss[0]);

  const Evaluation e = net.evaluate(d.test.images<float>(), d.test.label_tensor<float>());
  std::cout << "[          ] 5000 images, 2 epochs: " << seconds << " s, test accuracy " << e.accuracy << ", test loss "
            << e.loss << "\n";
  EXPECT_GE(e.accuracy, 0.80);
  EXPECT_LT(e.loss, 0.65);
}

#ifdef FALTUNG_TEST_EXAMPLE_PIECES

// ---------------------------------------------------------------------------------------------
// A small well-formedness check of XML: tags nest and close, attributes are quoted, '<' and '&'
// appear only as markup and entities. What python's xml.etree would reject, this rejects too,
// for the subset of XML the SVG writer produces.
std::string xml_problem(const std::string& s) {
  std::vector<std::string> open;
  std::size_t i = 0, roots = 0;
  auto name_char = [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == ':' || c == '.';
  };
  auto check_entities = [&](const std::string& text) -> std::string {
    for (std::size_t k = 0; k < text.size(); ++k) {
      if (text[k] == '<') return "raw '<' in text";
      if (text[k] != '&') continue;
      const std::size_t semi = text.find(';', k);
      if (semi == std::string::npos) return "unterminated entity";
      const std::string e = text.substr(k + 1, semi - k - 1);
      if (e != "amp" && e != "lt" && e != "gt" && e != "quot" && e != "apos" && (e.empty() || e[0] != '#'))
        return "unknown entity &" + e + ";";
    }
    return "";
  };
  if (s.rfind("<?xml", 0) == 0) i = s.find("?>") + 2;
  while (i < s.size()) {
    const std::size_t lt = s.find('<', i);
    const std::string text = s.substr(i, (lt == std::string::npos ? s.size() : lt) - i);
    if (auto p = check_entities(text); !p.empty()) return p + " near offset " + std::to_string(i);
    if (open.empty() && text.find_first_not_of(" \t\r\n") != std::string::npos) return "text outside the root";
    if (lt == std::string::npos) break;
    i = lt + 1;
    if (s.compare(i, 3, "!--") == 0) {
      const std::size_t end = s.find("-->", i);
      if (end == std::string::npos) return "unterminated comment";
      i = end + 3;
      continue;
    }
    const bool closing = s[i] == '/';
    if (closing) ++i;
    std::size_t n = i;
    while (n < s.size() && name_char(s[n])) ++n;
    const std::string name = s.substr(i, n - i);
    if (name.empty()) return "empty tag name at offset " + std::to_string(i);
    i = n;
    if (closing) {
      if (open.empty() || open.back() != name)
        return "</" + name + "> does not close <" + (open.empty() ? "" : open.back()) + ">";
      open.pop_back();
      if (i >= s.size() || s[i] != '>') return "bad closing tag </" + name;
      ++i;
      continue;
    }
    // Attributes.
    std::vector<std::string> seen;
    for (;;) {
      while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
      if (i >= s.size()) return "unterminated tag <" + name;
      if (s[i] == '>' || s.compare(i, 2, "/>") == 0) break;
      std::size_t a = i;
      while (a < s.size() && name_char(s[a])) ++a;
      const std::string attr = s.substr(i, a - i);
      if (attr.empty()) return "bad attribute in <" + name + "> at offset " + std::to_string(i);
      if (std::find(seen.begin(), seen.end(), attr) != seen.end())
        return "duplicate attribute " + attr + " in <" + name;
      seen.push_back(attr);
      if (a >= s.size() || s[a] != '=') return "attribute " + attr + " without a value in <" + name;
      const char q = s[a + 1];
      if (q != '"' && q != '\'') return "unquoted attribute " + attr + " in <" + name;
      const std::size_t end = s.find(q, a + 2);
      if (end == std::string::npos) return "unterminated attribute " + attr;
      if (auto p = check_entities(s.substr(a + 2, end - a - 2)); !p.empty()) return p + " in attribute " + attr;
      i = end + 1;
    }
    if (open.empty() && ++roots > 1) return "more than one root element";
    if (s[i] == '>') {
      open.push_back(name);
      ++i;
    } else {
      i += 2;
    }
  }
  if (!open.empty()) return "<" + open.back() + "> is not closed";
  if (roots != 1) return "no root element";
  return "";
}

using test::ProgramRun;
using test::read_file;

TEST(XmlCheck, RejectsWhatIsNotWellFormed) {
  EXPECT_EQ(xml_problem("<svg><g><rect x=\"1\"/></g></svg>"), "");
  EXPECT_NE(xml_problem("<svg><g></svg>"), "");
  EXPECT_NE(xml_problem("<svg><text>a < b</text></svg>"), "");
  EXPECT_NE(xml_problem("<svg><text>a & b</text></svg>"), "");
  EXPECT_NE(xml_problem("<svg x=1></svg>"), "");
  EXPECT_NE(xml_problem("<svg></svg><svg></svg>"), "");
  EXPECT_NE(xml_problem("<svg a=\"1\" a=\"2\"></svg>"), "");
}

// ---------------------------------------------------------------------------------------------
// common/svg_plot.hpp

TEST(SvgPlot, EscapesText) {
  EXPECT_EQ(fmnist::svg::xml_escape("T-shirt/top & <b> \"x\" 'y'"),
            "T-shirt/top &amp; &lt;b&gt; &quot;x&quot; &apos;y&apos;");
  EXPECT_EQ(fmnist::svg::xml_escape(std::string("a\x01z")), "a z");
  fmnist::svg::SvgDocument doc(100, 50);
  doc.text(1, 2, "a < b & c");
  EXPECT_NE(doc.str().find("a &lt; b &amp; c"), std::string::npos);
  EXPECT_EQ(xml_problem(doc.str()), "");
}

TEST(SvgPlot, FormatsNumbersCompactly) {
  using fmnist::svg::num;
  EXPECT_EQ(num(12), "12");
  EXPECT_EQ(num(3.5), "3.5");
  EXPECT_EQ(num(0.254), "0.25");
  EXPECT_EQ(num(-0.001), "0");
  EXPECT_EQ(num(std::nan("")), "0");
}

TEST(SvgPlot, NiceTicksCoverTheRangeWithRoundSteps) {
  using fmnist::svg::nice_ticks;
  using fmnist::svg::tick_label;
  const std::vector<double> t = nice_ticks(0.43, 0.91, 6);
  ASSERT_GE(t.size(), 3u);
  EXPECT_LE(t.front(), 0.43);
  EXPECT_GE(t.back(), 0.91);
  EXPECT_LE(t.size(), 8u);
  const double step = t[1] - t[0];
  EXPECT_NEAR(step, 0.1, 1e-12);
  EXPECT_EQ(tick_label(t[0], step), "0.4");
  EXPECT_EQ(tick_label(0.85, 0.05), "0.85");
  EXPECT_EQ(tick_label(10, 2), "10");
  EXPECT_EQ(tick_label(-1e-17, 0.5), "0.0");
  // A flat series still gets a range; a huge one round steps.
  EXPECT_GE(nice_ticks(0.5, 0.5).size(), 2u);
  const std::vector<double> big = nice_ticks(0, 1000, 6);
  EXPECT_EQ(big.front(), 0);
  EXPECT_EQ(big.back(), 1000);
  EXPECT_NEAR(big[1] - big[0], 200, 1e-9);
}

TEST(SvgPlot, LineChartIsWellFormedWithGapsAndOddLabels) {
  using namespace fmnist::svg;
  Series a{"train <acc> & \"more\"", {1, 2, 3, 4}, {0.5, std::nan(""), 0.7, 0.8}, "", false, true};
  Series b{"val", {1, 2, 3, 4}, {0.55, 0.6, 0.62, 0.61}, "#ff0000", true, true};
  Series empty{"empty", {}, {}, "", false, true};
  LineChartOptions o;
  o.title = "Accuracy & loss";
  o.x_label = "epoch";
  o.y_label = "accuracy";
  const std::string s = line_chart({a, b, empty}, o).str();
  EXPECT_EQ(xml_problem(s), "");
  EXPECT_NE(s.find("<polyline"), std::string::npos);
  EXPECT_NE(s.find("train &lt;acc&gt; &amp; &quot;more&quot;"), std::string::npos);
  EXPECT_NE(s.find("stroke-dasharray"), std::string::npos);
  EXPECT_EQ(s.find("nan"), std::string::npos);
  EXPECT_EQ(s.find("inf"), std::string::npos);
  // No data at all still draws axes.
  const std::string none = line_chart({}, o).str();
  EXPECT_EQ(xml_problem(none), "");
  EXPECT_NE(none.find("no data"), std::string::npos);
}

TEST(SvgPlot, TrainingCurvesFromAHistory) {
  History h;
  h.loss = {0.9, 0.6, 0.5};
  h.accuracy = {0.7, 0.8, 0.82};
  h.val_loss = {0.7, 0.55, 0.56};
  h.val_accuracy = {0.75, 0.81, 0.80};
  h.best_epoch = 1;
  const std::string s = fmnist::training_curves_svg(h, "Fashion-MNIST", "conv:8:3,flatten,dense:10").str();
  EXPECT_EQ(xml_problem(s), "");
  EXPECT_NE(s.find(">Accuracy</text>"), std::string::npos);
  EXPECT_NE(s.find(">Loss</text>"), std::string::npos);
  EXPECT_NE(s.find(">validation</text>"), std::string::npos);
  EXPECT_NE(s.find("restored from epoch 2"), std::string::npos);
}

TEST(SvgPlot, ConfusionMatrixShowsCountsAndNames) {
  using namespace fmnist::svg;
  const std::vector<std::vector<std::size_t>> m = {{50, 2, 0}, {3, 40, 7}, {0, 10, 88}};
  const std::string s = confusion_matrix_svg(m, {"T-shirt/top", "Bag & co", "Ankle boot"}, "Confusion").str();
  EXPECT_EQ(xml_problem(s), "");
  EXPECT_NE(s.find(">88</text>"), std::string::npos);
  EXPECT_NE(s.find("Bag &amp; co"), std::string::npos);
  EXPECT_NE(s.find("200 samples, 178 correct (accuracy 89.00%)"), std::string::npos);
  EXPECT_NE(s.find("Predicted label"), std::string::npos);
  EXPECT_THROW(confusion_matrix_svg({{1, 2}}, {"a"}, "x"), std::invalid_argument);
}

TEST(SvgPlot, PredictionGridDrawsPixelsAsGivenAndMarksMistakes) {
  using namespace fmnist::svg;
  PredictedImage right, wrong;
  right.height = right.width = wrong.height = wrong.width = 28;
  right.pixels.assign(28 * 28, 0.0f);
  right.pixels[0] = 1.0f;  // black ink
  right.pixels[1] = 0.5f;  // mid grey: drawn as #808080, so it was not divided by 255 again
  wrong.pixels.assign(28 * 28, 0.25f);
  right.true_label = 1;
  right.probabilities = {0.05, 0.9, 0.05};
  wrong.true_label = 0;
  wrong.probabilities = {0.2, 0.1, 0.7};
  const std::string s = prediction_grid_svg({right, wrong}, {"zero", "one", "two"}, 2, "Predictions").str();
  EXPECT_EQ(xml_problem(s), "");
  EXPECT_NE(s.find("fill=\"#000000\""), std::string::npos);
  EXPECT_NE(s.find("fill=\"#808080\""), std::string::npos);
  EXPECT_NE(s.find("predicted: one (90%)"), std::string::npos);
  EXPECT_NE(s.find("predicted: two (70%)"), std::string::npos);
  EXPECT_NE(s.find("#cf222e"), std::string::npos);  // the wrong one in red
  // The uniform grey image (0.25: #bfbfbf) is one rect per row, not one per pixel.
  std::size_t greys = 0;
  for (std::size_t at = s.find("fill=\"#bfbfbf\""); at != std::string::npos; at = s.find("fill=\"#bfbfbf\"", at + 1))
    ++greys;
  EXPECT_EQ(greys, 28u);
  PredictedImage bad = right;
  bad.pixels.pop_back();
  EXPECT_THROW(prediction_grid_svg({bad}, {"zero", "one", "two"}, 1, "x"), std::invalid_argument);
}

// Pictures of one's own have no true label: no "true:" line, no verdict colours, the caption
// under the prediction, and the predicted class's bar blue.
TEST(SvgPlot, PredictionGridWithoutTrueLabelsShowsCaptions) {
  using namespace fmnist::svg;
  PredictedImage own;
  own.height = own.width = 28;
  own.pixels.assign(28 * 28, 0.0f);
  own.true_label = -1;
  own.probabilities = {0.1, 0.2, 0.7};
  own.caption = "my <shirt>.png";
  PredictedImage long_name = own;
  long_name.caption = std::string(200, 'x') + "_end.png";
  const std::string s = prediction_grid_svg({own, long_name}, {"zero", "one", "two"}, 2, "Mine").str();
  EXPECT_EQ(xml_problem(s), "");
  EXPECT_NE(s.find("predicted: two (70%)"), std::string::npos);
  EXPECT_EQ(s.find("true:"), std::string::npos);
  EXPECT_EQ(s.find("#cf222e"), std::string::npos);  // nothing is marked wrong
  EXPECT_EQ(s.find("#1a7f37"), std::string::npos);  // nor right
  EXPECT_NE(s.find("my &lt;shirt&gt;.png"), std::string::npos);
  EXPECT_NE(s.find("..."), std::string::npos);      // the long caption keeps its end
  EXPECT_NE(s.find("x_end.png"), std::string::npos);
  EXPECT_NE(s.find("#1f77b4"), std::string::npos);  // the predicted bar
  EXPECT_NE(s.find("blue: the prediction"), std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// options.hpp: the command line, the preset, sweep files

fmnist::Config parse(std::vector<const char*> args) {
  args.insert(args.begin(), "fashion_mnist");
  CLI::App app;
  fmnist::Config c;
  fmnist::add_training_options(app, c);
  fmnist::add_program_options(app, c);
  return fmnist::parse_command_line(app, c, int(args.size()), args.data());
}

TEST(FashionMnistOptions, DefaultsAreASmallCnnWithAdam) {
  const fmnist::Config c = parse({});
  EXPECT_EQ(c.arch, fmnist::default_arch());
  EXPECT_EQ(c.optimizer, "adam");
  EXPECT_DOUBLE_EQ(c.learning_rate(), 1e-3);
  EXPECT_EQ(c.batch, 32u);
  EXPECT_EQ(c.epochs, 10);
  EXPECT_DOUBLE_EQ(c.validation_split, 0.1);
  EXPECT_FALSE(c.validate_on_test);
  EXPECT_EQ(c.out, "fashion_mnist_out");
  EXPECT_EQ(canonical_spec(c.arch), c.arch);  // already canonical
  EXPECT_DOUBLE_EQ(parse({"--optimizer", "sgd"}).learning_rate(), 0.01);
}

TEST(FashionMnistOptions, NotebookPresetAndExplicitOverrides) {
  const fmnist::Config n = parse({"--preset", "notebook"});
  EXPECT_EQ(n.arch, fmnist::notebook_arch());
  EXPECT_EQ(n.batch, 256u);
  EXPECT_EQ(n.epochs, 30);
  EXPECT_DOUBLE_EQ(n.learning_rate(), 1e-3);
  EXPECT_DOUBLE_EQ(n.decay, 1e-3 / 30);
  EXPECT_TRUE(n.validate_on_test);

  const fmnist::Config o =
      parse({"--epochs", "5", "--preset", "notebook", "--batch", "128", "--validation-split", "0.2"});
  EXPECT_EQ(o.epochs, 5);
  EXPECT_EQ(o.batch, 128u);
  EXPECT_EQ(o.arch, fmnist::notebook_arch());
  EXPECT_FALSE(o.validate_on_test);  // an explicit split replaces the test set as validation data
  EXPECT_DOUBLE_EQ(o.validation_split, 0.2);
}

TEST(FashionMnistOptions, BadValuesAreClearErrors) {
  EXPECT_THROW(parse({"--optimizer", "adamw"}), CLI::ValidationError);
  EXPECT_THROW(parse({"--lr", "-1"}), CLI::ValidationError);
  EXPECT_THROW(parse({"--epochs", "0"}), CLI::ValidationError);
  EXPECT_THROW(parse({"--batch", "2.5"}), CLI::ValidationError);
  EXPECT_THROW(parse({"--validation-split", "1"}), CLI::ValidationError);
  EXPECT_THROW(parse({"--preset", "keras"}), CLI::ValidationError);
  EXPECT_THROW(parse({"--no-such-option"}), CLI::ExtrasError);
  try {
    parse({"--momentum", "0.9"});
    FAIL() << "momentum with adam was accepted";
  } catch (const fmnist::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("sgd and rmsprop"), std::string::npos) << e.what();
  }
  EXPECT_THROW(parse({"--patience", "2", "--validation-split", "0"}), fmnist::ConfigError);
  EXPECT_NO_THROW(parse({"--patience", "2", "--validation-split", "0", "--validate-on-test"}));
  try {
    parse({"--lr", "abc"});
    FAIL();
  } catch (const CLI::ValidationError& e) {
    EXPECT_NE(std::string(e.what()).find("'abc' is not a positive number"), std::string::npos) << e.what();
  }
}

TEST(FashionMnistOptions, PredictTakesAModelAndPicturesAndNoTrainingOptions) {
  const fmnist::Config c = parse({"--predict", "m.faltung", "a.png", "b.jpg", "--out", "o", "--threads", "1"});
  EXPECT_EQ(c.predict, (std::vector<std::string>{"m.faltung", "a.png", "b.jpg"}));
  EXPECT_EQ(c.out, "o");
  EXPECT_THROW(parse({"--predict", "m.faltung"}), CLI::ParseError);  // no picture
  try {
    parse({"--predict", "m.faltung", "a.png", "--epochs", "3"});
    ADD_FAILURE() << "--epochs was accepted beside --predict";
  } catch (const fmnist::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("--epochs does not apply"), std::string::npos) << e.what();
  }
  EXPECT_THROW(parse({"--predict", "m.faltung", "a.png", "--sweep", "runs.txt"}), fmnist::ConfigError);
}

TEST(FashionMnistOptions, BadArchitectureNamesTheToken) {
  fmnist::Config c = parse({"--arch", "conv:32:3:same:relu,pool:2,conv:64:x,flatten,dense:10"});
  try {
    fmnist::build_model(c);
    FAIL() << "a bad architecture was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'x'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("--arch"), std::string::npos) << e.what();
  }
  c.arch = "conv:8:3,flatten,dense:12";
  EXPECT_THROW(fmnist::build_model(c), fmnist::ConfigError);  // 12 outputs for 10 classes
  c.arch = "conv:8:3,flatten,dense:10";
  EXPECT_EQ(fmnist::build_model(c).output_shape(), Shape({10}));
}

std::vector<fmnist::SweepLine> sweep(const std::string& text, std::vector<const char*> args = {}) {
  std::istringstream in(text);
  return fmnist::parse_sweep(in, parse(args), "runs.txt");
}

TEST(FashionMnistSweep, ParsesLinesCommentsNamesAndContinuations) {
  const auto lines = sweep(
      "# a sweep\n"
      "\n"
      "name=small --arch conv:16:3:same:relu,pool:2,flatten,dense:10 --epochs 5   # tiny\n"
      "--lr 0.0005 --batch 128\n"
      "name=sgd --optimizer sgd --lr 0.05 \\\n"
      "    --momentum 0.9\n"
      "  --name notebook --preset notebook --epochs 3\n");
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_EQ(lines[0].line, 3);
  EXPECT_EQ(lines[0].config.name, "small");
  EXPECT_EQ(lines[0].config.arch, "conv:16:3:same:relu,pool:2,flatten,dense:10");
  EXPECT_EQ(lines[0].config.epochs, 5);
  EXPECT_EQ(lines[1].config.name, "run2");  // unnamed: by position
  EXPECT_DOUBLE_EQ(lines[1].config.learning_rate(), 0.0005);
  EXPECT_EQ(lines[1].config.batch, 128u);
  EXPECT_EQ(lines[1].config.epochs, 10);  // the default, not the previous line's
  EXPECT_EQ(lines[1].config.arch, fmnist::default_arch());
  EXPECT_EQ(lines[2].line, 5);
  EXPECT_EQ(lines[2].config.optimizer, "sgd");
  EXPECT_DOUBLE_EQ(lines[2].config.momentum, 0.9);
  EXPECT_EQ(lines[3].config.name, "notebook");
  EXPECT_EQ(lines[3].config.arch, fmnist::notebook_arch());
  EXPECT_EQ(lines[3].config.epochs, 3);  // the line's option over its preset
  EXPECT_EQ(lines[3].config.batch, 256u);
}

TEST(FashionMnistSweep, CommandLineOptionsApplyToEveryLineUnlessALineSetsThem) {
  const auto lines = sweep("name=a\nname=b --epochs 4\nname=c --preset notebook\n", {"--epochs", "1", "--seed", "7"});
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0].config.epochs, 1);
  EXPECT_EQ(lines[1].config.epochs, 4);
  EXPECT_EQ(lines[2].config.epochs, 1);  // the command line over the line's preset
  EXPECT_EQ(lines[2].config.batch, 256u);
  for (const auto& l : lines) EXPECT_EQ(l.config.seed, 7u);
}

TEST(FashionMnistSweep, ErrorsNameTheFileAndLine) {
  auto message = [](const std::string& text) {
    try {
      sweep(text);
    } catch (const fmnist::ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message("name=a\n\n--epochs zero\n").find("runs.txt:3"), std::string::npos);
  EXPECT_NE(message("--data /tmp\n").find("runs.txt:1"), std::string::npos);
  EXPECT_NE(message("--data /tmp\n").find("--data"), std::string::npos);
  EXPECT_NE(message("name=a --epochs 1\nname=a --epochs 2\n").find("used twice"), std::string::npos);
  EXPECT_NE(message("name=a/b\n").find("run name"), std::string::npos);
  EXPECT_NE(message("# only comments\n\n").find("no configurations"), std::string::npos);
  EXPECT_NE(message("--momentum 0.5\n").find("runs.txt:1"), std::string::npos);
}

TEST(FashionMnistSweep, ReportsCompareRuns) {
  fmnist::RunResult a, b;
  a.config.name = "a";
  a.spec = "conv:8:3,flatten,dense:10";
  a.parameters = 1234567;
  a.history.val_accuracy = {0.8, 0.85, 0.84};
  a.history.accuracy = a.history.loss = a.history.seconds = {1, 1, 1};
  a.test.accuracy = 0.8412;
  b.config.name = "b";
  b.config.arch = "dense:10";
  b.error = "boom | bang";
  const std::string md = fmnist::sweep_table_md({a, b});
  EXPECT_NE(md.find("| a | `conv:8:3,flatten,dense:10` | adam | 0.001 | 32 | 3 of 10 | 1,234,567 | 0.8500 (2) | "
                    "**0.8412** | 1.00 |"),
            std::string::npos)
      << md;
  EXPECT_NE(md.find("failed: boom \\| bang"), std::string::npos) << md;
  EXPECT_EQ(fmnist::detail::csv_field("conv:8:3,flatten"), "\"conv:8:3,flatten\"");
  EXPECT_EQ(fmnist::detail::csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
}

// One whole run of the example on a few hundred images: every output is written, the SVGs are
// well-formed, the model file loads back, and history.csv has a row per epoch.
TEST(FashionMnistExample, OneRunWritesEveryOutput) {
  SKIP_WITHOUT_DATA();
  fmnist::Config c = parse({"--arch", "conv:4:3:relu,pool:2,flatten,dense:10", "--train-size", "600", "--epochs", "2",
                            "--batch", "32", "--verbose", "0", "--patience", "3"});
  c.name = "tiny";
  const std::string dir =
      (std::filesystem::temp_directory_path() / ("faltung_test_fashion_mnist_" + std::to_string(::getpid()))).string();
  std::filesystem::remove_all(dir);
  std::ostringstream log;
  const fmnist::RunResult r = fmnist::train_and_report(c, data(), dir, log);
  EXPECT_EQ(r.history.epochs(), 2u);
  EXPECT_EQ(r.train_samples, 540u);
  EXPECT_EQ(r.validation_samples, 60u);
  EXPECT_GT(r.test.accuracy, 0.3);
  std::size_t total = 0;
  for (const auto& row : r.confusion)
    for (std::size_t v : row) total += v;
  EXPECT_EQ(total, 10000u);
  for (const char* f :
       {"history.csv", "model.faltung", "curves.svg", "confusion_matrix.svg", "predictions.svg", "results.md"})
    EXPECT_TRUE(std::filesystem::exists(std::filesystem::path(dir) / f)) << f;
  for (const char* f : {"curves.svg", "confusion_matrix.svg", "predictions.svg"})
    EXPECT_EQ(xml_problem(read_file((std::filesystem::path(dir) / f).string())), "") << f;
  const std::string csv = read_file((std::filesystem::path(dir) / "history.csv").string());
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 3);
  EXPECT_NE(read_file((std::filesystem::path(dir) / "results.md").string()).find("test accuracy"), std::string::npos);
  Sequential<float> back = load_model<float>((std::filesystem::path(dir) / "model.faltung").string());
  EXPECT_EQ(back.spec(), r.spec);
  EXPECT_NE(log.str().find("Total params"), std::string::npos);  // the summary went to the log

  // A sweep's comparison of this run with itself.
  fmnist::RunResult r2 = r;
  r2.config.name = "again";
  const auto files = fmnist::write_sweep_reports({r, r2}, dir, "runs.txt");
  EXPECT_EQ(files.size(), 3u);
  EXPECT_EQ(xml_problem(read_file((std::filesystem::path(dir) / "sweep_val_accuracy.svg").string())), "");
  const std::string sweep_csv = read_file((std::filesystem::path(dir) / "sweep.csv").string());
  EXPECT_EQ(std::count(sweep_csv.begin(), sweep_csv.end(), '\n'), 3);
  std::filesystem::remove_all(dir);
}

/// The bytes of a file.
std::string file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// --checkpoint-dir, interrupted after 2 of 3 epochs, then --resume: the run continues where it
// stopped and saves bitwise the model of the uninterrupted run (dropout and shuffling on).
TEST(FashionMnistExample, AnInterruptedRunResumesWhereItStopped) {
  SKIP_WITHOUT_DATA();
  test::TempDir tmp;
  const std::vector<const char*> tiny = {"--arch", "conv:2:3:relu,pool:2,drop:0.2,flatten,dense:10", "--train-size",
                                         "300", "--batch", "32", "--verbose", "0", "--threads", "1"};
  auto config = [&](std::vector<const char*> more) {
    more.insert(more.begin(), tiny.begin(), tiny.end());
    return parse(more);
  };
  std::ostringstream log;
  const fmnist::Config whole_config = config({"--epochs", "3"});
  const fmnist::RunResult whole = fmnist::train_and_report(whole_config, data(), tmp.path("whole"), log);

  const std::string ckpt = tmp.path("ckpt");
  const fmnist::Config first = config({"--epochs", "2", "--checkpoint-dir", ckpt.c_str()});
  fmnist::train_and_report(first, data(), tmp.path("first"), log);
  EXPECT_TRUE(checkpoint_exists(ckpt));
  // The directory is taken now: a second fresh run there would overwrite the checkpoint.
  EXPECT_THROW(config({"--epochs", "3", "--checkpoint-dir", ckpt.c_str()}), fmnist::ConfigError);

  const fmnist::Config again = config({"--epochs", "3", "--resume", ckpt.c_str()});
  std::ostringstream resume_log;
  const fmnist::RunResult resumed = fmnist::train_and_report(again, data(), tmp.path("resumed"), resume_log);
  EXPECT_NE(resume_log.str().find("Resuming from the checkpoint in " + ckpt), std::string::npos) << resume_log.str();
  EXPECT_EQ(resumed.history.epochs(), 3u);
  EXPECT_EQ(resumed.history.loss, whole.history.loss);
  EXPECT_EQ(resumed.test.accuracy, whole.test.accuracy);
  EXPECT_EQ(file_bytes(tmp.path("resumed") + "/model.faltung"), file_bytes(tmp.path("whole") + "/model.faltung"));
  EXPECT_EQ(read_checkpoint<float>(ckpt).progress.epoch, 3);
}

TEST(FashionMnistOptions, ResumeNeedsACheckpointAndOneDirectory) {
  test::TempDir tmp;
  const std::string empty = tmp.path("empty");
  std::filesystem::create_directories(empty);
  auto message = [](std::vector<const char*> args) {
    try {
      parse(args);
    } catch (const fmnist::ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("(accepted)");
  };
  EXPECT_NE(message({"--resume", empty.c_str()}).find("holds no checkpoint"), std::string::npos);
  EXPECT_NE(message({"--checkpoint-dir", "a", "--sweep", "runs.txt"}).find("not to --sweep"), std::string::npos);
  EXPECT_NO_THROW(parse({"--checkpoint-dir", empty.c_str()}));
}

#ifdef FALTUNG_TEST_FASHION_MNIST_PROGRAM
// ---------------------------------------------------------------------------------------------
// fashion_mnist --predict, the program itself, on a tiny saved model and pictures written here

test::ProgramRun run_program(const std::vector<std::string>& args, const test::TempDir& tmp) {
  return test::run_program(FALTUNG_TEST_FASHION_MNIST_PROGRAM, args, tmp);
}

// The printed classes and probabilities are the model's own: predict() of the trained (compiled)
// model on the same preprocessed pictures, the three largest, to the 4 printed decimals. A
// softmax applied twice (once by the model file's output activation, once by the example) or a
// picture scaled twice fails here.
TEST(FashionMnistPredict, ClassifiesPicturesWithASavedModel) {
  test::TempDir tmp;
  Sequential<float> net = make_sequential<float>("conv:2:3:relu,pool:2,flatten,dense:10", {1, 28, 28}, 11);
  net.compile(SparseCrossEntropy{}, Adam<float>());
  std::vector<std::string> names(FashionMnist::class_names().begin(), FashionMnist::class_names().end());
  names[9] = "Boot";  // the file's own names are the ones printed
  net.set_class_names(names);
  const std::string model = tmp.path("tiny.faltung");
  net.save(model);

  // A light shirt-like block on black (PNG) and a dark boot-like bar on white paper (BMP).
  std::vector<std::uint8_t> a(40 * 40, 0), b(60 * 30 * 3, 255);
  for (std::size_t y = 5; y < 35; ++y)
    for (std::size_t x = 8; x < 32; ++x) a[y * 40 + x] = std::uint8_t(150 + x);
  for (std::size_t y = 10; y < 25; ++y)
    for (std::size_t x = 5; x < 55; ++x)
      for (std::size_t c = 0; c < 3; ++c) b[(y * 60 + x) * 3 + c] = std::uint8_t(20 * c);
  const std::string pa = tmp.path("shirt.png"), pb = tmp.path("boot.bmp");
  ASSERT_TRUE(stbi_write_png(pa.c_str(), 40, 40, 1, a.data(), 40));
  ASSERT_TRUE(stbi_write_bmp(pb.c_str(), 60, 30, 3, b.data()));

  const ProgramRun r = run_program({"--predict", model, pa, pb, "--out", tmp.path("out"), "--threads", "1"}, tmp);
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_EQ(r.err, "");

  const Tensor<float> p = net.predict(load_images<float>({pa, pb}));
  std::istringstream lines(r.out);
  for (std::size_t i = 0; i < 2; ++i) {
    std::string line;
    ASSERT_TRUE(std::getline(lines, line));
    EXPECT_EQ(line, i == 0 ? pa : pb);
    std::vector<std::size_t> order(10);
    for (std::size_t k = 0; k < 10; ++k) order[k] = k;
    std::stable_sort(order.begin(), order.end(), [&](std::size_t x, std::size_t y) { return p[i * 10 + x] > p[i * 10 + y]; });
    for (std::size_t rank = 0; rank < 3; ++rank) {
      ASSERT_TRUE(std::getline(lines, line));
      // "  1. Ankle boot  0.4321": the rank, the class name (maybe two words), the probability.
      std::istringstream fields(line);
      std::vector<std::string> words;
      for (std::string w; fields >> w;) words.push_back(w);
      ASSERT_GE(words.size(), 3u) << line;
      EXPECT_EQ(words.front(), std::to_string(rank + 1) + ".") << line;
      std::string name;
      for (std::size_t w = 1; w + 1 < words.size(); ++w) name += (w > 1 ? " " : "") + words[w];
      EXPECT_EQ(name, names[order[rank]]) << line;
      EXPECT_NEAR(std::stod(words.back()), p[i * 10 + order[rank]], 6e-5) << line;
    }
  }
  const std::string svg = read_file(tmp.path("out/picture_predictions.svg"));
  EXPECT_EQ(xml_problem(svg), "");
  EXPECT_NE(svg.find("shirt.png"), std::string::npos);
  EXPECT_NE(svg.find("boot.bmp"), std::string::npos);
  EXPECT_NE(svg.find("tiny.faltung"), std::string::npos);
}

TEST(FashionMnistPredict, ABadPictureIsNamedAndTheOthersAreStillClassified) {
  test::TempDir tmp;
  Sequential<float> net = make_sequential<float>("flatten,dense:10", {1, 28, 28}, 3);
  const std::string model = tmp.path("m.faltung");
  net.save(model);
  std::vector<std::uint8_t> a(28 * 28, 0);
  const std::string good = tmp.path("good.png"), text = tmp.path("notes.png");
  ASSERT_TRUE(stbi_write_png(good.c_str(), 28, 28, 1, a.data(), 28));
  // A model saved before compile stores no loss: its outputs are not probabilities.
  ProgramRun r = run_program({"--predict", model, good}, tmp);
  EXPECT_EQ(r.status, 3);
  EXPECT_NE(r.err.find("m.faltung' stores no loss"), std::string::npos) << r.err;
  net.compile(SparseCrossEntropy{}, Adam<float>());
  net.save(model);
  std::ofstream(text) << "not a picture\n";
  r = run_program({"--predict", model, text, good, "--out", tmp.path("out")}, tmp);
  EXPECT_EQ(r.status, 3);
  EXPECT_NE(r.err.find("notes.png' is not a PNG"), std::string::npos) << r.err;
  EXPECT_NE(r.out.find(good + "\n  1. "), std::string::npos) << r.out;
  // A model file that is missing, or a model for other inputs.
  r = run_program({"--predict", tmp.path("none.faltung"), good}, tmp);
  EXPECT_EQ(r.status, 3);
  EXPECT_NE(r.err.find("none.faltung"), std::string::npos) << r.err;
  Sequential<float> other = make_sequential<float>("flatten,dense:10", {3, 32, 32}, 3);
  other.compile(SparseCrossEntropy{}, Adam<float>());
  other.save(tmp.path("rgb.faltung"));
  r = run_program({"--predict", tmp.path("rgb.faltung"), good}, tmp);
  EXPECT_EQ(r.status, 3);
  EXPECT_NE(r.err.find("(3, 32, 32)"), std::string::npos) << r.err;
  // Training options make no sense beside it.
  r = run_program({"--predict", model, good, "--epochs", "2"}, tmp);
  EXPECT_EQ(r.status, 2);
}
#endif  // FALTUNG_TEST_FASHION_MNIST_PROGRAM

#endif  // FALTUNG_TEST_EXAMPLE_PIECES

}  // namespace
