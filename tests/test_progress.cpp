// The progress display of fit: the pieces (bar, ETA, epoch time, metrics), the live bar redrawn
// with '\r' on a terminal, and the one-line-per-epoch format of verbose 2 (and of verbose 1 when
// the output is not a terminal), checked with regular expressions.

#include <gtest/gtest.h>

#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "faltung/faltung.hpp"

using namespace faltung;

namespace {

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream is(text);
  for (std::string line; std::getline(is, line);) lines.push_back(line);
  return lines;
}

std::string fixed4(double v) {
  std::ostringstream os;
  os.setf(std::ios::fixed);
  os.precision(4);
  os << v;
  return os.str();
}

TEST(Progress, FormatBar) {
  EXPECT_EQ(format_bar(2, 4), "[===============>..............]");
  EXPECT_EQ(format_bar(0, 4), "[>.............................]");
  EXPECT_EQ(format_bar(4, 4), "[" + std::string(30, '=') + "]");
  EXPECT_EQ(format_bar(1, 3), "[==========>...................]");
  EXPECT_EQ(format_bar(117, 235).size(), 32u);
  EXPECT_EQ(format_bar(5, 10, 10), "[=====>....]");
  EXPECT_EQ(format_bar(0, 0), "[" + std::string(30, '=') + "]");  // nothing to do is done
}

TEST(Progress, FormatEta) {
  EXPECT_EQ(format_eta(0), "0:00");
  EXPECT_EQ(format_eta(12), "0:12");
  EXPECT_EQ(format_eta(12.4), "0:12");
  EXPECT_EQ(format_eta(59.6), "1:00");
  EXPECT_EQ(format_eta(61), "1:01");
  EXPECT_EQ(format_eta(600), "10:00");
  EXPECT_EQ(format_eta(3723), "1:02:03");
  EXPECT_EQ(format_eta(-3), "0:00");
}

TEST(Progress, FormatEpochTimeAndMetrics) {
  EXPECT_EQ(format_epoch_time(25.0, 235), "25s 106ms/step");
  EXPECT_EQ(format_epoch_time(0.004, 4), "0s 1ms/step");
  EXPECT_EQ(format_epoch_time(3.0, 2), "3s 1.5s/step");
  EXPECT_EQ(format_metrics({{"loss", 0.34123}, {"accuracy", 0.87654}}), " - loss: 0.3412 - accuracy: 0.8765");
  EXPECT_EQ(format_metrics({}), "");
}

TEST(Progress, NotATerminal) {
  std::ostringstream os;
  EXPECT_FALSE(is_terminal(os));
}

TEST(Progress, LiveBarRedrawsOneLineWithCarriageReturns) {
  std::ostringstream os;
  ProgressBar bar(os, 1, /*terminal=*/true);
  bar.start_epoch(0, 3, 4);
  bar.update(2, {{"loss", 0.5}, {"accuracy", 0.75}});  // the first update always draws
  const std::string first = os.str();
  EXPECT_EQ(first, "Epoch 1/3\n\r2/4 [===============>..............] - ETA: 0:00 - loss: 0.5000 - accuracy: 0.7500");
  bar.update(4, {{"loss", 0.25}, {"accuracy", 1.0}});  // the last step always draws
  bar.finish_epoch(0.02, {{"loss", 0.25}, {"accuracy", 1.0}, {"val_loss", 0.125}, {"val_accuracy", 0.5}});
  const std::string all = os.str();
  ASSERT_EQ(all.rfind(first, 0), 0u);
  // Each redraw starts with '\r'; the finished line ends the epoch with '\n'.
  const std::string rest = all.substr(first.size());
  EXPECT_EQ(rest.back(), '\n');
  const std::size_t last_cr = rest.rfind('\r');
  ASSERT_NE(last_cr, std::string::npos);
  const std::string finished = rest.substr(last_cr + 1, rest.size() - last_cr - 2);
  EXPECT_TRUE(std::regex_match(finished, std::regex(R"(4/4 \[={30}\] - 0s 5ms/step - loss: 0\.2500 - accuracy: 1\.0000 - val_loss: 0\.1250 - val_accuracy: 0\.5000)")))
      << "'" << finished << "'";

  // The next epoch starts on a line of its own.
  bar.start_epoch(1, 3, 4);
  EXPECT_EQ(os.str().substr(all.size()), "Epoch 2/3\n");
}

TEST(Progress, LiveBarCounterIsRightAlignedAndShorterLinesArePadded) {
  std::ostringstream os;
  ProgressBar bar(os, 1, true);
  bar.start_epoch(0, 1, 10);
  bar.update(2, {{"loss", 12345.0}, {"accuracy", 0.5}});
  const std::string text = os.str();
  const std::string drawn = text.substr(text.find('\r') + 1);
  EXPECT_TRUE(std::regex_match(drawn, std::regex(R"( 2/10 \[======>\.{23}\] - ETA: \d+:\d\d - loss: 12345\.0000 - accuracy: 0\.5000)")))
      << "'" << drawn << "'";
  // A shorter finished line overwrites all of the longer one.
  bar.finish_epoch(0.5, {});
  const std::string tail = os.str().substr(text.size());
  ASSERT_EQ(tail.front(), '\r');
  EXPECT_EQ(tail.back(), '\n');
  EXPECT_GE(tail.size() - 2, drawn.size());
  EXPECT_NE(tail.find("10/10 [" + std::string(30, '=') + "] - 1s 50ms/step"), std::string::npos) << tail;
}

TEST(Progress, NonLiveModesPrintOneLinePerEpochOnly) {
  for (int verbose : {1, 2}) {
    std::ostringstream os;
    ProgressBar bar(os, verbose, /*terminal=*/verbose == 2);  // verbose 2 is never live
    bar.start_epoch(2, 30, 235);
    bar.update(100, {{"loss", 0.3}});
    bar.update(235, {{"loss", 0.3}});
    EXPECT_EQ(os.str(), "") << "verbose " << verbose;
    bar.finish_epoch(25.0, {{"loss", 0.3401}, {"accuracy", 0.8771}, {"val_loss", 0.3012}, {"val_accuracy", 0.8902}});
    EXPECT_EQ(os.str(),
              "Epoch 3/30 - 235/235 - 25s 106ms/step - loss: 0.3401 - accuracy: 0.8771 - val_loss: 0.3012 - "
              "val_accuracy: 0.8902\n")
        << "verbose " << verbose;
  }
  std::ostringstream silent;
  ProgressBar quiet(silent, 0, true);
  quiet.start_epoch(0, 1, 2);
  quiet.update(1, {{"loss", 1.0}});
  quiet.finish_epoch(1.0, {{"loss", 1.0}});
  quiet.message("stopped");
  EXPECT_EQ(silent.str(), "");
}

// ---------------------------------------------------------------------------------------------
// Through fit

struct Blobs {
  Tensor<float> x, y;
  explicit Blobs(std::size_t n) : x(Shape{n, 4}), y(Shape{n}) {
    Random rng(7);
    for (std::size_t i = 0; i < n; ++i) {
      const std::size_t c = i % 3;
      y[i] = float(c);
      for (std::size_t j = 0; j < 4; ++j) x[i * 4 + j] = float((j == c ? 2.0 : 0.0) + 0.5 * rng.normal());
    }
  }
};

Sequential<float> classifier() {
  Sequential<float> net(1);
  net.add<Dense>(DenseOptions(8).activation(ActivationKind::Tanh)).add<Dense>(3);
  net.build({4});
  net.compile(SparseCrossEntropy{}, Adam<float>(AdamOptions(1e-2)));
  return net;
}

const std::regex epoch_line(
    R"(Epoch ([1-3])/3 - 4/4 - \d+s \d+ms/step - loss: (\d+\.\d{4}) - accuracy: ([01]\.\d{4}) - val_loss: (\d+\.\d{4}) - val_accuracy: ([01]\.\d{4}))");

TEST(ProgressInFit, Verbose2IsOneKerasLinePerEpoch) {
  Blobs d(40);
  Sequential<float> net = classifier();
  std::ostringstream os;
  const History h = net.fit(d.x, d.y, FitOptions().epochs(3).batch_size(8).validation_split(0.2).verbose(2).output(os));
  const std::string text = os.str();
  EXPECT_EQ(text.find('\r'), std::string::npos);
  const std::vector<std::string> lines = lines_of(text);
  ASSERT_EQ(lines.size(), 3u) << text;
  for (std::size_t e = 0; e < 3; ++e) {
    std::smatch m;
    ASSERT_TRUE(std::regex_match(lines[e], m, epoch_line)) << "'" << lines[e] << "'";
    EXPECT_EQ(m[1].str(), std::to_string(e + 1));
    // The printed numbers are the History's.
    EXPECT_EQ(m[2].str(), fixed4(h.loss[e]));
    EXPECT_EQ(m[3].str(), fixed4(h.accuracy[e]));
    EXPECT_EQ(m[4].str(), fixed4(h.val_loss[e]));
    EXPECT_EQ(m[5].str(), fixed4(h.val_accuracy[e]));
  }
}

TEST(ProgressInFit, Verbose1IntoAStreamThatIsNotATerminalIsTheSame) {
  Blobs d(40);
  Sequential<float> net = classifier();
  std::ostringstream os;
  net.fit(d.x, d.y, FitOptions().epochs(3).batch_size(8).validation_split(0.2).verbose(1).output(os));
  EXPECT_EQ(os.str().find('\r'), std::string::npos);
  const std::vector<std::string> lines = lines_of(os.str());
  ASSERT_EQ(lines.size(), 3u) << os.str();
  for (const std::string& l : lines) EXPECT_TRUE(std::regex_match(l, epoch_line)) << "'" << l << "'";
}

TEST(ProgressInFit, Verbose0PrintsNothing) {
  Blobs d(40);
  Sequential<float> net = classifier();
  std::ostringstream os;
  net.fit(d.x, d.y, FitOptions().epochs(2).batch_size(8).validation_split(0.2).verbose(0).output(os));
  EXPECT_EQ(os.str(), "");
}

TEST(ProgressInFit, WithoutValidationAndWithAStopMessage) {
  Blobs d(32);
  Sequential<float> net = classifier();
  std::ostringstream os;
  net.fit(d.x, d.y,
          FitOptions().epochs(5).batch_size(8).verbose(2).output(os).callback(
              LambdaCallback().on_epoch_end([](TrainingState& s) {
                if (s.epoch == 1) {
                  s.stop_training = true;
                  s.stop_reason = "stopped by the test";
                }
              })));
  const std::vector<std::string> lines = lines_of(os.str());
  ASSERT_EQ(lines.size(), 3u) << os.str();
  const std::regex no_val(R"(Epoch [12]/5 - 4/4 - \d+s \d+ms/step - loss: \d+\.\d{4} - accuracy: [01]\.\d{4})");
  EXPECT_TRUE(std::regex_match(lines[0], no_val)) << lines[0];
  EXPECT_TRUE(std::regex_match(lines[1], no_val)) << lines[1];
  EXPECT_EQ(lines[2], "stopped by the test");
}

}  // namespace
