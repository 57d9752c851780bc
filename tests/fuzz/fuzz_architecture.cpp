// libFuzzer target: the architecture language, from the string to a model that runs.
//
// Input layout: 4 header bytes, then the architecture string.
//   byte 0  bit 0: input rank 3 (channels, height, width), else rank 1 (features)
//           bit 1: 2 threads, else 1;  bits 2-3: batch 1..4;  bit 4: also train one step
//   byte 1  channels 1..4 (rank 3), or with byte 2 the features 1..1024 (rank 1)
//   byte 2  height 1..32;  byte 3  width 1..32
// Each input: parse; the canonical form must parse back to itself; build for the shape; one
// predict of a batch; with bit 4, one forward and backward in training mode. Any faltung::Error
// is a fine answer; anything else (a crash, a sanitizer report, another exception, an
// allocation beyond -malloc_limit_mb, a broken invariant) is a finding.

#include <faltung/model/architecture.hpp>

#include "fuzz_support.hpp"

#include <cstddef>
#include <cstdint>
#include <string>

namespace {

[[noreturn]] void broken(const char* what, const std::string& detail) {
  faltung::fuzz::broken("fuzz_architecture", what, detail);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  faltung::fuzz::use_small_size_limits();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace faltung;
  if (size < 4) return 0;
  const std::uint8_t mode = data[0];
  const std::size_t batch = 1 + ((mode >> 2) & 3);
  const Shape shape = (mode & 1) ? Shape{1u + data[1] % 4u, 1u + data[2] % 32u, 1u + data[3] % 32u}
                                 : Shape{1u + (std::size_t(data[1]) << 8 | data[2]) % 1024u};
  const std::string spec(reinterpret_cast<const char*>(data) + 4, size - 4);
  set_num_threads((mode & 2) ? 2 : 1);

  std::string canonical;
  try {
    canonical = canonical_spec(spec);
  } catch (const Error&) {
    return 0;
  }
  // The canonical form is a fixed point of the parser.
  std::string again;
  try {
    again = canonical_spec(canonical);
  } catch (const Error& e) {
    broken("the canonical form does not parse", canonical + ": " + e.what());
  }
  if (again != canonical) broken("the canonical form is not a fixed point", canonical + " -> " + again);

  try {
    Sequential<float> net = make_sequential<float>(spec, shape, 7);
    if (net.spec() != canonical) broken("the model's spec differs from the canonical form", net.spec() + " vs " + canonical);
    Tensor<float> x(shape.with_batch(batch));
    for (std::size_t i = 0; i < x.size(); ++i) x[i] = float(int(i % 7) - 3) * 0.25f;
    const Tensor<float> p = net.predict(x);
    if (p.dim(0) != batch) broken("predict returned the wrong batch", p.shape().to_string());
    if (mode & 16) {
      net.set_training(true);
      const Tensor<float>& y = net.forward(x);
      Tensor<float> dy(y.shape(), 0.5f);
      net.zero_grad();
      net.backward(dy);
    }
  } catch (const Error&) {
  }
  return 0;
}
