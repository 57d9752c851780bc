#pragma once
// Helpers shared by the test programs.

#include <string>

#include "faltung/config.hpp"

namespace faltung::test {

/// The message of the faltung::Error that f throws, or a marker when it throws none, so that a
/// test can check both that it throws and what it says.
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no faltung::Error thrown)";
}

inline bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

}  // namespace faltung::test
