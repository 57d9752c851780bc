#pragma once
// History: what fit() returns, one entry per finished epoch, as in Keras.

#include <cmath>
#include <cstddef>
#include <fstream>
#include <string>
#include <vector>

#include "faltung/config.hpp"

FALTUNG_BEGIN_NAMESPACE

struct History {
  std::vector<double> loss, accuracy;          ///< training metrics, averaged over the epoch
  std::vector<double> val_loss, val_accuracy;  ///< on the validation data (empty without it)
  std::vector<double> learning_rate;           ///< the rate at the end of each epoch
  std::vector<double> seconds;                 ///< wall time of each epoch, validation included
  std::string stop_reason;                     ///< empty when all epochs ran; else why training stopped
  int best_epoch = -1;                         ///< set by EarlyStopping / ModelCheckpoint: 0-based

  std::size_t epochs() const { return loss.size(); }
  bool has_validation() const { return !val_loss.empty(); }

  /// The series of a metric by its Keras name: "loss", "accuracy", "val_loss", "val_accuracy",
  /// "lr", "seconds". Throws for an unknown name.
  const std::vector<double>& metric(const std::string& name) const {
    if (name == "loss") return loss;
    if (name == "accuracy") return accuracy;
    if (name == "val_loss") return val_loss;
    if (name == "val_accuracy") return val_accuracy;
    if (name == "lr" || name == "learning_rate") return learning_rate;
    if (name == "seconds") return seconds;
    detail::fail("History: unknown metric '", name,
                 "' (known: loss, accuracy, val_loss, val_accuracy, lr, seconds)");
  }

  /// epoch,loss,accuracy,val_loss,val_accuracy,lr,seconds — one row per epoch, 1-based epochs.
  void write_csv(const std::string& path) const {
    std::ofstream out(path);
    FALTUNG_CHECK(out, "History: cannot write '", path, "'");
    out << "epoch,loss,accuracy,val_loss,val_accuracy,lr,seconds\n";
    out.precision(8);
    auto at = [](const std::vector<double>& v, std::size_t i) { return i < v.size() ? v[i] : std::nan(""); };
    for (std::size_t i = 0; i < epochs(); ++i)
      out << i + 1 << ',' << at(loss, i) << ',' << at(accuracy, i) << ',' << at(val_loss, i) << ','
          << at(val_accuracy, i) << ',' << at(learning_rate, i) << ',' << at(seconds, i) << '\n';
    FALTUNG_CHECK(out.good(), "History: writing '", path, "' failed");
  }
};

FALTUNG_END_NAMESPACE
