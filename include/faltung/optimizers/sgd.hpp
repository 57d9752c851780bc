#pragma once
// Stochastic gradient descent with optional (Nesterov) momentum, as Keras's SGD.

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "faltung/optimizers/optimizer.hpp"

FALTUNG_BEGIN_NAMESPACE

/// Options of SGD. The defaults are Keras's.
class SGDOptions {
 public:
  /* implicit */ SGDOptions(double lr = 0.01) : lr_(lr) {}

  /// Learning rate. Default 0.01.
  SGDOptions& lr(double v) { lr_ = v; return *this; }
  double lr() const { return lr_; }
  /// Momentum factor in [0, 1); 0 is plain SGD. Default 0.
  SGDOptions& momentum(double v) { momentum_ = v; return *this; }
  double momentum() const { return momentum_; }
  /// Nesterov momentum: the update looks ahead along the new velocity. Default false.
  SGDOptions& nesterov(bool v) { nesterov_ = v; return *this; }
  bool nesterov() const { return nesterov_; }
  /// Keras's legacy time decay: step t uses lr / (1 + decay * t), t counted from 0. Default 0.
  SGDOptions& decay(double v) { decay_ = v; return *this; }
  double decay() const { return decay_; }

 private:
  double lr_;
  double momentum_ = 0.0;
  bool nesterov_ = false;
  double decay_ = 0.0;
};

/// SGD, Keras's formulas with the step's learning rate lr_t and gradient g:
///   plain:     w -= lr_t * g
///   momentum:  v = momentum * v - lr_t * g;  w += v
///   nesterov:  v = momentum * v - lr_t * g;  w += momentum * v - lr_t * g
/// The velocity v starts at zero. lr_t sits inside the velocity (Keras) rather than outside it
/// (PyTorch): the two agree for a constant rate, and differ once a schedule changes it.
template <class T>
class SGD : public Optimizer<T> {
 public:
  explicit SGD(const SGDOptions& options = SGDOptions())
      : Optimizer<T>(options.lr(), options.decay()), options_(options) {
    detail::check_learning_rate("SGD", options.lr());
    detail::check_unit_interval("SGD", "momentum", options.momentum());
    detail::check_decay("SGD", options.decay());
  }

  /// The options, with the current base learning rate.
  SGDOptions options() const { return SGDOptions(options_).lr(this->base_learning_rate()); }

  std::unique_ptr<Optimizer<T>> clone() const override { return std::make_unique<SGD<T>>(*this); }
  std::string name() const override { return "SGD"; }
  std::string config() const override {
    return "SGD(lr=" + detail::format_hyperparameter(this->base_learning_rate()) +
           ", momentum=" + detail::format_hyperparameter(options_.momentum()) +
           ", nesterov=" + (options_.nesterov() ? "true" : "false") +
           ", decay=" + detail::format_hyperparameter(options_.decay()) + ")";
  }

 protected:
  void init_state(const std::vector<Shape>& shapes) override {
    // Plain SGD keeps no state at all.
    if (options_.momentum() > 0) detail::zero_state(velocity_, shapes);
  }

  std::vector<std::pair<std::string, std::vector<Tensor<T>>*>> state_slots() override {
    std::vector<std::pair<std::string, std::vector<Tensor<T>>*>> s;
    if (options_.momentum() > 0) s.emplace_back("velocity", &velocity_);
    return s;
  }

  void update(std::size_t index, Parameter<T>& p, double lr) override {
    T* w = p.value.data();
    const T* g = p.grad.data();
    const T rate = T(lr);
    const T m = T(options_.momentum());
    T* v = options_.momentum() > 0 ? velocity_[index].data() : nullptr;  // plain SGD keeps no velocity
    const bool nesterov = options_.nesterov();
    detail::for_each_update_block<T>(p.value.size(), [=](std::size_t k0, std::size_t k1, T*) {
      if (!v) {
        for (std::size_t k = k0; k < k1; ++k) w[k] -= rate * g[k];
      } else if (nesterov) {
        for (std::size_t k = k0; k < k1; ++k) {
          v[k] = m * v[k] - rate * g[k];
          w[k] += m * v[k] - rate * g[k];
        }
      } else {
        for (std::size_t k = k0; k < k1; ++k) {
          v[k] = m * v[k] - rate * g[k];
          w[k] += v[k];
        }
      }
    });
  }

 private:
  SGDOptions options_;
  std::vector<Tensor<T>> velocity_;  // one per parameter position, the parameter's shape
};

FALTUNG_END_NAMESPACE
