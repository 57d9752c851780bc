#pragma once
// load_model: a model rebuilt from its file alone (io/model_file.hpp), its architecture parsed
// by model/architecture.hpp, its layer names, inference configuration and weights restored.
//
//   Sequential<float> net = load_model<float>("fmnist.faltung");
//   Tensor<float> p = net.predict(x);   // probabilities, as the trained model's predict gave
//
// It lives apart from the format because it needs every layer and Sequential, which the format
// (a template over any Model) does not.
//
// A model file may come from anywhere, so nothing it says is trusted with memory: the file is
// read and validated whole (structure, checksum), the architecture is parsed into layers that
// allocate nothing, and the parameter count it needs for the file's input shape is computed
// (checked, against SizeLimits too) and compared with the values the file really holds, all
// before any layer is built. So the model's allocation is bounded by the file's size, and a
// short file claiming a huge network is refused in microseconds.

#include <cstdint>
#include <string>

#include "faltung/config.hpp"
#include "faltung/io/model_file.hpp"
#include "faltung/model/architecture.hpp"
#include "faltung/model/sequential.hpp"
#include "faltung/sizes.hpp"

FALTUNG_BEGIN_NAMESPACE

/// Rebuilds the model stored in the validated file `f` (read_model_file, or parse_model_file
/// for bytes already in memory): its architecture, input shape, layer names) and loads its
/// weights and inference configuration, so that predict() returns what the saved model's did:
/// probabilities, with the output activation of the loss it was compiled with. The model is
/// not compiled: compile it to train or evaluate. A file of format version 1 stores no loss,
/// so the model it gives predicts the raw outputs until compiled. A float file loads into
/// Sequential<double> and vice versa.
template <class T>
Sequential<T> load_model(ModelFile f, std::uint64_t seed = 42) {
  const std::string& path = f.path;
  Sequential<T> net(seed);
  const std::string where = "cannot load '" + path + "'";
  add_layers(net, f.spec, where + ": its architecture");
  if (!f.layer_names.empty() && f.layer_names.size() != net.size())
    detail::fail(where, ": the file is corrupt: it names ", f.layer_names.size(), " layers for the ", net.size(),
                 " of its architecture '", f.spec, "'");

  // What building would allocate, against what the file holds, before building.
  std::size_t needed = 0;
  try {
    needed = net.parameter_count_for(f.input_shape);
  } catch (const Error& e) {
    detail::fail(where, ": its architecture '", f.spec, "' does not build for input shape ", f.input_shape, ": ",
                 e.what());
  }
  std::size_t stored = 0;  // each tensor's values are in the file, so this cannot overflow
  for (const ModelFileTensor& t : f.tensors) stored = checked_add(stored, t.shape.numel(), where);
  if (needed != stored)
    detail::fail(where, ": its architecture '", f.spec, "' has ", needed, " parameters for input shape ",
                 f.input_shape, ", but the file holds ", stored, " values in ", f.tensors.size(),
                 " parameter tensors (the file is corrupt, or was not written by save_model)");

  net.build(f.input_shape);
  for (std::size_t i = 0; i < f.layer_names.size(); ++i) net.layer(i).set_name(f.layer_names[i]);
  try {
    net.set_inference_config(f.inference);
  } catch (const Error& e) {
    detail::fail(where, ": ", e.what());
  }
  // The model was made from the file's spec, so the architecture matches by construction; the
  // printed forms may still differ where a rate or slope prints rounded to 6 digits.
  f.spec = net.spec();
  load_weights(net, f);
  return net;
}

/// load_model from the file `path`.
template <class T>
Sequential<T> load_model(const std::string& path, std::uint64_t seed = 42) {
  return load_model<T>(read_model_file(path), seed);
}

FALTUNG_END_NAMESPACE
