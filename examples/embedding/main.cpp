// embedding: a trained model inside a program of your own, loaded once and called from several
// threads at once (the README's "Embedding a model").
//
//   embedding train model.faltung                 trains a small CNN on Fashion-MNIST and saves it
//   embedding predict model.faltung               loads it for inference only, classifies test
//                                                 images from 8 threads at once, prints each one's
//                                                 probabilities
//   embedding memory model.faltung --as inference   resident memory of the model loaded for
//   embedding memory model.faltung --as training    inference, or as a Sequential that trains
//
// `predict` is the part a program of yours would hold: load_inference_model, then predict from
// any thread. Each of its threads classifies the images whose index it owns one at a time, as a
// server answers requests; the program then checks that every answer is bitwise what one
// predict call over all the images gives.

#include <CLI/CLI.hpp>
#include <faltung/faltung.hpp>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "common/cli.hpp"

namespace {

using namespace faltung;

struct Options {
  std::string model;
  // train
  std::string arch = "conv:32:3:same:relu,pool:2,conv:64:3:same:relu,pool:2,flatten,dense:128:relu,dense:10";
  std::size_t train_images = 5000;
  std::size_t epochs = 1;
  std::uint64_t seed = 42;
  // predict
  std::size_t threads = 8;
  std::size_t images = 16;
  // memory
  std::string as = "inference";
};

/// VmRSS (resident now) and VmHWM (the most resident so far) from /proc/self/status, in KiB;
/// 0 where the system has no such file (not Linux).
struct Resident {
  std::size_t rss_kib = 0, peak_kib = 0;
};
Resident resident_memory() {
  Resident r;
  std::ifstream status("/proc/self/status");
  std::string key;
  while (status >> key) {
    if (key == "VmRSS:") status >> r.rss_kib;
    if (key == "VmHWM:") status >> r.peak_kib;
    status.ignore(1 << 20, '\n');
  }
  return r;
}
std::string mib(std::size_t kib) {
  std::ostringstream os;
  os << std::fixed << std::setprecision(1) << double(kib) / 1024.0 << " MiB";
  return os.str();
}

int train(const Options& o) {
  const FashionMnist data = load_fashion_mnist();
  const std::size_t n = std::min(o.train_images, data.train.size());
  Sequential<float> net = make_sequential<float>(o.arch, data.train.sample_shape(), o.seed);
  net.compile(SparseCrossEntropy{}, Adam<float>());
  net.fit(data.train.images<float>(0, n), data.train.label_tensor<float>(0, n),
          FitOptions().epochs(o.epochs).batch_size(64).verbose(0));
  const Evaluation test = net.evaluate(data.test.images<float>(), data.test.label_tensor<float>());
  net.save(o.model);
  std::cout << "trained on " << n << " images for " << o.epochs << " epoch(s): test accuracy " << std::fixed
            << std::setprecision(3) << test.accuracy << "; saved " << o.model << "\n";
  return 0;
}

int predict(const Options& o) {
  // The model, once: weights only, shared by every thread. The file stores the loss's output
  // activation (softmax for these logits), so predict gives probabilities.
  const InferenceModel<float> model = load_inference_model<float>(o.model);
  const FashionMnist data = load_fashion_mnist();
  const std::size_t n = std::min(o.images, data.test.size());
  const Tensor<float> images = data.test.images<float>(0, n);
  const std::size_t per_image = images.size() / std::max<std::size_t>(n, 1);

  // Each thread answers the images i with i % threads == its index, one image per call.
  std::vector<Tensor<float>> answers(n);
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < o.threads; ++t)
    threads.emplace_back([&, t] {
      for (std::size_t i = t; i < n; i += o.threads) {
        Tensor<float> one(model.input_shape().with_batch(1));
        std::copy(images.data() + i * per_image, images.data() + (i + 1) * per_image, one.data());
        answers[i] = model.predict(one);
      }
    });
  for (std::thread& t : threads) t.join();

  const auto& names = FashionMnist::class_names();
  const Tensor<float> all = model.predict(images);  // one call over all of them, to compare
  bool same = true;
  std::cout << "image  true class     predicted       probability   second\n";
  for (std::size_t i = 0; i < n; ++i) {
    const float* p = answers[i].data();
    const std::size_t k = answers[i].size();
    std::vector<std::size_t> order(k);
    for (std::size_t c = 0; c < k; ++c) order[c] = c;
    std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return p[a] > p[b]; });
    same = same && std::memcmp(p, all.data() + i * k, k * sizeof(float)) == 0;
    std::cout << std::setw(5) << i << "  " << std::left << std::setw(13) << names[data.test.labels[i]] << "  "
              << std::setw(14) << names[order[0]] << std::right << std::fixed << std::setprecision(1) << std::setw(8)
              << 100.0 * p[order[0]] << " %    " << names[order[1]] << " " << 100.0 * p[order[1]] << " %\n";
  }
  std::cout << n << " images from " << o.threads << " threads at once, " << model.pooled_workspaces()
            << " workspace(s), " << model.parameter_count() << " weights held once; "
            << (same ? "every answer is bitwise what one call over all the images gives"
                     : "ANSWERS DIFFER from one call over all the images")
            << "\n";
  return same ? 0 : 1;
}

int memory(const Options& o) {
  Random rng(1);
  const Tensor<float> batch = random_tensor<float>(Shape{256, 1, 28, 28}, rng);
  Tensor<float> one(Shape{1, 1, 28, 28});
  std::copy(batch.data(), batch.data() + one.size(), one.data());
  const Resident start = resident_memory();
  std::cout << "as " << o.as << ": resident " << mib(start.rss_kib) << " before loading";
  auto report = [&](const char* when) {
    const Resident r = resident_memory();
    std::cout << ", " << mib(r.rss_kib) << " " << when << " (+" << mib(r.rss_kib - start.rss_kib) << ")";
  };
  if (o.as == "inference") {
    const InferenceModel<float> model = load_inference_model<float>(o.model);
    report("loaded");
#if defined(__GLIBC__)
    // Loading builds a Sequential first, gradients included, and frees them: glibc keeps that
    // memory for later allocations (the workspaces take it), malloc_trim hands it back.
    malloc_trim(0);
    report("after malloc_trim");
#endif
    model.predict(one);
    report("after predicting 1 image");
    model.predict(batch);
    report("after 256 images");
  } else {
    Sequential<float> net = load_model<float>(o.model);
    net.compile(SparseCrossEntropy{}, Adam<float>());
    report("loaded");
    Tensor<float> labels(Shape{256});
    net.train_on_batch(batch, labels);
    report("after one training step of 256 images");
  }
  std::cout << "; peak " << mib(resident_memory().peak_kib) << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  namespace cli = faltung_examples::cli;
  CLI::App app("A model embedded in a program: trained and saved, then loaded once and called from several threads "
               "(faltung " + std::string(FALTUNG_VERSION_STRING) + ")",
               "embedding");
  app.require_subcommand(1);
  Options o;
  CLI::App* train_cmd = app.add_subcommand("train", "Train a CNN on Fashion-MNIST and save it");
  train_cmd->add_option("model", o.model, "The model file to write")->required();
  train_cmd->add_option("--arch", o.arch, "The architecture (the architecture language)");
  train_cmd->add_option("--images", o.train_images, "Training images (default 5000)")->check(cli::whole_in(1, 60000));
  train_cmd->add_option("--epochs", o.epochs, "Epochs (default 1)")->check(cli::whole_in(1, 1000));
  train_cmd->add_option("--seed", o.seed, "Seed of the initial weights and the shuffling (default 42)");
  CLI::App* predict_cmd = app.add_subcommand("predict", "Classify test images from several threads at once");
  predict_cmd->add_option("model", o.model, "The model file to load")->required()->check(CLI::ExistingFile);
  predict_cmd->add_option("--threads", o.threads, "Threads predicting at once (default 8)")->check(cli::whole_in(1, 256));
  predict_cmd->add_option("--images", o.images, "Test images to classify (default 16)")->check(cli::whole_in(1, 10000));
  CLI::App* memory_cmd = app.add_subcommand("memory", "Resident memory of a model loaded for inference or training");
  memory_cmd->add_option("model", o.model, "The model file to load")->required()->check(CLI::ExistingFile);
  memory_cmd->add_option("--as", o.as, "inference (default) or training")->check(CLI::IsMember({"inference", "training"}));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  try {
    if (train_cmd->parsed()) return train(o);
    if (predict_cmd->parsed()) return predict(o);
    return memory(o);
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}
