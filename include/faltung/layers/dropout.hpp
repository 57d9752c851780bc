#pragma once
// Dropout(rate): inverted dropout in training (kernels/dropout.hpp), the identity in inference.
// A rate of 0 is the identity in both modes.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "faltung/kernels/copy.hpp"
#include "faltung/kernels/dropout.hpp"
#include "faltung/layers/layer.hpp"

FALTUNG_BEGIN_NAMESPACE

template <class T>
class Dropout : public Layer<T> {
 public:
  /// rate: the fraction of elements set to zero in training, in [0, 1).
  explicit Dropout(double rate) : rate_(rate) {
    FALTUNG_CHECK(rate >= 0.0 && rate < 1.0, "Dropout: rate must be in [0, 1), got ", rate);
  }

  std::string type() const override { return "Dropout"; }
  std::string default_name() const override { return "dropout"; }
  double rate() const { return rate_; }

  Shape output_shape(const Shape& in) const override { return in; }

  void build(const Shape& in, Random& rng) override {
    Layer<T>::build(in, rng);
    seed_ = rng.next_u64();  // this layer's stream; each batch advances it
  }

  /// For gradient checking: every training forward reuses the same mask instead of drawing a
  /// new one, so that the layer is a fixed function of its input.
  void repeat_mask(bool on) { repeat_mask_ = on; }

  /// For data-parallel training (distributed/data_parallel.hpp): the batches that follow are rows
  /// [first_row, first_row + N) of a larger batch split between processes, and get the mask those
  /// rows would get in it, so that the processes together draw one process's mask. Default 0.
  void set_first_row(std::size_t first_row) { first_row_ = first_row; }
  /// The seed of the next training batch's mask, to make it the same on every process.
  std::uint64_t mask_seed() const { return seed_; }
  void set_mask_seed(std::uint64_t seed) { seed_ = seed; }

  std::string spec() const override {
    return "drop:" + detail::shortest(rate_);
  }

  std::vector<std::uint64_t> random_state() const override { return {seed_}; }
  void set_random_state(const std::vector<std::uint64_t>& state) override {
    FALTUNG_CHECK(state.size() == 1, "Dropout '", this->name(), "': a random state of ", state.size(),
                  " words (expected 1)");
    seed_ = state[0];
  }

  std::unique_ptr<Layer<T>> clone() const override { return std::make_unique<Dropout<T>>(*this); }

 protected:
  void forward_impl(const Tensor<T>& x, Tensor<T>& y) override {
    if (!this->training() || rate_ == 0.0) {
      copy(x, y);
      masked_ = false;
      return;
    }
    y.resize(x.shape());
    keep_.resize(x.size());  // grows once, then reused: capacity is kept
    // Each call takes a fresh, non-overlapping block of the counter space.
    // Element i of the batch is element first_row_ * (row size) + i of the counter space.
    const std::uint64_t offset = std::uint64_t(first_row_) * (x.size() / std::max<std::size_t>(x.dim(0), 1));
    kernels::dropout_forward(x.data(), y.data(), keep_.data(), x.size(), rate_, seed_ + offset);
    if (!repeat_mask_) seed_ = splitmix64(seed_ ^ 0xD1B54A32D192ED03ull);
    masked_ = true;
  }

  /// The identity, as forward in inference mode.
  void infer_impl(const Tensor<T>& x, Tensor<T>& y, LayerWorkspace<T>&) const override { copy(x, y); }

  void release_training_state() override {
    Layer<T>::release_training_state();
    std::vector<std::uint8_t>().swap(keep_);
    masked_ = false;
  }

  void backward_impl(const Tensor<T>&, const Tensor<T>&, const Tensor<T>& dy, Tensor<T>& dx) override {
    if (!this->input_grad_needed()) return;
    if (masked_)
      kernels::dropout_backward(dy.data(), keep_.data(), dx.data(), dy.size(), rate_);
    else
      kernels::parallel_copy(dy.data(), dy.size(), dx.data());
  }

 private:
  static void copy(const Tensor<T>& x, Tensor<T>& y) {
    y.resize(x.shape());
    kernels::parallel_copy(x.data(), x.size(), y.data());
  }

  double rate_;
  std::uint64_t seed_ = 0;
  std::size_t first_row_ = 0;
  bool masked_ = false;
  bool repeat_mask_ = false;
  std::vector<std::uint8_t> keep_;  // (N, ...) 1 where the latest training forward kept the element
};

FALTUNG_END_NAMESPACE
