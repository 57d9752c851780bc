#pragma once
// RMSProp, as Keras's, with optional momentum and centring.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "faltung/optimizers/optimizer.hpp"

FALTUNG_BEGIN_NAMESPACE

/// Options of RMSProp. The defaults are Keras's.
class RMSPropOptions {
 public:
  /* implicit */ RMSPropOptions(double lr = 0.001) : lr_(lr) {}

  /// Learning rate. Default 0.001.
  RMSPropOptions& lr(double v) { lr_ = v; return *this; }
  double lr() const { return lr_; }
  /// Decay of the moving average of squared gradients, in [0, 1). Default 0.9.
  RMSPropOptions& rho(double v) { rho_ = v; return *this; }
  double rho() const { return rho_; }
  /// Momentum factor in [0, 1); 0 is no momentum. Default 0.
  RMSPropOptions& momentum(double v) { momentum_ = v; return *this; }
  double momentum() const { return momentum_; }
  /// Added to the root of the average, against division by zero; > 0. Default 1e-7.
  RMSPropOptions& epsilon(double v) { epsilon_ = v; return *this; }
  double epsilon() const { return epsilon_; }
  /// Centred: divide by an estimate of the gradient's variance instead of its second moment.
  /// Default false.
  RMSPropOptions& centered(bool v) { centered_ = v; return *this; }
  bool centered() const { return centered_; }
  /// Keras's legacy time decay: step t uses lr / (1 + decay * t), t counted from 0. Default 0.
  RMSPropOptions& decay(double v) { decay_ = v; return *this; }
  double decay() const { return decay_; }

 private:
  double lr_;
  double rho_ = 0.9;
  double momentum_ = 0.0;
  double epsilon_ = 1e-7;
  bool centered_ = false;
  double decay_ = 0.0;
};

/// RMSProp (Hinton), with the step's rate lr_t and gradient g:
///   a = rho a + (1 - rho) g^2                        (mean square, starts at 0)
///   centred: b = rho b + (1 - rho) g;  d = a - b^2   (mean, starts at 0), else d = a
///   delta = lr_t g / (sqrt(d) + epsilon)
///   no momentum: w -= delta;  momentum: u = momentum u + delta; w -= u   (u starts at 0)
/// This is Keras's non-fused RMSprop and PyTorch's RMSprop. Keras's momentum variant (a fused
/// TensorFlow kernel) takes the root of d + epsilon instead; with the default epsilon of 1e-7
/// the difference is negligible, and one place for epsilon in every variant is easier to reason
/// about. As in SGD, lr_t sits inside the momentum (Keras), not outside it (PyTorch).
template <class T>
class RMSProp : public Optimizer<T> {
 public:
  explicit RMSProp(const RMSPropOptions& options = RMSPropOptions())
      : Optimizer<T>(options.lr(), options.decay()), options_(options) {
    detail::check_learning_rate("RMSProp", options.lr());
    detail::check_unit_interval("RMSProp", "rho", options.rho());
    detail::check_unit_interval("RMSProp", "momentum", options.momentum());
    detail::check_epsilon("RMSProp", options.epsilon());
    detail::check_decay("RMSProp", options.decay());
  }

  /// The options, with the current base learning rate.
  RMSPropOptions options() const { return RMSPropOptions(options_).lr(this->base_learning_rate()); }

  std::unique_ptr<Optimizer<T>> clone() const override { return std::make_unique<RMSProp<T>>(*this); }
  std::string name() const override { return "RMSProp"; }
  std::string config() const override {
    return "RMSProp(lr=" + detail::format_hyperparameter(this->base_learning_rate()) +
           ", rho=" + detail::format_hyperparameter(options_.rho()) +
           ", momentum=" + detail::format_hyperparameter(options_.momentum()) +
           ", epsilon=" + detail::format_hyperparameter(options_.epsilon()) +
           ", centered=" + (options_.centered() ? "true" : "false") +
           ", decay=" + detail::format_hyperparameter(options_.decay()) + ")";
  }

 protected:
  void init_state(const std::vector<Shape>& shapes) override {
    detail::zero_state(mean_square_, shapes);
    if (options_.centered()) detail::zero_state(mean_, shapes);
    if (options_.momentum() > 0) detail::zero_state(momentum_, shapes);
  }

  std::vector<std::pair<std::string, std::vector<Tensor<T>>*>> state_slots() override {
    std::vector<std::pair<std::string, std::vector<Tensor<T>>*>> s;
    s.emplace_back("mean_square", &mean_square_);
    if (options_.centered()) s.emplace_back("mean", &mean_);
    if (options_.momentum() > 0) s.emplace_back("momentum", &momentum_);
    return s;
  }

  void update(std::size_t index, Parameter<T>& p, double lr) override {
    const T rate = T(lr), rho = T(options_.rho()), one_minus_rho = T(1.0 - options_.rho());
    const T eps = T(options_.epsilon()), mu = T(options_.momentum());
    const bool centered = options_.centered(), with_momentum = options_.momentum() > 0;
    T* w = p.value.data();
    const T* g = p.grad.data();
    T* a = mean_square_[index].data();
    T* b = centered ? mean_[index].data() : nullptr;
    T* u = with_momentum ? momentum_[index].data() : nullptr;
    const std::size_t n = p.value.size();
    // One pair of loops for the four variants: the branches test loop invariants, which the
    // compiler hoists. In blocks, so that the square roots are vectorised (detail::sqrt_block):
    // the first loop leaves the radicand d in `root`, the second applies the step.
    detail::for_each_update_block<T>(n, [=](std::size_t k0, std::size_t k1, T* root) {
      for (std::size_t k = k0; k < k1; ++k) {
        a[k] = rho * a[k] + one_minus_rho * g[k] * g[k];
        T d = a[k];
        if (centered) {
          b[k] = rho * b[k] + one_minus_rho * g[k];
          // a - b^2 >= 0 in exact arithmetic (b^2 <= a by Jensen); rounding may dip below.
          d = std::max(a[k] - b[k] * b[k], T(0));
        }
        root[k - k0] = d;
      }
      detail::sqrt_block(root, root, k1 - k0);
      for (std::size_t k = k0; k < k1; ++k) {
        const T delta = rate * g[k] / (root[k - k0] + eps);
        if (with_momentum) {
          u[k] = mu * u[k] + delta;
          w[k] -= u[k];
        } else {
          w[k] -= delta;
        }
      }
    });
  }

 private:
  RMSPropOptions options_;
  std::vector<Tensor<T>> mean_square_;  // a, one per parameter position, its shape
  std::vector<Tensor<T>> mean_;         // b, only when centred
  std::vector<Tensor<T>> momentum_;     // u, only with momentum
};

FALTUNG_END_NAMESPACE
