#!/usr/bin/python3
"""Writes tests/reference/layer_reference.inc: layer outputs and gradients computed with PyTorch.

    /usr/bin/python3 tests/reference/make_layer_reference.py    # from the repository root

PyTorch is the oracle; nothing of faltung is used here. Every case holds its configuration, its
inputs (arange-style, so a reader can recompute them by hand), a fixed upstream gradient dy, and
what faltung must produce: y, dx, and for layers with weights dW and db (gradients of
L = sum(y * dy), i.e. backward() called with dy on freshly zeroed gradients).

  * Conv2D    torch.nn.functional.conv2d on NCHW with weights (F, C, KH, KW). 'same' padding is
              TensorFlow's rule (out = ceil(in / s), total pad max((out - 1) s + k - in, 0), the
              smaller half before), applied with F.pad before a padding-free conv2d, because
              PyTorch's padding='same' is symmetric and refuses stride 2. Explicit padding is
              conv2d's own padding=(ph, pw). A fused activation is applied after the bias.
  * MaxPool2D F.max_pool2d; 'same' pads with -inf through F.pad first (Keras's rule). Most cases
              use distinct input values; one uses arange % 7 with ties, where the first maximum in
              row-major order wins (as in PyTorch's CPU kernel and faltung's).
  * Dense     y = f(x @ W + b) with W stored (in, units), as Keras and faltung store it.
  * Activations (relu, leaky_relu, sigmoid, tanh, softmax over axis 1) on (N, F) and (N, C, H, W).

Inputs:   x  = (arange(n) % 7 - 3) / 4      weights: w = (arange(m) % 5 - 2) / 8
          b  = (arange(f) % 3 - 1) / 2      dy = (arange(k) % 11 - 5) / 8
(the activation cases use wider inputs, x = (arange(n) % 13 - 6) / 2, and one row of extremes).
All of these are exact in binary, so the linear layers' references are exact in double.
"""

import math
import os

import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)


def arange_mod(n, mod, shift, scale):
    return (torch.arange(n, dtype=torch.float64) % mod - shift) / scale


def x_values(n):
    return arange_mod(n, 7, 3, 4)


def w_values(n):
    return arange_mod(n, 5, 2, 8)


def b_values(n):
    return arange_mod(n, 3, 1, 2)


def dy_values(n):
    return arange_mod(n, 11, 5, 8)


def distinct_values(n):
    """n distinct values: a permutation of arange(n) (37 is coprime to every n used), centred."""
    assert math.gcd(37, n) == 1
    return ((torch.arange(n, dtype=torch.float64) * 37) % n - n // 2) / 8


def same_padding(size, window, stride):
    out = (size + stride - 1) // stride
    total = max((out - 1) * stride + window - size, 0)
    return total // 2, total - total // 2


def activate(z, kind, alpha):
    if kind == "linear":
        return z
    if kind == "relu":
        return torch.relu(z)
    if kind == "leaky_relu":
        return F.leaky_relu(z, negative_slope=alpha)
    if kind == "sigmoid":
        return torch.sigmoid(z)
    if kind == "tanh":
        return torch.tanh(z)
    if kind == "softmax":
        return torch.softmax(z, dim=1)
    raise ValueError(kind)


# ---------------------------------------------------------------------------------------------
# Cases


def conv_case(name, n, c, h, w, f, kh, kw, sh=1, sw=1, padding="valid", ph=0, pw=0, bias=True,
              activation="linear", alpha=0.3):
    x = x_values(n * c * h * w).reshape(n, c, h, w).requires_grad_()
    weight = w_values(f * c * kh * kw).reshape(f, c, kh, kw).requires_grad_()
    b = b_values(f).requires_grad_() if bias else None
    if padding == "same":
        top, bottom = same_padding(h, kh, sh)
        left, right = same_padding(w, kw, sw)
        z = F.conv2d(F.pad(x, (left, right, top, bottom)), weight, b, stride=(sh, sw))
    elif padding == "explicit":
        z = F.conv2d(x, weight, b, stride=(sh, sw), padding=(ph, pw))
    else:
        z = F.conv2d(x, weight, b, stride=(sh, sw))
    y = activate(z, activation, alpha)
    dy = dy_values(y.numel()).reshape(y.shape)
    y.backward(dy)
    return dict(kind="conv", name=name, config=dict(
        batch=n, channels=c, height=h, width=w, filters=f, kernel_h=kh, kernel_w=kw, stride_h=sh,
        stride_w=sw, padding=padding, pad_h=ph, pad_w=pw, use_bias=bias, activation=activation,
        alpha=alpha), out_shape=list(y.shape),
        x=x.detach(), w=weight.detach(), b=b.detach() if bias else torch.zeros(0), dy=dy,
        y=y.detach(), dx=x.grad, dw=weight.grad, db=b.grad if bias else torch.zeros(0))


def pool_case(name, n, c, h, w, ph, pw, sh=None, sw=None, padding="valid", ties=False):
    sh = sh or ph
    sw = sw or pw
    values = x_values(n * c * h * w) if ties else distinct_values(n * c * h * w)
    x = values.reshape(n, c, h, w).requires_grad_()
    if padding == "same":
        top, bottom = same_padding(h, ph, sh)
        left, right = same_padding(w, pw, sw)
        y = F.max_pool2d(F.pad(x, (left, right, top, bottom), value=-math.inf), (ph, pw), (sh, sw))
    else:
        y = F.max_pool2d(x, (ph, pw), (sh, sw))
    dy = dy_values(y.numel()).reshape(y.shape)
    y.backward(dy)
    return dict(kind="pool", name=name, config=dict(
        batch=n, channels=c, height=h, width=w, pool_h=ph, pool_w=pw, stride_h=sh, stride_w=sw,
        padding=padding), out_shape=list(y.shape), x=x.detach(), dy=dy, y=y.detach(), dx=x.grad)


def dense_case(name, n, fin, units, bias=True, activation="linear", alpha=0.3):
    x = x_values(n * fin).reshape(n, fin).requires_grad_()
    weight = w_values(fin * units).reshape(fin, units).requires_grad_()  # (in, units), as Keras
    b = b_values(units).requires_grad_() if bias else None
    z = x @ weight
    if bias:
        z = z + b
    y = activate(z, activation, alpha)
    dy = dy_values(y.numel()).reshape(y.shape)
    y.backward(dy)
    return dict(kind="dense", name=name, config=dict(
        batch=n, in_features=fin, units=units, use_bias=bias, activation=activation, alpha=alpha),
        x=x.detach(), w=weight.detach(), b=b.detach() if bias else torch.zeros(0), dy=dy,
        y=y.detach(), dx=x.grad, dw=weight.grad, db=b.grad if bias else torch.zeros(0))


def activation_case(name, shape, activation, alpha=0.3, extreme=False):
    n = math.prod(shape)
    x = arange_mod(n, 13, 6, 2)
    if extreme:  # saturation: no overflow, no NaN, exact 0 / 1 where the true value rounds there
        row = torch.tensor([-1000.0, -50.0, -20.0, 0.0, 20.0, 50.0, 1000.0, -0.5])
        x = row.repeat(n // row.numel() + 1)[:n]
    x = x.reshape(shape).requires_grad_()
    y = activate(x, activation, alpha)
    dy = dy_values(n).reshape(shape)
    y.backward(dy)
    return dict(kind="activation", name=name, config=dict(activation=activation, alpha=alpha),
                shape=list(shape), x=x.detach(), dy=dy, y=y.detach(), dx=x.grad)


def all_cases():
    conv = [
        conv_case("conv_c1_valid_s1", 2, 1, 5, 5, 2, 3, 3),
        conv_case("conv_c3_same_s2_asymmetric", 2, 3, 6, 8, 4, 3, 3, 2, 2, "same"),
        conv_case("conv_c3_same_s2_symmetric", 1, 3, 7, 7, 2, 3, 3, 2, 2, "same"),
        conv_case("conv_c2_same_s1_kernel_4x2", 2, 2, 5, 6, 3, 4, 2, 1, 1, "same"),
        conv_case("conv_c3_explicit_2x3_stride_1x2_nobias", 1, 3, 5, 6, 2, 2, 3, 1, 2, "explicit", 1, 2,
                  bias=False),
        conv_case("conv_c1_kernel_1x1_s2", 2, 1, 7, 5, 3, 1, 1, 2, 2),
        conv_case("conv_c3_valid_s2_odd", 2, 3, 9, 7, 2, 3, 3, 2, 2, bias=False),
        conv_case("conv_c1_explicit_p1_s1", 1, 1, 4, 4, 2, 3, 3, 1, 1, "explicit", 1, 1),
        conv_case("conv_c3_same_s1_relu", 2, 3, 5, 5, 2, 3, 3, 1, 1, "same", activation="relu"),
        conv_case("conv_c2_valid_s1_tanh", 1, 2, 4, 5, 3, 2, 2, activation="tanh"),
        conv_case("conv_c2_same_s2_softmax", 2, 2, 5, 5, 3, 3, 3, 2, 2, "same", activation="softmax"),
    ]
    pool = [
        pool_case("pool_2x2_valid", 2, 2, 4, 6, 2, 2),
        pool_case("pool_3x3_s2_valid_odd", 1, 2, 7, 9, 3, 3, 2, 2),
        pool_case("pool_2x2_same_odd", 2, 1, 5, 7, 2, 2, padding="same"),
        pool_case("pool_3x3_s1_same", 1, 2, 4, 5, 3, 3, 1, 1, padding="same"),
        pool_case("pool_2x3_s1x2_valid", 2, 1, 5, 7, 2, 3, 1, 2),
        pool_case("pool_3x2_s2x1_same", 1, 3, 5, 4, 3, 2, 2, 1, padding="same"),
        pool_case("pool_2x2_valid_ties", 2, 2, 4, 6, 2, 2, ties=True),
        pool_case("pool_3x3_s2_same_ties", 1, 2, 5, 6, 3, 3, 2, 2, padding="same", ties=True),
    ]
    dense = [
        dense_case("dense_linear", 3, 5, 4),
        dense_case("dense_nobias", 2, 6, 3, bias=False),
        dense_case("dense_batch1", 1, 7, 5),
        dense_case("dense_relu", 4, 5, 3, activation="relu"),
        dense_case("dense_leaky_relu", 4, 5, 3, activation="leaky_relu", alpha=0.3),
        dense_case("dense_leaky_relu_0_1", 3, 4, 3, activation="leaky_relu", alpha=0.1),
        dense_case("dense_sigmoid", 3, 5, 4, activation="sigmoid"),
        dense_case("dense_tanh", 3, 5, 4, activation="tanh"),
        dense_case("dense_softmax", 3, 5, 4, activation="softmax"),
        dense_case("dense_softmax_nobias", 2, 4, 6, bias=False, activation="softmax"),
    ]
    act = []
    for kind, alpha in [("relu", 0.3), ("leaky_relu", 0.3), ("leaky_relu", 0.05), ("sigmoid", 0.3),
                        ("tanh", 0.3), ("softmax", 0.3)]:
        suffix = kind if kind != "leaky_relu" or alpha == 0.3 else "leaky_relu_0_05"
        act.append(activation_case(f"{suffix}_nf", (3, 5), kind, alpha))
        act.append(activation_case(f"{suffix}_nchw", (2, 3, 2, 3), kind, alpha))
    for kind in ["sigmoid", "tanh", "softmax"]:
        act.append(activation_case(f"{kind}_extreme", (2, 8), kind, extreme=True))
    act.append(activation_case("softmax_nchw_extreme", (2, 4, 1, 2), "softmax", extreme=True))
    return conv, pool, dense, act


# ---------------------------------------------------------------------------------------------
# Output


def fmt_double(v):
    v = float(v)
    if math.isinf(v):
        return "-INFINITY" if v < 0 else "INFINITY"
    r = repr(v)
    return r if ("." in r or "e" in r or "n" in r) else r + ".0"


def fmt_array(t):
    values = [fmt_double(v) for v in t.reshape(-1).tolist()]
    if not values:
        return "{}"
    lines, line = [], ""
    for v in values:
        if line and len(line) + len(v) + 2 > 96:
            lines.append(line + ",")
            line = ""
        line += (", " if line else "") + v
    lines.append(line)
    return "{\n         " + "\n         ".join(lines) + "}"


def fmt_bool(b):
    return "true" if b else "false"


def fmt_sizes(v):
    return "{" + ", ".join(str(int(s)) for s in v) + "}"


def emit(out, case):
    c = case["config"]
    out.append("    {")
    out.append(f'     "{case["name"]}",')
    if case["kind"] == "conv":
        out.append(f'     {c["batch"]}, {c["channels"]}, {c["height"]}, {c["width"]}, {c["filters"]}, '
                   f'{c["kernel_h"]}, {c["kernel_w"]}, {c["stride_h"]}, {c["stride_w"]}, '
                   f'"{c["padding"]}", {c["pad_h"]}, {c["pad_w"]}, {fmt_bool(c["use_bias"])}, '
                   f'"{c["activation"]}", {fmt_double(c["alpha"])},')
        out.append(f'     {fmt_sizes(case["out_shape"])},')
        names = ["x", "w", "b", "dy", "y", "dx", "dw", "db"]
    elif case["kind"] == "pool":
        out.append(f'     {c["batch"]}, {c["channels"]}, {c["height"]}, {c["width"]}, {c["pool_h"]}, '
                   f'{c["pool_w"]}, {c["stride_h"]}, {c["stride_w"]}, "{c["padding"]}",')
        out.append(f'     {fmt_sizes(case["out_shape"])},')
        names = ["x", "dy", "y", "dx"]
    elif case["kind"] == "dense":
        out.append(f'     {c["batch"]}, {c["in_features"]}, {c["units"]}, {fmt_bool(c["use_bias"])}, '
                   f'"{c["activation"]}", {fmt_double(c["alpha"])},')
        names = ["x", "w", "b", "dy", "y", "dx", "dw", "db"]
    else:
        out.append(f'     "{c["activation"]}", {fmt_double(c["alpha"])}, {fmt_sizes(case["shape"])},')
        names = ["x", "dy", "y", "dx"]
    for i, key in enumerate(names):
        sep = "," if i + 1 < len(names) else ""
        out.append(f"     /* {key} */ {fmt_array(case[key])}{sep}")
    out.append("    },")


def main():
    conv, pool, dense, act = all_cases()
    out = [
        f"// Generated by tests/reference/make_layer_reference.py with PyTorch {torch.__version__}. Do not edit;",
        "// rerun the script instead. Tensors are row-major (NCHW; Conv2D weights (F, C, KH, KW); Dense",
        "// weights (in, units)). dw and db are the gradients after one backward() with dy on zeroed",
        "// gradients; dx is dL/dx for L = sum(y * dy).",
        "",
        "namespace layer_reference {",
        "",
        "struct ConvCase {",
        "  const char* name;",
        "  std::size_t batch, channels, height, width, filters, kernel_h, kernel_w, stride_h, stride_w;",
        '  const char* padding;  // "valid", "same" (TensorFlow\'s rule) or "explicit" (pad_h, pad_w each side)',
        "  std::size_t pad_h, pad_w;",
        "  bool use_bias;",
        '  const char* activation;  // fused: "linear", "relu", "tanh", "softmax", ...',
        "  double alpha;            // leaky_relu's slope",
        "  std::vector<std::size_t> out_shape;  // (N, F, OH, OW)",
        "  std::vector<double> x, w, b, dy, y, dx, dw, db;",
        "};",
        "",
        "struct PoolCase {",
        "  const char* name;",
        "  std::size_t batch, channels, height, width, pool_h, pool_w, stride_h, stride_w;",
        '  const char* padding;  // "valid" or "same" (padded with -inf)',
        "  std::vector<std::size_t> out_shape;  // (N, C, OH, OW)",
        "  std::vector<double> x, dy, y, dx;",
        "};",
        "",
        "struct DenseCase {",
        "  const char* name;",
        "  std::size_t batch, in_features, units;",
        "  bool use_bias;",
        "  const char* activation;",
        "  double alpha;",
        "  std::vector<double> x, w, b, dy, y, dx, dw, db;",
        "};",
        "",
        "struct ActivationCase {",
        "  const char* name;",
        '  const char* activation;  // "relu", "leaky_relu", "sigmoid", "tanh", "softmax" (over axis 1)',
        "  double alpha;",
        "  std::vector<std::size_t> shape;",
        "  std::vector<double> x, dy, y, dx;",
        "};",
        "",
    ]
    for type_name, var, cases in [("ConvCase", "conv_cases", conv), ("PoolCase", "pool_cases", pool),
                                  ("DenseCase", "dense_cases", dense),
                                  ("ActivationCase", "activation_cases", act)]:
        out.append(f"inline const std::vector<{type_name}> {var} = {{")
        for case in cases:
            emit(out, case)
        out.append("};")
        out.append("")
    out.append("}  // namespace layer_reference")
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "layer_reference.inc")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")
    print(f"wrote {path}: {len(conv)} conv, {len(pool)} pool, {len(dense)} dense, {len(act)} activation cases")


if __name__ == "__main__":
    main()
