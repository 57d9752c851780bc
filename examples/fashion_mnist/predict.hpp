#pragma once
// --predict MODEL IMAGE...: a saved model classifies pictures of your own, as the lecture
// notebook's classify_pic does. Each picture is read and preprocessed as Fashion-MNIST was made
// (faltung/data/image.hpp: grey, fitted into 28x28, light on dark, scaled once), its three
// likeliest classes are printed, and all of them are drawn in picture_predictions.svg.

#include <algorithm>
#include <cstddef>
#include <faltung/data/image.hpp>
#include <faltung/faltung.hpp>
#include <filesystem>
#include <iomanip>
#include <numeric>
#include <ostream>
#include <string>
#include <vector>

#include "run.hpp"

namespace fmnist {

/// The indices of the `k` largest probabilities, largest first (the lower index first on a tie).
inline std::vector<std::size_t> top_classes(const float* probabilities, std::size_t classes, std::size_t k) {
  std::vector<std::size_t> order(classes);
  std::iota(order.begin(), order.end(), std::size_t(0));
  k = std::min(k, classes);
  std::partial_sort(order.begin(), order.begin() + std::ptrdiff_t(k), order.end(),
                    [&](std::size_t a, std::size_t b) { return probabilities[a] > probabilities[b]; });
  order.resize(k);
  return order;
}

/// Classifies `pictures` with the model in `model_path`: prints each picture's three likeliest
/// classes to `out`, and writes out_dir/picture_predictions.svg. A picture that cannot be read
/// is reported on `err` and skipped; returns how many were. Throws faltung::Error when the model
/// cannot be loaded or is not a Fashion-MNIST classifier (square grey input, 10 outputs).
inline std::size_t classify_pictures(const std::string& model_path, const std::vector<std::string>& pictures,
                                     const std::string& out_dir, std::ostream& out, std::ostream& err) {
  using namespace faltung;
  // The file stores how the network's outputs become probabilities (the softmax of the loss it
  // was trained with), so predict() of the loaded model returns probabilities as it is.
  Sequential<float> net = load_model<float>(model_path);
  FALTUNG_CHECK(!net.inference_config().loss.empty(), "'", model_path,
                "' stores no loss, so its outputs are not probabilities: it was saved before it was compiled, or by "
                "a faltung before model file version 2 (load it, compile it with its loss and save it again)");
  const Shape in = net.input_shape(), result = net.output_shape();
  FALTUNG_CHECK(in.rank() == 3 && in[0] == 1 && in[1] == in[2], "'", model_path, "' takes inputs of ", in,
                "; --predict needs a model for square grey pictures, (1, 28, 28) as Fashion-MNIST's");
  FALTUNG_CHECK(result.rank() == 1 && result[0] == FashionMnist::num_classes, "'", model_path, "' gives ", result,
                " outputs per picture; --predict needs one per Fashion-MNIST class (10)");

  // Each picture on its own, so that one bad file does not stop the others.
  const ImageOptions options = ImageOptions().side(in[1]);
  std::vector<std::string> names;
  std::vector<float> pixels;
  std::size_t failed = 0;
  for (const std::string& path : pictures) {
    try {
      const Tensor<float> x = load_image<float>(path, options);
      pixels.insert(pixels.end(), x.begin(), x.end());
      names.push_back(path);
    } catch (const Error& e) {
      err << "error: " << e.what() << "\n";
      ++failed;
    }
  }
  if (names.empty()) return failed;
  Tensor<float> x(in.with_batch(names.size()));
  std::copy(pixels.begin(), pixels.end(), x.data());
  const Tensor<float> p = net.predict(x);

  // The model's own class names when its file has them (the example's training saves them).
  const std::vector<std::string> classes = net.class_names().empty() ? class_names() : net.class_names();
  std::vector<std::string> captions;
  for (std::size_t i = 0; i < names.size(); ++i) {
    out << names[i] << "\n";
    const float* row = p.data() + i * FashionMnist::num_classes;
    std::size_t rank = 0;
    for (std::size_t c : top_classes(row, FashionMnist::num_classes, 3))
      out << "  " << ++rank << ". " << std::left << std::setw(12) << classes[c] << std::right << std::fixed
          << std::setprecision(4) << row[c] << "\n"
          << std::defaultfloat;
    captions.push_back(std::filesystem::path(names[i]).filename().string());
  }

  make_directory(out_dir);
  const std::string svg_path = join_path(out_dir, "picture_predictions.svg");
  const std::vector<int> unknown(names.size(), -1);
  svg::prediction_grid_svg(predicted_images(x, p, names.size(), unknown, captions), classes,
                           std::min<std::size_t>(4, names.size()),
                           "Your pictures, classified by " + std::filesystem::path(model_path).filename().string())
      .save(svg_path);
  out << "Wrote " << svg_path << "\n";
  return failed;
}

}  // namespace fmnist
