#pragma once
// The transfer-learning example's pieces: options, the two tasks cut from Fashion-MNIST, the base
// model, the three ways of learning the new task, the table and the plot. main.cpp parses and
// prints; tests/test_transfer_learning_example.cpp runs these pieces on small data.
//
//   task A  classes 0-4 (T-shirt/top, Trouser, Pullover, Dress, Coat): plenty of images, on
//           which the base model is trained
//   task B  classes 5-9 (Sandal, Shirt, Sneaker, Bag, Ankle boot): a few hundred labelled
//           images, learned (1) from scratch, (2) on the frozen base with a new head, (3) by
//           fine-tuning: the new head first alone on the frozen base, then every layer at a
//           lower learning rate

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <faltung/faltung.hpp>
#include <limits>
#include <ostream>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/cli.hpp"
#include "common/svg_plot.hpp"
#include "common/tables.hpp"

namespace transfer {

/// Classes per task: task A is classes 0-4, task B classes 5-9, both labelled 0-4 here.
constexpr std::size_t kClasses = 5;
/// Fashion-MNIST's images per class: 6000 for training, 1000 for testing.
constexpr std::size_t kTrainPerClass = 6000, kTestPerClass = 1000;

struct Options {
  std::string data_dir = faltung::default_fashion_mnist_dir();
  /// The base: what is kept, and frozen or fine-tuned, for task B.
  std::string base = "conv:16:3:same:relu,pool:2,conv:32:3:same:relu,pool:2,flatten";
  /// The head on the base; Dense(5) is added. Each task gets its own, freshly initialised.
  std::string head = "drop:0.25,dense:128:relu,drop:0.5";
  std::size_t base_images = 12000;  ///< task A training images
  int base_epochs = 3;
  std::size_t new_images = 300;         ///< task B's labelled training images
  std::size_t validation_images = 1000;  ///< task B images held out for the learning curves
  std::size_t test_images = 0;           ///< test images per task; 0: all 5000
  int epochs = 20;                       ///< task B epochs, each way
  std::size_t batch = 32;
  double lr = 1e-3;            ///< Adam's rate for the base, from scratch, and the frozen base's head
  int warmup_epochs = 5;       ///< fine-tuning: epochs of the new head alone, before the base joins
  double fine_tune_lr = 1e-4;  ///< Adam's rate for fine-tuning, once the base joins
  std::uint64_t seed = 42;     ///< which images, initialisation, shuffling, dropout
  int threads = 0;
  int verbose = 0;
  std::string plot = "transfer_learning.svg";
};

inline void add_options(CLI::App& app, Options& o) {
  using faltung_examples::cli::positive;
  using faltung_examples::cli::quiet;
  using faltung_examples::cli::whole_in;
  const double train_max = double(kClasses * kTrainPerClass), test_max = double(kClasses * kTestPerClass);
  app.add_option("--data", o.data_dir, "Directory of the Fashion-MNIST files; default " + o.data_dir)
      ->option_text("DIR");
  app.add_option("--base", o.base, "The base's layers in the architecture language; default " + o.base)
      ->option_text("SPEC");
  app.add_option("--head", o.head, "The head's hidden layers (Dense(5) is added); default " + o.head)
      ->option_text("SPEC");
  app.add_option("--base-images", o.base_images, "Task A (classes 0-4) training images; default 12000, at most 30000")
      ->check(quiet(whole_in(kClasses, train_max)));
  app.add_option("--base-epochs", o.base_epochs, "Epochs of the base on task A; default 3")
      ->check(quiet(whole_in(1, 10000)));
  app.add_option("--new-images", o.new_images, "Task B (classes 5-9) labelled training images; default 300")
      ->check(quiet(whole_in(kClasses, train_max)));
  app.add_option("--validation-images", o.validation_images,
                 "Task B training images held out for the learning curves; default 1000")
      ->check(quiet(whole_in(kClasses, train_max)));
  app.add_option("--test-images", o.test_images, "Test images per task; default 0: all 5000")
      ->check(quiet(whole_in(0, test_max)));
  app.add_option("--epochs", o.epochs, "Epochs on task B, each way; default 20")->check(quiet(whole_in(1, 10000)));
  app.add_option("--batch", o.batch, "Batch size; default 32")->check(quiet(whole_in(1, 1 << 20)));
  app.add_option("--lr", o.lr, "Adam's learning rate; default 0.001")->check(quiet(positive()));
  app.add_option("--warmup-epochs", o.warmup_epochs,
                 "Fine-tuning: epochs of the new head alone on the frozen base, before all layers train; default 5")
      ->check(quiet(whole_in(0, 10000)));
  app.add_option("--fine-tune-lr", o.fine_tune_lr, "Adam's learning rate for fine-tuning all layers; default 0.0001")
      ->check(quiet(positive()));
  app.add_option("--seed", o.seed, "Seeds the choice of images, initialisation, shuffling and dropout; default 42");
  app.add_option("--threads", o.threads, "Threads (0: every core, or OMP_NUM_THREADS)")
      ->check(quiet(whole_in(0, 4096)));
  app.add_option("--verbose", o.verbose, "0 quiet, 1 a line per epoch; default 0")->check(quiet(whole_in(0, 1)));
  app.add_option("--plot", o.plot, "Where the SVG plot of the learning curves goes; default transfer_learning.svg")
      ->option_text("FILE");
}

/// The layers of the head with the output layer: "<head>,dense:5".
inline std::string head_with_output(const Options& o) {
  return (o.head.empty() ? "" : o.head + ",") + "dense:" + std::to_string(kClasses);
}

/// The whole model, base and head, built for 28x28 grey images and initialised from `seed`.
inline faltung::Sequential<float> make_model(const Options& o, std::uint64_t seed) {
  faltung::Sequential<float> net(seed);
  faltung::add_layers(net, o.base, "--base");
  faltung::add_layers(net, head_with_output(o), "--head");
  net.build({1, 28, 28});
  return net;
}

/// Checks what CLI11 cannot: the image counts together, and that base and head make a model.
/// Throws std::invalid_argument.
inline void validate(const Options& o) {
  if (o.new_images + o.validation_images > kClasses * kTrainPerClass)
    throw std::invalid_argument("--new-images and --validation-images together exceed the " +
                                std::to_string(kClasses * kTrainPerClass) + " training images of classes 5-9");
  if (o.base.empty()) throw std::invalid_argument("--base: the base needs at least one layer");
  try {
    make_model(o, o.seed);
  } catch (const faltung::Error& e) {
    throw std::invalid_argument(e.what());
  }
}

// ---------------------------------------------------------------------------------------------
// The data

/// Images (n, 1, 28, 28) in [0, 1] and their labels (n), 0-4 within the task.
struct Set {
  faltung::Tensor<float> x, y;
  std::size_t size() const { return y.size(); }
};

struct Data {
  Set base_train, base_test;                 ///< task A
  Set new_train, new_validation, new_test;   ///< task B
};

/// The samples of one task in `d`, one queue per class, each in an order shuffled by `rng`;
/// take() hands them out class by class, so every set is as balanced as it can be.
class ClassQueues {
 public:
  ClassQueues(const faltung::ImageDataset& d, std::size_t first_class, faltung::Random& rng)
      : d_(d), first_class_(first_class), queues_(kClasses), next_(kClasses, 0) {
    for (std::size_t i = 0; i < d.count; ++i) {
      const std::size_t label = d.labels[i];
      if (label >= first_class && label < first_class + kClasses) queues_[label - first_class].push_back(i);
    }
    for (auto& q : queues_) rng.shuffle(q);
  }

  /// The next n samples (all that are left when n is 0), labels shifted to 0-4. Throws
  /// faltung::Error when fewer are left, naming `what`.
  Set take(std::size_t n, const std::string& what) {
    std::size_t left = 0;
    for (std::size_t c = 0; c < kClasses; ++c) left += queues_[c].size() - next_[c];
    if (n == 0) n = left;
    FALTUNG_CHECK(n <= left, what, ": ", n, " images asked for, but only ", left, " of classes ", first_class_, "-",
                  first_class_ + kClasses - 1, " are left");
    std::vector<std::size_t> picked;
    for (std::size_t c = 0; picked.size() < n; c = (c + 1) % kClasses)
      if (next_[c] < queues_[c].size()) picked.push_back(queues_[c][next_[c]++]);
    Set s;
    s.x = d_.gather_images<float>(picked);
    s.y = d_.gather_labels<float>(picked);
    for (float& v : s.y) v -= float(first_class_);
    return s;
  }

 private:
  const faltung::ImageDataset& d_;
  std::size_t first_class_;
  std::vector<std::vector<std::size_t>> queues_;
  std::vector<std::size_t> next_;
};

/// Both tasks' sets from the Fashion-MNIST files in o.data_dir. Throws faltung::Error for missing
/// or bad files.
inline Data load_data(const Options& o) {
  const faltung::FashionMnist f = faltung::load_fashion_mnist(o.data_dir);
  faltung::Random rng(o.seed);
  Data d;
  ClassQueues a_train(f.train, 0, rng), a_test(f.test, 0, rng);
  d.base_train = a_train.take(o.base_images, "--base-images");
  d.base_test = a_test.take(o.test_images, "--test-images");
  ClassQueues b_train(f.train, kClasses, rng), b_test(f.test, kClasses, rng);
  d.new_train = b_train.take(o.new_images, "--new-images");
  d.new_validation = b_train.take(o.validation_images, "--validation-images");
  d.new_test = b_test.take(o.test_images, "--test-images");
  return d;
}

// ---------------------------------------------------------------------------------------------
// Training

/// One way of learning a task, and how it went.
struct Result {
  std::string method;
  std::vector<double> val_accuracy;  ///< after each epoch
  double test_accuracy = 0;
  double seconds = 0;  ///< the training steps alone; the validation after each epoch is not counted
  std::size_t trainable = 0, parameters = 0;  ///< at the end
};

/// Trains `net` (compiled here with Adam at `lr`, a fresh optimizer) on `train` for `epochs`
/// epochs, appending the accuracy on `validation` after each epoch to r.val_accuracy and the
/// training time to r.seconds. A loss that turns non-finite is an error naming the method.
inline void train_epochs(faltung::Sequential<float>& net, double lr, int epochs, const Set& train,
                         const Set& validation, const Options& o, Result& r, std::ostream& log) {
  net.compile(faltung::SparseCrossEntropy{}, faltung::Adam<float>(faltung::AdamOptions(lr)));
  const auto options = faltung::FitOptions().epochs(1).batch_size(o.batch).verbose(0);
  for (int epoch = 1; epoch <= epochs; ++epoch) {
    const auto start = std::chrono::steady_clock::now();
    const faltung::History h = net.fit(train.x, train.y, options);
    r.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (!h.stop_reason.empty()) throw faltung::Error(r.method + ": " + h.stop_reason);
    r.val_accuracy.push_back(net.evaluate(validation.x, validation.y).accuracy);
    if (o.verbose)
      log << "  " << r.method << ", epoch " << r.val_accuracy.size() << ": loss "
          << faltung_examples::format_fixed(h.loss.back(), 4) << ", val_accuracy "
          << faltung_examples::format_fixed(r.val_accuracy.back(), 4) << ", trained parameters "
          << net.trainable_parameter_count() << "\n";
  }
}

/// Fills in what `net` ends with: its test accuracy and its trained parameters.
inline void finish(faltung::Sequential<float>& net, const Set& test, Result& r) {
  r.test_accuracy = net.evaluate(test.x, test.y).accuracy;
  r.trainable = net.trainable_parameter_count();
  r.parameters = net.parameter_count();
}

/// The base model trained on task A (base and head; the head is replaced for task B). Its
/// validation and test set are task A's test images.
inline faltung::Sequential<float> train_base(const Data& d, const Options& o, Result& r, std::ostream& log) {
  faltung::Sequential<float> net = make_model(o, o.seed);
  r = Result();
  r.method = "base on classes 0-4";
  train_epochs(net, o.lr, o.base_epochs, d.base_train, d.base_test, o, r, log);
  finish(net, d.base_test, r);
  return net;
}

/// The three ways of learning task B.
enum class Method { FromScratch, FrozenBase, FineTuned };

inline std::string method_name(Method m, const Options& o) {
  switch (m) {
    case Method::FromScratch: return "from scratch";
    case Method::FrozenBase: return "frozen base, new head";
    case Method::FineTuned:
      return "fine-tuned (head alone " + std::to_string(o.warmup_epochs) + " epochs, then all at lr " +
             faltung::detail::format_hyperparameter(o.fine_tune_lr) + ")";
  }
  return "";
}

/// The layers of the base: the first ones of every model here.
inline std::size_t base_layers(const Options& o) { return faltung::parse_architecture(o.base, "--base").size(); }

/// The model for task B: a fresh one (from scratch), or the trained base with its head replaced
/// by a freshly initialised one, the base frozen (FrozenBase) or not (FineTuned).
inline faltung::Sequential<float> model_for(Method m, const faltung::Sequential<float>& base_model, const Options& o) {
  if (m == Method::FromScratch) return make_model(o, o.seed + 1);
  faltung::Sequential<float> net = base_model;  // a copy: the base model stays as it is
  while (net.size() > base_layers(o)) net.pop();
  if (m == Method::FrozenBase) net.set_trainable(false);  // every layer left is the base
  faltung::add_layers(net, head_with_output(o), "--head");
  net.build({1, 28, 28});
  return net;
}

/// Learns task B one way, for o.epochs epochs in all. Fine-tuning follows Keras's recipe: the new
/// head first learns alone on the frozen base for o.warmup_epochs (its random start would
/// otherwise send large gradients into the base), then the whole model at o.fine_tune_lr.
inline Result learn_new_classes(Method m, faltung::Sequential<float>& net, const Data& d, const Options& o,
                                std::ostream& log) {
  Result r;
  r.method = method_name(m, o);
  if (m == Method::FineTuned) {
    const int warmup = std::min(o.warmup_epochs, o.epochs);
    net.set_trainable(false, 0, base_layers(o));
    train_epochs(net, o.lr, warmup, d.new_train, d.new_validation, o, r, log);
    net.set_trainable(true);
    train_epochs(net, o.fine_tune_lr, o.epochs - warmup, d.new_train, d.new_validation, o, r, log);
  } else {
    train_epochs(net, o.lr, o.epochs, d.new_train, d.new_validation, o, r, log);
  }
  finish(net, d.new_test, r);
  return r;
}

// ---------------------------------------------------------------------------------------------
// Output

inline std::string results_table(const std::vector<Result>& results) {
  std::vector<std::vector<std::string>> rows;
  for (const Result& r : results)
    rows.push_back({r.method, std::to_string(r.trainable) + " of " + std::to_string(r.parameters),
                    faltung_examples::format_fixed(r.test_accuracy, 4), faltung_examples::format_seconds(r.seconds)});
  return faltung_examples::markdown_table({"method", "trained parameters", "test accuracy", "training time"}, rows);
}

/// The validation accuracy per epoch of each way, one curve each.
inline faltung_examples::svg::SvgDocument learning_curves_svg(const std::vector<Result>& results,
                                                             const std::string& title) {
  namespace svg = faltung_examples::svg;
  std::vector<svg::Series> series;
  for (std::size_t k = 0; k < results.size(); ++k) {
    svg::Series s;
    s.label = results[k].method;
    for (std::size_t e = 0; e < results[k].val_accuracy.size(); ++e) s.x.push_back(double(e + 1));
    s.y = results[k].val_accuracy;
    s.color = svg::palette(k);
    series.push_back(std::move(s));
  }
  svg::LineChartOptions opt;
  opt.title = title;
  opt.x_label = "epoch";
  opt.y_label = "validation accuracy";
  opt.width = 720;
  return svg::line_chart(series, opt);
}

}  // namespace transfer
