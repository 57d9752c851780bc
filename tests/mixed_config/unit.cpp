// One translation unit of the mixed_config program, compiled three times with different flags
// (tests/CMakeLists.txt); MIXED_CONFIG_UNIT names the function each copy defines. Every copy
// trains a tiny model and reads an IDX file through faltung, and checks the results against
// values worked out by hand, so a copy that ran another configuration's code would notice:
// without faltung's per-configuration namespace (config.hpp) the linker keeps one copy of each
// inline function for the whole program.
#include <faltung/faltung.hpp>

#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <sstream>
#include <vector>

#include "unit.hpp"

namespace {

void set(faltung::Tensor<float>& t, std::initializer_list<float> values) {
  FALTUNG_CHECK(t.size() == values.size(), "mixed_config: ", values.size(), " values for ", t.size(), " elements");
  std::copy(values.begin(), values.end(), t.data());
}

/// Empty when t holds exactly `want` (every value below is exact in float, whatever the
/// kernel: small integers and halves); otherwise what differs.
std::string differences(const char* what, const faltung::Tensor<float>& t, std::initializer_list<float> want) {
  std::ostringstream os;
  if (t.size() != want.size()) {
    os << what << ": " << t.size() << " values, expected " << want.size() << "\n";
    return os.str();
  }
  std::size_t i = 0;
  for (float w : want) {
    if (t.data()[i] != w) os << what << "[" << i << "] = " << t.data()[i] << ", expected " << w << "\n";
    ++i;
  }
  return os.str();
}

/// A Dense layer 3 -> 2 with chosen weights: its prediction, then one SGD step on the mean
/// squared error, all worked out by hand.
std::string check_dense() {
  faltung::Sequential<float> net;
  net.add<faltung::Dense>(2);
  net.build({3});
  std::vector<faltung::Parameter<float>*> p = net.parameters();  // kernel (3, 2), bias (2)
  set(p.at(0)->value, {1, 0, 0, 1, 1, 1});
  set(p.at(1)->value, {0.5f, -1});
  faltung::Tensor<float> x(faltung::Shape{2, 3}, {1, 2, 3, 4, 5, 6});

  // y = x W + b = [[1 + 3, 2 + 3], [4 + 6, 5 + 6]] + b
  std::string out = differences("predict", net.predict(x), {4.5f, 4, 10.5f, 10});

  // targets 1 below / above two of the outputs: y - t = [[1, 0], [0, -1]], loss = 2 / 4,
  // dy = 2 (y - t) / 4, dW = x^T dy = [[0.5, -2], [1, -2.5], [1.5, -3]], db = [0.5, -0.5];
  // lr 0.5: W -= dW / 2, b -= db / 2.
  net.compile(faltung::MeanSquaredError{}, faltung::SGD<float>(0.5), {});
  const faltung::Tensor<float> t(faltung::Shape{2, 2}, {3.5f, 4, 10.5f, 11});
  const faltung::BatchResult r = net.train_on_batch(x, t);
  if (r.loss != 0.5) out += "train_on_batch: loss " + std::to_string(r.loss) + ", expected 0.5\n";
  out += differences("kernel after one step", p.at(0)->value, {0.75f, 1, -0.5f, 2.25f, 0.25f, 2.5f});
  out += differences("bias after one step", p.at(1)->value, {0.25f, -0.75f});
  return out;
}

/// Both files hold the same IDX array (2 x 3 unsigned bytes); the gzip one reads only with zlib,
/// and without it the reader must say so.
std::string check_idx(const std::string& raw_idx, const std::string& gzip_idx) {
  std::string out;
  const auto check = [&](const char* what, const faltung::IdxArray& a) {
    if (a.dims != std::vector<std::uint32_t>{2, 3} || a.data != std::vector<std::uint8_t>{1, 2, 3, 250, 251, 252})
      out += std::string(what) + ": wrong dimensions or data\n";
  };
  check("read_idx(raw)", faltung::read_idx(raw_idx));
  try {
    const faltung::IdxArray a = faltung::read_idx(gzip_idx);
    if (FALTUNG_HAS_ZLIB)
      check("read_idx(gzip)", a);
    else
      out += "read_idx(gzip) read the file in a unit built without zlib\n";
  } catch (const faltung::Error& e) {
    const bool expected = !FALTUNG_HAS_ZLIB && std::string(e.what()).find("built without zlib") != std::string::npos;
    if (!expected) out += std::string("read_idx(gzip): ") + e.what() + "\n";
  }
  return out;
}

}  // namespace

UnitReport MIXED_CONFIG_UNIT(const std::string& raw_idx, const std::string& gzip_idx) {
  UnitReport r;
  r.abi = FALTUNG_ABI_STRING;
  r.simd_gemm = FALTUNG_HAS_SIMD_GEMM != 0;
  r.zlib = FALTUNG_HAS_ZLIB != 0;
  r.dense_forward = reinterpret_cast<AnyFunction>(&faltung::kernels::dense_forward<float>);
  r.read_idx = reinterpret_cast<AnyFunction>(&faltung::read_idx);
  try {
    r.failures = check_dense() + check_idx(raw_idx, gzip_idx);
  } catch (const faltung::Error& e) {
    r.failures += std::string("faltung::Error: ") + e.what() + "\n";
  }
  return r;
}
