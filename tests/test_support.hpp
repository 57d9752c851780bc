#pragma once
// Helpers shared by the test programs.

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <system_error>
#include <vector>

#if defined(__unix__) || defined(__APPLE__)
#include <sys/wait.h>
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

/// The whole content of a file ("" when it cannot be read).
inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

#if defined(__unix__) || defined(__APPLE__)
/// What a program run printed and how it ended.
struct ProgramRun {
  int status = -1;  ///< the exit status, -1 when it did not exit normally
  std::string out, err;
};

/// Runs `program` with `args` through the shell, its output into files in tmp. The arguments are
/// the test's own (paths, options) and contain no single quotes.
inline ProgramRun run_program(const std::string& program, const std::vector<std::string>& args, const TempDir& tmp) {
  std::string command = "'" + program + "'";
  for (const std::string& a : args) command += " '" + a + "'";
  command += " > '" + tmp.path("stdout.txt") + "' 2> '" + tmp.path("stderr.txt") + "'";
  ProgramRun r;
  const int w = std::system(command.c_str());
  r.status = WIFEXITED(w) ? WEXITSTATUS(w) : -1;
  r.out = read_file(tmp.path("stdout.txt"));
  r.err = read_file(tmp.path("stderr.txt"));
  return r;
}
#endif

}  // namespace faltung::test
