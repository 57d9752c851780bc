#pragma once
// The one seeded random generator. Every random draw in faltung (weight initialisation, dropout
// masks, shuffling) goes through a Random, so one seed fixes a whole training run.
//
// The algorithms are our own (xoshiro256** seeded by splitmix64, uniform floats from the top
// 53 bits, Box-Muller normals, Lemire's bounded integers) rather than <random>'s distributions,
// whose output differs between standard libraries: the same seed gives the same numbers with
// any compiler.

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "faltung/config.hpp"

FALTUNG_BEGIN_NAMESPACE

/// splitmix64: a fast 64-bit mixing function. Also used as a counter-based generator, where
/// parallel code needs random numbers that do not depend on which thread draws them.
inline std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

/// A double in [0, 1) from 64 random bits.
inline double unit_double(std::uint64_t bits) { return double(bits >> 11) * 0x1.0p-53; }

class Random {
 public:
  explicit Random(std::uint64_t seed = 42) { this->seed(seed); }

  void seed(std::uint64_t seed) {
    std::uint64_t x = seed;
    for (auto& s : state_) s = splitmix64(x++);
    has_spare_normal_ = false;
  }

  /// 64 random bits (xoshiro256**).
  std::uint64_t next_u64() {
    const std::uint64_t result = rotl(state_[1] * 5, 7) * 9;
    const std::uint64_t t = state_[1] << 17;
    state_[2] ^= state_[0];
    state_[3] ^= state_[1];
    state_[1] ^= state_[2];
    state_[0] ^= state_[3];
    state_[2] ^= t;
    state_[3] = rotl(state_[3], 45);
    return result;
  }

  /// Uniform in [lo, hi).
  double uniform(double lo = 0.0, double hi = 1.0) { return lo + (hi - lo) * unit_double(next_u64()); }

  /// Normal with the given mean and standard deviation (Box-Muller, the spare value is kept).
  double normal(double mean = 0.0, double stddev = 1.0) {
    if (has_spare_normal_) {
      has_spare_normal_ = false;
      return mean + stddev * spare_normal_;
    }
    double u1 = 0.0;
    while (u1 <= 0.0) u1 = unit_double(next_u64());
    const double u2 = unit_double(next_u64());
    const double r = std::sqrt(-2.0 * std::log(u1));
    const double two_pi = 6.283185307179586476925286766559;
    spare_normal_ = r * std::sin(two_pi * u2);
    has_spare_normal_ = true;
    return mean + stddev * r * std::cos(two_pi * u2);
  }

  /// Uniform integer in [0, n), without modulo bias (Lemire's method). n must be positive.
  std::uint64_t uniform_int(std::uint64_t n) {
    FALTUNG_CHECK(n > 0, "Random::uniform_int: the bound must be positive");
    std::uint64_t x = next_u64();
    __uint128_t m = __uint128_t(x) * n;
    std::uint64_t low = std::uint64_t(m);
    if (low < n) {
      const std::uint64_t threshold = (0 - n) % n;
      while (low < threshold) {
        x = next_u64();
        m = __uint128_t(x) * n;
        low = std::uint64_t(m);
      }
    }
    return std::uint64_t(m >> 64);
  }

  /// Everything that decides the numbers still to come: a checkpoint saves it, and a generator
  /// given it back continues exactly where this one is.
  struct State {
    std::uint64_t words[4];
    double spare_normal;
    bool has_spare_normal;
  };
  State state() const {
    State s{{state_[0], state_[1], state_[2], state_[3]}, spare_normal_, has_spare_normal_};
    return s;
  }
  /// Continues from a state() of some generator. The all-zero state is refused: xoshiro would
  /// then give 0 forever (seed() never makes it).
  void set_state(const State& s) {
    FALTUNG_CHECK(s.words[0] | s.words[1] | s.words[2] | s.words[3], "Random::set_state: the all-zero state");
    for (int i = 0; i < 4; ++i) state_[i] = s.words[i];
    spare_normal_ = s.spare_normal;
    has_spare_normal_ = s.has_spare_normal;
  }

  /// Fisher-Yates shuffle of a whole vector.
  template <class U>
  void shuffle(std::vector<U>& v) {
    for (std::size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[uniform_int(i)]);
  }

 private:
  static std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  std::uint64_t state_[4];
  double spare_normal_ = 0.0;
  bool has_spare_normal_ = false;
};

/// A generator for one stream of a computation seeded once: stream 0, 1, 2, ... of the same seed
/// are independent of each other. A data generator draws each stage (features, label noise,
/// order) from its own stream, so that changing one option changes only what depends on it.
inline Random stream_random(std::uint64_t seed, std::uint64_t stream) {
  return Random(splitmix64(seed ^ (0x6A09E667F3BCC909ull * (stream + 1))));
}

FALTUNG_END_NAMESPACE
