#pragma once
// The optimizer contract, and the base class that keeps what every optimizer shares: the
// learning rate and its schedule, the step counter, and the layout of the parameters.
//
//  step(params)   One update of every parameter with trainable == true, from its .grad.
//                 Parameters with trainable == false are left bitwise unchanged (their state is
//                 kept, so unfreezing later resumes where they stopped). State such as Adam's
//                 moments is indexed by position in `params`, never keyed by address: the same
//                 model gives the same order every time, and a copied model (whose tensors live
//                 elsewhere) keeps training with the copied state. The first step fixes the
//                 number and shapes of the parameters; a later step with another layout (a
//                 different model) is a faltung::Error, until reset(). Nothing is changed when
//                 step() throws. The step counter advances once per step(), never per tensor:
//                 Adam's bias correction depends on it (tiny-dnn advanced it per tensor).
//  learning_rate()  The rate the NEXT step uses: the schedule applied to the base rate at the
//                 current iteration count.
//
// Learning-rate schedules are functions (base_lr, iteration) -> lr, where iteration is the
// number of steps taken before the one that uses the rate: the first step sees iteration 0.
// Every optimizer's `decay` option is Keras's legacy time decay, lr / (1 + decay * iteration),
// and is the schedule used when none is set; set_schedule() replaces it. See schedules.hpp.
//
// Each optimizer's update is one contiguous loop over a tensor's elements, with its state
// allocated at the first step: training allocates nothing in the steady state.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#if defined(__SSE2__) || defined(__AVX__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "faltung/config.hpp"
#include "faltung/kernels/blocks.hpp"
#include "faltung/parameter.hpp"
#include "faltung/tensor.hpp"
#include "faltung/threading.hpp"

FALTUNG_BEGIN_NAMESPACE

/// A learning-rate schedule: the rate for a step, from the base rate and the number of steps
/// taken before it.
using LearningRateSchedule = std::function<double(double base_lr, std::int64_t iteration)>;

namespace detail {
/// Formats a hyperparameter the way Keras's configs print: 0.001, 0.9, 1e-07.
inline std::string format_hyperparameter(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

inline void check_learning_rate(const char* optimizer, double lr) {
  FALTUNG_CHECK(std::isfinite(lr) && lr >= 0, optimizer, ": the learning rate must be finite and >= 0, got ", lr);
}
inline void check_decay(const char* optimizer, double decay) {
  FALTUNG_CHECK(std::isfinite(decay) && decay >= 0, optimizer, ": decay must be finite and >= 0, got ", decay);
}
/// epsilon > 0: with 0, a weight whose gradient has always been 0 gets 0 / 0 = NaN.
inline void check_epsilon(const char* optimizer, double epsilon) {
  FALTUNG_CHECK(std::isfinite(epsilon) && epsilon > 0, optimizer,
                ": epsilon must be finite and > 0 (it keeps a weight whose gradient is still 0 from 0 / 0), got ",
                epsilon);
}
/// A decay factor of a moving average or momentum: in [0, 1).
inline void check_unit_interval(const char* optimizer, const char* what, double v) {
  FALTUNG_CHECK(v >= 0 && v < 1, optimizer, ": ", what, " must be in [0, 1), got ", v);
}
}  // namespace detail

template <class T>
class Optimizer {
 public:
  virtual ~Optimizer() = default;

  /// One update of every trainable parameter from its .grad (see the top of this file).
  virtual void step(const std::vector<Parameter<T>*>& params) {
    check_layout(params);
    const double lr = learning_rate();
    FALTUNG_CHECK(std::isfinite(lr) && lr >= 0, name(), ": the learning-rate schedule gave ", lr, " at iteration ",
                  iterations_, "; it must be finite and >= 0");
    for (std::size_t i = 0; i < params.size(); ++i)
      if (params[i]->trainable) update(i, *params[i], lr);
    ++iterations_;
  }

  /// The learning rate the next step uses, after the schedule.
  double learning_rate() const {
    if (schedule_) return schedule_(base_lr_, iterations_);
    return decay_ > 0 ? base_lr_ / (1.0 + decay_ * double(iterations_)) : base_lr_;
  }
  /// The rate before the schedule: the options' lr, or the last set_learning_rate().
  double base_learning_rate() const { return base_lr_; }
  void set_learning_rate(double lr) {
    detail::check_learning_rate(name().c_str(), lr);
    base_lr_ = lr;
  }
  /// Replaces the schedule, the decay option's included. An empty function restores the
  /// default: the decay option's time decay, or a constant rate when decay is 0.
  void set_schedule(LearningRateSchedule schedule) { schedule_ = std::move(schedule); }
  bool has_schedule() const { return bool(schedule_); }

  /// The number of steps taken.
  std::int64_t iterations() const { return iterations_; }

  /// Forgets the state, the parameter layout and the step count: the next step starts afresh,
  /// on any model. The learning rate and schedule are kept.
  void reset() {
    shapes_.clear();
    has_layout_ = false;
    iterations_ = 0;
  }

  // Checkpoints (io/training_state.hpp) save and restore everything above and the state.

  /// One kind of state tensor ("m", "velocity", ...), one tensor per parameter position.
  using StateSlot = std::pair<std::string, std::vector<Tensor<T>>>;

  /// The parameter shapes fixed by the first step; empty before it (and after reset()).
  const std::vector<Shape>& layout() const { return shapes_; }

  /// A copy of the state tensors by kind, in a fixed order: {"m", ...}, {"v", ...} for Adam;
  /// none for plain SGD and before the first step.
  std::vector<StateSlot> state() const {
    std::vector<StateSlot> out;
    if (!has_layout_) return out;
    for (const auto& slot : const_cast<Optimizer*>(this)->state_slots()) out.emplace_back(slot.first, *slot.second);
    return out;
  }

  /// Makes this optimizer continue where one of the same kind and options stopped: its step
  /// count, base learning rate, layout (empty: no step yet) and state(). Checks everything
  /// first (the slots' kinds, counts and shapes against what this optimizer keeps for that
  /// layout) and changes nothing when it throws.
  void restore(std::int64_t iterations, double base_lr, const std::vector<Shape>& layout,
               const std::vector<StateSlot>& slots) {
    FALTUNG_CHECK(iterations >= 0, name(), ": a step count of ", iterations);
    detail::check_learning_rate(name().c_str(), base_lr);
    FALTUNG_CHECK(!layout.empty() || (iterations == 0 && slots.empty()), name(), ": ", iterations,
                  " steps and ", slots.size(), " kinds of state, but no parameter layout");
    std::unique_ptr<Optimizer<T>> fresh = clone();  // what this optimizer keeps for `layout`
    std::vector<std::pair<std::string, std::vector<Tensor<T>>*>> expected;
    if (!layout.empty()) {
      fresh->init_state(layout);
      expected = fresh->state_slots();
    }
    auto kinds = [](const auto& v) {
      std::string s;
      for (const auto& slot : v) s += (s.empty() ? "" : ", ") + slot.first;
      return s.empty() ? std::string("none") : s;
    };
    FALTUNG_CHECK(slots.size() == expected.size(), name(), ": the saved state has the kinds (", kinds(slots),
                  "), but this ", config(), " keeps (", kinds(expected), ")");
    for (std::size_t k = 0; k < slots.size(); ++k) {
      FALTUNG_CHECK(slots[k].first == expected[k].first && slots[k].second.size() == layout.size(), name(),
                    ": the saved state has the kinds (", kinds(slots), ") with ", slots[k].second.size(),
                    " tensors, but this ", config(), " keeps (", kinds(expected), ") for ", layout.size(),
                    " parameters");
      for (std::size_t i = 0; i < layout.size(); ++i)
        FALTUNG_CHECK(slots[k].second[i].shape() == layout[i], name(), ": saved state '", slots[k].first, "' ", i,
                      " has shape ", slots[k].second[i].shape(), ", but parameter ", i, " has shape ", layout[i]);
    }
    if (layout.empty()) {
      reset();
    } else {
      init_state(layout);
      auto mine = state_slots();
      for (std::size_t k = 0; k < slots.size(); ++k) *mine[k].second = slots[k].second;
      shapes_ = layout;
      has_layout_ = true;
    }
    iterations_ = iterations;
    base_lr_ = base_lr;
  }

  /// A deep copy, state and step count included.
  virtual std::unique_ptr<Optimizer<T>> clone() const = 0;
  /// The optimizer's kind: "SGD", "Adam", "RMSProp", "Adagrad".
  virtual std::string name() const = 0;
  /// Name and hyperparameters for tables and logs: "Adam(lr=0.001, beta_1=0.9, ...)".
  virtual std::string config() const {
    return name() + "(lr=" + detail::format_hyperparameter(base_lr_) +
           ", decay=" + detail::format_hyperparameter(decay_) + ")";
  }

 protected:
  Optimizer(double lr, double decay) : base_lr_(lr), decay_(decay) {}
  Optimizer(const Optimizer&) = default;
  Optimizer& operator=(const Optimizer&) = default;

  /// Allocates the state for parameters of these shapes (one entry per position, frozen
  /// parameters included), replacing any earlier state. Called by the first step after
  /// construction or reset().
  virtual void init_state(const std::vector<Shape>& shapes) = 0;
  /// Updates parameter `index` (trainable, grad of value's shape) with learning rate lr.
  /// iterations() is the number of steps before this one.
  virtual void update(std::size_t index, Parameter<T>& p, double lr) = 0;

  /// The state tensors by kind, after init_state: what state() copies and restore() fills.
  /// An optimizer with state overrides it.
  virtual std::vector<std::pair<std::string, std::vector<Tensor<T>>*>> state_slots() { return {}; }

  double decay() const { return decay_; }

 private:
  /// Checks everything before anything changes, so a step that throws leaves no half update.
  void check_layout(const std::vector<Parameter<T>*>& params) {
    for (std::size_t i = 0; i < params.size(); ++i) {
      FALTUNG_CHECK(params[i] != nullptr, name(), ": parameter ", i, " is a null pointer");
      const Parameter<T>& p = *params[i];
      FALTUNG_CHECK(!p.trainable || p.grad.shape() == p.value.shape(), name(), ": parameter ", i, " '", p.name,
                    "' has value ", p.value.shape(), " but gradient ", p.grad.shape());
    }
    if (!has_layout_) {
      shapes_.clear();
      for (const Parameter<T>* p : params) shapes_.push_back(p->value.shape());
      init_state(shapes_);
      has_layout_ = true;
      return;
    }
    FALTUNG_CHECK(params.size() == shapes_.size(), name(), ": step() got ", params.size(),
                  " parameters, but earlier steps had ", shapes_.size(),
                  " (another model? call reset() to reuse an optimizer)");
    for (std::size_t i = 0; i < params.size(); ++i)
      FALTUNG_CHECK(params[i]->value.shape() == shapes_[i], name(), ": parameter ", i, " '", params[i]->name,
                    "' has shape ", params[i]->value.shape(), ", but ", shapes_[i],
                    " in earlier steps (another model? call reset() to reuse an optimizer)");
  }

  double base_lr_;
  double decay_;
  LearningRateSchedule schedule_;
  std::int64_t iterations_ = 0;
  std::vector<Shape> shapes_;  // the layout fixed by the first step, one shape per position
  bool has_layout_ = false;
};

namespace detail {
/// The update loops run in blocks of this many elements: each block's square roots go through a
/// buffer of this size on the stack, small enough to stay in L1 between the loops.
constexpr std::size_t kUpdateBlock = 256;

/// out[k] = sqrt(x[k]) for k < n, vectorised and with std::sqrt's bits. A loop of std::sqrt is
/// not vectorised: the call may set errno (GCC's default -fmath-errno), so the compiler keeps it
/// scalar with a branch per element. Eigen's packet sqrt is no substitute: under
/// EIGEN_FAST_MATH, Eigen's default, it is an approximation (rsqrt and a Newton step) for float,
/// and for double with AVX-512, applied to the elements Eigen reaches in whole packets, which
/// depends on the buffer's address; the same step then gave other bits on another thread or in
/// another build. The square-root instructions are correctly rounded, as std::sqrt is, so any
/// split between vectors and the scalar tail gives the same bits.
template <class T>
void sqrt_block(const T* x, T* out, std::size_t n) {
  std::size_t k = 0;
#if defined(__AVX512F__)
  if constexpr (std::is_same<T, float>::value)
    for (; k + 16 <= n; k += 16) _mm512_storeu_ps(out + k, _mm512_sqrt_ps(_mm512_loadu_ps(x + k)));
  if constexpr (std::is_same<T, double>::value)
    for (; k + 8 <= n; k += 8) _mm512_storeu_pd(out + k, _mm512_sqrt_pd(_mm512_loadu_pd(x + k)));
#elif defined(__AVX__)
  if constexpr (std::is_same<T, float>::value)
    for (; k + 8 <= n; k += 8) _mm256_storeu_ps(out + k, _mm256_sqrt_ps(_mm256_loadu_ps(x + k)));
  if constexpr (std::is_same<T, double>::value)
    for (; k + 4 <= n; k += 4) _mm256_storeu_pd(out + k, _mm256_sqrt_pd(_mm256_loadu_pd(x + k)));
#elif defined(__SSE2__)
  if constexpr (std::is_same<T, float>::value)
    for (; k + 4 <= n; k += 4) _mm_storeu_ps(out + k, _mm_sqrt_ps(_mm_loadu_ps(x + k)));
  if constexpr (std::is_same<T, double>::value)
    for (; k + 2 <= n; k += 2) _mm_storeu_pd(out + k, _mm_sqrt_pd(_mm_loadu_pd(x + k)));
#endif
  for (; k < n; ++k) out[k] = std::sqrt(x[k]);
}

/// Runs body(k0, k1, root) over [0, n) in blocks of kUpdateBlock elements, root being a
/// kUpdateBlock scratch buffer of the calling thread. The blocks are independent (every update
/// is element-wise), so large tensors spread them over the threads, with bitwise the same result
/// for any thread count; small ones (every bias, every layer of a small MLP) stay on the calling
/// thread without entering a parallel region, which would cost more than their update.
template <class T, class Body>
void for_each_update_block(std::size_t n, Body&& body) {
  const std::size_t blocks = (n + kUpdateBlock - 1) / kUpdateBlock;
  kernels::for_each_block(blocks, n, kernels::kMinElementsPerThread, [&](std::size_t first, std::size_t last) {
    T root[kUpdateBlock];
    for (std::size_t blk = first; blk < last; ++blk) {
      const std::size_t k0 = blk * kUpdateBlock;
      body(k0, std::min(n, k0 + kUpdateBlock), root);
    }
  });
}

/// One zero tensor per shape: the state of a moving average or a velocity.
template <class T>
void zero_state(std::vector<Tensor<T>>& state, const std::vector<Shape>& shapes, T value = T(0)) {
  state.resize(shapes.size());
  for (std::size_t i = 0; i < shapes.size(); ++i) {
    state[i].resize(shapes[i]);
    state[i].fill(value);
  }
}
}  // namespace detail

FALTUNG_END_NAMESPACE
