#pragma once
// Checkpoints: everything a fit needs to continue where it stopped, in one directory.
//
//   DIR/model.faltung           the architecture and weights: a model file (io/model_file.hpp),
//                               which load_model reads like any other
//   DIR/training_state.faltung  the rest, in the format below
//
//   save_checkpoint(net, dir, progress);            // fit does this through BackupAndRestore
//   Checkpoint<float> c = read_checkpoint<float>(dir);  // both files read and validated
//   restore_checkpoint(net, c);                     // weights, optimizer state, generators
//
// The training state holds: the optimizer's kind, configuration, step count, base learning rate,
// parameter layout and state tensors (momentum velocities, Adam's moments, RMSProp's and
// Adagrad's accumulators); the model's random generator (shuffling) and each layer's own random
// stream (Dropout's masks); and what fit keeps between epochs (TrainingProgress: the epochs done,
// the batch size, the samples' order after the latest shuffle, the History so far and the
// callbacks' states). With the same seed, threads, data and options, a fit resumed from the
// checkpoint of epoch k ends with bitwise the weights of one that was never interrupted.
//
// Saving never destroys the previous checkpoint: the model file is written (atomically) beside
// the old one as model.faltung.new, the training state to a temporary (io/atomic_file.hpp);
// only when both are complete on the disk are they renamed over the old files, model first. A
// failure before that (disk full, no directory) leaves the old checkpoint as it was. The state
// records a hash of the model file, so that the pair left by a crash between the two renames is
// refused as mismatched rather than resumed with the wrong weights.
//
// The format, version 1, little-endian as model files (floats are their IEEE-754 bit patterns):
//
//   8        magic "FTSTATE\n"
//   u32      format version (1)
//   u32      scalar size of the optimizer's state: 4 (float) or 8 (double)
//   u64      FNV-1a 64 of all the bytes of the model file saved with it
//   u64      epochs done; u64 batch size; u32 shuffle (0 or 1)
//   u64 n    then n x u64: the training samples' order (a permutation of 0..n-1)
//   4 x u64, f64, u32     the model's random generator (Random::State)
//   u32 L    then per layer: u32 + bytes its name, u32 k, k x u64 its random state
//   u32 + n  the optimizer's name; u32 + n its config() at the saved base rate
//   u64      its step count; f64 its base learning rate
//   u32 P    then P shapes (u32 rank, rank x u64): the parameter layout (0: no step yet)
//   u32 K    then per kind of state: u32 + bytes its name, then P x (shape, values)
//   6 x (u64 n, n x f64)  History: loss, accuracy, val_loss, val_accuracy, lr, seconds
//   u64      History::best_epoch + 1; u32 + n History::stop_reason (a run that stopped early
//            does not go on when resumed)
//   u32 C    then per callback with state: u32 + bytes its name, u32 k, k x f64
//   u64      FNV-1a 64 of every preceding byte, as in model files
//
// Reading checks the magic, the version, every length against the bytes that are there (before
// allocating anything), the checksum, and the order's being a permutation, and names the file in
// every error. Restoring checks the optimizer (kind, configuration, state shapes) and the layers'
// random states against the model before changing anything.

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <memory>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "faltung/config.hpp"
#include "faltung/io/atomic_file.hpp"
#include "faltung/io/model_file.hpp"
#include "faltung/model/history.hpp"
#include "faltung/optimizers/optimizer.hpp"
#include "faltung/random.hpp"
#include "faltung/tensor.hpp"

FALTUNG_BEGIN_NAMESPACE

inline constexpr char training_state_magic[8] = {'F', 'T', 'S', 'T', 'A', 'T', 'E', '\n'};
inline constexpr std::uint32_t training_state_version = 1;

/// A callback's state in a checkpoint (Callback::state_name and state).
struct CallbackState {
  std::string name;
  std::vector<double> values;
};

/// What fit keeps between epochs, besides the model and its optimizer.
struct TrainingProgress {
  int epoch = 0;                     ///< epochs done: the 0-based epoch a resumed fit starts with
  std::size_t batch_size = 0;        ///< fit's batch size (a resumed fit must use the same)
  bool shuffle = true;               ///< fit's shuffle option (likewise)
  std::vector<std::uint64_t> order;  ///< the training samples' order after the latest shuffle
  History history;                   ///< the epochs done
  std::vector<CallbackState> callbacks;
};

/// A checkpoint read from its directory and validated (both files, and the link between them),
/// not yet compared with any model.
template <class T>
struct Checkpoint {
  std::string dir;
  std::string state_path;  ///< DIR/training_state.faltung
  ModelFile model;         ///< DIR/model.faltung, read and validated
  TrainingProgress progress;
  Random::State random{};                              ///< the model's generator
  std::vector<std::string> layer_names;                ///< per layer of the model, in order
  std::vector<std::vector<std::uint64_t>> layer_random;  ///< each layer's random_state()
  std::string optimizer_name, optimizer_config;
  std::int64_t iterations = 0;
  double base_learning_rate = 0;
  std::vector<Shape> layout;
  std::vector<typename Optimizer<T>::StateSlot> slots;
};

inline std::string checkpoint_model_path(const std::string& dir) { return dir + "/model.faltung"; }
inline std::string checkpoint_state_path(const std::string& dir) { return dir + "/training_state.faltung"; }

/// Whether `dir` holds a checkpoint (its training state file exists).
inline bool checkpoint_exists(const std::string& dir) {
  std::error_code ec;
  return std::filesystem::is_regular_file(checkpoint_state_path(dir), ec);
}

namespace detail {

inline std::uint64_t double_bits(double v) {
  std::uint64_t u;
  std::memcpy(&u, &v, 8);
  return u;
}
inline double bits_double(std::uint64_t u) {
  double v;
  std::memcpy(&v, &u, 8);
  return v;
}

/// The history's series in the file's order.
inline std::vector<std::vector<double>*> history_series(History& h) {
  return {&h.loss, &h.accuracy, &h.val_loss, &h.val_accuracy, &h.learning_rate, &h.seconds};
}

/// What ties a model file to its training state: the FNV-1a 64 of all its bytes, whatever the
/// model file's format version.
inline std::uint64_t model_file_hash(const std::vector<unsigned char>& bytes) {
  return fnv1a64(bytes.data(), bytes.size());
}

}  // namespace detail

/// Writes the checkpoint of model `m` (a built, compiled Sequential) and `progress` into `dir`,
/// which is created when missing; the previous checkpoint there survives any failure (see the
/// top of this file).
template <class Model>
void save_checkpoint(Model& m, const std::string& dir, const TrainingProgress& progress) {
  using T = typename detail::parameter_scalar<typename decltype(m.parameters())::value_type>::type;
  FALTUNG_CHECK(!dir.empty(), "cannot save a checkpoint: the directory is empty");
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  FALTUNG_CHECK(!ec, "cannot save a checkpoint in '", dir, "': cannot create the directory: ", ec.message());
  const Optimizer<T>& opt = m.optimizer();
  const std::string model_path = checkpoint_model_path(dir), pending = model_path + ".new";
  save_model(m, pending);
  try {
    detail::AtomicFile file(checkpoint_state_path(dir));
    detail::ModelFileWriter w(file);
    auto f64 = [&](double v) { w.u64(detail::double_bits(v)); };
    w.bytes(training_state_magic, sizeof(training_state_magic));
    w.u32(training_state_version);
    w.u32(std::uint32_t(sizeof(T)));
    w.u64(detail::model_file_hash(detail::read_file_bytes(pending)));  // as written, read back
    w.u64(std::uint64_t(progress.epoch));
    w.u64(progress.batch_size);
    w.u32(progress.shuffle ? 1 : 0);
    w.u64(progress.order.size());
    for (std::uint64_t i : progress.order) w.u64(i);
    const Random::State r = m.random().state();
    for (std::uint64_t word : r.words) w.u64(word);
    f64(r.spare_normal);
    w.u32(r.has_spare_normal ? 1 : 0);
    w.u32(std::uint32_t(m.size()));
    for (std::size_t i = 0; i < m.size(); ++i) {
      w.string(m.layer(i).name(), "layer name");
      const std::vector<std::uint64_t> s = m.layer(i).random_state();
      w.u32(std::uint32_t(s.size()));
      for (std::uint64_t word : s) w.u64(word);
    }
    w.string(opt.name(), "optimizer name");
    w.string(opt.config(), "optimizer configuration");
    w.u64(std::uint64_t(opt.iterations()));
    f64(opt.base_learning_rate());
    w.u32(std::uint32_t(opt.layout().size()));
    for (const Shape& s : opt.layout()) w.shape(s);
    const auto slots = opt.state();
    w.u32(std::uint32_t(slots.size()));
    for (const auto& slot : slots) {
      w.string(slot.first, "optimizer state name");
      for (const Tensor<T>& t : slot.second) {
        w.shape(t.shape());
        w.values(t.data(), t.size());
      }
    }
    History h = progress.history;
    for (const std::vector<double>* series : detail::history_series(h)) {
      w.u64(series->size());
      for (double v : *series) f64(v);
    }
    w.u64(std::uint64_t(std::int64_t(h.best_epoch) + 1));
    w.string(h.stop_reason, "stop reason");
    w.u32(std::uint32_t(progress.callbacks.size()));
    for (const CallbackState& c : progress.callbacks) {
      w.string(c.name, "callback name");
      w.u32(std::uint32_t(c.values.size()));
      for (double v : c.values) f64(v);
    }
    w.finish();
    // Both files are complete on the disk: now the renames, model first.
    std::filesystem::rename(pending, model_path, ec);
    if (ec)
      detail::fail("cannot save the checkpoint in '", dir, "': cannot rename '", pending, "' over '", model_path,
                   "': ", ec.message());
    file.commit();
  } catch (...) {
    std::remove(pending.c_str());
    throw;
  }
}

/// Reads and validates the checkpoint in `dir` for a model of scalar T: both files (magic,
/// version, structure, checksums), that they were saved together, and the sample order. Throws
/// faltung::Error naming the file and what is wrong.
template <class T>
Checkpoint<T> read_checkpoint(const std::string& dir) {
  Checkpoint<T> c;
  c.dir = dir;
  c.state_path = checkpoint_state_path(dir);
  const std::string& path = c.state_path;
  if (!checkpoint_exists(dir)) detail::fail("cannot resume from '", dir, "': it holds no checkpoint ('", path, "' is missing)");
  const std::vector<unsigned char> b = detail::read_file_bytes(path);
  const std::size_t n = b.size();
  auto corrupt = [&](const auto&... what) { detail::fail("cannot load '", path, "': the file is corrupt: ", what...); };

  const std::size_t m = std::min<std::size_t>(n, sizeof(training_state_magic));
  if (n == 0 || std::memcmp(b.data(), training_state_magic, m) != 0)
    detail::fail("cannot load '", path, "': not a faltung training state file (",
                 n == 0 ? "it is empty" : "it does not start with the bytes \"FTSTATE\\n\"", ")");
  detail::ModelFileReader header(path, b, n);
  header.need(sizeof(training_state_magic) + 8, "the header");
  header.seek(sizeof(training_state_magic));
  const std::uint32_t version = header.u32("the format version");
  if (version != training_state_version)
    detail::fail("cannot load '", path, "': it has format version ", version, ", but this faltung reads only version ",
                 training_state_version);
  const std::uint32_t scalar_size = header.u32("the scalar size");
  if (scalar_size != 4 && scalar_size != 8) corrupt("scalar size ", scalar_size, " (expected 4 or 8)");
  if (scalar_size != sizeof(T))
    detail::fail("cannot load '", path, "': it holds the training state of a ", scalar_size == 4 ? "float" : "double",
                 " model, not of a ", sizeof(T) == 4 ? "float" : "double", " one");
  if (n < header.position() + 8) detail::fail("cannot load '", path, "': the file is truncated: it ends (", n, " bytes) in the header");
  std::uint64_t stored = 0;
  for (int i = 0; i < 8; ++i) stored |= std::uint64_t(b[n - 8 + std::size_t(i)]) << (8 * i);
  const std::uint64_t actual = detail::fnv1a64(b.data(), n - 8);

  detail::ModelFileReader r(path, b, n - 8);
  r.seek(header.position());
  auto f64 = [&](const std::string& what) { return detail::bits_double(r.u64(what)); };
  // A count of items of at least `least` bytes each, checked against the bytes left before
  // anything is allocated for it.
  auto count = [&](std::uint64_t k, std::size_t least, const std::string& what) {
    if (k > r.remaining() / least)
      detail::fail("cannot load '", path, "': the file is truncated: it claims ", k, " ", what, " but has only ",
                   r.remaining(), " bytes left for them (or the count is corrupt)");
    return std::size_t(k);
  };
  const std::uint64_t model_hash = r.u64("the model file's hash");
  TrainingProgress& p = c.progress;
  const std::uint64_t epoch = r.u64("the epoch count");
  if (epoch > std::uint64_t(std::numeric_limits<int>::max())) corrupt("an epoch count of ", epoch);
  p.epoch = int(epoch);
  p.batch_size = std::size_t(r.u64("the batch size"));
  p.shuffle = r.u32("the shuffle flag") != 0;
  p.order.resize(count(r.u64("the sample count"), 8, "samples in the order"));
  for (std::uint64_t& i : p.order) i = r.u64("the sample order");
  for (std::uint64_t& word : c.random.words) word = r.u64("the random generator");
  c.random.spare_normal = f64("the random generator");
  c.random.has_spare_normal = r.u32("the random generator") != 0;
  const std::size_t layers = count(r.u32("the layer count"), 8, "layers");
  for (std::size_t i = 0; i < layers; ++i) {
    const std::string which = "layer " + std::to_string(i);
    c.layer_names.push_back(r.string(which + "'s name"));
    std::vector<std::uint64_t> s(count(r.u32(which + "'s random state size"), 8, "random state words"));
    for (std::uint64_t& word : s) word = r.u64(which + "'s random state");
    c.layer_random.push_back(std::move(s));
  }
  c.optimizer_name = r.string("the optimizer's name");
  c.optimizer_config = r.string("the optimizer's configuration");
  c.iterations = std::int64_t(r.u64("the optimizer's step count"));
  c.base_learning_rate = f64("the learning rate");
  const std::size_t params = count(r.u32("the parameter count"), 4, "parameter shapes");
  for (std::size_t i = 0; i < params; ++i) c.layout.push_back(r.shape("parameter " + std::to_string(i) + "'s shape"));
  const std::size_t kinds = count(r.u32("the optimizer state count"), 4, "kinds of optimizer state");
  for (std::size_t k = 0; k < kinds; ++k) {
    typename Optimizer<T>::StateSlot slot;
    slot.first = r.string("optimizer state " + std::to_string(k) + "'s name");
    for (std::size_t i = 0; i < params; ++i) {
      const std::string what = "optimizer state '" + slot.first + "' " + std::to_string(i);
      const Shape s = r.shape(what + " shape");
      const std::size_t at = r.skip_values(s, sizeof(T), what + " values");  // checked before the allocation
      Tensor<T> t(s);
      detail::decode_values<T, T>(b.data() + at, t.size(), t.data());
      slot.second.push_back(std::move(t));
    }
    c.slots.push_back(std::move(slot));
  }
  for (std::vector<double>* series : detail::history_series(p.history)) {
    series->resize(count(r.u64("the history"), 8, "history entries"));
    for (double& v : *series) v = f64("the history");
  }
  p.history.best_epoch = int(std::int64_t(r.u64("the best epoch")) - 1);
  p.history.stop_reason = r.string("the stop reason");
  const std::size_t callbacks = count(r.u32("the callback count"), 8, "callbacks");
  for (std::size_t i = 0; i < callbacks; ++i) {
    CallbackState s;
    s.name = r.string("callback " + std::to_string(i) + "'s name");
    s.values.resize(count(r.u32("callback '" + s.name + "''s state size"), 8, "callback state numbers"));
    for (double& v : s.values) v = f64("callback '" + s.name + "''s state");
    p.callbacks.push_back(std::move(s));
  }
  if (r.remaining() != 0) corrupt(r.remaining(), " unexpected bytes after the callbacks");
  if (stored != actual)
    detail::fail("cannot load '", path, "': the file is corrupt: checksum mismatch (stored ", detail::hex64(stored),
                 ", computed ", detail::hex64(actual), "); it was damaged after it was written");

  // What the checksum cannot catch: a file written wrongly, or by hand.
  std::vector<char> seen(p.order.size(), 0);
  for (std::uint64_t i : p.order) {
    if (i >= p.order.size() || seen[std::size_t(i)])
      corrupt("the sample order is not a permutation of 0..", p.order.size() - 1);
    seen[std::size_t(i)] = 1;
  }
  if (p.history.loss.size() != std::size_t(p.epoch))
    corrupt("it records ", p.epoch, " epochs done but a history of ", p.history.loss.size());
  if (c.iterations < 0) corrupt("a step count of ", c.iterations);

  c.model = read_model_file(checkpoint_model_path(dir));
  if (detail::model_file_hash(c.model.bytes) != model_hash)
    detail::fail("cannot resume from '", dir, "': '", c.model.path, "' was not saved with '", path,
                 "' (the model file's hash is ", detail::hex64(detail::model_file_hash(c.model.bytes)),
                 ", the training state expects ", detail::hex64(model_hash),
                 "): a save was interrupted between its two renames, or the files come from different checkpoints");
  return c;
}

/// Restores the checkpoint `c` into the built, compiled model `m`: its weights, its optimizer's
/// state, its random generator and its layers' random streams. The optimizer must be of the
/// checkpoint's kind and configuration (the learning rate aside, which is restored), and the
/// model of its architecture. Checks everything first: a failed restore changes nothing.
template <class Model, class T>
void restore_checkpoint(Model& m, const Checkpoint<T>& c) {
  const std::string& path = c.state_path;
  auto refuse = [&](const auto&... what) { detail::fail("cannot resume from '", path, "': ", what...); };
  // Another architecture first, in load_weights's words (it throws before changing anything).
  if (m.spec() != c.model.spec || !m.built() || m.input_shape() != c.model.input_shape) load_weights(m, c.model);
  Optimizer<T>& opt = m.optimizer();
  if (opt.name() != c.optimizer_name)
    refuse("it holds the state of ", c.optimizer_config, ", but the model was compiled with ", opt.config());
  std::unique_ptr<Optimizer<T>> trial = opt.clone();
  trial->set_learning_rate(c.base_learning_rate);
  if (trial->config() != c.optimizer_config)
    refuse("it holds the state of ", c.optimizer_config, ", but the model was compiled with ", trial->config(),
           " (the learning rate as saved)");
  try {
    trial->restore(c.iterations, c.base_learning_rate, c.layout, c.slots);
  } catch (const Error& e) {
    refuse(e.what());
  }
  if (!c.layout.empty()) {
    const auto params = m.parameters();
    bool same = params.size() == c.layout.size();
    for (std::size_t i = 0; same && i < params.size(); ++i) same = params[i]->value.shape() == c.layout[i];
    if (!same) refuse("the optimizer's state is for ", c.layout.size(), " parameters of other shapes than the model's ", params.size());
  }
  if (m.size() != c.layer_names.size())
    refuse("it holds the random streams of ", c.layer_names.size(), " layers, the model has ", m.size());
  for (std::size_t i = 0; i < m.size(); ++i)
    if (m.layer(i).name() != c.layer_names[i] || m.layer(i).random_state().size() != c.layer_random[i].size())
      refuse("layer ", i, " is '", c.layer_names[i], "' with a random state of ", c.layer_random[i].size(),
             " words in the checkpoint, but '", m.layer(i).name(), "' with ", m.layer(i).random_state().size(),
             " in the model");
  if (!(c.random.words[0] | c.random.words[1] | c.random.words[2] | c.random.words[3]))
    refuse("the file is corrupt: the random generator's state is all zero");
  load_weights(m, c.model);  // checks the architecture before it changes anything
  opt.restore(c.iterations, c.base_learning_rate, c.layout, c.slots);
  m.random().set_state(c.random);
  for (std::size_t i = 0; i < m.size(); ++i) m.layer(i).set_random_state(c.layer_random[i]);
}

FALTUNG_END_NAMESPACE
