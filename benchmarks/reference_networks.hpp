#pragma once
// The two reference networks of ../shared/bench/torch_reference.py, compiled as it trains them
// (Adam 1e-3, epsilon 1e-7, sparse cross-entropy from logits).
//   small     the Keras example CNN, 421,642 parameters, batch 64
//   notebook  the lecture notebook's CNN, 1,815,114 parameters, batch 256

#include <faltung/faltung.hpp>

#include <string>

namespace bench {

inline const char* reference_network_spec(const std::string& name) {
  if (name == "small")
    return "conv:32:3:same:relu,pool:2,drop:0.25,conv:64:3:same:relu,pool:2,drop:0.25,flatten,"
           "dense:128:relu,drop:0.5,dense:10";
  return "conv:128:3:same:relu,pool:2,drop:0.5,conv:64:3:same:relu,pool:2,flatten,dense:512:relu,drop:0.5,"
         "dense:256:relu,drop:0.5,dense:10";
}

inline faltung::Sequential<float> make_network(const std::string& name) {
  faltung::Sequential<float> net = faltung::make_sequential<float>(reference_network_spec(name), {1, 28, 28});
  net.compile(faltung::SparseCrossEntropy{}, faltung::Adam<float>(faltung::AdamOptions(1e-3).epsilon(1e-7)));
  return net;
}

}  // namespace bench
