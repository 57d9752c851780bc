#pragma once
// The floating-point work of one image through a built network, counted from its layers and
// shapes: what a whole-network "% of the FMA peak" divides by.
//
// Counted are the multiply-adds of the convolutions and dense layers, 2 FLOPs each: the work the
// FMA units exist for, and almost all of a CNN's arithmetic. Everything else in a step (bias,
// activations, pooling, dropout, the loss, the optimizer) is a handful of operations per element,
// bound by memory, and left out: it costs time, and the share of the peak shows that time as
// the distance from 100%.
//
// One Conv2D or Dense layer applies its kernel at some positions (output pixels; 1 for Dense),
// each a dot product of the kernel's fan-in:
//   forward          2 * out_channels * positions * fan_in
//   weight gradient  the same count (the correlation of input and output gradient)
//   input gradient   the same count again, but only where the layer computes it: the first
//                    layer has nothing before it to feed (Layer::input_grad_needed() is false),
//                    and PyTorch skips it there too (the input does not require a gradient).
// For the lecture's notebook network this gives about 34.2 MFLOP per image forward and 100.8
// MFLOP per training image.

#include <faltung/layers/conv2d.hpp>
#include <faltung/layers/dense.hpp>
#include <faltung/model/sequential.hpp>

namespace bench {

/// FLOPs per image of a forward pass and of a training step (forward and backward).
struct NetworkFlops {
  double forward = 0;
  double training = 0;
};

/// Multiply-adds per image of one layer's forward pass; 0 for layers without a kernel.
template <class T>
double forward_multiply_adds(faltung::Layer<T>& layer) {
  const faltung::Shape& in = layer.input_shape();
  const faltung::Shape& out = layer.output_shape();
  if (auto* conv = dynamic_cast<faltung::Conv2D<T>*>(&layer)) {
    const faltung::Conv2DOptions& o = conv->options();
    const double fan_in = double(in[0]) * double(o.kernel_h_) * double(o.kernel_w_);
    return double(out.numel()) * fan_in;  // out = (filters, OH, OW): every output value is one dot product
  }
  if (dynamic_cast<faltung::Dense<T>*>(&layer) != nullptr) return double(out.numel()) * double(in.numel());
  return 0;
}

/// The FLOPs per image of a built network (see the top of this file for what is counted).
template <class T>
NetworkFlops count_flops(faltung::Sequential<T>& net) {
  NetworkFlops f;
  for (std::size_t i = 0; i < net.size(); ++i) {
    faltung::Layer<T>& layer = net.layer(i);
    const double pass = 2.0 * forward_multiply_adds(layer);
    f.forward += pass;
    f.training += (layer.input_grad_needed() ? 3.0 : 2.0) * pass;
  }
  return f;
}

}  // namespace bench
