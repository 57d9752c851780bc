#pragma once
// The Keras-style progress display of fit().
//
// On a terminal (verbose 1) each epoch redraws one line in place:
//   Epoch 3/30
//   120/235 [==============>...............] - ETA: 0:12 - loss: 0.3412 - accuracy: 0.8765
// and finishes it as
//   235/235 [==============================] - 25s 106ms/step - loss: 0.3401 - accuracy: 0.8771 - val_loss: 0.3012 - val_accuracy: 0.8902
// When the stream is not a terminal, or with verbose 2, only the finished line is printed,
// prefixed by the epoch, so logs stay one line per epoch:
//   Epoch 3/30 - 235/235 - 25s 106ms/step - loss: 0.3401 - accuracy: 0.8771 - val_loss: ...

#include <chrono>
#include <cstdio>
#include <iomanip>
#include <iostream>
#include <ostream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "faltung/config.hpp"

#if defined(__unix__) || defined(__APPLE__)
#include <unistd.h>
#endif

FALTUNG_BEGIN_NAMESPACE

/// Whether `os` writes to an interactive terminal (only std::cout / std::cerr can).
inline bool is_terminal(const std::ostream& os) {
#if defined(__unix__) || defined(__APPLE__)
  if (&os == &std::cout) return ::isatty(STDOUT_FILENO) == 1;
  if (&os == &std::cerr || &os == &std::clog) return ::isatty(STDERR_FILENO) == 1;
#endif
  (void)os;
  return false;
}

/// "0:12", "1:02:03": a duration for an ETA.
inline std::string format_eta(double seconds) {
  long s = seconds < 0 ? 0 : long(seconds + 0.5);
  std::ostringstream os;
  if (s >= 3600) {
    os << s / 3600 << ':' << std::setw(2) << std::setfill('0') << (s / 60) % 60;
  } else {
    os << s / 60;
  }
  os << ':' << std::setw(2) << std::setfill('0') << s % 60;
  return os.str();
}

/// "- loss: 0.3412 - accuracy: 0.8765"
inline std::string format_metrics(const std::vector<std::pair<std::string, double>>& metrics) {
  std::ostringstream os;
  os << std::fixed << std::setprecision(4);
  for (const auto& m : metrics) os << " - " << m.first << ": " << m.second;
  return os.str();
}

/// "[=========>....................]" for `done` of `total` steps, `width` characters inside.
inline std::string format_bar(std::size_t done, std::size_t total, std::size_t width = 30) {
  std::string bar(width, '.');
  const std::size_t filled = total ? done * width / total : width;
  for (std::size_t i = 0; i < filled; ++i) bar[i] = '=';
  if (filled < width) bar[filled] = '>';
  return "[" + bar + "]";
}

/// "25s 106ms/step"
inline std::string format_epoch_time(double seconds, std::size_t steps) {
  std::ostringstream os;
  os << long(seconds + 0.5) << "s ";
  const double per_step = steps ? seconds / double(steps) : 0.0;
  if (per_step >= 1.0)
    os << std::fixed << std::setprecision(1) << per_step << "s/step";
  else
    os << long(per_step * 1000 + 0.5) << "ms/step";
  return os.str();
}

class ProgressBar {
 public:
  /// verbose: 0 silent, 1 a live bar on a terminal (one line per epoch elsewhere), 2 one line per epoch.
  ProgressBar(std::ostream& os, int verbose, bool terminal) : os_(os), verbose_(verbose), live_(terminal && verbose == 1) {}

  void start_epoch(int epoch, int epochs, std::size_t steps) {
    epoch_ = epoch;
    epochs_ = epochs;
    steps_ = steps;
    start_ = Clock::now();
    last_draw_ = start_ - std::chrono::seconds(1);
    if (live_) os_ << "Epoch " << epoch + 1 << '/' << epochs << '\n' << std::flush;
  }

  /// After `done` steps of this epoch, with the running metrics. Redraws at most 10 times a second.
  void update(std::size_t done, const std::vector<std::pair<std::string, double>>& metrics) {
    if (!live_) return;
    const auto now = Clock::now();
    if (done < steps_ && now - last_draw_ < std::chrono::milliseconds(100)) return;
    last_draw_ = now;
    const double elapsed = seconds_since(start_);
    const double eta = done ? elapsed / double(done) * double(steps_ - done) : 0.0;
    std::string line = counter(done) + " " + format_bar(done, steps_) + " - ETA: " + format_eta(eta) +
                       format_metrics(metrics);
    draw(line);
  }

  /// The epoch's final line: time and all metrics, validation ones included.
  void finish_epoch(double seconds, const std::vector<std::pair<std::string, double>>& metrics) {
    if (verbose_ == 0) return;
    const std::string tail = format_epoch_time(seconds, steps_) + format_metrics(metrics);
    if (live_) {
      draw(counter(steps_) + " " + format_bar(steps_, steps_) + " - " + tail);
      os_ << '\n' << std::flush;
      drawn_width_ = 0;
    } else {
      os_ << "Epoch " << epoch_ + 1 << '/' << epochs_ << " - " << counter(steps_) << " - " << tail << '\n'
          << std::flush;
    }
  }

  /// A message on its own line (such as why training stopped).
  void message(const std::string& text) {
    if (verbose_ == 0) return;
    os_ << text << '\n' << std::flush;
  }

 private:
  using Clock = std::chrono::steady_clock;
  static double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

  std::string counter(std::size_t done) const {
    const std::string total = std::to_string(steps_);
    std::string d = std::to_string(done);
    return std::string(total.size() > d.size() ? total.size() - d.size() : 0, ' ') + d + "/" + total;
  }

  // Overwrite the current line; pad with spaces when the new text is shorter than the old.
  void draw(const std::string& line) {
    os_ << '\r' << line;
    if (line.size() < drawn_width_) os_ << std::string(drawn_width_ - line.size(), ' ');
    drawn_width_ = line.size();
    os_ << std::flush;
  }

  std::ostream& os_;
  int verbose_;
  bool live_;
  int epoch_ = 0, epochs_ = 0;
  std::size_t steps_ = 0, drawn_width_ = 0;
  Clock::time_point start_, last_draw_;
};

FALTUNG_END_NAMESPACE
