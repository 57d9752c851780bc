// libFuzzer target: the model loader, from a file's bytes to a model that predicts.
//
// Input layout: 1 header byte, then the model file's bytes.
//   byte 0  bit 0: put the right checksum into the file's last 8 bytes first, so that mutations
//                  reach the fields behind it (without it, nearly every mutation is refused as
//                  a checksum mismatch, which the unit tests cover)
//           bit 1: 2 threads, else 1;  bit 2: load as double, else float
// Each input: parse_model_file; load_model; one predict of a batch of 2. Any faltung::Error is a
// fine answer; anything else (a crash, a sanitizer report, another exception, an allocation
// beyond -malloc_limit_mb, a broken invariant) is a finding. The seeds (corpus/model) are tiny
// files of every version and scalar type that save_model writes, and damaged ones.

#include <faltung/io/load_model.hpp>

#include "fuzz_support.hpp"

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace {

[[noreturn]] void broken(const char* what, const std::string& detail) {
  faltung::fuzz::broken("fuzz_model", what, detail);
}

template <class T>
void load_and_predict(const std::vector<unsigned char>& bytes) {
  using namespace faltung;
  Sequential<T> net = load_model<T>(parse_model_file(bytes, "fuzz.faltung"), 7);
  if (!net.built()) broken("load_model returned an unbuilt model", net.spec());
  const std::size_t batch = 2;
  Tensor<T> x(net.input_shape().with_batch(batch));
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = T(int(i % 7) - 3) * T(0.25);
  const Tensor<T> p = net.predict(x);
  if (p.shape() != net.output_shape().with_batch(batch))
    broken("predict returned the wrong shape", p.shape().to_string() + " for " + net.output_shape().to_string());
  const std::vector<std::string>& names = net.class_names();
  if (!names.empty() && names.size() != net.output_shape().numel())
    broken("the class names do not fit the output", std::to_string(names.size()));
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // The input shape, which no weights back, is held to them: one predict stays small.
  faltung::fuzz::use_small_size_limits();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace faltung;
  if (size < 1) return 0;
  const std::uint8_t mode = data[0];
  std::vector<unsigned char> bytes(data + 1, data + size);
  if ((mode & 1) && bytes.size() >= 8) {
    const std::uint64_t h = detail::fnv1a64(bytes.data(), bytes.size() - 8);
    for (int i = 0; i < 8; ++i) bytes[bytes.size() - 8 + std::size_t(i)] = static_cast<unsigned char>(h >> (8 * i));
  }
  set_num_threads((mode & 2) ? 2 : 1);
  try {
    if (mode & 4)
      load_and_predict<double>(bytes);
    else
      load_and_predict<float>(bytes);
  } catch (const Error&) {
  }
  return 0;
}
