#pragma once
// InferenceModel<T>: a trained model that only predicts, shared by any number of threads.
//
//   Sequential<float> net = ...;  net.fit(x, y);
//   const InferenceModel<float> model(std::move(net));           // or from a file:
//   const auto model = load_inference_model<float>("fmnist.faltung");
//   // then, in as many threads as you like, at the same time:
//   Tensor<float> p = model.predict(images);                      // what net.predict gave
//
// What it keeps: the layers' weights, once, read by every call. No gradients, no optimizer
// state, none of the buffers that training keeps in Sequential and in its layers.
// What a call needs besides the weights (each layer's output for the batch, a convolution's
// column buffers, a pool's argmax) is a Workspace. predict(x) takes one from a pool the model
// keeps and gives it back at the end, so the pool holds as many workspaces as calls have run at
// once, and a steady stream of calls allocates only their results. predict(x, ws) runs on a
// workspace the caller keeps instead (one per thread, never two calls at once on one).
//
// Why a type of its own and not Sequential with a flag: every method of InferenceModel is const,
// and const here means what it means for the standard library's types, safe to call from several
// threads at once. Sequential's predict cannot be: it runs the layers' forward, which keeps what
// backward needs in the layers and in the model. Layer::infer (layers/layer.hpp) is forward in
// inference mode with those buffers in a workspace the caller owns, the same arithmetic, so
// predict gives bitwise what Sequential::predict gives at the same thread count (the execution
// list is the same, a Conv2D followed by a MaxPool2D running as one ConvPool).
//
// Threads. Each predict call runs faltung's kernels on InferenceOptions::threads threads,
// default 1: a program that calls predict from N threads of its own keeps N cores busy, and N
// calls each starting a team of every core would put N times as many threads as cores on the
// machine. One caller that predicts large batches alone sets threads(0) (the calling thread's
// OpenMP count, num_threads(), as Sequential::predict) or a number. The count is set for the
// calling thread during the call only (ScopedNumThreads, threading.hpp) and restored after.

#include <cstddef>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "faltung/config.hpp"
#include "faltung/io/load_model.hpp"
#include "faltung/kernels/activation.hpp"
#include "faltung/layers/conv_pool.hpp"
#include "faltung/layers/layer.hpp"
#include "faltung/model/batch_rows.hpp"
#include "faltung/model/sequential.hpp"
#include "faltung/tensor.hpp"
#include "faltung/threading.hpp"

FALTUNG_BEGIN_NAMESPACE

struct InferenceOptions {
  /// Kernel threads of each predict call: 1 (the default) for a model that several threads call
  /// at once; 0 for the calling thread's num_threads(), as Sequential::predict runs; or a count.
  InferenceOptions& threads(int n) {
    FALTUNG_CHECK(n >= 0, "InferenceOptions::threads: need 0 (the calling thread's count) or more, got ", n);
    threads_ = n;
    return *this;
  }
  /// What turns the outputs into probabilities. Default: the model's own, its loss's output
  /// activation (Linear for a model never compiled, whose predict gives the raw outputs).
  InferenceOptions& output_activation(Activation a) {
    detail::check_activation("InferenceOptions::output_activation", a);
    output_activation_ = a;
    return *this;
  }

  int threads_ = 1;
  std::optional<Activation> output_activation_;
};

template <class T>
class InferenceModel {
 public:
  using Scalar = T;

  /// What one predict call needs besides the weights. Empty when made; each call grows it to
  /// what its batches need, and later calls reuse the memory. One thread at a time.
  class Workspace {
   public:
    Workspace() = default;

   private:
    friend class InferenceModel;
    Tensor<T> batch;                        // the rows of x in the current batch
    std::vector<Tensor<T>> outputs;         // outputs[i]: the batch's output of execution layer i
    std::vector<LayerWorkspace<T>> layers;  // layers[i]: execution layer i's buffers
  };

  /// A copy of the built model's layers and weights, without anything only training needs.
  explicit InferenceModel(const Sequential<T>& model, const InferenceOptions& options = InferenceOptions())
      : InferenceModel(model, options, Copy{}) {
    for (std::size_t i = 0; i < model.size(); ++i) layers_.push_back(for_inference(model.layer(i).clone()));
    plan();
  }

  /// Takes the built model's layers and weights without copying them, frees everything only
  /// training needs, and leaves `model` empty (no layers, nothing built).
  explicit InferenceModel(Sequential<T>&& model, const InferenceOptions& options = InferenceOptions())
      : InferenceModel(model, options, Copy{}) {
    layers_ = std::move(model.layers_);
    model = Sequential<T>(model.seed());  // its buffers, its ConvPools and its optimizer state go too
    for (auto& l : layers_) l = for_inference(std::move(l));
    plan();
  }

  InferenceModel(InferenceModel&&) noexcept = default;
  InferenceModel& operator=(InferenceModel&&) noexcept = default;
  /// Not copied: the point is one copy of the weights that every thread shares.
  InferenceModel(const InferenceModel&) = delete;
  InferenceModel& operator=(const InferenceModel&) = delete;

  /// The outputs for x (N, input...) as probabilities (the output activation applied), in
  /// batches of at most batch_size samples, on a workspace from the model's pool. Safe to call
  /// from several threads at once.
  Tensor<T> predict(const Tensor<T>& x, std::size_t batch_size = 256) const {
    Lease lease(*pool_);
    return predict(x, *lease.workspace, batch_size);
  }

  /// predict on the caller's workspace, which no other call may use meanwhile.
  Tensor<T> predict(const Tensor<T>& x, Workspace& ws, std::size_t batch_size = 256) const {
    detail::check_batch_size("InferenceModel::predict", batch_size);
    FALTUNG_CHECK(x.rank() == input_shape_.rank() + 1 && x.shape().without_batch() == input_shape_,
                  "InferenceModel::predict: the model was built for per-sample input ", input_shape_,
                  ", got a batch of shape ", x.shape());
    const ScopedNumThreads threads(threads_ > 0 ? threads_ : num_threads());
    ws.outputs.resize(execution_.size());
    ws.layers.resize(execution_.size());
    return detail::predict_in_batches(x, batch_size, output_shape_, output_activation_, ws.batch,
                                      [&](const Tensor<T>& batch) -> const Tensor<T>& {
                                        const Tensor<T>* in = &batch;
                                        for (std::size_t i = 0; i < execution_.size(); ++i) {
                                          execution_[i]->infer(*in, ws.outputs[i], ws.layers[i]);
                                          in = &ws.outputs[i];
                                        }
                                        return *in;
                                      });
  }

  /// The index of the largest output of each sample. Safe to call from several threads at once.
  std::vector<int> predict_classes(const Tensor<T>& x, std::size_t batch_size = 256) const {
    return detail::argmax_rows(predict(x, batch_size));
  }

  const Shape& input_shape() const { return input_shape_; }
  const Shape& output_shape() const { return output_shape_; }
  /// What predict applies to the outputs (see InferenceOptions::output_activation).
  const Activation& output_activation() const { return output_activation_; }
  /// The kernel threads of each call (0: the calling thread's num_threads()).
  int threads() const { return threads_; }
  /// The number of layers, as the Sequential it came from has them.
  std::size_t size() const { return layers_.size(); }
  const Layer<T>& layer(std::size_t i) const {
    FALTUNG_CHECK(i < layers_.size(), "InferenceModel::layer: index ", i, " out of range (", layers_.size(),
                  " layers)");
    return *layers_[i];
  }
  /// The model in the architecture language, as Sequential::spec() gives it.
  std::string spec() const {
    std::string s;
    for (const auto& l : layers_) s += (s.empty() ? "" : ",") + l->spec();
    return s;
  }
  /// The number of weights (every parameter's elements); each is held once.
  std::size_t parameter_count() const { return parameter_count_; }
  /// The workspaces the pool holds now: the most calls that have run at once so far.
  std::size_t pooled_workspaces() const {
    std::lock_guard<std::mutex> lock(pool_->mutex);
    return pool_->idle.size() + pool_->leased;
  }

 private:
  struct Copy {};
  InferenceModel(const Sequential<T>& model, const InferenceOptions& options, Copy)
      : input_shape_(model.input_shape()),
        output_shape_(model.output_shape()),
        output_activation_(options.output_activation_ ? *options.output_activation_ : model.output_activation()),
        threads_(options.threads_) {
    FALTUNG_CHECK(model.built(), "InferenceModel: build the model first");
  }

  /// The workspaces of predict(x): idle ones, and how many calls hold one now.
  struct Pool {
    std::mutex mutex;
    std::vector<std::unique_ptr<Workspace>> idle;
    std::size_t leased = 0;
  };
  /// A workspace from the pool for one call, given back when the call ends (however it ends).
  struct Lease {
    explicit Lease(Pool& p) : pool(p) {
      {
        std::lock_guard<std::mutex> lock(pool.mutex);
        if (!pool.idle.empty()) {
          workspace = std::move(pool.idle.back());
          pool.idle.pop_back();
        }
        ++pool.leased;
      }
      if (!workspace) {
        try {
          workspace = std::make_unique<Workspace>();
        } catch (...) {
          std::lock_guard<std::mutex> lock(pool.mutex);
          --pool.leased;
          throw;
        }
      }
    }
    ~Lease() {
      std::lock_guard<std::mutex> lock(pool.mutex);
      --pool.leased;
      try {
        pool.idle.push_back(std::move(workspace));
      } catch (...) {  // no memory to keep it: let it go
      }
    }
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    Pool& pool;
    std::unique_ptr<Workspace> workspace;
  };

  /// A copied layer made ready for inference only: in inference mode, its training state freed.
  static std::unique_ptr<Layer<T>> for_inference(std::unique_ptr<Layer<T>> layer) {
    layer->release_training_state();
    layer->set_training(false);
    return layer;
  }

  void plan() {
    ConvPool<T>::plan(layers_, execution_, rewritten_);
    parameter_count_ = 0;
    for (const auto& l : layers_) parameter_count_ += l->parameter_count();
  }

  std::vector<std::unique_ptr<Layer<T>>> layers_;     // the layers as the Sequential had them
  std::vector<Layer<T>*> execution_;                  // what predict runs (ConvPool::plan)
  std::vector<std::unique_ptr<Layer<T>>> rewritten_;  // the ConvPools in execution_
  Shape input_shape_, output_shape_;
  Activation output_activation_;
  int threads_ = 1;
  std::size_t parameter_count_ = 0;
  std::unique_ptr<Pool> pool_ = std::make_unique<Pool>();
};

/// The model stored in `path` (io/load_model.hpp), ready for inference only.
template <class T>
InferenceModel<T> load_inference_model(const std::string& path, const InferenceOptions& options = InferenceOptions()) {
  return InferenceModel<T>(load_model<T>(path), options);
}

FALTUNG_END_NAMESPACE
