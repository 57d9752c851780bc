#!/usr/bin/env python3
"""PyTorch's side of faltung's benchmark comparison: the network bench_training measures, with the
same data, batch sizes, threads and measurements, so that compare.py can set the two side by side.

The network comes as faltung's architecture spec, the line that `bench_training --networks` prints
for each reference network (benchmarks/reference_networks.hpp), so both sides always run the same
layers. As faltung compiles it: Glorot-uniform kernels (or the spec's initialiser), zero biases,
Adam (lr 1e-3, epsilon 1e-7), softmax cross-entropy from logits.

Measured as bench_training measures (one thread in the process's CPU time, more in wall time):
  training   3 warm-up steps, then steps until --seconds have passed: each converts a batch of
             training images from bytes to floats in [0, 1] and runs forward, loss, backward and
             the optimizer step; images per second.
  inference  eval mode, batch --infer-batch from the test images, one warm-up batch, then batches
             until --infer-seconds have passed; images per second.
  memory     the process's peak resident set size.

Output: an `info` line (PyTorch's version, threads, backends, the BLAS and the allocator it really
loaded) and a `result` line, each of key=value pairs.

  /usr/bin/python3 benchmarks/pytorch_reference.py --threads 2 --batch 256 \\
      --spec "$(build/benchmarks/bench_training --networks | sed -n 's/.*net=notebook.* spec=//p')"

Run it as compare.py does, tuned for the CPU: with tcmalloc preloaded
(LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4, Debian's libtcmalloc-minimal4) and
OpenBLAS for the dense layers (benchmarks/README.md says why).
"""
import argparse
import ctypes
import gzip
import os
import re
import resource
import time

import numpy as np
import torch
import torch.nn as nn

ACTIVATIONS = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}
INITIALISERS = {
    "glorot_uniform": nn.init.xavier_uniform_, "xavier_uniform": nn.init.xavier_uniform_,
    "he_uniform": lambda w: nn.init.kaiming_uniform_(w, nonlinearity="relu"),
    "he_normal": lambda w: nn.init.kaiming_normal_(w, nonlinearity="relu"),
    "zeros": nn.init.zeros_,
}
ALIASES = {"conv2d": "conv", "convolution": "conv", "maxpool": "pool", "max_pool": "pool", "maxpool2d": "pool",
           "max_pool2d": "pool", "max_pooling2d": "pool", "dropout": "drop", "fc": "dense",
           "leakyrelu": "leaky_relu", "no_bias": "nobias"}


def pair(text):
    """'3' -> (3, 3), '3x5' -> (3, 5)"""
    a, _, b = text.partition("x")
    return int(a), int(b or a)


def activation_module(token):
    """An activation token of the architecture language as a module (None for linear)."""
    name, _, value = token.partition("=")
    if name == "linear":
        return None
    if name == "leaky_relu":
        return nn.LeakyReLU(float(value) if value else 0.3)  # faltung's (and Keras's) default slope
    if name == "softmax":
        return nn.Softmax(dim=1)
    if name in ACTIVATIONS:
        return ACTIVATIONS[name]()
    raise ValueError(f"unknown activation '{token}'")


def build_network(spec, input_shape):
    """nn.Sequential for faltung's architecture language (model/architecture.hpp), for the input
    (C, H, W); the shapes are tracked to size the dense layers and Keras's 'same' padding."""
    layers, weighted = [], []
    shape = tuple(input_shape)
    for number, text in enumerate(spec.split(","), 1):
        fields = [f.strip().lower() for f in text.split(":")]
        kind = ALIASES.get(fields[0], fields[0])
        try:
            if kind in ("conv", "dense"):
                init, bias, act, stride, padding = "glorot_uniform", True, None, (1, 1), "valid"
                size = int(fields[1])
                kernel = pair(fields[2]) if kind == "conv" else None
                for opt in fields[3 if kind == "conv" else 2:]:
                    opt = ALIASES.get(opt, opt)
                    if opt == "nobias":
                        bias = False
                    elif opt in INITIALISERS:
                        init = opt
                    elif kind == "conv" and opt in ("same", "valid"):
                        padding = opt
                    elif kind == "conv" and re.fullmatch(r"p\d+(x\d+)?", opt):
                        padding = pair(opt[1:])
                    elif kind == "conv" and re.fullmatch(r"s\d+(x\d+)?", opt):
                        stride = pair(opt[1:])
                    else:
                        act = opt
                if kind == "conv":
                    c, h, w = shape
                    if padding == "valid":
                        padding = (0, 0)
                    if padding == "same":  # Keras: output ceil(in / stride), the odd pixel of padding at the end
                        pads = [max((-(-n // s) - 1) * s + k - n, 0) for n, s, k in zip((h, w), stride, kernel)]
                        layers.append(nn.ZeroPad2d((pads[1] // 2, pads[1] - pads[1] // 2, pads[0] // 2,
                                                    pads[0] - pads[0] // 2)))
                        h, w = h + pads[0], w + pads[1]
                        padding = (0, 0)
                    layer = nn.Conv2d(c, size, kernel, stride=stride, padding=padding, bias=bias)
                    h = (h + 2 * padding[0] - kernel[0]) // stride[0] + 1
                    w = (w + 2 * padding[1] - kernel[1]) // stride[1] + 1
                    shape = (size, h, w)
                else:
                    if len(shape) != 1:
                        raise ValueError(f"dense after shape {shape}: add flatten")
                    layer = nn.Linear(shape[0], size, bias=bias)
                    shape = (size,)
                layers.append(layer)
                weighted.append((layer, init))
                if act is not None and activation_module(act) is not None:
                    layers.append(activation_module(act))
            elif kind == "pool":
                kernel = pair(fields[1])
                stride = kernel
                for opt in fields[2:]:
                    if re.fullmatch(r"s\d+(x\d+)?", opt):
                        stride = pair(opt[1:])
                    elif opt != "valid":
                        raise ValueError(f"pool option '{opt}' is not supported here")
                layers.append(nn.MaxPool2d(kernel, stride))
                c, h, w = shape
                shape = (c, (h - kernel[0]) // stride[0] + 1, (w - kernel[1]) // stride[1] + 1)
            elif kind == "drop":
                layers.append(nn.Dropout(float(fields[1])))
            elif kind == "flatten":
                layers.append(nn.Flatten())
                shape = (int(np.prod(shape)),)
            else:
                module = activation_module(kind if len(fields) == 1 else kind + "=" + fields[1])
                if module is not None:
                    layers.append(module)
        except (ValueError, IndexError) as e:
            raise SystemExit(f"--spec: layer {number} '{text}': {e}")
    for layer, init in weighted:
        INITIALISERS[init](layer.weight)
        if layer.bias is not None:
            nn.init.zeros_(layer.bias)
    return nn.Sequential(*layers)


def load_images(directory):
    """Fashion-MNIST as bytes (images (N, 1, 28, 28) uint8, labels int64): train and test. Random
    images of the same size when the files are missing, as bench_training does."""
    def idx(name, offset):
        with gzip.open(os.path.join(directory, name)) as f:
            return np.frombuffer(f.read(), np.uint8, offset=offset)
    try:
        sets = [(idx(f"{s}-images-idx3-ubyte.gz", 16).reshape(-1, 1, 28, 28),
                 idx(f"{s}-labels-idx1-ubyte.gz", 8).astype(np.int64)) for s in ("train", "t10k")]
        real = True
    except OSError:
        g = np.random.default_rng(7)
        sets = [(g.integers(0, 256, (n, 1, 28, 28), dtype=np.uint8), g.integers(0, 10, n)) for n in (60000, 10000)]
        real = False
    return [(torch.from_numpy(x.copy()), torch.from_numpy(y)) for x, y in sets], real


def loaded_libraries():
    with open("/proc/self/maps") as f:
        return sorted({line.split()[-1] for line in f if ".so" in line})


def environment_info():
    """What decides PyTorch's speed here, from what the process really loaded."""
    libs = loaded_libraries()
    config = torch.__config__.show()

    def find(pattern):
        return next((os.path.realpath(p) for p in libs if re.search(pattern, os.path.basename(p))), None)

    allocator = find(r"tcmalloc|jemalloc|mimalloc")
    blas = find(r"^lib(open)?blas|^libmkl_rt|^libblis")
    blas_name = blas or "none"
    openblas = find(r"^libopenblas")
    if openblas:
        lib = ctypes.CDLL(openblas)
        lib.openblas_get_corename.restype = ctypes.c_char_p
        blas_name += f"(openblas-core:{lib.openblas_get_corename().decode()})"
    mkldnn = re.search(r"MKL-DNN v(\S+)", config)
    capability = re.search(r"CPU capability usage: (\S+)", config)
    return {
        "pytorch": torch.__version__,
        "threads": torch.get_num_threads(),
        "onednn": (f"{mkldnn.group(1) if mkldnn else '?'}" if torch.backends.mkldnn.is_available() else "no") +
                  ("" if torch.backends.mkldnn.enabled else "(disabled)"),
        "mkl": "yes" if torch.backends.mkl.is_available() else "no",
        "cpu_capability": capability.group(1) if capability else "?",
        "blas": blas_name,
        "allocator": allocator or "glibc-malloc",
    }


def to_float(images, channels_last):
    x = images.float().div_(255.0)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spec", required=True, help="the network in faltung's architecture language")
    ap.add_argument("--name", default="net", help="a label for the output")
    ap.add_argument("--input", default="1x28x28", help="one image's shape, CxHxW (default 1x28x28)")
    ap.add_argument("--batch", type=int, required=True, help="training batch")
    ap.add_argument("--infer-batch", type=int, default=256)
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--seconds", type=float, default=2.0, help="training: timed seconds at least")
    ap.add_argument("--infer-seconds", type=float, default=1.0, help="inference: timed seconds at least")
    ap.add_argument("--channels-last", action="store_true",
                    help="run the convolutions on NHWC tensors (PyTorch's channels_last) instead of NCHW")
    ap.add_argument("--parameters", type=int, default=0,
                    help="stop unless the network has this many parameters (faltung's count: the same network)")
    ap.add_argument("--build-only", action="store_true",
                    help="build the network, check --parameters, print it and stop (no data, no timing)")
    ap.add_argument("--data", default=os.environ.get("FALTUNG_FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist"))
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = build_network(a.spec, tuple(int(d) for d in a.input.split("x")))
    count = sum(p.numel() for p in model.parameters())
    if a.parameters and count != a.parameters:
        raise SystemExit(f"--spec built a network of {count} parameters, expected {a.parameters}: not the same network")
    if a.build_only:
        print(f"{model}\nparameters={count}")
        return
    ((xtr, ytr), (xte, _)), real = load_images(a.data)
    if a.channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), 1e-3, eps=1e-7)
    loss_fn = nn.CrossEntropyLoss()

    def train_step(step):
        s = (step * a.batch) % (len(xtr) - a.batch)
        opt.zero_grad(set_to_none=True)
        loss_fn(model(to_float(xtr[s:s + a.batch], a.channels_last)), ytr[s:s + a.batch]).backward()
        opt.step()

    # One thread: the process's CPU time, as bench_training times one thread (see there); more: wall time.
    clock = time.process_time if a.threads == 1 else time.perf_counter
    model.train()
    for step in range(3):
        train_step(step)
    step, t0 = 3, clock()
    while True:
        train_step(step)
        step += 1
        seconds = clock() - t0
        if seconds >= a.seconds:
            break
    train_ips = (step - 3) * a.batch / seconds

    model.eval()
    n = a.infer_batch
    with torch.inference_mode():
        model(to_float(xte[:n], a.channels_last))
        step, t0 = 0, clock()
        while True:
            s = (step * n) % (len(xte) - n)
            model(to_float(xte[s:s + n], a.channels_last))
            step += 1
            seconds = clock() - t0
            if seconds >= a.infer_seconds:
                break
    infer_ips = step * n / seconds

    info = environment_info()
    print("info " + " ".join(f"{k}={v}" for k, v in info.items()) +
          f" memory_format={'channels_last' if a.channels_last else 'nchw'}")
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"result engine=pytorch net={a.name} threads={a.threads} batch={a.batch} train_img_s={train_ips:.1f} "
          f"infer_img_s={infer_ips:.1f} peak_rss_mib={rss_mib:.0f} real_data={int(real)}", flush=True)


if __name__ == "__main__":
    main()
