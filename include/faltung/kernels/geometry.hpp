#pragma once
// Sliding-window geometry shared by convolution and pooling: output size and padding for the
// 'valid', 'same' and explicit padding modes.

#include <cstddef>
#include <string>

#include "faltung/config.hpp"
#include "faltung/sizes.hpp"

FALTUNG_BEGIN_NAMESPACE

/// How a sliding window treats the border.
///   Valid: no padding; the window stays inside the input. out = floor((in - k) / s) + 1.
///   Same:  Keras/TensorFlow rule: out = ceil(in / s), padded with the total
///          max((out - 1) * s + k - in, 0), the smaller half before and the larger after.
///   Explicit: the given number of rows/columns on both sides (PyTorch's `padding=p`).
enum class Padding { Valid, Same, Explicit };
inline constexpr Padding Valid = Padding::Valid;
inline constexpr Padding Same = Padding::Same;

inline const char* to_string(Padding p) {
  switch (p) {
    case Padding::Valid: return "valid";
    case Padding::Same: return "same";
    case Padding::Explicit: return "explicit";
  }
  return "?";
}

/// One spatial axis of a sliding window: input size, window, stride, padding before, output size.
struct WindowAxis {
  std::size_t in = 0, window = 0, stride = 1, pad_before = 0, out = 0;
};

/// Computes the output size and leading padding of one axis. `explicit_pad` is used only with
/// Padding::Explicit. Throws when the window does not fit.
inline WindowAxis window_axis(std::size_t in, std::size_t window, std::size_t stride, Padding mode,
                              std::size_t explicit_pad, const char* what) {
  FALTUNG_CHECK(window >= 1 && stride >= 1, what, ": window and stride must be positive");
  WindowAxis a;
  a.in = in;
  a.window = window;
  a.stride = stride;
  switch (mode) {
    case Padding::Valid:
      FALTUNG_CHECK(in >= window, what, ": window ", window, " is larger than the input size ", in,
                    " with 'valid' padding");
      a.out = (in - window) / stride + 1;
      break;
    case Padding::Same: {
      FALTUNG_CHECK(in >= 1, what, ": empty input");
      a.out = checked_add(in, stride - 1, what, ": input plus stride") / stride;
      const std::size_t needed = checked_add(checked_mul(a.out - 1, stride, what, ": the windows' extent"), window,
                                             what, ": the windows' extent");
      a.pad_before = needed > in ? (needed - in) / 2 : 0;
      break;
    }
    case Padding::Explicit: {
      const std::size_t padded =
          checked_add(in, checked_mul(2, explicit_pad, what, ": padding"), what, ": the padded input size");
      FALTUNG_CHECK(padded >= window, what, ": window ", window, " is larger than the padded input ", padded);
      a.pad_before = explicit_pad;
      a.out = (padded - window) / stride + 1;
      break;
    }
  }
  return a;
}

FALTUNG_END_NAMESPACE
