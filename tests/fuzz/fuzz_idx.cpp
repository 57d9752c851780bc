// libFuzzer target: the IDX reader (data/idx.hpp), raw and gzip-compressed.
//
// Input layout: byte 0 chooses how the rest reaches read_idx:
//   even  the rest is the file, as it is (raw IDX, or a gzip stream the fuzzer mutates)
//   odd   the rest is gzip-compressed here first, so that the IDX parsing behind zlib is
//         fuzzed as thoroughly as the raw one (a mutated gzip stream rarely passes its CRC)
// read_idx must return an array whose data matches its dimensions, or throw faltung::Error;
// a second file pairs it as images with a label file, as load_idx_image_dataset does.

#include <faltung/data/fashion_mnist.hpp>
#include <faltung/data/idx.hpp>

#include <unistd.h>
#include <zlib.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace {

std::string g_path, g_labels_path;

void write_file(const std::string& path, const std::uint8_t* data, std::size_t size) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f || (size && std::fwrite(data, 1, size, f) != size) || std::fclose(f) != 0) {
    std::perror(path.c_str());
    std::abort();
  }
}

std::vector<std::uint8_t> gzip(const std::uint8_t* data, std::size_t size) {
  z_stream zs{};
  if (deflateInit2(&zs, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) std::abort();
  std::vector<std::uint8_t> out(deflateBound(&zs, uLong(size)));
  zs.next_in = const_cast<Bytef*>(data);
  zs.avail_in = uInt(size);
  zs.next_out = out.data();
  zs.avail_out = uInt(out.size());
  if (deflate(&zs, Z_FINISH) != Z_STREAM_END) std::abort();
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

// read_idx reads a path, so each input goes through a file: in memory (/dev/shm) where there is
// one, which on an ext4 /tmp made the target seven times faster.
std::string temp_path(const char* stem) {
  const char* tmpdir = std::getenv("TMPDIR");
  const std::string dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : tmpdir && *tmpdir ? tmpdir : "/tmp";
  return dir + "/faltung_fuzz_" + stem + "_" + std::to_string(getpid());
}

void remove_files() {
  std::remove(g_path.c_str());
  std::remove(g_labels_path.c_str());
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  g_path = temp_path("idx");
  g_labels_path = temp_path("labels");
  std::atexit(remove_files);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  if (data[0] & 1) {
    const std::vector<std::uint8_t> z = gzip(data + 1, size - 1);
    write_file(g_path, z.data(), z.size());
  } else {
    write_file(g_path, data + 1, size - 1);
  }
  faltung::IdxArray a;
  try {
    a = faltung::read_idx(g_path);
  } catch (const faltung::Error&) {
    return 0;
  }
  if (a.dims.empty() || a.data.size() != a.numel()) {
    std::fprintf(stderr, "fuzz_idx: read_idx returned %zu bytes for dimensions %s\n", a.data.size(),
                 faltung::detail::idx_dims_string(a.dims).c_str());
    std::abort();
  }
  // As images beside a label file of as many zero labels, when the count is small.
  if ((a.dims.size() == 3 || a.dims.size() == 4) && a.dims[0] <= 255) {
    const std::uint8_t n = std::uint8_t(a.dims[0]);
    const std::vector<std::uint8_t> labels = {0, 0, 8, 1, 0, 0, 0, n};
    std::vector<std::uint8_t> file(labels);
    file.resize(file.size() + n, 0);
    write_file(g_labels_path, file.data(), file.size());
    try {
      const faltung::ImageDataset d = faltung::load_idx_image_dataset(g_path, g_labels_path, 10);
      const faltung::Tensor<float> x = d.images<float>();
      if (x.size() != d.pixels.size()) std::abort();
    } catch (const faltung::Error&) {
    }
  }
  return 0;
}
