#pragma once
// One training run of the example: build the network from its architecture string, compile,
// fit, evaluate on the test set, and write every output into the run's directory.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <faltung/faltung.hpp>
#include <faltung/io/model_file.hpp>
#include <faltung/model/architecture.hpp>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <memory>
#include <ostream>
#include <sstream>
#include <string>
#include <system_error>
#include <vector>

#include "options.hpp"
#include "plots.hpp"
#include "report.hpp"
#include "result.hpp"
#include "common/svg_plot.hpp"

namespace fmnist {

/// Fashion-MNIST images are (1, 28, 28).
inline faltung::Shape input_shape() { return {1, 28, 28}; }

/// The network of `c`, built for 28x28 grey images. A bad architecture is a faltung::Error
/// naming the bad token; `source` starts its message ("--arch", "runs.txt:3: --arch").
inline faltung::Sequential<float> build_model(const Config& c, const std::string& source = "--arch") {
  faltung::Sequential<float> net = faltung::make_sequential<float>(c.arch, input_shape(), c.seed, source);
  // The last layer must give one logit per class: SparseCrossEntropy checks it per batch, but
  // saying so before loading 60000 images is kinder.
  const faltung::Shape out = net.output_shape();
  if (!(out.rank() == 1 && out[0] == faltung::FashionMnist::num_classes)) {
    std::ostringstream os;
    os << source << ": the network's output is " << out << " per image, but Fashion-MNIST needs 10 logits: end it "
       << "with dense:10 (and no softmax: the loss applies it)";
    throw ConfigError(os.str());
  }
  return net;
}

/// Compiles `net` with sparse cross-entropy and the optimizer of `c`.
inline void compile_model(faltung::Sequential<float>& net, const Config& c) {
  using namespace faltung;
  const double lr = c.learning_rate();
  if (c.optimizer == "sgd")
    net.compile(SparseCrossEntropy{}, SGD<float>(SGDOptions(lr).momentum(c.momentum).decay(c.decay)));
  else if (c.optimizer == "adam")
    net.compile(SparseCrossEntropy{}, Adam<float>(AdamOptions(lr).decay(c.decay)));
  else if (c.optimizer == "rmsprop")
    net.compile(SparseCrossEntropy{}, RMSProp<float>(RMSPropOptions(lr).momentum(c.momentum).decay(c.decay)));
  else if (c.optimizer == "adagrad")
    net.compile(SparseCrossEntropy{}, Adagrad<float>(AdagradOptions(lr).decay(c.decay)));
  else
    throw ConfigError("--optimizer: unknown optimizer '" + c.optimizer + "' (known: sgd, adam, rmsprop, adagrad)");
}

/// confusion[t][p]: test samples of class t predicted as p.
inline std::vector<std::vector<std::size_t>> confusion_matrix(const std::vector<int>& predicted,
                                                              const std::vector<std::uint8_t>& labels,
                                                              std::size_t classes) {
  std::vector<std::vector<std::size_t>> m(classes, std::vector<std::size_t>(classes, 0));
  for (std::size_t i = 0; i < predicted.size() && i < labels.size(); ++i)
    if (labels[i] < classes && predicted[i] >= 0 && std::size_t(predicted[i]) < classes)
      ++m[labels[i]][std::size_t(predicted[i])];
  return m;
}

/// The first `count` images of a (N, C, H, W) batch with their probabilities (N, classes), for
/// prediction_grid_svg: labels[i] is image i's true class (-1: unknown), captions[i] a line under
/// it (none when `captions` is shorter).
inline std::vector<svg::PredictedImage> predicted_images(const faltung::Tensor<float>& images,
                                                         const faltung::Tensor<float>& probabilities,
                                                         std::size_t count, const std::vector<int>& labels,
                                                         const std::vector<std::string>& captions = {}) {
  if (images.rank() < 3 || images.dim(0) == 0) return {};
  const std::size_t n = images.dim(0);
  count = std::min({count, n, labels.size()});
  const std::size_t height = images.dim(images.rank() - 2), width = images.dim(images.rank() - 1);
  const std::size_t pixels = images.size() / n, classes = probabilities.size() / n;
  std::vector<svg::PredictedImage> out(count);
  for (std::size_t i = 0; i < count; ++i) {
    svg::PredictedImage& p = out[i];
    p.height = height;
    p.width = width;
    // The values exactly as the model saw them: already in [0, 1].
    p.pixels.assign(images.data() + i * pixels, images.data() + i * pixels + height * width);
    p.true_label = labels[i];
    p.probabilities.assign(probabilities.data() + i * classes, probabilities.data() + (i + 1) * classes);
    if (i < captions.size()) p.caption = captions[i];
  }
  return out;
}

/// The first `count` test images with their probabilities and labels, for predictions.svg.
inline std::vector<svg::PredictedImage> predicted_images(const faltung::ImageDataset& test,
                                                         const faltung::Tensor<float>& images,
                                                         const faltung::Tensor<float>& probabilities,
                                                         std::size_t count) {
  count = std::min(count, test.size());
  return predicted_images(images, probabilities, count, std::vector<int>(test.labels.begin(), test.labels.begin() + std::ptrdiff_t(count)));
}

inline std::vector<std::string> class_names() {
  const auto& a = faltung::FashionMnist::class_names();
  return std::vector<std::string>(a.begin(), a.end());
}

/// Creates `dir` (and its parents); a ConfigError naming it when that fails.
inline void make_directory(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec || !std::filesystem::is_directory(dir))
    throw ConfigError("--out: cannot create the directory '" + dir +
                      "': " + (ec ? ec.message() : std::string("a file of that name exists")));
}

inline std::string join_path(const std::string& dir, const std::string& file) {
  return (std::filesystem::path(dir) / file).string();
}

/// Trains the configuration `c` on `data`, evaluates it on the test set and writes into
/// `out_dir`: history.csv, model.faltung, curves.svg, confusion_matrix.svg, predictions.svg and
/// results.md. Progress goes to `log`. With c.checkpoints(), a checkpoint is written there after
/// every epoch, and the run continues from the one there (--resume). With `comm` (started by
/// mpirun), training and the test evaluation are shared out between its processes; only rank 0
/// writes the outputs, and the other ranks return after the evaluation.
inline RunResult train_and_report(const Config& c, const faltung::FashionMnist& data, const std::string& out_dir,
                                  std::ostream& log, faltung::Communicator* comm = nullptr) {
  using namespace faltung;
  RunResult r;
  r.config = c;
  r.out_dir = out_dir;

  Sequential<float> net = build_model(c);
  r.spec = net.spec();
  r.parameters = net.parameter_count();
  compile_model(net, c);
  r.optimizer = net.optimizer().config();
  net.summary(log);

  const ImageDataset train = c.train_size ? data.train.head(std::min(c.train_size, data.train.size())) : data.train;
  if (c.train_size > data.train.size())
    log << "note: --train-size " << c.train_size << " is more than the " << data.train.size()
        << " training images; using all of them\n";
  const Tensor<float> x = train.images<float>(), y = train.label_tensor<float>();
  const Tensor<float> test_x = data.test.images<float>(), test_y = data.test.label_tensor<float>();
  r.test_samples = data.test.size();

  FitOptions fit;
  fit.epochs(c.epochs).batch_size(c.batch).verbose(c.verbose).output(log);
  if (comm) fit.distributed(*comm);
  std::shared_ptr<EarlyStopping> stopper;
  if (c.patience > 0) {
    stopper = std::make_shared<EarlyStopping>();
    stopper->monitor("val_loss").patience(c.patience).restore_best_weights(true);
    fit.callbacks({stopper});
  }
  // After EarlyStopping: a checkpoint holds the states of the callbacks before it.
  if (!c.checkpoints().empty()) {
    fit.callback(BackupAndRestore(c.checkpoints()));
    log << (checkpoint_exists(c.checkpoints()) ? "Resuming from the checkpoint in " : "Checkpoints go to ")
        << c.checkpoints() << "\n";
  }
  if (c.validate_on_test) {
    r.train_samples = train.size();
    r.validation_samples = data.test.size();
    r.validation = "the test set (" + std::to_string(data.test.size()) + " images)";
  } else if (c.validation_split > 0) {
    fit.validation_split(c.validation_split);
    r.validation_samples = std::size_t(double(train.size()) * c.validation_split);
    r.train_samples = train.size() - r.validation_samples;
    std::ostringstream os;
    os << "the last " << c.validation_split * 100 << "% of the training images (" << r.validation_samples << " images)";
    r.validation = os.str();
  } else {
    r.train_samples = train.size();
    r.validation = "none";
  }
  log << "Training on " << r.train_samples << " images, validating on " << r.validation << ", " << c.epochs
      << " epochs of batch " << c.batch << ", " << r.optimizer << ", " << num_threads() << " thread(s)";
  if (comm) log << " in each of " << comm->size() << " processes";
  log << "\n";

  const auto start = std::chrono::steady_clock::now();
  r.history = c.validate_on_test ? net.fit(x, y, test_x, test_y, fit) : net.fit(x, y, fit);
  r.fit_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  r.test = comm ? net.evaluate(test_x, test_y, *comm) : net.evaluate(test_x, test_y);
  if (comm && comm->rank() != 0) return r;  // rank 0 writes the outputs
  const Tensor<float> probabilities = net.predict(test_x);
  std::vector<int> predicted(data.test.size());
  for (std::size_t i = 0; i < predicted.size(); ++i) {
    const float* row = probabilities.data() + i * FashionMnist::num_classes;
    predicted[i] = int(std::max_element(row, row + FashionMnist::num_classes) - row);
  }
  r.confusion = confusion_matrix(predicted, data.test.labels, FashionMnist::num_classes);

  // Outputs.
  make_directory(out_dir);
  auto out = [&](const std::string& file) {
    r.files.push_back(file);
    return join_path(out_dir, file);
  };
  r.history.write_csv(out("history.csv"));
  net.set_class_names(class_names());  // saved with the model, for --predict and other programs
  net.save(out("model.faltung"));
  const std::string run_title = c.name.empty() ? "Fashion-MNIST" : "Fashion-MNIST: " + c.name;
  std::ostringstream subtitle;
  subtitle << r.spec << "  |  " << c.optimizer << " lr " << c.learning_rate();
  if (c.decay > 0) subtitle << " decay " << c.decay;
  if (c.momentum > 0) subtitle << " momentum " << c.momentum;
  subtitle << ", batch " << c.batch << "  |  test accuracy " << std::fixed << std::setprecision(4) << r.test.accuracy;
  training_curves_svg(r.history, run_title + " training curves", subtitle.str()).save(out("curves.svg"));
  std::ostringstream cm_title;
  cm_title << run_title << " confusion matrix (test set)";
  svg::confusion_matrix_svg(r.confusion, class_names(), cm_title.str()).save(out("confusion_matrix.svg"));
  svg::prediction_grid_svg(predicted_images(data.test, test_x, probabilities, 16), class_names(), 4,
                           run_title + ": the first 16 test images")
      .save(out("predictions.svg"));
  r.files.push_back("results.md");
  write_results_md(r, join_path(out_dir, "results.md"));
  return r;
}

}  // namespace fmnist
