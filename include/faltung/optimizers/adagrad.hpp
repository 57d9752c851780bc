#pragma once
// Adagrad, as Keras's.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "faltung/optimizers/optimizer.hpp"

FALTUNG_BEGIN_NAMESPACE

/// Options of Adagrad. The defaults are Keras's.
class AdagradOptions {
 public:
  /* implicit */ AdagradOptions(double lr = 0.001) : lr_(lr) {}

  /// Learning rate. Default 0.001.
  AdagradOptions& lr(double v) { lr_ = v; return *this; }
  double lr() const { return lr_; }
  /// Starting value of every accumulator, >= 0: keeps the first steps from dividing by a tiny
  /// root. Default 0.1 (PyTorch's default is 0).
  AdagradOptions& initial_accumulator_value(double v) { initial_accumulator_value_ = v; return *this; }
  double initial_accumulator_value() const { return initial_accumulator_value_; }
  /// Added to the root of the accumulator, against division by zero; > 0. Default 1e-7.
  AdagradOptions& epsilon(double v) { epsilon_ = v; return *this; }
  double epsilon() const { return epsilon_; }
  /// Keras's legacy time decay: step t uses lr / (1 + decay * t), t counted from 0. Default 0.
  AdagradOptions& decay(double v) { decay_ = v; return *this; }
  double decay() const { return decay_; }

 private:
  double lr_;
  double initial_accumulator_value_ = 0.1;
  double epsilon_ = 1e-7;
  double decay_ = 0.0;
};

/// Adagrad (Duchi et al.), with the step's rate lr_t and gradient g:
///   acc += g^2;  w -= lr_t g / (sqrt(acc) + epsilon)
template <class T>
class Adagrad : public Optimizer<T> {
 public:
  explicit Adagrad(const AdagradOptions& options = AdagradOptions())
      : Optimizer<T>(options.lr(), options.decay()), options_(options) {
    detail::check_learning_rate("Adagrad", options.lr());
    FALTUNG_CHECK(std::isfinite(options.initial_accumulator_value()) && options.initial_accumulator_value() >= 0,
                  "Adagrad: initial_accumulator_value must be finite and >= 0, got ",
                  options.initial_accumulator_value());
    detail::check_epsilon("Adagrad", options.epsilon());
    detail::check_decay("Adagrad", options.decay());
  }

  /// The options, with the current base learning rate.
  AdagradOptions options() const { return AdagradOptions(options_).lr(this->base_learning_rate()); }

  std::unique_ptr<Optimizer<T>> clone() const override { return std::make_unique<Adagrad<T>>(*this); }
  std::string name() const override { return "Adagrad"; }
  std::string config() const override {
    return "Adagrad(lr=" + detail::format_hyperparameter(this->base_learning_rate()) +
           ", initial_accumulator_value=" + detail::format_hyperparameter(options_.initial_accumulator_value()) +
           ", epsilon=" + detail::format_hyperparameter(options_.epsilon()) +
           ", decay=" + detail::format_hyperparameter(options_.decay()) + ")";
  }

 protected:
  void init_state(const std::vector<Shape>& shapes) override {
    detail::zero_state(accumulator_, shapes, T(options_.initial_accumulator_value()));
  }

  std::vector<std::pair<std::string, std::vector<Tensor<T>>*>> state_slots() override {
    return {{"accumulator", &accumulator_}};
  }

  void update(std::size_t index, Parameter<T>& p, double lr) override {
    const T rate = T(lr), eps = T(options_.epsilon());
    T* w = p.value.data();
    const T* g = p.grad.data();
    T* acc = accumulator_[index].data();
    const std::size_t n = p.value.size();
    // In blocks, so that the square roots are vectorised (detail::sqrt_block).
    detail::for_each_update_block<T>(n, [=](std::size_t k0, std::size_t k1, T* root) {
      for (std::size_t k = k0; k < k1; ++k) acc[k] += g[k] * g[k];
      detail::sqrt_block(acc + k0, root, k1 - k0);
      for (std::size_t k = k0; k < k1; ++k) w[k] -= rate * g[k] / (root[k - k0] + eps);
    });
  }

 private:
  AdagradOptions options_;
  std::vector<Tensor<T>> accumulator_;  // one per parameter position, its shape
};

FALTUNG_END_NAMESPACE
