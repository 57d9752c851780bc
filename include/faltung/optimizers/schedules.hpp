#pragma once
// Learning-rate schedules for Optimizer::set_schedule: functions (base_lr, iteration) -> lr,
// where iteration is the number of steps taken before the one that uses the rate.
//   opt.set_schedule(exponential_decay(1000, 0.5));   // halve the rate every 1000 steps

#include <cmath>
#include <cstdint>

#include "faltung/config.hpp"
#include "faltung/optimizers/optimizer.hpp"

FALTUNG_BEGIN_NAMESPACE

/// Keras's legacy `decay` option (and InverseTimeDecay with decay_steps 1):
/// lr = base_lr / (1 + decay * iteration). Every optimizer's decay option installs this.
inline LearningRateSchedule inverse_time_decay(double decay) {
  FALTUNG_CHECK(std::isfinite(decay) && decay >= 0, "inverse_time_decay: decay must be finite and >= 0, got ",
                decay);
  return [decay](double base_lr, std::int64_t iteration) { return base_lr / (1.0 + decay * double(iteration)); };
}

/// Keras's ExponentialDecay: lr = base_lr * decay_rate^(iteration / decay_steps), the exponent
/// rounded down to an integer when staircase is true (a drop every decay_steps steps).
inline LearningRateSchedule exponential_decay(std::int64_t decay_steps, double decay_rate, bool staircase = false) {
  FALTUNG_CHECK(decay_steps > 0, "exponential_decay: decay_steps must be positive, got ", decay_steps);
  FALTUNG_CHECK(std::isfinite(decay_rate) && decay_rate > 0, "exponential_decay: decay_rate must be positive, got ",
                decay_rate);
  return [decay_steps, decay_rate, staircase](double base_lr, std::int64_t iteration) {
    double p = double(iteration) / double(decay_steps);
    if (staircase) p = std::floor(p);
    return base_lr * std::pow(decay_rate, p);
  };
}

FALTUNG_END_NAMESPACE
