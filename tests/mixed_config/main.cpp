// mixed_config: one program made of three translation units that include faltung with different
// configurations (tests/CMakeLists.txt): one with faltung::native, one with the compiler's
// default instruction set, and one of those without zlib. Each must compute correct results with
// its own configuration's code, which needs faltung's per-configuration inline namespace
// (config.hpp): without it the linker keeps one copy of every inline function for all three.
#include <cstdint>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "unit.hpp"

namespace {

void write(const std::string& path, const std::vector<std::uint8_t>& bytes) {
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
}

/// Two units of different configurations must run different copies of a function.
bool distinct(const char* function, const UnitReport& a, const char* a_name, const UnitReport& b, const char* b_name,
              AnyFunction UnitReport::*f) {
  if (a.abi == b.abi) {
    std::cout << "note: " << a_name << " and " << b_name << " have the same configuration on this machine\n";
    return true;
  }
  if (a.*f != b.*f) return true;
  std::cout << "FAIL: " << a_name << " (" << a.abi << ") and " << b_name << " (" << b.abi << ") run the same copy of "
            << function << "\n";
  return false;
}

}  // namespace

int main() {
  // A 2 x 3 IDX array of unsigned bytes, plain and gzip-compressed (Python's gzip.compress with mtime=0).
  const std::vector<std::uint8_t> raw{0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 250, 251, 252};
  const std::vector<std::uint8_t> gzip{0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x03, 0x63, 0x60,
                                       0xe0, 0x60, 0x62, 0x60, 0x60, 0x00, 0x61, 0x66, 0x46, 0x26, 0xe6, 0x5f,
                                       0xbf, 0xff, 0x00, 0x00, 0xa3, 0x1d, 0x33, 0x8d, 0x12, 0x00, 0x00, 0x00};
  write("mixed_config_raw.idx", raw);
  write("mixed_config_gzip.idx", gzip);

  struct Named {
    const char* name;
    UnitReport report;
  };
  const Named units[] = {
      {"native", run_native_unit("mixed_config_raw.idx", "mixed_config_gzip.idx")},
      {"generic", run_generic_unit("mixed_config_raw.idx", "mixed_config_gzip.idx")},
      {"generic_nozlib", run_generic_nozlib_unit("mixed_config_raw.idx", "mixed_config_gzip.idx")},
  };
  bool ok = true;
  for (const Named& u : units) {
    std::cout << u.name << ": " << u.report.abi << (u.report.simd_gemm ? ", SIMD kernels" : ", no SIMD kernels")
              << (u.report.zlib ? ", zlib" : ", no zlib") << "\n";
    if (!u.report.failures.empty()) {
      std::cout << "FAIL: " << u.name << ":\n" << u.report.failures;
      ok = false;
    }
  }
  const UnitReport& native = units[0].report;
  const UnitReport& generic = units[1].report;
  const UnitReport& nozlib = units[2].report;
  ok &= distinct("faltung::kernels::dense_forward<float>", native, "native", generic, "generic",
                 &UnitReport::dense_forward);
  ok &= distinct("faltung::read_idx", generic, "generic", nozlib, "generic_nozlib", &UnitReport::read_idx);
  std::cout << (ok ? "every unit ran its own configuration's code correctly\n" : "mixed_config FAILED\n");
  return ok ? 0 : 1;
}
