#pragma once
// The two reference networks every benchmark and the PyTorch comparison (pytorch_reference.py,
// which builds its network from the spec that `bench_training --networks` prints) run, compiled
// as both sides train them: Glorot-uniform kernels, zero biases, Adam 1e-3 with epsilon 1e-7,
// sparse cross-entropy from logits, on 28x28 grey images (Fashion-MNIST).
//   small     the Keras example CNN, 421,642 parameters, training batch 64
//   notebook  the lecture notebook's CNN, 1,815,114 parameters, training batch 256
// Inference runs both at batch 256.

#include <faltung/faltung.hpp>

#include <cstddef>
#include <string>
#include <vector>

namespace bench {

struct ReferenceNetwork {
  std::string name;
  const char* spec;       ///< in the architecture language (model/architecture.hpp)
  std::size_t batch;      ///< training batch
};

inline const std::vector<ReferenceNetwork>& reference_networks() {
  static const std::vector<ReferenceNetwork> nets = {
      {"small",
       "conv:32:3:same:relu,pool:2,drop:0.25,conv:64:3:same:relu,pool:2,drop:0.25,flatten,dense:128:relu,drop:0.5,"
       "dense:10",
       64},
      {"notebook",
       "conv:128:3:same:relu,pool:2,drop:0.5,conv:64:3:same:relu,pool:2,flatten,dense:512:relu,drop:0.5,"
       "dense:256:relu,drop:0.5,dense:10",
       256},
  };
  return nets;
}

/// The batch every network's inference benchmark runs at.
constexpr std::size_t kInferenceBatch = 256;

inline const ReferenceNetwork& reference_network(const std::string& name) {
  for (const ReferenceNetwork& n : reference_networks())
    if (n.name == name) return n;
  faltung::detail::fail("unknown reference network '", name, "' (expected small or notebook)");
}

inline const char* reference_network_spec(const std::string& name) { return reference_network(name).spec; }

inline faltung::Sequential<float> make_network(const std::string& name) {
  faltung::Sequential<float> net = faltung::make_sequential<float>(reference_network_spec(name), {1, 28, 28});
  net.compile(faltung::SparseCrossEntropy{}, faltung::Adam<float>(faltung::AdamOptions(1e-3).epsilon(1e-7)));
  return net;
}

}  // namespace bench
