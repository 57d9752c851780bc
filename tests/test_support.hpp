#pragma once
// Helpers shared by the test programs.

#include <gtest/gtest.h>

#include <cstdint>
#include <ctime>
#include <filesystem>
#include <string>
#include <system_error>

#if defined(__unix__) || defined(__APPLE__)
#include <unistd.h>
#endif

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

/// A fresh directory for the running test's files, named after the process and the test (so
/// that ctest -j's parallel tests never share one), removed with everything in it at the end of
/// its scope.
class TempDir {
 public:
  TempDir() {
#if defined(__unix__) || defined(__APPLE__)
    const std::string process = std::to_string(std::uint64_t(::getpid()));
#else
    const std::string process = std::to_string(std::uint64_t(std::time(nullptr)));
#endif
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    const std::string test = info ? std::string(info->test_suite_name()) + "_" + info->name() : "none";
    dir_ = std::filesystem::temp_directory_path() / ("faltung_" + process + "_" + test);
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& dir() const { return dir_; }
  /// The path of `name` inside the directory.
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

 private:
  std::filesystem::path dir_;
};

}  // namespace faltung::test
