#pragma once
// Self-contained SVG plots, written by hand: no fonts, scripts, stylesheets or images are
// referenced, so a file opens the same in a browser, an editor or rsvg-convert.
//
//   SvgDocument   an SVG canvas: rect, line, polyline, circle, text, groups; escapes all text
//   nice_ticks    "nice" axis ticks (steps of 1, 2 or 5 times a power of ten)
//   line_chart    curves (or scatter plots) with axes, ticks, grid, labels, a title and a legend
//                 placed where the data is not (draw_line_chart draws one into a panel of a
//                 larger document)
//   confusion_matrix_svg   counts per (true, predicted) class with a colour scale
//   prediction_grid_svg    grey images with predicted and true label and a probability bar chart
//
// Only the standard library is used; nothing here knows about faltung, so the plots work for
// any data.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <fstream>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace faltung_examples {
namespace svg {

/// Text made safe for XML character data and attribute values.
inline std::string xml_escape(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default:
        // Control characters other than tab and newline are not allowed in XML 1.0.
        if (static_cast<unsigned char>(c) < 0x20 && c != '\t' && c != '\n')
          out += ' ';
        else
          out += c;
    }
  }
  return out;
}

/// A coordinate or length with at most two decimals and no trailing zeros: "12", "3.5", "0.25".
inline std::string num(double v) {
  if (!std::isfinite(v)) return "0";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  std::string s = buf;
  while (!s.empty() && s.back() == '0') s.pop_back();
  if (!s.empty() && s.back() == '.') s.pop_back();
  if (s == "-0") s = "0";
  return s;
}

/// "#rrggbb" from components in [0, 255].
inline std::string rgb(int r, int g, int b) {
  char buf[8];
  auto clamp = [](int v) { return std::min(255, std::max(0, v)); };
  std::snprintf(buf, sizeof buf, "#%02x%02x%02x", clamp(r), clamp(g), clamp(b));
  return buf;
}

/// The ten colours of matplotlib's "tab10" palette, by index (cycling).
inline std::string palette(std::size_t i) {
  static const char* colors[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                 "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
  return colors[i % 10];
}

/// A sequential white-to-blue scale (like matplotlib's "Blues") for t in [0, 1].
inline std::string blues(double t) {
  t = std::min(1.0, std::max(0.0, std::isfinite(t) ? t : 0.0));
  // Stops of "Blues": #f7fbff, #c6dbef, #6baed6, #2171b5, #08306b.
  static const double stops[5][3] = {{247, 251, 255}, {198, 219, 239}, {107, 174, 214}, {33, 113, 181}, {8, 48, 107}};
  const double pos = t * 4;
  const int i = std::min(3, int(pos));
  const double f = pos - i;
  auto mix = [&](int c) { return int(std::lround(stops[i][c] + (stops[i + 1][c] - stops[i][c]) * f)); };
  return rgb(mix(0), mix(1), mix(2));
}

/// An SVG canvas. Elements are appended in drawing order; str() gives the whole document.
class SvgDocument {
 public:
  SvgDocument(double width, double height) : width_(width), height_(height) {}

  double width() const { return width_; }
  double height() const { return height_; }

  /// A filled rectangle; stroke "" for none.
  SvgDocument& rect(double x, double y, double w, double h, const std::string& fill, const std::string& stroke = "",
                    double stroke_width = 1, const std::string& extra = "") {
    body_ << "<rect x=\"" << num(x) << "\" y=\"" << num(y) << "\" width=\"" << num(w) << "\" height=\"" << num(h)
          << "\" fill=\"" << fill << '"';
    if (!stroke.empty()) body_ << " stroke=\"" << stroke << "\" stroke-width=\"" << num(stroke_width) << '"';
    if (!extra.empty()) body_ << ' ' << extra;
    body_ << "/>\n";
    return *this;
  }

  SvgDocument& line(double x1, double y1, double x2, double y2, const std::string& stroke, double width = 1,
                    const std::string& dash = "") {
    body_ << "<line x1=\"" << num(x1) << "\" y1=\"" << num(y1) << "\" x2=\"" << num(x2) << "\" y2=\"" << num(y2)
          << "\" stroke=\"" << stroke << "\" stroke-width=\"" << num(width) << '"';
    if (!dash.empty()) body_ << " stroke-dasharray=\"" << dash << '"';
    body_ << "/>\n";
    return *this;
  }

  /// An open polyline through the points (x, y); nothing for fewer than two points.
  SvgDocument& polyline(const std::vector<std::pair<double, double>>& points, const std::string& stroke,
                        double width = 2, const std::string& dash = "") {
    if (points.size() < 2) return *this;
    body_ << "<polyline fill=\"none\" stroke=\"" << stroke << "\" stroke-width=\"" << num(width)
          << "\" stroke-linejoin=\"round\" stroke-linecap=\"round\"";
    if (!dash.empty()) body_ << " stroke-dasharray=\"" << dash << '"';
    body_ << " points=\"";
    for (std::size_t i = 0; i < points.size(); ++i)
      body_ << (i ? " " : "") << num(points[i].first) << ',' << num(points[i].second);
    body_ << "\"/>\n";
    return *this;
  }

  /// A filled circle; opacity below 1 lets overlapping dots show their density.
  SvgDocument& circle(double cx, double cy, double r, const std::string& fill, const std::string& stroke = "",
                      double opacity = 1) {
    body_ << "<circle cx=\"" << num(cx) << "\" cy=\"" << num(cy) << "\" r=\"" << num(r) << "\" fill=\"" << fill << '"';
    if (!stroke.empty()) body_ << " stroke=\"" << stroke << '"';
    if (opacity < 1) body_ << " fill-opacity=\"" << num(opacity) << '"';
    body_ << "/>\n";
    return *this;
  }

  /// Text at (x, y): anchor "start", "middle" or "end"; rotate in degrees about (x, y).
  SvgDocument& text(double x, double y, const std::string& content, double size = 12,
                    const std::string& anchor = "start", const std::string& fill = "#222222", bool bold = false,
                    double rotate = 0) {
    body_ << "<text x=\"" << num(x) << "\" y=\"" << num(y) << "\" font-size=\"" << num(size) << '"';
    if (anchor != "start") body_ << " text-anchor=\"" << anchor << '"';
    if (fill != "#222222") body_ << " fill=\"" << fill << '"';
    if (bold) body_ << " font-weight=\"bold\"";
    if (rotate != 0) body_ << " transform=\"rotate(" << num(rotate) << ' ' << num(x) << ' ' << num(y) << ")\"";
    body_ << '>' << xml_escape(content) << "</text>\n";
    return *this;
  }

  /// Opens a group with raw attributes (e.g. transform="translate(10,20)"); close with end_group().
  SvgDocument& begin_group(const std::string& attributes = "") {
    body_ << "<g" << (attributes.empty() ? "" : " ") << attributes << ">\n";
    ++open_groups_;
    return *this;
  }
  SvgDocument& end_group() {
    if (open_groups_ == 0) throw std::logic_error("SvgDocument::end_group without begin_group");
    body_ << "</g>\n";
    --open_groups_;
    return *this;
  }

  /// A <title> for the enclosing element or document: shown as a tooltip by browsers.
  SvgDocument& tooltip(const std::string& content) {
    body_ << "<title>" << xml_escape(content) << "</title>\n";
    return *this;
  }

  /// The complete document (groups left open are closed).
  std::string str() const {
    std::ostringstream os;
    os << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
       << "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"" << num(width_) << "\" height=\""
       << num(height_) << "\" viewBox=\"0 0 " << num(width_) << ' ' << num(height_) << "\" "
       << "font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\">\n"
       << "<rect x=\"0\" y=\"0\" width=\"" << num(width_) << "\" height=\"" << num(height_) << "\" fill=\"#ffffff\"/>\n"
       << body_.str();
    for (int i = 0; i < open_groups_; ++i) os << "</g>\n";
    os << "</svg>\n";
    return os.str();
  }

  /// Writes str() to `path`; throws std::runtime_error naming the file on failure.
  void save(const std::string& path) const {
    std::ofstream out(path, std::ios::binary);
    if (!out) throw std::runtime_error("cannot write '" + path + "'");
    out << str();
    if (!out.good()) throw std::runtime_error("writing '" + path + "' failed");
  }

 private:
  double width_, height_;
  std::ostringstream body_;
  int open_groups_ = 0;
};

/// Up to about `max_ticks` "nice" values covering [lo, hi]: multiples of 1, 2 or 5 times a
/// power of ten. The first tick is <= lo and the last >= hi, so they make good axis limits.
inline std::vector<double> nice_ticks(double lo, double hi, int max_ticks = 6) {
  if (!std::isfinite(lo) || !std::isfinite(hi)) return {0, 1};
  if (hi < lo) std::swap(lo, hi);
  if (hi - lo < 1e-12 * std::max(1.0, std::abs(hi))) {
    const double pad = lo == 0 ? 1 : std::abs(lo) * 0.1;
    lo -= pad;
    hi += pad;
  }
  max_ticks = std::max(2, max_ticks);
  const double raw = (hi - lo) / (max_ticks - 1);
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  double step = magnitude * 10;
  for (double m : {1.0, 2.0, 2.5, 5.0, 10.0}) {
    if (m * magnitude >= raw) {
      step = m * magnitude;
      break;
    }
  }
  const double first = std::floor(lo / step + 1e-9) * step;
  const double last = std::ceil(hi / step - 1e-9) * step;
  std::vector<double> ticks;
  for (int i = 0;; ++i) {
    double t = first + i * step;
    if (std::abs(t) < step * 1e-9) t = 0;  // no "-0" or 1e-17
    ticks.push_back(t);
    if (t >= last - step * 1e-9 || i > 1000) break;
  }
  return ticks;
}

/// A tick label with as many decimals as the step between ticks needs: "0.85", "10", "2.5".
inline std::string tick_label(double value, double step) {
  int decimals = 0;
  if (step > 0 && std::isfinite(step)) {
    while (decimals < 8 &&
           std::abs(step * std::pow(10.0, decimals) - std::round(step * std::pow(10.0, decimals))) > 1e-6)
      ++decimals;
  }
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, value);
  std::string s = buf;
  if (s.find_first_not_of("-0.") == std::string::npos) s = decimals ? "0." + std::string(decimals, '0') : "0";
  return s;
}

/// One curve of a line chart. NaN values of y leave a gap.
struct Series {
  std::string label;
  std::vector<double> x, y;
  std::string color;  ///< "" picks the palette colour of the series' index
  bool dashed = false;
  bool markers = true;  ///< a dot at each point (dropped automatically when there are many)
  /// false: a scatter plot, a translucent dot per point however many there are, and no line.
  bool line = true;
};

struct LineChartOptions {
  std::string title, x_label, y_label;
  double width = 640, height = 420;
  /// Axis limits; NaN means from the data (rounded out to nice ticks).
  double x_min = std::numeric_limits<double>::quiet_NaN(), x_max = std::numeric_limits<double>::quiet_NaN();
  double y_min = std::numeric_limits<double>::quiet_NaN(), y_max = std::numeric_limits<double>::quiet_NaN();
  /// Only whole-number ticks on the x axis (epochs).
  bool integer_x = true;
  /// A vertical dashed line at this x, labelled mark_label (the epoch whose weights were kept);
  /// NaN for none.
  double mark_x = std::numeric_limits<double>::quiet_NaN();
  std::string mark_label;
};

/// An area of a document, in its coordinates.
struct Box {
  double x = 0, y = 0, w = 0, h = 0;
};

namespace detail {
inline double text_width(const std::string& s, double size) { return 0.58 * size * double(s.size()); }
}  // namespace detail

/// Draws a line chart into `area` of `doc`: title on top, axes with ticks, grid lines, axis
/// labels, one polyline per series, and a legend in the corner of the plot that covers the
/// fewest data points.
inline void draw_line_chart(SvgDocument& doc, const Box& area, const std::vector<Series>& series,
                            const LineChartOptions& opt) {
  // Data range.
  double x_lo = std::numeric_limits<double>::infinity(), x_hi = -x_lo, y_lo = x_lo, y_hi = -x_lo;
  for (const Series& s : series) {
    for (std::size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i])) continue;
      x_lo = std::min(x_lo, s.x[i]);
      x_hi = std::max(x_hi, s.x[i]);
      y_lo = std::min(y_lo, s.y[i]);
      y_hi = std::max(y_hi, s.y[i]);
    }
  }
  const bool empty = !std::isfinite(x_lo);
  if (empty) x_lo = 0, x_hi = 1, y_lo = 0, y_hi = 1;
  if (std::isfinite(opt.x_min)) x_lo = opt.x_min;
  if (std::isfinite(opt.x_max)) x_hi = opt.x_max;
  if (std::isfinite(opt.y_min)) y_lo = opt.y_min;
  if (std::isfinite(opt.y_max)) y_hi = opt.y_max;

  std::vector<double> xt = nice_ticks(x_lo, x_hi, 8), yt = nice_ticks(y_lo, y_hi, 6);
  double xa = std::isfinite(opt.x_min) ? opt.x_min : xt.front();
  double xb = std::isfinite(opt.x_max) ? opt.x_max : xt.back();
  double xstep = xt.size() > 1 ? xt[1] - xt[0] : 1;
  if (opt.integer_x) {
    // Epochs: the axis spans exactly the first to the last epoch, with ticks on every epoch up
    // to 12 epochs, else on multiples of 2, 5, 10, 20, ... (and on the first epoch).
    xa = std::isfinite(opt.x_min) ? opt.x_min : std::floor(x_lo);
    xb = std::isfinite(opt.x_max) ? opt.x_max : std::max(std::ceil(x_hi), xa + 1);
    const double span = xb - xa;
    xstep = 1;
    for (double m = 1; span / xstep > 12; m *= 10)
      for (double f : {1.0, 2.0, 5.0}) {
        xstep = f * m;
        if (span / xstep <= 12) break;
      }
    xt.clear();
    const double first_multiple = std::ceil(xa / xstep - 1e-9) * xstep;
    if (first_multiple - xa >= xstep / 2) xt.push_back(xa);
    for (double t = first_multiple; t <= xb + 1e-9; t += xstep) xt.push_back(t);
  }
  xb = std::max(xb, xa + 1e-9);
  const double ya = std::isfinite(opt.y_min) ? opt.y_min : yt.front();
  const double yb = std::isfinite(opt.y_max) ? opt.y_max : std::max(yt.back(), ya + 1e-9);
  const double ystep = yt.size() > 1 ? yt[1] - yt[0] : 1;

  // Plot area inside the panel: room for the title, tick labels and axis labels.
  double widest_y = 0;
  for (double t : yt) widest_y = std::max(widest_y, detail::text_width(tick_label(t, ystep), 11));
  const double left = area.x + 28 + widest_y + 8, right = area.x + area.w - 16;
  const double top = area.y + (opt.title.empty() ? 14 : 40), bottom = area.y + area.h - 48;
  const double pw = right - left, ph = bottom - top;
  auto px = [&](double x) { return left + (x - xa) / (xb - xa) * pw; };
  auto py = [&](double y) { return bottom - (y - ya) / (yb - ya) * ph; };

  if (!opt.title.empty()) doc.text(area.x + area.w / 2, area.y + 24, opt.title, 15, "middle", "#222222", true);

  // Grid and ticks.
  doc.rect(left, top, pw, ph, "#fcfcfc", "#d0d0d0");
  for (double t : yt) {
    if (t < ya - 1e-9 || t > yb + 1e-9) continue;
    doc.line(left, py(t), right, py(t), "#e6e6e6");
    doc.line(left - 5, py(t), left, py(t), "#444444");
    doc.text(left - 8, py(t) + 4, tick_label(t, ystep), 11, "end", "#444444");
  }
  for (double t : xt) {
    if (t < xa - 1e-9 || t > xb + 1e-9) continue;
    doc.line(px(t), top, px(t), bottom, "#efefef");
    doc.line(px(t), bottom, px(t), bottom + 5, "#444444");
    doc.text(px(t), bottom + 18, tick_label(t, xstep), 11, "middle", "#444444");
  }
  doc.line(left, bottom, right, bottom, "#444444");
  doc.line(left, top, left, bottom, "#444444");
  if (!opt.x_label.empty()) doc.text(left + pw / 2, area.y + area.h - 12, opt.x_label, 12, "middle", "#333333");
  if (!opt.y_label.empty()) doc.text(area.x + 14, top + ph / 2, opt.y_label, 12, "middle", "#333333", false, -90);
  if (empty) doc.text(left + pw / 2, top + ph / 2, "no data", 13, "middle", "#888888");

  if (std::isfinite(opt.mark_x) && opt.mark_x >= xa - 1e-9 && opt.mark_x <= xb + 1e-9) {
    doc.line(px(opt.mark_x), top, px(opt.mark_x), bottom, "#777777", 1.2, "3,3");
    if (!opt.mark_label.empty())
      doc.text(px(opt.mark_x) + (px(opt.mark_x) > left + pw / 2 ? -4 : 4), top + 14, opt.mark_label, 10,
               px(opt.mark_x) > left + pw / 2 ? "end" : "start", "#555555");
  }

  // Curves, clipped to the plot by dropping points outside the limits.
  std::size_t total_points = 0;
  for (const Series& s : series) total_points += s.y.size();
  for (std::size_t k = 0; k < series.size(); ++k) {
    const Series& s = series[k];
    const std::string color = s.color.empty() ? palette(k) : s.color;
    std::vector<std::pair<double, double>> run;
    auto flush = [&] {
      doc.polyline(run, color, 2, s.dashed ? "6,4" : "");
      run.clear();
    };
    const bool markers = s.markers && s.y.size() <= 60 && total_points <= 400;
    for (std::size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      const double x = s.x[i], y = s.y[i];
      if (!std::isfinite(x) || !std::isfinite(y) || x < xa - 1e-9 || x > xb + 1e-9 || y < ya - 1e-9 || y > yb + 1e-9) {
        flush();
        continue;
      }
      if (!s.line) {
        doc.circle(px(x), py(y), 2.2, color, "", 0.45);
        continue;
      }
      run.emplace_back(px(x), py(y));
      if (markers) doc.circle(px(x), py(y), 2.8, color);
    }
    if (run.size() == 1 && !markers) doc.circle(run[0].first, run[0].second, 2.8, color);
    flush();
  }

  // Legend: in the corner of the plot that covers the fewest points.
  std::vector<const Series*> shown;
  for (const Series& s : series)
    if (!s.label.empty()) shown.push_back(&s);
  if (shown.empty()) return;
  double lw = 0;
  for (const Series* s : shown) lw = std::max(lw, detail::text_width(s->label, 11));
  lw += 44;
  const double row = 17, lh = row * double(shown.size()) + 8;
  const Box corners[4] = {{right - lw - 8, top + 8, lw, lh},
                          {right - lw - 8, bottom - lh - 8, lw, lh},
                          {left + 8, bottom - lh - 8, lw, lh},
                          {left + 8, top + 8, lw, lh}};
  // Points of every curve, with ten samples along each segment, so that a line crossing a
  // corner counts as well as a marker in it.
  std::vector<std::pair<double, double>> samples;
  for (const Series& s : series) {
    for (std::size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i])) continue;
      samples.emplace_back(px(s.x[i]), py(s.y[i]));
      if (s.line && i + 1 < s.x.size() && i + 1 < s.y.size() && std::isfinite(s.x[i + 1]) && std::isfinite(s.y[i + 1]))
        for (int k = 1; k < 10; ++k) {
          const double f = k / 10.0;
          samples.emplace_back(px(s.x[i] + f * (s.x[i + 1] - s.x[i])), py(s.y[i] + f * (s.y[i + 1] - s.y[i])));
        }
    }
  }
  std::size_t best = 0, best_count = std::numeric_limits<std::size_t>::max();
  for (std::size_t c = 0; c < 4; ++c) {
    std::size_t count = 0;
    const Box& b = corners[c];
    for (const auto& p : samples)
      if (p.first >= b.x - 10 && p.first <= b.x + b.w + 10 && p.second >= b.y - 10 && p.second <= b.y + b.h + 10)
        ++count;
    if (count < best_count) best = c, best_count = count;
  }
  const Box& b = corners[best];
  doc.rect(b.x, b.y, b.w, b.h, "#ffffff", "#bbbbbb", 1, "fill-opacity=\"0.9\" rx=\"3\"");
  for (std::size_t i = 0; i < shown.size(); ++i) {
    const Series& s = *shown[i];
    const std::size_t k = std::size_t(&s - series.data());
    const std::string color = s.color.empty() ? palette(k) : s.color;
    const double y = b.y + 4 + row * (double(i) + 0.5);
    if (s.line)
      doc.line(b.x + 8, y, b.x + 32, y, color, 2.5, s.dashed ? "6,4" : "");
    else
      doc.circle(b.x + 20, y, 3.5, color);
    doc.text(b.x + 38, y + 4, s.label, 11);
  }
}

/// A document holding one line chart.
inline SvgDocument line_chart(const std::vector<Series>& series, const LineChartOptions& opt) {
  SvgDocument doc(opt.width, opt.height);
  draw_line_chart(doc, {0, 0, opt.width, opt.height}, series, opt);
  return doc;
}

/// A confusion matrix: counts[t][p] is the number of samples of true class t predicted as p.
/// Each cell shows its count on a white-to-blue scale; rows are the true classes, columns the
/// predicted ones; a colour bar on the right gives the scale. The subtitle shows the accuracy.
inline SvgDocument confusion_matrix_svg(const std::vector<std::vector<std::size_t>>& counts,
                                        const std::vector<std::string>& class_names, const std::string& title) {
  const std::size_t k = counts.size();
  for (const auto& row : counts)
    if (row.size() != k) throw std::invalid_argument("confusion_matrix_svg: the matrix must be square");
  if (class_names.size() != k) throw std::invalid_argument("confusion_matrix_svg: one class name per row needed");
  std::size_t max_count = 1, total = 0, correct = 0;
  for (std::size_t t = 0; t < k; ++t)
    for (std::size_t p = 0; p < k; ++p) {
      max_count = std::max(max_count, counts[t][p]);
      total += counts[t][p];
      if (t == p) correct += counts[t][p];
    }
  double name_w = 0;
  for (const auto& n : class_names) name_w = std::max(name_w, detail::text_width(n, 12));
  const double cell = 52, left = 40 + name_w + 12, top = 84;
  const double grid = cell * double(k);
  const double bar_x = left + grid + 28, bar_w = 18;
  const double width = bar_x + bar_w + 70;
  const double height = top + grid + 24 + name_w * 0.72 + 36;
  SvgDocument doc(width, height);
  doc.text(width / 2, 28, title, 16, "middle", "#222222", true);
  char sub[96];
  std::snprintf(sub, sizeof sub, "%zu samples, %zu correct (accuracy %.2f%%)", total, correct,
                total ? 100.0 * double(correct) / double(total) : 0.0);
  doc.text(width / 2, 50, sub, 12, "middle", "#555555");

  for (std::size_t t = 0; t < k; ++t) {
    for (std::size_t p = 0; p < k; ++p) {
      const double v = double(counts[t][p]) / double(max_count);
      const double x = left + cell * double(p), y = top + cell * double(t);
      doc.rect(x, y, cell, cell, blues(v), "#ffffff", 1);
      const std::string fill = v > 0.5 ? "#ffffff" : "#1a1a1a";
      doc.text(x + cell / 2, y + cell / 2 + 4.5, std::to_string(counts[t][p]), counts[t][p] >= 10000 ? 11 : 13,
               "middle", fill, t == p);
    }
    doc.text(left - 8, top + cell * (double(t) + 0.5) + 4, class_names[t], 12, "end");
  }
  if (k > 0 && total > 0) {
    // Diagonal outline: the correct predictions.
    for (std::size_t i = 0; i < k; ++i)
      doc.rect(left + cell * double(i) + 1, top + cell * double(i) + 1, cell - 2, cell - 2, "none", "#08306b", 1.2);
  }
  for (std::size_t p = 0; p < k; ++p) {
    const double x = left + cell * (double(p) + 0.5) + 4, y = top + grid + 10;
    doc.text(x, y, class_names[p], 12, "end", "#222222", false, -45);
  }
  doc.text(left + grid / 2, height - 12, "Predicted label", 13, "middle", "#333333", true);
  doc.text(16, top + grid / 2, "True label", 13, "middle", "#333333", true, -90);

  // Colour bar: 50 bands from 0 (bottom) to max (top), with nice ticks.
  const int bands = 50;
  for (int i = 0; i < bands; ++i) {
    const double y = top + grid - grid * double(i + 1) / bands;
    doc.rect(bar_x, y, bar_w, grid / bands + 0.5, blues((i + 0.5) / bands));
  }
  doc.rect(bar_x, top, bar_w, grid, "none", "#888888");
  const std::vector<double> ticks = nice_ticks(0, double(max_count), 6);
  const double step = ticks.size() > 1 ? ticks[1] - ticks[0] : 1;
  for (double t : ticks) {
    if (t > double(max_count) + 1e-9) continue;
    const double y = top + grid - grid * t / double(max_count);
    doc.line(bar_x + bar_w, y, bar_x + bar_w + 4, y, "#444444");
    doc.text(bar_x + bar_w + 7, y + 4, tick_label(t, step), 11, "start", "#444444");
  }
  return doc;
}

/// One sample of a prediction grid.
struct PredictedImage {
  std::vector<float> pixels;  ///< height * width grey values in [0, 1]: 0 white paper, 1 black ink
  std::size_t height = 0, width = 0;
  int true_label = 0;                 ///< the true class; -1 when unknown (a picture of your own)
  std::vector<double> probabilities;  ///< one per class, summing to 1
  std::string caption;                ///< a line under the labels (a file name); "" for none
};

/// A grid of images, `columns` per row, each with "predicted (probability)" and "true" labels
/// (green when right, red when wrong) and a horizontal bar chart of the class probabilities:
/// the true class's bar blue, a wrong prediction's bar red, the rest grey. An image whose true
/// class is unknown (-1) gets its prediction in black and its predicted class's bar blue. This
/// is the lecture notebook's classify_pic for many images at once. Pixel values are drawn as
/// they are, in [0, 1]; nothing divides them again.
inline SvgDocument prediction_grid_svg(const std::vector<PredictedImage>& images,
                                       const std::vector<std::string>& class_names, std::size_t columns,
                                       const std::string& title) {
  columns = std::max<std::size_t>(1, std::min(columns, std::max<std::size_t>(1, images.size())));
  const std::size_t rows = (images.size() + columns - 1) / columns;
  double name_w = 0;
  for (const auto& n : class_names) name_w = std::max(name_w, detail::text_width(n, 10));
  const double scale = 3.2, img = 28 * scale;  // drawn size of a 28x28 image
  const double bars_w = 90;
  const double cell_w = img + 14 + name_w + 6 + bars_w + 34, cell_h = 10 * 11.5 + 64;
  const double margin = 20, top = 58;
  const double width = margin * 2 + cell_w * double(columns), height = top + cell_h * double(rows) + 28;
  SvgDocument doc(width, height);
  doc.text(width / 2, 28, title, 16, "middle", "#222222", true);
  const bool any_known = std::any_of(images.begin(), images.end(), [](const PredictedImage& im) { return im.true_label >= 0; });
  doc.text(width / 2, 46,
           any_known ? "bars: predicted probability per class (blue: true class, red: a wrong prediction)"
                     : "bars: predicted probability per class (blue: the prediction)",
           11, "middle", "#555555");

  for (std::size_t n = 0; n < images.size(); ++n) {
    const PredictedImage& im = images[n];
    if (im.pixels.size() != im.height * im.width)
      throw std::invalid_argument("prediction_grid_svg: image " + std::to_string(n) + " has " +
                                  std::to_string(im.pixels.size()) + " pixels for " + std::to_string(im.height) + "x" +
                                  std::to_string(im.width));
    const double cx = margin + cell_w * double(n % columns), cy = top + cell_h * double(n / columns);
    const std::size_t k = im.probabilities.size();
    const int predicted =
        k ? int(std::max_element(im.probabilities.begin(), im.probabilities.end()) - im.probabilities.begin()) : -1;
    const bool known = im.true_label >= 0;
    const bool right = !known || predicted == im.true_label;  // an unknown truth is drawn as neutral
    const std::string verdict = !known ? "#222222" : right ? "#1a7f37" : "#cf222e";
    auto name_of = [&](int c) {
      return c >= 0 && std::size_t(c) < class_names.size() ? class_names[std::size_t(c)] : std::to_string(c);
    };

    // The image: white paper, then one rect per run of equal non-zero pixels in a row.
    const double s = img / double(std::max(im.height, im.width));
    const double ix = cx, iy = cy + 6;
    doc.rect(ix - 1, iy - 1, s * double(im.width) + 2, s * double(im.height) + 2, "#ffffff",
             right ? "#bbbbbb" : verdict, right ? 1 : 2);
    doc.begin_group("transform=\"translate(" + num(ix) + "," + num(iy) + ") scale(" + num(s) +
                    ")\" shape-rendering=\"crispEdges\"");
    for (std::size_t r = 0; r < im.height; ++r) {
      std::size_t c = 0;
      while (c < im.width) {
        const float v = std::min(1.0f, std::max(0.0f, im.pixels[r * im.width + c]));
        const int level = int(std::lround(255.0 * (1.0 - double(v))));
        std::size_t end = c + 1;
        while (end < im.width) {
          const float w = std::min(1.0f, std::max(0.0f, im.pixels[r * im.width + end]));
          if (int(std::lround(255.0 * (1.0 - double(w)))) != level) break;
          ++end;
        }
        if (level < 255) {
          const std::string grey = rgb(level, level, level);
          doc.rect(double(c), double(r), double(end - c), 1, grey);
        }
        c = end;
      }
    }
    doc.end_group();

    // Labels under the image and the bars.
    char pct[32];
    std::snprintf(pct, sizeof pct, " (%.0f%%)",
                  predicted >= 0 ? 100.0 * im.probabilities[std::size_t(predicted)] : 0.0);
    const double label_y = iy + std::max(img, 10 * 11.5) + 16;
    doc.text(ix, label_y, "predicted: " + name_of(predicted) + pct, 11.5, "start", verdict, true);
    double line_y = label_y + 15;
    if (known) {
      doc.text(ix, line_y, "true: " + name_of(im.true_label), 11.5, "start", "#333333");
      line_y += 15;
    }
    if (!im.caption.empty()) {
      // The end of a long caption (a file name's end says most), to fit the cell.
      const std::size_t fit = std::size_t(std::max(8.0, (cell_w - 10) / (0.58 * 10.5)));
      const std::string c = im.caption.size() <= fit ? im.caption : "..." + im.caption.substr(im.caption.size() - (fit - 3));
      doc.text(ix, line_y, c, 10.5, "start", "#555555");
    }

    // Probability bars, one row per class.
    const double bx = cx + img + 14 + name_w + 6, row = 11.5, by = cy + 6;
    for (std::size_t c = 0; c < k; ++c) {
      const double y = by + row * double(c);
      const double p = std::min(1.0, std::max(0.0, im.probabilities[c]));
      std::string color = "#9e9e9e";
      if (int(c) == (known ? im.true_label : predicted))
        color = "#1f77b4";
      else if (int(c) == predicted)
        color = "#d62728";
      doc.text(bx - 5, y + 8.5, name_of(int(c)), 10, "end", int(c) == predicted ? "#111111" : "#555555");
      doc.rect(bx, y + 1.5, bars_w, row - 3, "#f0f0f0");
      if (p > 0) doc.rect(bx, y + 1.5, std::max(0.8, bars_w * p), row - 3, color);
      if (p >= 0.005) {
        char v[16];
        std::snprintf(v, sizeof v, "%.2f", p);
        doc.text(bx + bars_w + 3, y + 8.5, v, 9, "start", "#555555");
      }
    }
  }
  return doc;
}

}  // namespace svg
}  // namespace faltung_examples
