#pragma once
// Adam, as Keras's (bias correction folded into the step size, epsilon outside the root).

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "faltung/optimizers/optimizer.hpp"

FALTUNG_BEGIN_NAMESPACE

/// Options of Adam. The defaults are Keras's.
class AdamOptions {
 public:
  /* implicit */ AdamOptions(double lr = 0.001) : lr_(lr) {}

  /// Learning rate. Default 0.001.
  AdamOptions& lr(double v) { lr_ = v; return *this; }
  double lr() const { return lr_; }
  /// Decay of the first-moment (mean) estimate, in [0, 1). Default 0.9.
  AdamOptions& beta_1(double v) { beta_1_ = v; return *this; }
  double beta_1() const { return beta_1_; }
  /// Decay of the second-moment (uncentred variance) estimate, in [0, 1). Default 0.999.
  AdamOptions& beta_2(double v) { beta_2_ = v; return *this; }
  double beta_2() const { return beta_2_; }
  /// Added to the root of the second moment, against division by zero; > 0. Default 1e-7 (Keras;
  /// PyTorch's 1e-8 sits in a slightly different place, see Adam).
  AdamOptions& epsilon(double v) { epsilon_ = v; return *this; }
  double epsilon() const { return epsilon_; }
  /// Keras's legacy time decay: step t uses lr / (1 + decay * t), t counted from 0. Default 0.
  AdamOptions& decay(double v) { decay_ = v; return *this; }
  double decay() const { return decay_; }

 private:
  double lr_;
  double beta_1_ = 0.9;
  double beta_2_ = 0.999;
  double epsilon_ = 1e-7;
  double decay_ = 0.0;
};

/// Adam (Kingma & Ba), Keras's formulas. At step t = 1, 2, ... with rate lr_t and gradient g:
///   m = beta_1 m + (1 - beta_1) g
///   v = beta_2 v + (1 - beta_2) g^2
///   w -= alpha_t m / (sqrt(v) + epsilon),  alpha_t = lr_t sqrt(1 - beta_2^t) / (1 - beta_1^t)
/// m and v start at zero. PyTorch divides sqrt(v) by sqrt(1 - beta_2^t) before adding epsilon,
/// which is the same update with epsilon scaled by sqrt(1 - beta_2^t).
/// t is the optimizer's step count (once per step(), shared by every tensor).
template <class T>
class Adam : public Optimizer<T> {
 public:
  explicit Adam(const AdamOptions& options = AdamOptions())
      : Optimizer<T>(options.lr(), options.decay()), options_(options) {
    detail::check_learning_rate("Adam", options.lr());
    detail::check_unit_interval("Adam", "beta_1", options.beta_1());
    detail::check_unit_interval("Adam", "beta_2", options.beta_2());
    detail::check_epsilon("Adam", options.epsilon());
    detail::check_decay("Adam", options.decay());
  }

  /// The options, with the current base learning rate.
  AdamOptions options() const { return AdamOptions(options_).lr(this->base_learning_rate()); }

  std::unique_ptr<Optimizer<T>> clone() const override { return std::make_unique<Adam<T>>(*this); }
  std::string name() const override { return "Adam"; }
  std::string config() const override {
    return "Adam(lr=" + detail::format_hyperparameter(this->base_learning_rate()) +
           ", beta_1=" + detail::format_hyperparameter(options_.beta_1()) +
           ", beta_2=" + detail::format_hyperparameter(options_.beta_2()) +
           ", epsilon=" + detail::format_hyperparameter(options_.epsilon()) +
           ", decay=" + detail::format_hyperparameter(options_.decay()) + ")";
  }

 protected:
  void init_state(const std::vector<Shape>& shapes) override {
    detail::zero_state(m_, shapes);
    detail::zero_state(v_, shapes);
  }

  std::vector<std::pair<std::string, std::vector<Tensor<T>>*>> state_slots() override {
    return {{"m", &m_}, {"v", &v_}};
  }

  void update(std::size_t index, Parameter<T>& p, double lr) override {
    // The bias corrections in double: for float, 1 - 0.999^t would keep only a few digits.
    const double t = double(this->iterations() + 1);
    const double b1 = options_.beta_1(), b2 = options_.beta_2();
    const T alpha = T(lr * std::sqrt(1.0 - std::pow(b2, t)) / (1.0 - std::pow(b1, t)));
    const T beta_1 = T(b1), beta_2 = T(b2), eps = T(options_.epsilon());
    const T one_minus_beta_1 = T(1.0 - b1), one_minus_beta_2 = T(1.0 - b2);
    T* w = p.value.data();
    const T* g = p.grad.data();
    T* m = m_[index].data();
    T* v = v_[index].data();
    const std::size_t n = p.value.size();
    // In blocks, so that the square roots are vectorised (detail::sqrt_block); the arithmetic
    // of each element is the one-line formula above, in the same order.
    detail::for_each_update_block<T>(n, [=](std::size_t k0, std::size_t k1, T* root) {
      for (std::size_t k = k0; k < k1; ++k) {
        m[k] = beta_1 * m[k] + one_minus_beta_1 * g[k];
        v[k] = beta_2 * v[k] + one_minus_beta_2 * g[k] * g[k];
      }
      detail::sqrt_block(v + k0, root, k1 - k0);
      for (std::size_t k = k0; k < k1; ++k) w[k] -= alpha * m[k] / (root[k - k0] + eps);
    });
  }

 private:
  AdamOptions options_;
  std::vector<Tensor<T>> m_;  // first moments, one per parameter position, its shape
  std::vector<Tensor<T>> v_;  // second moments, likewise
};

FALTUNG_END_NAMESPACE
