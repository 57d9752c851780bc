// Two translation units that both include everything faltung offers. If any header defines a
// non-template function or a variable at namespace scope without `inline`, both object files
// hold a definition and this program does not link.
#include <faltung/faltung.hpp>
#if FALTUNG_TEST_WITH_IMAGE
#include <faltung/data/image.hpp>  // not in the umbrella header: it needs stb_image
#endif

#include <iostream>

double second_unit_sum();  // defined in second.cpp

int main() {
  faltung::Tensor<float> t(faltung::Shape{2, 3}, 1.0f);
  const double first = double(t.as_vector().sum());
  const double second = second_unit_sum();
  if (first != 6.0 || second != 10.0) {
    std::cerr << "two_translation_units: got " << first << " and " << second << "\n";
    return 1;
  }
  std::cout << "two translation units link and agree\n";
  return 0;
}
