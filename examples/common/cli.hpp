#pragma once
// Command-line validators shared by the examples (CLI11): a message that says what is wrong with
// the value ("--lr: '-1' is not a positive number") rather than CLI11's generic range text.

#include <CLI/CLI.hpp>
#include <cmath>
#include <exception>
#include <limits>
#include <sstream>
#include <string>

namespace faltung_examples {
namespace cli {

/// A validator that checks without adding its description to the help's type column: the
/// option's help text says the range in words.
inline CLI::Validator quiet(CLI::Validator v) { return v.description(""); }

/// A number in [lo, hi] ((lo, hi] when lo_open; whole when `whole`).
inline CLI::Validator number(double lo, double hi, bool whole, bool lo_open, const std::string& what) {
  return CLI::Validator(
      [=](std::string& text) -> std::string {
        std::size_t used = 0;
        double v = 0;
        try {
          v = std::stod(text, &used);
        } catch (const std::exception&) {
          used = 0;
        }
        const bool ok = used == text.size() && !text.empty() && std::isfinite(v) && (lo_open ? v > lo : v >= lo) &&
                        v <= hi && (!whole || v == std::floor(v));
        return ok ? std::string() : "'" + text + "' is not " + what;
      },
      "", "number");
}
inline CLI::Validator positive(const std::string& what = "a positive number") {
  return number(0, std::numeric_limits<double>::max(), false, true, what);
}
inline CLI::Validator whole_in(double lo, double hi) {
  std::ostringstream what;
  what << "a whole number from " << lo << " to " << hi;
  return number(lo, hi, true, false, what.str());
}
inline CLI::Validator real_in(double lo, double hi, const std::string& what) {
  return number(lo, hi, false, false, what);
}

}  // namespace cli
}  // namespace faltung_examples
