// The second translation unit of two_translation_units: see first.cpp.
#include <faltung/faltung.hpp>
#if FALTUNG_TEST_WITH_IMAGE
#include <faltung/data/image.hpp>  // not in the umbrella header: it needs stb_image
#endif

double second_unit_sum() {
  faltung::Tensor<double> t(faltung::Shape{4}, {1, 2, 3, 4});
  return t.as_vector().sum();
}
