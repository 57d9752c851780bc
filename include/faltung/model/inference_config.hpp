#pragma once
// InferenceConfig: what a trained model needs beyond its architecture and weights to be used
// for inference: how its outputs become probabilities, and what its classes are called. Model
// files (format version 2, io/model_file.hpp) store it, so that a model loaded in another
// program predicts exactly what the trained one did.
//
//   net.compile(SparseCrossEntropy{}, Adam<float>());      // loss and output activation
//   net.set_class_names({"T-shirt/top", "Trouser", ...});  // optional, one per output
//   net.save("fmnist.faltung");
//   ...
//   auto loaded = load_model<float>("fmnist.faltung");
//   loaded.predict(x);           // probabilities (softmax applied), no compile needed
//   loaded.class_names()[k];     // "Trouser"
//
// Keras keeps the same in its saved model's compile configuration; the optimizer is not part of
// it (a model is loaded to predict; training goes on after compile).

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "faltung/config.hpp"
#include "faltung/kernels/activation.hpp"
#include "faltung/tensor.hpp"

FALTUNG_BEGIN_NAMESPACE

struct InferenceConfig {
  /// The name of the loss the model was compiled with ("sparse_categorical_crossentropy"), ""
  /// for a model never compiled. For information: a loaded model still needs compile() to train.
  std::string loss;
  /// What turns the network's outputs into the probabilities the loss compared (Softmax after
  /// logits for cross-entropy): Sequential::predict applies it.
  Activation output_activation;
  /// One name per output of a sample, in output order, or none.
  std::vector<std::string> class_names;
};

namespace detail {

/// Class names must be empty (none) or one non-empty name per output of a sample: the outputs of
/// predict() that predict_classes() chooses among. `who` starts the message.
inline void check_class_names(const std::vector<std::string>& names, const Shape& per_sample_output,
                              const std::string& who) {
  if (names.empty()) return;
  const std::size_t outputs = per_sample_output.numel();
  FALTUNG_CHECK(names.size() == outputs, who, ": ", names.size(), " class names for ", outputs,
                " outputs per sample (output shape ", per_sample_output, "); give one name per output");
  for (std::size_t i = 0; i < names.size(); ++i)
    FALTUNG_CHECK(!names[i].empty(), who, ": class name ", i, " is empty");
}

/// The activation whose name() is `name` ("softmax", "leaky_relu", ...); false when there is none.
inline bool activation_from_name(const std::string& name, double alpha, Activation& out) {
  for (ActivationKind k : {ActivationKind::Linear, ActivationKind::ReLU, ActivationKind::LeakyReLU,
                           ActivationKind::Sigmoid, ActivationKind::Tanh, ActivationKind::Softmax})
    if (Activation(k).name() == name) {
      out = Activation(k, k == ActivationKind::LeakyReLU ? alpha : 0.3);
      return true;
    }
  return false;
}

}  // namespace detail
FALTUNG_END_NAMESPACE
