// Optimizers: reference trajectories from PyTorch (tests/reference/make_optimizer_reference.py
// writes reference/optimizer_reference.inc), hand-computed first steps, frozen parameters, the
// step counter, schedules, layout checks, options and configs.

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "faltung/optimizers/optimizers.hpp"
#include "reference/optimizer_reference.inc"

using namespace faltung;

namespace {

namespace ref = optimizer_reference;

/// The reference problem, in closed form (the script lets autograd differentiate it):
///   P = tanh(X W + b), L = sum((P - Y)^2) / 8 + 0.025 sum(W^4)
///   dL/dZ = (P - Y) / 4 * (1 - P^2),  dL/dW = X^T dL/dZ + 0.1 W^3,  dL/db = column sums of dL/dZ
template <class T>
struct Problem {
  Parameter<T> w{"kernel", Shape{2, 3}};
  Parameter<T> b{"bias", Shape{3}};

  Problem() {
    for (std::size_t k = 0; k < 6; ++k) w.value[k] = T(ref::w0[k]);
    for (std::size_t k = 0; k < 3; ++k) b.value[k] = T(ref::b0[k]);
  }

  std::vector<Parameter<T>*> params() { return {&w, &b}; }

  void compute_gradients() {
    w.zero_grad();
    b.zero_grad();
    for (std::size_t i = 0; i < 4; ++i) {    // sample i of X (4, 2)
      for (std::size_t j = 0; j < 3; ++j) {  // output j of P (4, 3)
        T z = b.value[j];
        for (std::size_t k = 0; k < 2; ++k) z += T(ref::x[i * 2 + k]) * w.value[k * 3 + j];
        const T p = std::tanh(z);
        const T dz = (p - T(ref::y[i * 3 + j])) / T(4) * (T(1) - p * p);
        for (std::size_t k = 0; k < 2; ++k) w.grad[k * 3 + j] += T(ref::x[i * 2 + k]) * dz;
        b.grad[j] += dz;
      }
    }
    for (std::size_t k = 0; k < 6; ++k) w.grad[k] += T(0.1) * w.value[k] * w.value[k] * w.value[k];
  }
};

/// Runs `opt` for the reference's steps and compares at every recorded step. Returns the largest
/// deviation, and fails if it exceeds `tolerance` or if the parameters barely moved (a reference
/// that stands still would let a do-nothing optimizer pass).
template <class T, std::size_t N>
void follow(Optimizer<T>& opt, const ref::Point (&expected)[N], double tolerance, bool freeze_bias = false) {
  Problem<T> problem;
  problem.b.trainable = !freeze_bias;
  std::size_t next = 0;
  double worst = 0;
  int worst_step = 0;
  for (int step = 1; step <= ref::steps; ++step) {
    problem.compute_gradients();
    opt.step(problem.params());
    if (next < N && expected[next].step == step) {
      for (std::size_t k = 0; k < 6; ++k) {
        const double d = std::abs(double(problem.w.value[k]) - expected[next].w[k]);
        if (!(d <= worst)) worst = d, worst_step = step;  // a NaN counts as the worst
      }
      for (std::size_t k = 0; k < 3; ++k) {
        const double d = std::abs(double(problem.b.value[k]) - expected[next].b[k]);
        if (!(d <= worst)) worst = d, worst_step = step;
      }
      ++next;
    }
  }
  EXPECT_EQ(next, N) << "recorded steps missed";
  EXPECT_EQ(opt.iterations(), ref::steps);
  EXPECT_LE(worst, tolerance) << opt.config() << ": largest deviation at step " << worst_step;
  double moved = 0;
  for (std::size_t k = 0; k < 6; ++k) moved = std::max(moved, std::abs(double(problem.w.value[k]) - ref::w0[k]));
  EXPECT_GT(moved, 1e-2) << "the parameters barely moved";
}

constexpr double kTolerance = 1e-9;  // the script checks that rounding cannot move the trajectories by 1e-9

// ---------------------------------------------------------------------------------------------
// Reference trajectories (double)

TEST(OptimizerReference, SgdPlain) {
  SGD<double> opt(SGDOptions(0.1));
  follow(opt, ref::sgd, kTolerance);
}

TEST(OptimizerReference, SgdMomentum) {
  SGD<double> opt(SGDOptions(0.05).momentum(0.9));
  follow(opt, ref::sgd_momentum, kTolerance);
}

TEST(OptimizerReference, SgdNesterov) {
  SGD<double> opt(SGDOptions(0.05).momentum(0.9).nesterov(true));
  follow(opt, ref::sgd_nesterov, kTolerance);
}

TEST(OptimizerReference, SgdMomentumWithDecay) {
  SGD<double> opt(SGDOptions(0.05).momentum(0.9).decay(0.05));
  follow(opt, ref::sgd_momentum_decay, kTolerance);
}

TEST(OptimizerReference, Adam) {
  Adam<double> opt(AdamOptions(0.02));
  follow(opt, ref::adam, kTolerance);
}

TEST(OptimizerReference, AdamKerasDefaults) {
  Adam<double> opt;
  follow(opt, ref::adam_defaults, kTolerance);
}

TEST(OptimizerReference, AdamLargeEpsilonPinsItsPlace) {
  // With epsilon 0.01 Keras's and PyTorch's placements of epsilon differ visibly.
  Adam<double> opt(AdamOptions(0.02).beta_1(0.8).beta_2(0.99).epsilon(0.01));
  follow(opt, ref::adam_epsilon, kTolerance);
}

TEST(OptimizerReference, AdamWithDecay) {
  Adam<double> opt(AdamOptions(0.02).decay(0.02));
  follow(opt, ref::adam_decay, kTolerance);
}

TEST(OptimizerReference, AdamWithScheduleHook) {
  Adam<double> opt(AdamOptions(0.02));
  opt.set_schedule([](double base_lr, std::int64_t iteration) { return base_lr * std::pow(0.97, double(iteration)); });
  follow(opt, ref::adam_schedule, kTolerance);
}

TEST(OptimizerReference, AdamFrozenBias) {
  Adam<double> opt(AdamOptions(0.02));
  follow(opt, ref::adam_frozen_bias, kTolerance, /*freeze_bias=*/true);
}

TEST(OptimizerReference, RMSProp) {
  RMSProp<double> opt(RMSPropOptions(0.01).epsilon(1e-2));
  follow(opt, ref::rmsprop, kTolerance);
}

TEST(OptimizerReference, RMSPropMomentum) {
  RMSProp<double> opt(RMSPropOptions(0.005).momentum(0.8).epsilon(1e-2));
  follow(opt, ref::rmsprop_momentum, kTolerance);
}

TEST(OptimizerReference, RMSPropCentered) {
  RMSProp<double> opt(RMSPropOptions(0.002).rho(0.8).centered(true).epsilon(1e-3));
  follow(opt, ref::rmsprop_centered, kTolerance);
}

TEST(OptimizerReference, RMSPropCenteredMomentumWithDecay) {
  RMSProp<double> opt(RMSPropOptions(0.005).momentum(0.8).centered(true).epsilon(1e-3).decay(0.01));
  follow(opt, ref::rmsprop_centered_momentum_decay, kTolerance);
}

TEST(OptimizerReference, Adagrad) {
  Adagrad<double> opt(AdagradOptions(0.1));
  follow(opt, ref::adagrad, kTolerance);
}

TEST(OptimizerReference, AdagradWithDecay) {
  Adagrad<double> opt(AdagradOptions(0.1).initial_accumulator_value(0.2).epsilon(1e-2).decay(0.05));
  follow(opt, ref::adagrad_decay, kTolerance);
}

TEST(OptimizerReference, FloatFollowsTheDoubleTrajectory) {
  // Float keeps about 7 digits; over 100 steps the rounding stays far below the tolerance that
  // a wrong formula would exceed.
  Adam<float> adam(AdamOptions(0.02));
  follow(adam, ref::adam, 1e-5);
  SGD<float> sgd(SGDOptions(0.05).momentum(0.9).nesterov(true));
  follow(sgd, ref::sgd_nesterov, 1e-5);
  RMSProp<float> rmsprop(RMSPropOptions(0.005).momentum(0.8).centered(true).epsilon(1e-3).decay(0.01));
  follow(rmsprop, ref::rmsprop_centered_momentum_decay, 1e-5);
  Adagrad<float> adagrad(AdagradOptions(0.1));
  follow(adagrad, ref::adagrad, 1e-5);
}

TEST(OptimizerReference, WorksThroughTheBaseClassAndClone) {
  std::unique_ptr<Optimizer<double>> opt = Adam<double>(AdamOptions(0.02)).clone();
  follow(*opt, ref::adam, kTolerance);
}

// ---------------------------------------------------------------------------------------------
// Hand-computed first two steps: w = 1, gradients 0.5 then -0.25.

// An epsilon far below the last digit of every root below, so that the hand computations can
// leave it out (epsilon must be > 0).
constexpr double kNegligibleEpsilon = 1e-300;

struct Scalar {
  Parameter<double> p{"w", Shape{1}};
  Scalar() { p.value[0] = 1.0; }
  double step(Optimizer<double>& opt, double g) {
    p.grad[0] = g;
    opt.step({&p});
    return p.value[0];
  }
};

TEST(OptimizerByHand, SgdMomentum) {
  SGD<double> opt(SGDOptions(0.1).momentum(0.9));
  Scalar s;
  // v = 0.9 * 0 - 0.1 * 0.5 = -0.05;            w = 1 - 0.05 = 0.95
  EXPECT_NEAR(s.step(opt, 0.5), 0.95, 1e-15);
  // v = 0.9 * -0.05 - 0.1 * -0.25 = -0.02;      w = 0.95 - 0.02 = 0.93
  EXPECT_NEAR(s.step(opt, -0.25), 0.93, 1e-15);
}

TEST(OptimizerByHand, SgdNesterov) {
  SGD<double> opt(SGDOptions(0.1).momentum(0.9).nesterov(true));
  Scalar s;
  // v = -0.05;  w = 1 + 0.9 * -0.05 - 0.1 * 0.5 = 0.905
  EXPECT_NEAR(s.step(opt, 0.5), 0.905, 1e-15);
  // v = -0.02;  w = 0.905 + 0.9 * -0.02 - 0.1 * -0.25 = 0.912
  EXPECT_NEAR(s.step(opt, -0.25), 0.912, 1e-15);
}

TEST(OptimizerByHand, Adam) {
  Adam<double> opt(AdamOptions(0.1).epsilon(kNegligibleEpsilon));
  Scalar s;
  // t = 1: m = 0.1 * 0.5 = 0.05, v = 0.001 * 0.25 = 0.00025,
  //        alpha = 0.1 * sqrt(0.001) / 0.1 = 0.0316227766, m / sqrt(v) = 3.16227766:
  //        the first step is lr * sign(g), w = 0.9.
  EXPECT_NEAR(s.step(opt, 0.5), 0.9, 1e-14);
  // t = 2: m = 0.9 * 0.05 + 0.1 * -0.25 = 0.02, v = 0.999 * 0.00025 + 0.001 * 0.0625 = 0.00031225,
  //        alpha = 0.1 * sqrt(1 - 0.999^2) / (1 - 0.9^2) = 0.0235316725327,
  //        m / sqrt(v) = 1.13182366994859, w = 0.9 - 0.0266337039660 = 0.873366296034
  EXPECT_NEAR(s.step(opt, -0.25), 0.873366296033960, 1e-12);
}

TEST(OptimizerByHand, RMSPropAndAdagradFirstStep) {
  RMSProp<double> rmsprop(RMSPropOptions(0.1).epsilon(kNegligibleEpsilon));
  Scalar a;
  // a = 0.1 * 0.25 = 0.025; w = 1 - 0.1 * 0.5 / sqrt(0.025) = 1 - 0.316227766
  EXPECT_NEAR(a.step(rmsprop, 0.5), 1 - 0.1 * 0.5 / std::sqrt(0.025), 1e-15);
  Adagrad<double> adagrad(AdagradOptions(0.1).epsilon(kNegligibleEpsilon));
  Scalar b;
  // acc = 0.1 + 0.25 = 0.35; w = 1 - 0.1 * 0.5 / sqrt(0.35)
  EXPECT_NEAR(b.step(adagrad, 0.5), 1 - 0.1 * 0.5 / std::sqrt(0.35), 1e-15);
}

// ---------------------------------------------------------------------------------------------
// The step counter, frozen parameters, the parameter layout

TEST(Optimizer, StepCounterAdvancesOncePerStepNotPerTensor) {
  Adam<double> opt(AdamOptions(0.1).epsilon(kNegligibleEpsilon));
  Parameter<double> a("a", Shape{1}), b("b", Shape{2});
  a.value.fill(1.0);
  b.value.fill(1.0);
  a.grad.fill(0.5);
  b.grad.fill(-2.0);
  EXPECT_EQ(opt.iterations(), 0);
  opt.step({&a, &b});
  EXPECT_EQ(opt.iterations(), 1);
  // Both tensors take Adam's first step, lr * sign(g). Had the counter advanced after `a`, `b`
  // would have used the bias correction of step 2 and moved by about 0.145 instead.
  EXPECT_NEAR(a.value[0], 0.9, 1e-14);
  EXPECT_NEAR(b.value[0], 1.1, 1e-14);
  EXPECT_NEAR(b.value[1], 1.1, 1e-14);
  opt.step({&a, &b});
  opt.step({&a, &b});
  EXPECT_EQ(opt.iterations(), 3);
}

template <class Opt>
void check_frozen_parameter_is_untouched(Opt opt) {
  Problem<double> problem;
  problem.b.trainable = false;
  const Tensor<double> b_before = problem.b.value;
  for (int step = 0; step < 5; ++step) {
    problem.compute_gradients();  // b has a non-zero gradient: the optimizer must ignore it
    opt.step(problem.params());
  }
  EXPECT_EQ(std::memcmp(problem.b.value.data(), b_before.data(), 3 * sizeof(double)), 0) << opt.config();
  EXPECT_GT(std::abs(problem.w.value[0] - ref::w0[0]), 1e-3) << opt.config() << ": the trainable one must move";
}

TEST(Optimizer, FrozenParameterStaysBitwiseUnchanged) {
  check_frozen_parameter_is_untouched(SGD<double>(SGDOptions(0.1)));
  check_frozen_parameter_is_untouched(SGD<double>(SGDOptions(0.1).momentum(0.9).nesterov(true)));
  check_frozen_parameter_is_untouched(Adam<double>(AdamOptions(0.05)));
  check_frozen_parameter_is_untouched(RMSProp<double>(RMSPropOptions(0.05).momentum(0.5).centered(true)));
  check_frozen_parameter_is_untouched(Adagrad<double>(AdagradOptions(0.1)));
}

TEST(Optimizer, UnfrozenParameterResumesFromItsKeptState) {
  // Freezing keeps the state by position: after unfreezing, b continues like a fresh Adam on b
  // alone would (its moments are still zero), while w has moved on.
  Adam<double> opt(AdamOptions(0.05));
  Problem<double> problem;
  problem.b.trainable = false;
  problem.compute_gradients();
  opt.step(problem.params());
  problem.b.trainable = true;
  problem.compute_gradients();
  const double b_grad = problem.b.grad[0];
  const double b_before = problem.b.value[0];
  opt.step(problem.params());
  // b's first real step at t = 2: m = 0.1 g, v = 0.001 g^2,
  // alpha = 0.05 sqrt(1 - 0.999^2) / (1 - 0.81), so the step is alpha * 0.1 / sqrt(0.001) * sign(g).
  const double alpha = 0.05 * std::sqrt(1 - 0.999 * 0.999) / (1 - 0.81);
  const double expected = b_before - alpha * 0.1 * b_grad / (std::sqrt(0.001 * b_grad * b_grad) + 1e-7);
  EXPECT_NEAR(problem.b.value[0], expected, 1e-12);
}

TEST(Optimizer, AnotherModelIsAnError) {
  Adam<double> opt;
  Parameter<double> a("kernel", Shape{2, 3}), b("bias", Shape{3}), c("other", Shape{4});
  opt.step({&a, &b});
  try {
    opt.step({&a});
    FAIL() << "fewer parameters accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("got 1 parameters, but earlier steps had 2"), std::string::npos) << e.what();
  }
  try {
    opt.step({&a, &c});
    FAIL() << "a parameter of another shape accepted";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("(4)"), std::string::npos) << what;
    EXPECT_NE(what.find("(3)"), std::string::npos) << what;
    EXPECT_NE(what.find("'other'"), std::string::npos) << what;
  }
  EXPECT_EQ(opt.iterations(), 1) << "a refused step must not count";
  opt.reset();
  EXPECT_EQ(opt.iterations(), 0);
  EXPECT_NO_THROW(opt.step({&a, &c}));
}

TEST(Optimizer, RefusedStepChangesNothing) {
  SGD<double> opt(SGDOptions(0.1));
  Parameter<double> a("a", Shape{2}), b("b", Shape{2});
  a.grad.fill(1.0);
  b.grad.resize(Shape{3});  // a gradient of the wrong shape, discovered after `a`
  EXPECT_THROW(opt.step({&a, &b}), Error);
  EXPECT_EQ(a.value[0], 0.0) << "the first parameter was updated before the second was checked";
  EXPECT_EQ(opt.iterations(), 0);
}

TEST(Optimizer, GradientShapeMismatchIsAnError) {
  Adagrad<double> opt;
  Parameter<double> a("kernel", Shape{2, 3});
  a.grad.resize(Shape{3, 2});
  try {
    opt.step({&a});
    FAIL() << "accepted a gradient of another shape";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("(2, 3)"), std::string::npos) << what;
    EXPECT_NE(what.find("(3, 2)"), std::string::npos) << what;
  }
  a.trainable = false;  // a frozen parameter's gradient is never read
  EXPECT_NO_THROW(opt.step({&a}));
}

// ---------------------------------------------------------------------------------------------
// Learning rate, decay, schedules

TEST(Optimizer, DecayIsKerasTimeDecay) {
  SGD<double> opt(SGDOptions(0.1).decay(0.5));
  Parameter<double> p("p", Shape{1});
  EXPECT_DOUBLE_EQ(opt.learning_rate(), 0.1);  // the first step uses lr itself
  opt.step({&p});
  EXPECT_DOUBLE_EQ(opt.learning_rate(), 0.1 / 1.5);
  opt.step({&p});
  EXPECT_DOUBLE_EQ(opt.learning_rate(), 0.1 / 2.0);
  EXPECT_DOUBLE_EQ(opt.base_learning_rate(), 0.1);
  // The step actually uses the decayed rate: w -= lr_2 * g.
  p.grad[0] = 1.0;
  const double before = p.value[0];
  opt.step({&p});
  EXPECT_DOUBLE_EQ(p.value[0], before - 0.05);
}

TEST(Optimizer, ScheduleReplacesDecayAndCanBeRemoved) {
  Adam<double> opt(AdamOptions(0.01).decay(1.0));
  Parameter<double> p("p", Shape{1});
  opt.step({&p});
  opt.step({&p});
  EXPECT_DOUBLE_EQ(opt.learning_rate(), 0.01 / 3.0);
  std::int64_t seen = -1;
  opt.set_schedule([&seen](double base_lr, std::int64_t iteration) {
    seen = iteration;
    return base_lr * 10.0;
  });
  EXPECT_TRUE(opt.has_schedule());
  EXPECT_DOUBLE_EQ(opt.learning_rate(), 0.1);
  EXPECT_EQ(seen, 2);
  opt.set_learning_rate(0.5);
  EXPECT_DOUBLE_EQ(opt.learning_rate(), 5.0);
  EXPECT_DOUBLE_EQ(opt.options().lr(), 0.5);
  opt.set_schedule({});
  EXPECT_FALSE(opt.has_schedule());
  EXPECT_DOUBLE_EQ(opt.learning_rate(), 0.5 / 3.0);
}

TEST(Optimizer, ScheduleGivingABadRateIsAnError) {
  SGD<double> opt;
  opt.set_schedule([](double, std::int64_t) { return -1.0; });
  Parameter<double> p("p", Shape{1});
  EXPECT_THROW(opt.step({&p}), Error);
  EXPECT_THROW(opt.set_learning_rate(-0.1), Error);
}

TEST(Schedules, InverseTimeAndExponentialDecay) {
  const LearningRateSchedule inv = inverse_time_decay(0.5);
  EXPECT_DOUBLE_EQ(inv(0.2, 0), 0.2);
  EXPECT_DOUBLE_EQ(inv(0.2, 4), 0.2 / 3.0);
  const LearningRateSchedule smooth = exponential_decay(10, 0.5);
  EXPECT_DOUBLE_EQ(smooth(1.0, 0), 1.0);
  EXPECT_DOUBLE_EQ(smooth(1.0, 5), std::sqrt(0.5));
  EXPECT_DOUBLE_EQ(smooth(1.0, 20), 0.25);
  const LearningRateSchedule stairs = exponential_decay(10, 0.5, /*staircase=*/true);
  EXPECT_DOUBLE_EQ(stairs(1.0, 9), 1.0);
  EXPECT_DOUBLE_EQ(stairs(1.0, 10), 0.5);
  EXPECT_DOUBLE_EQ(stairs(1.0, 29), 0.25);
  EXPECT_THROW(exponential_decay(0, 0.5), Error);
  EXPECT_THROW(inverse_time_decay(-1), Error);
  // The decay option and the inverse-time schedule are the same thing.
  SGD<double> with_option(SGDOptions(0.1).decay(0.5));
  SGD<double> with_schedule(SGDOptions(0.1));
  with_schedule.set_schedule(inverse_time_decay(0.5));
  Parameter<double> p("p", Shape{1}), q("q", Shape{1});
  for (int i = 0; i < 3; ++i) {
    with_option.step({&p});
    with_schedule.step({&q});
    EXPECT_DOUBLE_EQ(with_option.learning_rate(), with_schedule.learning_rate());
  }
}

// ---------------------------------------------------------------------------------------------
// Options, names, configs, clones

TEST(Optimizer, KerasDefaults) {
  EXPECT_DOUBLE_EQ(SGDOptions().lr(), 0.01);
  EXPECT_DOUBLE_EQ(SGDOptions().momentum(), 0.0);
  EXPECT_FALSE(SGDOptions().nesterov());
  EXPECT_DOUBLE_EQ(AdamOptions().lr(), 0.001);
  EXPECT_DOUBLE_EQ(AdamOptions().beta_1(), 0.9);
  EXPECT_DOUBLE_EQ(AdamOptions().beta_2(), 0.999);
  EXPECT_DOUBLE_EQ(AdamOptions().epsilon(), 1e-7);
  EXPECT_DOUBLE_EQ(RMSPropOptions().lr(), 0.001);
  EXPECT_DOUBLE_EQ(RMSPropOptions().rho(), 0.9);
  EXPECT_DOUBLE_EQ(RMSPropOptions().epsilon(), 1e-7);
  EXPECT_FALSE(RMSPropOptions().centered());
  EXPECT_DOUBLE_EQ(AdagradOptions().lr(), 0.001);
  EXPECT_DOUBLE_EQ(AdagradOptions().initial_accumulator_value(), 0.1);
  EXPECT_DOUBLE_EQ(AdagradOptions().epsilon(), 1e-7);
  for (double d : {SGDOptions().decay(), AdamOptions().decay(), RMSPropOptions().decay(), AdagradOptions().decay()})
    EXPECT_EQ(d, 0.0);
}

TEST(Optimizer, NamesAndConfigs) {
  EXPECT_EQ(SGD<float>().name(), "SGD");
  EXPECT_EQ(Adam<float>().name(), "Adam");
  EXPECT_EQ(RMSProp<float>().name(), "RMSProp");
  EXPECT_EQ(Adagrad<float>().name(), "Adagrad");
  EXPECT_EQ(SGD<float>(SGDOptions(0.1).momentum(0.9).nesterov(true)).config(),
            "SGD(lr=0.1, momentum=0.9, nesterov=true, decay=0)");
  EXPECT_EQ(Adam<float>().config(), "Adam(lr=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-07, decay=0)");
  EXPECT_EQ(RMSProp<double>(RMSPropOptions().centered(true).decay(0.01)).config(),
            "RMSProp(lr=0.001, rho=0.9, momentum=0, epsilon=1e-07, centered=true, decay=0.01)");
  EXPECT_EQ(Adagrad<double>().config(), "Adagrad(lr=0.001, initial_accumulator_value=0.1, epsilon=1e-07, decay=0)");
}

TEST(Optimizer, BadOptionsAreErrors) {
  EXPECT_THROW(SGD<float>(SGDOptions(-0.1)), Error);
  EXPECT_THROW(SGD<float>(SGDOptions().momentum(1.0)), Error);
  EXPECT_THROW(SGD<float>(SGDOptions().decay(-1)), Error);
  EXPECT_THROW(Adam<float>(AdamOptions().beta_1(1.0)), Error);
  EXPECT_THROW(Adam<float>(AdamOptions().beta_2(-0.5)), Error);
  EXPECT_THROW(Adam<float>(AdamOptions().epsilon(-1e-7)), Error);
  EXPECT_THROW(Adam<float>(AdamOptions(std::nan(""))), Error);
  EXPECT_THROW(RMSProp<float>(RMSPropOptions().rho(1.5)), Error);
  EXPECT_THROW(RMSProp<float>(RMSPropOptions().momentum(-0.1)), Error);
  EXPECT_THROW(Adagrad<float>(AdagradOptions().initial_accumulator_value(-1)), Error);
  EXPECT_NO_THROW(Adam<float>(AdamOptions(0.0)));  // a zero rate is legitimate (a frozen phase)
}

// Every hyperparameter is checked where the optimizer is made, with a message naming it.
TEST(Optimizer, BadHyperparametersNameThemselves) {
  const double nan = std::nan(""), inf = std::numeric_limits<double>::infinity();
  const auto refused = [](auto make, const std::string& part) {
    try {
      make();
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
      return;
    }
    ADD_FAILURE() << "no faltung::Error; expected one containing: " << part;
  };
  // epsilon 0 turns a weight whose gradient is still 0 into 0 / 0 = NaN: refused, as NaN and < 0.
  for (double eps : {0.0, -1e-7, nan, inf}) {
    refused([&] { Adam<float>(AdamOptions().epsilon(eps)); }, "Adam: epsilon must be finite and > 0");
    refused([&] { RMSProp<float>(RMSPropOptions().epsilon(eps)); }, "RMSProp: epsilon must be finite and > 0");
    refused([&] { Adagrad<float>(AdagradOptions().epsilon(eps)); }, "Adagrad: epsilon must be finite and > 0");
  }
  for (double lr : {-0.1, nan, inf}) {
    refused([&] { SGD<float>(SGDOptions(lr)); }, "SGD: the learning rate must be finite and >= 0");
    refused([&] { Adam<float>(AdamOptions(lr)); }, "Adam: the learning rate must be finite and >= 0");
    refused([&] { RMSProp<float>(RMSPropOptions(lr)); }, "RMSProp: the learning rate must be finite and >= 0");
    refused([&] { Adagrad<float>(AdagradOptions(lr)); }, "Adagrad: the learning rate must be finite and >= 0");
    refused([&] { Adam<float>().set_learning_rate(lr); }, "Adam: the learning rate must be finite and >= 0");
  }
  for (double f : {-0.1, 1.0, nan}) {
    refused([&] { SGD<float>(SGDOptions().momentum(f)); }, "SGD: momentum must be in [0, 1)");
    refused([&] { Adam<float>(AdamOptions().beta_1(f)); }, "Adam: beta_1 must be in [0, 1)");
    refused([&] { Adam<float>(AdamOptions().beta_2(f)); }, "Adam: beta_2 must be in [0, 1)");
    refused([&] { RMSProp<float>(RMSPropOptions().rho(f)); }, "RMSProp: rho must be in [0, 1)");
    refused([&] { RMSProp<float>(RMSPropOptions().momentum(f)); }, "RMSProp: momentum must be in [0, 1)");
  }
  for (double d : {-1.0, nan}) {
    refused([&] { SGD<float>(SGDOptions().decay(d)); }, "SGD: decay must be finite and >= 0");
    refused([&] { Adam<float>(AdamOptions().decay(d)); }, "Adam: decay must be finite and >= 0");
    refused([&] { Adagrad<float>(AdagradOptions().initial_accumulator_value(d)); },
            "Adagrad: initial_accumulator_value must be finite and >= 0");
  }
}

// The square roots of the updates: std::sqrt's bits wherever the block starts and ends (the
// vectors and the scalar tail must agree), in float and in double.
template <class T>
void expect_sqrt_block_is_std_sqrt() {
  std::vector<T> x(detail::kUpdateBlock + 32), out(x.size()), unaligned(x.size() + 1);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = T(0.000123) * T(i * i % 977) + T(i) * T(1e-9);
  x[3] = T(0);
  x[5] = std::numeric_limits<T>::denorm_min();
  for (std::size_t offset : {0, 1, 3, 7, 13}) {
    const std::size_t n = detail::kUpdateBlock - offset;
    detail::sqrt_block(x.data() + offset, out.data(), n);
    detail::sqrt_block(x.data() + offset, unaligned.data() + 1, n);
    for (std::size_t k = 0; k < n; ++k) {
      const T want = std::sqrt(x[offset + k]);
      ASSERT_EQ(std::memcmp(&out[k], &want, sizeof(T)), 0) << "offset " << offset << ", element " << k;
      ASSERT_EQ(std::memcmp(&unaligned[1 + k], &want, sizeof(T)), 0) << "offset " << offset << ", element " << k;
    }
  }
}

TEST(Optimizer, SquareRootsAreStdSqrtBitForBit) {
  expect_sqrt_block_is_std_sqrt<float>();
  expect_sqrt_block_is_std_sqrt<double>();
}

// A tensor large enough to be split over the threads gives the same bits at any thread count.
template <class T>
std::vector<T> after_three_steps(Optimizer<T>& opt, int threads) {
  const int saved = num_threads();
  set_num_threads(threads);
  Parameter<T> w("w", Shape{70001});
  for (std::size_t i = 0; i < w.value.size(); ++i) {
    w.value[i] = T(std::sin(double(i)));
    w.grad[i] = T(std::cos(double(i) * 0.7)) * T(1e-3);
  }
  for (int step = 0; step < 3; ++step) opt.step({&w});
  set_num_threads(saved);
  return std::vector<T>(w.value.begin(), w.value.end());
}

template <class T>
void expect_same_bits_on_any_thread_count() {
  const auto run = [](int threads) {
    Adam<T> adam;
    RMSProp<T> rmsprop(RMSPropOptions().centered(true).momentum(0.5));
    Adagrad<T> adagrad;
    std::vector<T> all = after_three_steps<T>(adam, threads);
    for (Optimizer<T>* opt : std::initializer_list<Optimizer<T>*>{&rmsprop, &adagrad}) {
      const std::vector<T> w = after_three_steps<T>(*opt, threads);
      all.insert(all.end(), w.begin(), w.end());
    }
    return all;
  };
  const std::vector<T> one = run(1);
  for (int threads : {2, 3}) {
    const std::vector<T> other = run(threads);
    ASSERT_EQ(one.size(), other.size());
    EXPECT_EQ(std::memcmp(one.data(), other.data(), one.size() * sizeof(T)), 0) << threads << " threads";
  }
}

TEST(Optimizer, LargeTensorsGiveTheSameBitsOnAnyThreadCount) {
  expect_same_bits_on_any_thread_count<float>();
  expect_same_bits_on_any_thread_count<double>();
}

// What epsilon > 0 protects: a weight that never had a gradient stays put, not NaN.
TEST(Optimizer, AWeightWithoutGradientStaysFinite) {
  Parameter<double> w("w", Shape{2});
  w.value.fill(1.0);
  w.grad.fill(0.0);
  Adam<double> adam(AdamOptions(0.1).epsilon(1e-300));
  RMSProp<double> rmsprop(RMSPropOptions(0.1).epsilon(1e-300));
  Adagrad<double> adagrad(AdagradOptions(0.1).initial_accumulator_value(0).epsilon(1e-300));
  for (Optimizer<double>* opt : std::initializer_list<Optimizer<double>*>{&adam, &rmsprop, &adagrad}) {
    opt->step({&w});
    EXPECT_EQ(w.value[0], 1.0) << opt->name();
    EXPECT_EQ(w.value[1], 1.0) << opt->name();
  }
}

TEST(Optimizer, CloneCopiesStateAndIsIndependent) {
  Adam<double> original(AdamOptions(0.05));
  Problem<double> a;
  for (int i = 0; i < 5; ++i) {
    a.compute_gradients();
    original.step(a.params());
  }
  std::unique_ptr<Optimizer<double>> copy = original.clone();
  EXPECT_EQ(copy->iterations(), 5);
  EXPECT_EQ(copy->config(), original.config());
  Problem<double> b = a;  // same values: both continue from the same point
  for (int i = 0; i < 5; ++i) {
    a.compute_gradients();
    original.step(a.params());
    b.compute_gradients();
    copy->step(b.params());
  }
  // Identical state, identical arithmetic: bitwise equal. A clone without the moments would
  // restart Adam's bias correction and differ in the first digits.
  EXPECT_EQ(std::memcmp(a.w.value.data(), b.w.value.data(), 6 * sizeof(double)), 0);
  EXPECT_EQ(std::memcmp(a.b.value.data(), b.b.value.data(), 3 * sizeof(double)), 0);
  copy->step(b.params());
  EXPECT_EQ(original.iterations(), 10);
  EXPECT_EQ(copy->iterations(), 11);
}

TEST(Optimizer, NanGradientDoesNotCrash) {
  // The training loop detects a diverged loss; the optimizer only must not crash on it.
  Adam<float> opt;
  Parameter<float> p("p", Shape{2});
  p.grad[0] = std::nanf("");
  opt.step({&p});
  EXPECT_TRUE(std::isnan(p.value[0]));
  EXPECT_EQ(p.value[1], 0.0f);
}

}  // namespace
