#pragma once
// Writing a file atomically: all of it or nothing. Model files (io/model_file.hpp) and CSV files
// (data/csv.hpp) are written this way.
//
//   detail::AtomicFile file(path);
//   file.write(bytes, n);  // as often as needed
//   file.commit();         // the new content is now at `path`; without this, nothing changed
//
// The bytes go to a temporary file beside the target ("<path>.tmp.<pid>.<n>", created with
// O_EXCL so another writer's file is never reused), which commit() flushes (fsync), closes and
// renames over the target; the directory is then fsync'ed so that the new name survives a crash.
// A failure at any point (no such directory, disk full, an exception from the caller half-way)
// leaves the previous file as it was and removes the temporary. Replacing a file keeps its
// permission bits; a symbolic link at the path is replaced, not followed. POSIX, and Windows
// through the MSVC CRT and std::filesystem::rename (MoveFileEx with MOVEFILE_REPLACE_EXISTING).

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <string>

#include "faltung/config.hpp"

#if defined(_WIN32)
#include <fcntl.h>
#include <io.h>
#include <process.h>
#include <sys/stat.h>
#include <filesystem>
#include <system_error>
#else
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#endif

FALTUNG_BEGIN_NAMESPACE
namespace detail {

/// The system's text for an errno value.
inline std::string errno_text(int err) {
#if defined(_MSC_VER)
  char text[256];
  strerror_s(text, sizeof text, err);
  return text;
#else
  return std::strerror(err);
#endif
}

/// A file written atomically: write() goes to a temporary beside `target`, commit() makes it the
/// target. Destroyed without commit(), it removes the temporary. Every error names the temporary
/// and the target.
class AtomicFile {
 public:
  explicit AtomicFile(const std::string& target) : target_(target) {
    FALTUNG_CHECK(!target.empty(), "cannot save: the path is empty");
    static std::atomic<unsigned> counter{0};  // several saves in one process get distinct names
    for (int attempt = 0; attempt < 100; ++attempt) {
#if defined(_WIN32)
      path_ = target + ".tmp." + std::to_string(_getpid()) + "." + std::to_string(counter++);
      fd_ = _open(path_.c_str(), _O_WRONLY | _O_CREAT | _O_EXCL | _O_BINARY, _S_IREAD | _S_IWRITE);
#else
      path_ = target + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
      // 0666 and the umask, as any new file; O_EXCL: never reuse someone else's file.
      fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
#endif
      if (fd_ >= 0) break;
      if (errno != EEXIST) break;
    }
    if (fd_ < 0)
      fail("cannot save '", target_, "': cannot create the temporary file '", path_, "' beside it: ",
           errno_text(errno));
#if !defined(_WIN32)
    // Replacing a file keeps its permissions (a private model stays private).
    struct stat st;
    if (::stat(target_.c_str(), &st) == 0 && S_ISREG(st.st_mode)) (void)::fchmod(fd_, st.st_mode & 07777);
#endif
  }
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  /// Removes the temporary unless commit() succeeded: a failed save leaves nothing behind.
  ~AtomicFile() {
    if (fd_ >= 0) close_fd();
    if (!committed_) std::remove(path_.c_str());
  }

  void write(const unsigned char* p, std::size_t n) {
    while (n > 0) {
      const unsigned chunk = unsigned(std::min<std::size_t>(n, std::size_t(1) << 30));
#if defined(_WIN32)
      const int w = _write(fd_, p, chunk);
#else
      const ssize_t w = ::write(fd_, p, chunk);
#endif
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) fail_io("cannot write", w < 0 ? errno : ENOSPC);
      p += w;
      n -= std::size_t(w);
    }
  }

  /// Flushes to the disk, closes, and renames over the target.
  void commit() {
#if defined(_WIN32)
    if (_commit(fd_) != 0) fail_io("cannot flush", errno);
#else
    if (::fsync(fd_) != 0) fail_io("cannot flush", errno);
#endif
    if (close_fd() != 0) fail_io("cannot close", errno);
#if defined(_WIN32)
    std::error_code ec;
    std::filesystem::rename(path_, target_, ec);  // MoveFileEx with MOVEFILE_REPLACE_EXISTING
    if (ec)
      fail("cannot save '", target_, "': cannot rename the temporary file '", path_, "' over it: ",
           ec.message());
#else
    if (std::rename(path_.c_str(), target_.c_str()) != 0)
      fail("cannot save '", target_, "': cannot rename the temporary file '", path_, "' over it: ",
           errno_text(errno));
#endif
    committed_ = true;
#if !defined(_WIN32)
    // Best effort: the file itself is complete; this makes the new directory entry durable.
    const std::size_t slash = target_.find_last_of('/');
    const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : target_.substr(0, slash);
    const int dfd = ::open(dir.c_str(), O_RDONLY | O_CLOEXEC);
    if (dfd >= 0) {
      (void)::fsync(dfd);
      ::close(dfd);
    }
#endif
  }

 private:
  int close_fd() {
#if defined(_WIN32)
    const int r = _close(fd_);
#else
    const int r = ::close(fd_);
#endif
    fd_ = -1;
    return r;
  }
  [[noreturn]] void fail_io(const char* what, int err) {
    fail("cannot save '", target_, "': ", what, " the temporary file '", path_, "': ", errno_text(err));
  }

  std::string target_, path_;
  int fd_ = -1;
  bool committed_ = false;
};

}  // namespace detail
FALTUNG_END_NAMESPACE
