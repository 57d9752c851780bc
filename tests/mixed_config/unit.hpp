#pragma once
// The interface between main.cpp and the three copies of unit.cpp, each compiled with different
// flags (tests/CMakeLists.txt). Plain types only: faltung's objects of one configuration are not
// those of another, so nothing of faltung crosses this line.

#include <string>

/// Any function's address, to tell two copies of a function apart.
using AnyFunction = void (*)();

struct UnitReport {
  std::string abi;                        ///< FALTUNG_ABI_STRING of the unit
  bool simd_gemm = false;                 ///< whether the unit was compiled with the SIMD kernels
  bool zlib = false;                      ///< FALTUNG_HAS_ZLIB of the unit
  AnyFunction dense_forward = nullptr;    ///< &faltung::kernels::dense_forward<float> as the unit sees it
  AnyFunction read_idx = nullptr;         ///< &faltung::read_idx as the unit sees it
  std::string failures;                   ///< empty when every result was right
};

/// faltung::native (the CPU's full instruction set), zlib as the faltung target has it.
UnitReport run_native_unit(const std::string& raw_idx, const std::string& gzip_idx);
/// The compiler's default instruction set, zlib as the faltung target has it.
UnitReport run_generic_unit(const std::string& raw_idx, const std::string& gzip_idx);
/// The compiler's default instruction set, FALTUNG_HAS_ZLIB undefined (0).
UnitReport run_generic_nozlib_unit(const std::string& raw_idx, const std::string& gzip_idx);
