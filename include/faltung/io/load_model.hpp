#pragma once
// load_model: a model rebuilt from its file alone (io/model_file.hpp), its architecture parsed
// by model/architecture.hpp and its weights loaded.
//
//   Sequential<float> net = load_model<float>("fmnist.faltung");
//
// It lives apart from the format because it needs every layer and Sequential, which the format
// (a template over any Model) does not.

#include <cstdint>
#include <string>

#include "faltung/config.hpp"
#include "faltung/io/model_file.hpp"
#include "faltung/model/architecture.hpp"
#include "faltung/model/sequential.hpp"

FALTUNG_BEGIN_NAMESPACE

/// Rebuilds the model stored in `path` (architecture and input shape) and loads its weights.
/// The model is not compiled. A float file loads into Sequential<double> and vice versa.
template <class T>
Sequential<T> load_model(const std::string& path, std::uint64_t seed = 42) {
  ModelFile f = read_model_file(path);
  Sequential<T> net(seed);
  try {
    add_layers(net, f.spec, "cannot load '" + path + "': its architecture");
    net.build(f.input_shape);
  } catch (const Error& e) {
    if (std::string(e.what()).rfind("cannot load", 0) == 0) throw;
    detail::fail("cannot load '", path, "': its architecture '", f.spec, "' does not build for input shape ",
                 f.input_shape, ": ", e.what());
  }
  // The model was made from the file's spec, so the architecture matches by construction; the
  // printed forms may still differ where a rate or slope prints rounded to 6 digits.
  f.spec = net.spec();
  load_weights(net, f);
  return net;
}

FALTUNG_END_NAMESPACE
