#pragma once
// The example's plots, from a History and test-set predictions, drawn with the examples' shared
// SVG writer (../common/svg_plot.hpp).

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <faltung/model/history.hpp>
#include <string>
#include <vector>

#include "common/svg_plot.hpp"

namespace fmnist {

namespace svg = faltung_examples::svg;

namespace detail {
inline std::vector<double> epochs_axis(std::size_t n) {
  std::vector<double> x(n);
  for (std::size_t i = 0; i < n; ++i) x[i] = double(i + 1);
  return x;
}

inline std::string shorten(const std::string& s, std::size_t max_chars) {
  return s.size() <= max_chars ? s : s.substr(0, max_chars - 3) + "...";
}
}  // namespace detail

/// Training and validation accuracy (left) and loss (right) per epoch, side by side.
inline svg::SvgDocument training_curves_svg(const faltung::History& h, const std::string& title,
                                            const std::string& subtitle) {
  const double panel_w = 560, panel_h = 400, top = subtitle.empty() ? 40 : 58;
  svg::SvgDocument doc(panel_w * 2 + 20, panel_h + top + 6);
  doc.text(doc.width() / 2, 26, title, 17, "middle", "#222222", true);
  if (!subtitle.empty()) doc.text(doc.width() / 2, 46, detail::shorten(subtitle, 170), 11, "middle", "#555555");
  const std::vector<double> x = detail::epochs_axis(h.epochs());
  auto series = [&](const char* label, const std::vector<double>& y, std::size_t color, bool dashed) {
    svg::Series s;
    s.label = label;
    s.x = x;
    s.y = y;
    s.color = svg::palette(color);
    s.dashed = dashed;
    return s;
  };
  std::vector<svg::Series> acc, loss;
  if (!h.accuracy.empty()) acc.push_back(series("training", h.accuracy, 0, false));
  if (!h.val_accuracy.empty()) acc.push_back(series("validation", h.val_accuracy, 1, true));
  if (!h.loss.empty()) loss.push_back(series("training", h.loss, 0, false));
  if (!h.val_loss.empty()) loss.push_back(series("validation", h.val_loss, 1, true));
  svg::LineChartOptions o;
  o.x_label = "epoch";
  if (h.best_epoch >= 0 && std::size_t(h.best_epoch) < h.epochs()) {
    o.mark_x = double(h.best_epoch + 1);
    o.mark_label = "best val_loss";
  }
  o.title = "Accuracy";
  o.y_label = "accuracy";
  svg::draw_line_chart(doc, {10, top, panel_w, panel_h}, acc, o);
  o.title = "Loss";
  o.y_label = "loss (cross-entropy)";
  o.y_min = 0;  // losses are compared against zero
  svg::draw_line_chart(doc, {10 + panel_w, top, panel_w, panel_h}, loss, o);
  if (h.best_epoch >= 0 && std::size_t(h.best_epoch) < h.epochs()) {
    // Early stopping restored this epoch's weights: say so under the charts' titles.
    doc.text(doc.width() / 2, top + panel_h - 2,
             "weights restored from epoch " + std::to_string(h.best_epoch + 1) + " (best val_loss)", 11, "middle",
             "#555555");
  }
  return doc;
}

/// One validation-accuracy curve per run, for a sweep.
struct NamedCurve {
  std::string name;
  std::vector<double> values;
};

inline svg::SvgDocument overlay_curves_svg(const std::vector<NamedCurve>& runs, const std::string& title,
                                           const std::string& y_label) {
  std::vector<svg::Series> series;
  for (std::size_t i = 0; i < runs.size(); ++i) {
    svg::Series s;
    s.label = runs[i].name;
    s.x = detail::epochs_axis(runs[i].values.size());
    s.y = runs[i].values;
    s.color = svg::palette(i);
    s.dashed = i >= 10;  // the palette repeats after ten runs: tell them apart by the dash
    series.push_back(std::move(s));
  }
  svg::LineChartOptions o;
  o.title = title;
  o.x_label = "epoch";
  o.y_label = y_label;
  o.width = 820;
  o.height = 500;
  return svg::line_chart(series, o);
}

}  // namespace fmnist
