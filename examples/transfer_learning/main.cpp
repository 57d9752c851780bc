// transfer_learning: the lecture's transfer learning on Fashion-MNIST. A base CNN learns five
// classes (T-shirt/top, Trouser, Pullover, Dress, Coat) from plenty of images; the other five
// (Sandal, Shirt, Sneaker, Bag, Ankle boot) are then learned from a few hundred labelled images
// three ways: from scratch, on the frozen base with a new head, and fine-tuned (the new head
// first alone on the frozen base, then every layer at a lower learning rate). Prints each way's test accuracy and training time, and
// writes an SVG plot of the three learning curves (validation accuracy per epoch).
//
//   transfer_learning                                  300 images of the new classes, 20 epochs
//   transfer_learning --new-images 100 --epochs 40     fewer images
//   transfer_learning --base-images 30000 --base-epochs 5   a better base
//
// The pieces are in transfer.hpp.

#include <CLI/CLI.hpp>
#include <faltung/faltung.hpp>
#include <iostream>
#include <string>
#include <vector>

#include "transfer_learning/transfer.hpp"

namespace {

const char* footer() {
  return R"(Notes:
  Task A is classes 0-4 of Fashion-MNIST's training images, task B classes 5-9; each set is drawn
  class by class with --seed, so the classes are balanced, and the validation images of task B are
  training images that none of its ways trains on. Test accuracy is on Fashion-MNIST's test images
  of each task's classes. The frozen base computes no gradient: its backward pass is skipped, so a
  step costs the base's forward pass and the head. The training time counts the training steps
  only, not the validation after each epoch.

Exit status: 0 done, 1 a failure while training or writing, 2 a bad option, 3 missing or bad data.)";
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app("Transfer learning on Fashion-MNIST: five classes learned from a base trained on the other five "
               "(faltung " + std::string(FALTUNG_VERSION_STRING) + ")",
               "transfer_learning");
  app.footer(footer());
  app.get_formatter()->column_width(30);
  transfer::Options o;
  transfer::add_options(app, o);
  if (const int status = faltung_examples::parse_command_line(app, o, transfer::validate, argc, argv); status >= 0)
    return status;

  transfer::Data data;
  try {
    data = transfer::load_data(o);
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 3;
  }

  try {
    std::cout << "Task A, classes 0-4: " << data.base_train.size() << " training and " << data.base_test.size()
              << " test images. Task B, classes 5-9: " << data.new_train.size() << " training, "
              << data.new_validation.size() << " validation and " << data.new_test.size() << " test images. "
              << faltung::num_threads() << " thread(s), batch " << o.batch << ".\n\n";
    transfer::Result base;
    const faltung::Sequential<float> base_model = transfer::train_base(data, o, base, std::cout);
    std::cout << "Base (" << o.base << ") with head (" << transfer::head_with_output(o) << "): test accuracy "
              << faltung_examples::format_fixed(base.test_accuracy, 4) << " on classes 0-4 after " << o.base_epochs
              << " epochs, " << faltung_examples::format_seconds(base.seconds) << "\n\n";

    std::vector<transfer::Result> results;
    for (const transfer::Method m :
         {transfer::Method::FromScratch, transfer::Method::FrozenBase, transfer::Method::FineTuned}) {
      faltung::Sequential<float> net = transfer::model_for(m, base_model, o);
      results.push_back(transfer::learn_new_classes(m, net, data, o, std::cout));
    }
    std::cout << "Task B, " << data.new_train.size() << " labelled images, " << o.epochs << " epochs:\n\n"
              << transfer::results_table(results);
    if (!o.plot.empty()) {
      transfer::learning_curves_svg(results, "Classes 5-9 from " + std::to_string(data.new_train.size()) +
                                                 " images: validation accuracy")
          .save(o.plot);
      std::cout << "\nPlot: " << o.plot << "\n";
    }
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
}
