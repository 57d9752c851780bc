#!/usr/bin/python3
"""Writes tests/reference/optimizer_reference.inc: reference trajectories of faltung's
optimizers, computed with PyTorch's optimizers as the oracle.

    /usr/bin/python3 tests/reference/make_optimizer_reference.py    # from the repository root

The problem, identical in tests/test_optimizers.cpp (which computes the gradient in closed form,
while this script lets autograd compute it):

    parameters  W (2, 3), b (3)
    P = tanh(X W + b)                      X (4, 2), Y (4, 3) fixed data below
    L = sum((P - Y)^2) / 8 + 0.025 * sum(W^4)

faltung implements Keras's formulas. PyTorch computes the same updates once these are bridged:
  * Adam: PyTorch adds epsilon to sqrt(v) / sqrt(1 - beta_2^t), Keras to sqrt(v). Setting
    PyTorch's eps to eps_keras / sqrt(1 - beta_2^t) before step t gives Keras's update exactly.
  * Learning-rate decay and schedules: param_group['lr'] is set before every step.
  * Momentum under a changing rate: Keras keeps the rate inside the velocity
    (v = m v - lr_t g), PyTorch outside (buf = m buf + g; w -= lr_t buf). Then -v = lr_t buf, so
    scaling PyTorch's momentum buffer by lr_{t-1} / lr_t before step t gives Keras's update
    (for SGD, Nesterov SGD, and RMSprop's momentum alike).
  * SGD, RMSprop (epsilon outside the root, centred or not) and Adagrad (with
    initial_accumulator_value) otherwise match Keras's formulas as they stand.

Every case is first checked to be well conditioned: relative noise of 1e-12 in the gradients
must move its trajectory by less than 1e-9, so the test's tolerance measures formulas, not luck.
"""

import math
import os

import torch

STEPS = 100
# Steps whose parameters are recorded: the first ten, where a wrong formula shows most plainly,
# then every tenth, where an error that accumulates shows.
RECORDED = list(range(1, 11)) + list(range(20, STEPS + 1, 10))

X = [[0.5, -1.0], [1.5, 0.3], [-0.7, 0.8], [0.2, 1.1]]
Y = [[0.3, -0.5, 0.8], [-0.2, 0.6, 0.1], [0.9, -0.4, -0.6], [0.0, 0.5, -0.3]]
W0 = [[0.1, -0.2, 0.3], [-0.4, 0.5, -0.6]]
B0 = [0.05, -0.1, 0.15]


def schedule_exponential(base_lr, iteration):
    """The schedule the test installs with set_schedule: base_lr * 0.97^iteration."""
    return base_lr * 0.97 ** iteration


# name: (torch class, keras-style options). Options not given take Keras's defaults. RMSProp's
# cases use epsilon >= 1e-3: with 1e-7 this problem's small gradient components, divided by
# their own tiny root mean square, amplify rounding (check_well_conditioned refuses them).
CASES = [
    ("sgd", "SGD", dict(lr=0.1)),
    ("sgd_momentum", "SGD", dict(lr=0.05, momentum=0.9)),
    ("sgd_nesterov", "SGD", dict(lr=0.05, momentum=0.9, nesterov=True)),
    ("sgd_momentum_decay", "SGD", dict(lr=0.05, momentum=0.9, decay=0.05)),
    ("adam", "Adam", dict(lr=0.02)),
    ("adam_defaults", "Adam", dict()),
    ("adam_epsilon", "Adam", dict(lr=0.02, beta_1=0.8, beta_2=0.99, epsilon=0.01)),
    ("adam_decay", "Adam", dict(lr=0.02, decay=0.02)),
    ("adam_schedule", "Adam", dict(lr=0.02, schedule=True)),
    ("adam_frozen_bias", "Adam", dict(lr=0.02, freeze_bias=True)),
    ("rmsprop", "RMSProp", dict(lr=0.01, epsilon=1e-2)),
    ("rmsprop_momentum", "RMSProp", dict(lr=0.005, momentum=0.8, epsilon=1e-2)),
    ("rmsprop_centered", "RMSProp", dict(lr=0.002, rho=0.8, centered=True, epsilon=1e-3)),
    ("rmsprop_centered_momentum_decay", "RMSProp",
     dict(lr=0.005, momentum=0.8, centered=True, epsilon=1e-3, decay=0.01)),
    ("adagrad", "Adagrad", dict(lr=0.1)),
    ("adagrad_decay", "Adagrad", dict(lr=0.1, initial_accumulator_value=0.2, epsilon=1e-2, decay=0.05)),
]

KERAS_DEFAULTS = {
    "SGD": dict(lr=0.01, momentum=0.0, nesterov=False),
    "Adam": dict(lr=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7),
    "RMSProp": dict(lr=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False),
    "Adagrad": dict(lr=0.001, initial_accumulator_value=0.1, epsilon=1e-7),
}


def loss_of(w, b, x, y):
    p = torch.tanh(x @ w + b)
    return ((p - y) ** 2).sum() / 8 + 0.025 * (w ** 4).sum()


def make_torch_optimizer(kind, o, params):
    if kind == "SGD":
        return torch.optim.SGD(params, lr=o["lr"], momentum=o["momentum"], nesterov=o["nesterov"])
    if kind == "Adam":
        return torch.optim.Adam(params, lr=o["lr"], betas=(o["beta_1"], o["beta_2"]), eps=o["epsilon"])
    if kind == "RMSProp":
        return torch.optim.RMSprop(params, lr=o["lr"], alpha=o["rho"], eps=o["epsilon"],
                                   momentum=o["momentum"], centered=o["centered"])
    if kind == "Adagrad":
        return torch.optim.Adagrad(params, lr=o["lr"], eps=o["epsilon"],
                                   initial_accumulator_value=o["initial_accumulator_value"])
    raise ValueError(kind)


def trajectory(kind, options, noise=0.0):
    """The recorded steps of one case. noise > 0 multiplies every gradient element by
    1 + noise * N(0, 1): a stand-in for the rounding differences between two implementations."""
    o = dict(KERAS_DEFAULTS[kind])
    o.update({k: v for k, v in options.items() if k in o})
    decay = options.get("decay", 0.0)
    freeze_bias = options.get("freeze_bias", False)
    use_schedule = options.get("schedule", False)

    x = torch.tensor(X, dtype=torch.float64)
    y = torch.tensor(Y, dtype=torch.float64)
    w = torch.tensor(W0, dtype=torch.float64, requires_grad=True)
    b = torch.tensor(B0, dtype=torch.float64, requires_grad=True)
    # A frozen parameter is simply not given to PyTorch; faltung receives it and must skip it.
    opt = make_torch_optimizer(kind, o, [w] if freeze_bias else [w, b])
    group = opt.param_groups[0]

    rng = torch.Generator().manual_seed(1)
    records = []
    previous_lr = None
    for it in range(STEPS):  # it = steps taken before this one
        if use_schedule:
            lr = schedule_exponential(o["lr"], it)
        else:
            lr = o["lr"] / (1.0 + decay * it)
        group["lr"] = lr
        if kind == "Adam":
            group["eps"] = o["epsilon"] / math.sqrt(1.0 - o["beta_2"] ** (it + 1))
        if previous_lr is not None and o.get("momentum", 0.0) > 0:
            for p in group["params"]:
                state = opt.state[p]
                if "momentum_buffer" in state and state["momentum_buffer"] is not None:
                    state["momentum_buffer"].mul_(previous_lr / lr)
        previous_lr = lr

        opt.zero_grad()
        loss_of(w, b, x, y).backward()
        if noise:
            for p in (w, b):
                p.grad.mul_(1.0 + noise * torch.randn(p.shape, generator=rng, dtype=torch.float64))
        opt.step()
        if it + 1 in RECORDED:
            records.append((it + 1, w.detach().flatten().tolist(), b.detach().tolist()))
    return o, decay, records


def check_well_conditioned(name, kind, options, records):
    """Refuses a case whose trajectory amplifies rounding: near a minimum, RMSProp with a constant
    rate can settle into an oscillation that doubles tiny differences every step, and then no
    implementation could follow the reference to 1e-6, right or wrong."""
    _, _, noisy = trajectory(kind, options, noise=1e-12)
    worst = max(abs(a - b) for (_, w1, b1), (_, w2, b2) in zip(records, noisy) for a, b in zip(w1 + b1, w2 + b2))
    if worst > 1e-9:
        raise SystemExit(f"case {name}: relative noise of 1e-12 in the gradients moved the trajectory by "
                         f"{worst:.1e}; choose hyperparameters that do not amplify rounding")
    return worst


def cpp_list(values):
    return "{" + ", ".join(repr(float(v)) for v in values) + "}"


def main():
    out_path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "optimizer_reference.inc")
    lines = [
        "// Generated by tests/reference/make_optimizer_reference.py with PyTorch "
        + torch.__version__ + ". Do not edit;",
        "// rerun the script instead. Parameters W (2, 3) row-major and b (3) after the given step.",
        "",
        "namespace optimizer_reference {",
        "",
        "struct Point {",
        "  int step;",
        "  double w[6];",
        "  double b[3];",
        "};",
        "",
        "// The problem (see the script): P = tanh(X W + b), L = sum((P - Y)^2) / 8 + 0.025 sum(W^4).",
        "inline constexpr double x[8] = " + cpp_list(sum(X, [])) + ";",
        "inline constexpr double y[12] = " + cpp_list(sum(Y, [])) + ";",
        "inline constexpr double w0[6] = " + cpp_list(sum(W0, [])) + ";",
        "inline constexpr double b0[3] = " + cpp_list(B0) + ";",
        "inline constexpr int steps = " + str(STEPS) + ";",
        "",
    ]
    for name, kind, options in CASES:
        o, decay, records = trajectory(kind, options)
        worst = check_well_conditioned(name, kind, options, records)
        print(f"{name}: noise 1e-12 in the gradients moves the trajectory by at most {worst:.1e}")
        described = ", ".join(f"{k}={v}" for k, v in o.items())
        extra = []
        if decay:
            extra.append(f"decay={decay}")
        if options.get("schedule"):
            extra.append("schedule lr * 0.97^iteration")
        if options.get("freeze_bias"):
            extra.append("b frozen")
        lines.append(f"// {kind}({described}{', ' if extra else ''}{', '.join(extra)})")
        lines.append(f"inline constexpr Point {name}[] = {{")
        for step, wv, bv in records:
            lines.append(f"    {{{step}, {cpp_list(wv)},")
            lines.append(f"     {cpp_list(bv)}}},")
        lines.append("};")
        lines.append("")
    lines.append("}  // namespace optimizer_reference")
    with open(out_path, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("wrote", out_path)


if __name__ == "__main__":
    main()
