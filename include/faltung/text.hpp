#pragma once
// The small text helpers that the parsers (model/architecture.hpp, data/csv.hpp), the model's
// summary and the examples share, each written once.

#include <cstddef>
#include <string>
#include <string_view>

#include "faltung/config.hpp"

FALTUNG_BEGIN_NAMESPACE
namespace detail {

/// s without the characters of `chars` at its ends (by default the whitespace of std::isspace
/// in the C locale). A view into s: it lives as long as s does.
inline std::string_view trim(std::string_view s, std::string_view chars = " \t\n\v\f\r") {
  const std::size_t first = s.find_first_not_of(chars);
  if (first == std::string_view::npos) return {};
  return s.substr(first, s.find_last_not_of(chars) - first + 1);
}

/// n with a comma between groups of three digits, as Keras's summary prints counts: "1,815,114".
inline std::string group_digits(std::size_t n) {
  std::string s = std::to_string(n);
  for (int i = int(s.size()) - 3; i > 0; i -= 3) s.insert(std::size_t(i), ",");
  return s;
}

}  // namespace detail
FALTUNG_END_NAMESPACE
