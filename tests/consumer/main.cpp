// A program written the way a user of faltung writes one: it includes the umbrella header and
// uses the library through the faltung::faltung target (the add_subdirectory one also through
// faltung::native), nothing else. Built by both consumer tests (find_package and
// add_subdirectory); returns 0 when everything works.
#include <faltung/faltung.hpp>

#include <cmath>
#include <iostream>

#if CONSUMER_WITH_IMAGE
#include <faltung/data/image.hpp>  // faltung::image: stb_image's code must link
#endif

#if defined(CONSUMER_EXPECT_HAS_ZLIB)
// The installed package says whether faltung was built with zlib; the target must carry that.
static_assert(FALTUNG_HAS_ZLIB == CONSUMER_EXPECT_HAS_ZLIB,
              "FALTUNG_HAS_ZLIB did not reach the consumer through faltung::faltung");
#endif

int main() {
#if defined(CONSUMER_EXPECT_NATIVE) && (defined(__GNUC__) || defined(__clang__)) && \
    (defined(__x86_64__) || defined(__i386__))
  // Linked with faltung::native on a CPU with AVX2 and FMA: the SIMD kernels must be compiled in.
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && !FALTUNG_HAS_SIMD_GEMM) {
    std::cerr << "consumer: faltung::native is linked and the CPU has AVX2 + FMA, but the SIMD GEMM is off\n";
    return 1;
  }
#endif
  using faltung::Shape;
  using faltung::Tensor;

  // x is (2, 3), w is (3, 2): y = x w through the Eigen views.
  const Tensor<float> x(Shape{2, 3}, {1, 2, 3, 4, 5, 6});
  const Tensor<float> w(Shape{3, 2}, {1, 0, 0, 1, 1, 1});
  Tensor<float> y(Shape{2, 2});
  y.as_matrix() = x.as_matrix() * w.as_matrix();
  const float expected[] = {4, 5, 10, 11};
  for (std::size_t i = 0; i < y.size(); ++i) {
    if (std::abs(y[i] - expected[i]) > 1e-6f) {
      std::cerr << "consumer: y[" << i << "] = " << y[i] << ", expected " << expected[i] << "\n";
      return 1;
    }
  }

  // Errors are reported as faltung::Error.
  bool threw = false;
  try {
    (void)y.at({2, 0});
  } catch (const faltung::Error&) {
    threw = true;
  }
  if (!threw) {
    std::cerr << "consumer: out-of-range index did not throw faltung::Error\n";
    return 1;
  }

#if CONSUMER_WITH_IMAGE
  // A missing picture is a faltung::Error; a 2x1 grey picture becomes a 28x28 input.
  threw = false;
  try {
    (void)faltung::load_image<float>("/nonexistent/consumer.png");
  } catch (const faltung::Error&) {
    threw = true;
  }
  const unsigned char grey[2] = {0, 255};
  const Tensor<float> picture = faltung::preprocess_image<float>(grey, 2, 1, 1);
  if (!threw || picture.shape() != Shape{1, 1, 28, 28}) {
    std::cerr << "consumer: faltung::image does not work (missing file threw: " << threw << ", shape "
              << picture.shape() << ")\n";
    return 1;
  }
#endif

  std::cout << "faltung " << FALTUNG_VERSION_STRING << " consumer OK (y " << y.shape()
            << ", openmp " << FALTUNG_HAS_OPENMP << ", zlib " << FALTUNG_HAS_ZLIB << ", simd gemm "
            << FALTUNG_HAS_SIMD_GEMM << ")\n";
  return 0;
}
