#!/usr/bin/env python3
"""faltung beside PyTorch (whole networks) and oneDNN (convolution kernels) on this machine, in one
command, with the machine's FMA peak measured in the same run:

  python3 benchmarks/compare.py --threads 1,2            # a 16-core machine: --threads 1,2,4,8,16

1. Builds bench_training, bench_kernels and, when oneDNN (libdnnl-dev) is installed, bench_onednn,
   in Release (build-bench/, or --build DIR; an existing build directory is only built).
2. Repeats --reps times: for each thread count and reference network, faltung's bench_training and
   pytorch_reference.py, one after the other (which goes first alternates), each in a process of its
   own with the same environment: tcmalloc preloaded when installed, OMP_NUM_THREADS set. Then the
   convolution kernels, faltung's beside oneDNN's in its best layout (bench_onednn).
3. Prints medians with their ranges and writes into --out (default BUILD/comparison):
     results.md      the tables, ready to paste       comparison.svg  the chart
     results.json    every measurement and the environment; --from-json FILE redraws from it.

PyTorch runs tuned for the CPU: tcmalloc, the thread count, OpenBLAS for its dense layers when
installed (libopenblas0-openmp; told the CPU's type where it misreads an AVX-512 CPU), and
channels_last tensors, which made its convolutions faster here (--pytorch-memory-format).
The machine must be quiet: the load average is printed before and after, and every figure is a
median of alternating runs. See benchmarks/README.md.
"""
import argparse
import datetime
import html
import json
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import xml.dom.minidom

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TCMALLOC = "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4"  # Debian's libtcmalloc-minimal4
OPENBLAS_DIR = "/usr/lib/x86_64-linux-gnu/openblas-openmp"       # Debian's libopenblas0-openmp
AVX512_OPENBLAS_CORES = {"skylakex", "cooperlake", "sapphirerapids"}
# Each network's convolutions at the batch it trains at (bench_onednn and bench_kernels run more).
KERNEL_FILTER = r"^(onednn/)?conv_.*/(1x32_28|32x64_14)/batch:64/|^(onednn/)?conv_.*/(1x128_28|128x64_14)/batch:256/"
NETWORK_TITLES = {"small": "small CNN", "notebook": "lecture network"}
PASS_SHORT = {"forward": "fwd", "backward_data": "bwd data", "backward_weights": "bwd weights"}


# ---------------------------------------------------------------------------------------------
# Running things

def run_measured(cmd, env):
    """Runs cmd to the end; returns its standard output and its own peak RSS in MiB (wait4)."""
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=err)
        out = proc.stdout.read()
        proc.stdout.close()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{err.read().decode(errors='replace')}")
    return out.decode(), usage.ru_maxrss / 1024.0


def cpuinfo(field):
    """The first value of `field` in /proc/cpuinfo ("" where there is none)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(field):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def environment(threads, tcmalloc):
    """The environment both sides run in (OMP_NUM_THREADS unset for threads=None)."""
    env = dict(os.environ)
    env.pop("OMP_NUM_THREADS", None)
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    if tcmalloc:
        env["LD_PRELOAD"] = " ".join(p for p in (TCMALLOC, os.environ.get("LD_PRELOAD", "")) if p)
    return env


def pytorch_environment(env, coretype):
    """PyTorch's additions: OpenBLAS for its dense layers (Debian's default BLAS is the slow
    reference one) and, where OpenBLAS misreads the CPU, its core type."""
    env = dict(env)
    if os.path.isdir(OPENBLAS_DIR):
        env["LD_LIBRARY_PATH"] = ":".join(p for p in (OPENBLAS_DIR, os.environ.get("LD_LIBRARY_PATH", "")) if p)
        if coretype:
            env["OPENBLAS_CORETYPE"] = coretype
    return env


def openblas_core(env):
    """The core OpenBLAS runs its kernels for in `env` (its own detection, or OPENBLAS_CORETYPE)."""
    probe = ("import ctypes; l = ctypes.CDLL('%s/libopenblas.so.0'); l.openblas_get_corename.restype = "
             "ctypes.c_char_p; print(l.openblas_get_corename().decode())" % OPENBLAS_DIR)
    try:
        return subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def openblas_coretype(requested):
    """The OPENBLAS_CORETYPE PyTorch runs with: `requested` when given; 'SkylakeX' where this CPU
    has AVX-512 but OpenBLAS would run an older core's kernels (Debian's 0.3.21 takes AMD's Zen 4
    and 5 for Haswell; some environments set OPENBLAS_CORETYPE to an older core); else None, and
    the environment's setting or OpenBLAS's own detection stands."""
    if requested or not os.path.isdir(OPENBLAS_DIR):
        return requested
    if not {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= set(cpuinfo("flags").split()):
        return None
    core = openblas_core(dict(os.environ))
    if core is None or core.lower() in AVX512_OPENBLAS_CORES:
        return None
    print(f"OpenBLAS would run as {core} on this AVX-512 CPU"
          + (f" (OPENBLAS_CORETYPE={os.environ['OPENBLAS_CORETYPE']} in the environment)"
             if "OPENBLAS_CORETYPE" in os.environ else "") + ": PyTorch runs with OPENBLAS_CORETYPE=SkylakeX")
    return "SkylakeX"


def pytorch_python(requested):
    """An interpreter that can import torch: --python, this one, or Debian's /usr/bin/python3."""
    candidates = [requested] if requested else [sys.executable, "/usr/bin/python3"]
    for python in candidates:
        if python and subprocess.run([python, "-c", "import torch"], capture_output=True).returncode == 0:
            return python
    return None


def build(build_dir, jobs):
    cache = os.path.join(build_dir, "CMakeCache.txt")
    if not os.path.exists(cache):
        subprocess.run(["cmake", "-S", ROOT, "-B", build_dir, "-DCMAKE_BUILD_TYPE=Release",
                        "-DFALTUNG_BUILD_TESTS=OFF", "-DFALTUNG_BUILD_EXAMPLES=OFF", "-DFALTUNG_BUILD_BENCHMARKS=ON"],
                       check=True)
    with open(cache) as f:
        build_type = re.search(r"^CMAKE_BUILD_TYPE:\w+=(.*)$", f.read(), re.M)
    if not build_type or build_type.group(1) != "Release":
        sys.exit(f"{build_dir} is not a Release build: its timings would mean nothing (use another --build)")
    targets = ["bench_training", "bench_kernels"]
    if os.path.isdir(os.path.join(build_dir, "benchmarks", "CMakeFiles", "bench_onednn.dir")):
        targets.append("bench_onednn")
    subprocess.run(["cmake", "--build", build_dir, "-j", str(jobs), "--target", *targets], check=True)


def program(build_dir, name):
    path = os.path.join(build_dir, "benchmarks", name)
    return path if os.path.exists(path) else None


def key_values(line):
    return dict(item.split("=", 1) for item in line.split() if "=" in item)


def networks(build_dir):
    """The reference networks as bench_training describes them (spec, batches, FLOPs per image)."""
    out = subprocess.run([program(build_dir, "bench_training"), "--networks"], capture_output=True, text=True,
                         check=True).stdout
    nets = {}
    for line in out.splitlines():
        kv = key_values(line)
        nets[kv["net"]] = {"input": kv["input"], "batch": int(kv["batch"]), "infer_batch": int(kv["infer_batch"]),
                           "parameters": int(kv["parameters"]), "spec": kv["spec"],
                           "train_flop": float(kv["train_flop_per_image"]),
                           "infer_flop": float(kv["infer_flop_per_image"])}
    return nets


def faltung_network(build_dir, net, threads, seconds, env):
    env = dict(env, FALTUNG_BENCH_THREADS=str(threads), FALTUNG_BENCH_SECONDS=str(seconds))
    out, rss = run_measured([program(build_dir, "bench_training"),
                             f"--benchmark_filter=^(train|infer)/{net}/threads:{threads}/",
                             "--benchmark_format=json"], env)
    res = {"rss": rss}
    for b in json.loads(out)["benchmarks"]:
        what = b["name"].split("/")[0]
        res[what] = b["items_per_second"]
        res["peak"] = b["peak_FLOP/s"]
    return res


def pytorch_network(python, info, net, threads, seconds, env, channels_last):
    cmd = [python, os.path.join(ROOT, "benchmarks", "pytorch_reference.py"), "--name", net, "--spec", info["spec"],
           "--input", info["input"], "--batch", str(info["batch"]), "--infer-batch", str(info["infer_batch"]), "--threads", str(threads),
           "--seconds", str(seconds), "--infer-seconds", str(seconds), "--parameters", str(info["parameters"])]
    if channels_last:
        cmd.append("--channels-last")
    out, rss = run_measured(cmd, env)
    lines = {line.split()[0]: key_values(line) for line in out.splitlines() if line.strip()}
    return {"train": float(lines["result"]["train_img_s"]), "infer": float(lines["result"]["infer_img_s"]),
            "rss": rss, "info": lines["info"]}


def check_networks(nets, python):
    """PyTorch's network from each spec has faltung's parameter count (pytorch_reference.py stops
    otherwise): the two sides run the same layers."""
    if python is None:
        print("PyTorch not found: nothing to check")
        sys.exit(77)
    for net, info in nets.items():
        out, _ = run_measured([python, os.path.join(ROOT, "benchmarks", "pytorch_reference.py"), "--build-only",
                               "--spec", info["spec"], "--input", info["input"], "--batch", str(info["batch"]),
                               "--threads", "1", "--parameters", str(info["parameters"])], dict(os.environ))
        print(f"{net}: PyTorch builds it with {info['parameters']} parameters, as faltung does\n{out}")


def kernels(build_dir, threads, env):
    """The convolution passes: faltung's beside oneDNN's (bench_onednn) or alone (bench_kernels)."""
    name = "bench_onednn" if program(build_dir, "bench_onednn") else "bench_kernels"
    env = dict(env, FALTUNG_BENCH_THREADS=",".join(map(str, threads)))  # it sets each run's threads itself
    out, _ = run_measured([program(build_dir, name), f"--benchmark_filter={KERNEL_FILTER}", "--benchmark_format=json"],
                          env)
    data = json.loads(out)
    rows = []
    for b in data["benchmarks"]:
        if b.get("error_occurred"):
            sys.exit(f"{name}: {b['name']}: {b.get('error_message')}")
        m = re.match(r"(onednn/)?conv_(\w+)/(\w+)/batch:(\d+)/threads:(\d+)/", b["name"])
        if m.group(2) == "backward_data" and m.group(3).startswith("1x"):
            continue  # the first layer's input gradient: never computed in training
        rows.append({"engine": "onednn" if m.group(1) else "faltung", "pass": m.group(2), "shape": m.group(3),
                     "batch": int(m.group(4)), "threads": int(m.group(5)), "flops": b["FLOP/s"],
                     "pct_peak": b["pct_peak"], "label": b.get("label", "")})
    return rows, data["context"].get("onednn")


# ---------------------------------------------------------------------------------------------
# Summaries: medians over the repetitions, with their ranges

def median_range(values):
    values = [v for v in values if v is not None]
    return (statistics.median(values), min(values), max(values)) if values else None


def summarize(results):
    """Medians of every figure, per network, thread count and engine, and of the kernels."""
    nets, runs = results["networks"], results["runs"]
    summary = {"networks": {}, "kernels": {}}
    for net, info in nets.items():
        for t in results["threads"]:
            rows = {e: [r for r in runs if r["net"] == net and r["threads"] == t and r["engine"] == e]
                    for e in ("faltung", "pytorch")}
            peaks = {r["rep"]: r["peak"] for r in rows["faltung"]}
            entry = {}
            for engine, rs in rows.items():
                if not rs:
                    continue
                e = {"rss": median_range([r["rss"] for r in rs])}
                for what, flop in (("train", info["train_flop"]), ("infer", info["infer_flop"])):
                    e[what] = median_range([r[what] for r in rs])
                    e[what + "_pct_peak"] = median_range(
                        [100.0 * r[what] * flop / peaks[r["rep"]] for r in rs if r["rep"] in peaks])
                entry[engine] = e
            if rows["faltung"] and rows["pytorch"]:
                by_rep = {r["rep"]: r for r in rows["pytorch"]}
                pairs = [(f, by_rep[f["rep"]]) for f in rows["faltung"] if f["rep"] in by_rep]
                entry["ratio"] = {what: median_range([f[what] / p[what] for f, p in pairs])
                                  for what in ("train", "infer", "rss")}
            summary["networks"][(net, t)] = entry
    for k in results["kernels"]:
        key = (k["pass"], k["shape"], k["batch"], k["threads"])
        summary["kernels"].setdefault(key, {}).setdefault(k["engine"], []).append(k)
    for key, engines in summary["kernels"].items():
        reps = {e: {r["rep"]: r for r in rs} for e, rs in engines.items()}
        for e, rs in engines.items():
            engines[e] = {"flops": median_range([r["flops"] for r in rs]),
                          "pct_peak": median_range([r["pct_peak"] for r in rs]), "label": rs[0]["label"]}
        if "onednn" in reps:
            engines["ratio"] = median_range([f["flops"] / reps["onednn"][rep]["flops"]
                                             for rep, f in reps["faltung"].items() if rep in reps["onednn"]])
    return summary


def scaling(results, summary):
    """Speed-up and parallel efficiency from the fewest to each thread count."""
    threads = sorted(results["threads"])
    base = threads[0]
    curves = {}
    for net in results["networks"]:
        for engine in ("faltung", "pytorch"):
            for what in ("train", "infer"):
                points = []
                for t in threads:
                    e = summary["networks"][(net, t)].get(engine)
                    if e is None or summary["networks"][(net, base)].get(engine) is None:
                        break
                    speedup = e[what][0] / summary["networks"][(net, base)][engine][what][0]
                    points.append((t, speedup, speedup * base / t))
                if points:
                    curves[(net, engine, what)] = points
    return curves


# ---------------------------------------------------------------------------------------------
# Text

def n_threads(n):
    """'1 thread', '2 threads'"""
    return f"{n} thread{'s' if n > 1 else ''}"


def n0(v):
    return f"{v:,.0f}"


def rng(mr, fmt=n0):
    """'2,496 (2,410–2,530)'"""
    return f"{fmt(mr[0])} ({fmt(mr[1])}–{fmt(mr[2])})" if mr[1] != mr[2] else fmt(mr[0])


def pct(v):
    return f"{v:.0f}%"


def ratio(v):
    return f"{v:.2f}x"


def describe(results):
    m = results["meta"]
    lines = [f"- machine: {m['cpu']}, {m['cpus']} logical CPUs; load average {m['load_before']} before, "
             f"{m['load_after']} after; {m['date']}",
             f"- faltung {m['faltung']}, built {m['build']}; FMA peak measured in the same run: "
             + ", ".join(f"{n0(p / 1e9)} GFLOP/s at {n_threads(int(t))}"
                         for t, p in sorted(m["peaks"].items(), key=lambda kv: int(kv[0]))),
             f"- {m['reps']} alternating repetitions of {m['seconds']:g} s per measurement; medians, ranges in brackets; "
             f"both sides with allocator {m['allocator']}"]
    if m.get("pytorch"):
        p = m["pytorch"]
        lines.append(f"- PyTorch {p['pytorch']} ({m['pytorch_memory_format']}): oneDNN {p['onednn']}, BLAS {p['blas']}, "
                     f"ATen CPU capability {p['cpu_capability']}, allocator {p['allocator']}")
    if m.get("onednn"):
        lines.append(f"- kernels: oneDNN {m['onednn']} in its own (blocked) layout, faltung on NCHW")
    return lines


def markdown(results, summary, curves):
    nets, threads = results["networks"], sorted(results["threads"])
    has_torch = any(r["engine"] == "pytorch" for r in results["runs"])
    out = ["## faltung beside PyTorch and oneDNN", ""] + describe(results) + [""]
    out += ["### Whole networks (images/s; % of the FMA peak; faltung / PyTorch)", ""]
    head = "| network | threads | training: faltung | PyTorch | ratio | inference: faltung | PyTorch | ratio | peak RSS MiB |"
    out += [head, "|" + "---|" * (head.count("|") - 1)]
    for net in nets:
        for t in threads:
            s = summary["networks"][(net, t)]
            f, p = s.get("faltung"), s.get("pytorch")
            cells = [f"{NETWORK_TITLES.get(net, net)}, batch {nets[net]['batch']}", str(t)]
            for what in ("train", "infer"):
                cells.append(f"{n0(f[what][0])} ({pct(f[what + '_pct_peak'][0])})" if f else "-")
                cells.append(f"{n0(p[what][0])} ({pct(p[what + '_pct_peak'][0])})" if p else "-")
                cells.append(f"**{ratio(s['ratio'][what][0])}**" if "ratio" in s else "-")
            cells.append(f"{n0(f['rss'][0])} / {n0(p['rss'][0])}" if f and p else (n0(f["rss"][0]) if f else "-"))
            out.append("| " + " | ".join(cells) + " |")
    out += ["", "Ranges over the repetitions (images/s):", ""]
    out += ["| network | threads | engine | training | inference | training epoch (s) | peak RSS MiB |",
            "|---|---|---|---|---|---|---|"]
    for net in nets:
        for t in threads:
            for engine in ("faltung", "pytorch"):
                e = summary["networks"][(net, t)].get(engine)
                if e:
                    out.append(f"| {net} | {t} | {engine} | {rng(e['train'])} | {rng(e['infer'])} | "
                               f"{60000 / e['train'][0]:.1f} | {n0(e['rss'][0])} |")
    if summary["kernels"]:
        out += ["", "### Convolution kernels (GFLOP/s, % of the FMA peak)", ""]
        has_onednn = any("onednn" in v for v in summary["kernels"].values())
        out += ["| pass | shape (in→out, size) | batch | threads | faltung | oneDNN | faltung / oneDNN |",
                "|---|---|---|---|---|---|---|"]
        for (ps, shape, batch, t), e in sorted(summary["kernels"].items(), key=kernel_order):
            f, o = e["faltung"], e.get("onednn")
            out.append(f"| {ps} | {shape_title(shape)} | {batch} | {t} | {f['flops'][0] / 1e9:.0f} "
                       f"({pct(f['pct_peak'][0])}) | " + (f"{o['flops'][0] / 1e9:.0f} ({pct(o['pct_peak'][0])}) "
                                                           f"{o['label']}" if o else "-") +
                       f" | {rng(e['ratio'], ratio) if 'ratio' in e else '-'} |")
        if not has_onednn:
            out.append("\n(oneDNN not installed: no yardstick; Debian's libdnnl-dev builds bench_onednn.)")
    if len(threads) > 1:
        out += ["", f"### Scaling from {n_threads(threads[0])} "
                    "(speed-up, parallel efficiency)", ""]
        out += ["| network | what | engine | " + " | ".join(n_threads(t) for t in threads) + " |",
                "|---|---|---|" + "---|" * len(threads)]
        for (net, engine, what), points in curves.items():
            out.append(f"| {net} | {'training' if what == 'train' else 'inference'} | {engine} | " +
                       " | ".join(f"{s:.2f}x ({pct(100 * e)})" for _, s, e in points) + " |")
    out += ["", "### Against the goals of issue 16", ""] + goals(results, summary, curves, has_torch)
    return "\n".join(out) + "\n"


def kernel_order(item):
    (ps, shape, batch, t), _ = item
    return (t, shape_order(shape), list(PASS_SHORT).index(ps) if ps in PASS_SHORT else 9, batch)


def shape_order(shape):
    return ["1x32_28", "1x128_28", "32x64_14", "128x64_14"].index(shape) if shape in (
        "1x32_28", "1x128_28", "32x64_14", "128x64_14") else 9


def shape_title(shape):
    m = re.match(r"(\d+)x(\d+)_(\d+)", shape)
    return f"{m.group(1)}→{m.group(2)}, {m.group(3)}x{m.group(3)}" if m else shape


def goals(results, summary, curves, has_torch):
    lines = []
    k14 = [(key, e) for key, e in summary["kernels"].items() if key[1].endswith("_14") and "ratio" in e]
    if k14:
        lines.append("- 14x14 convolutions at or above oneDNN: faltung / oneDNN "
                     + ", ".join(f"{PASS_SHORT[key[0]]} {key[1]} {key[3]}t {ratio(e['ratio'][0])}"
                                 for key, e in sorted(k14, key=kernel_order)))
    if "notebook" in results["networks"]:
        lines.append("- lecture network training at >= 75% of the FMA peak: " + ", ".join(
            f"{pct(summary['networks'][('notebook', t)]['faltung']['train_pct_peak'][0])} at {n_threads(t)}"
            for t in sorted(results["threads"]) if summary["networks"][("notebook", t)].get("faltung")))
    if has_torch:
        lines.append("- >= 3x the tuned PyTorch: " + "; ".join(
            f"{net} {t}t training {ratio(s['ratio']['train'][0])}, inference {ratio(s['ratio']['infer'][0])}"
            for (net, t), s in summary["networks"].items() if "ratio" in s))
    if len(results["threads"]) > 1 and ("notebook", "faltung", "train") in curves:
        t, s, e = curves[("notebook", "faltung", "train")][-1]
        epoch = 60000 / summary["networks"][("notebook", t)]["faltung"]["train"][0]
        lines.append(f"- parallel efficiency >= 75% (lecture network training): {pct(100 * e)} at {t} threads; "
                     f"epoch at {t} threads {epoch:.1f} s (target at 16 threads: <= 8 s)")
    return lines


# ---------------------------------------------------------------------------------------------
# The chart: plain SVG, written by hand

COLORS = {"faltung": "#2b6cb0", "pytorch": "#e4572e", "onednn": "#7a7a7a", "ideal": "#9a9a9a"}
NAMES = {"faltung": "faltung", "pytorch": "PyTorch", "onednn": "oneDNN"}
FONT = "font-family='DejaVu Sans, Helvetica, Arial, sans-serif'"


class Svg:
    def __init__(self, width):
        self.width, self.parts = width, []

    def text(self, x, y, s, size=11, anchor="start", weight="normal", color="#222", rotate=None):
        transform = f" transform='rotate({rotate} {x:.1f} {y:.1f})'" if rotate is not None else ""
        self.parts.append(f"<text x='{x:.1f}' y='{y:.1f}' font-size='{size}' text-anchor='{anchor}' "
                          f"font-weight='{weight}' fill='{color}'{transform}>{html.escape(str(s))}</text>")

    def rect(self, x, y, w, h, color, title=None):
        tip = f"<title>{html.escape(title)}</title>" if title else ""
        self.parts.append(f"<rect x='{x:.1f}' y='{y:.1f}' width='{max(w, 0):.1f}' height='{max(h, 0):.1f}' "
                          f"fill='{color}'>{tip}</rect>")

    def line(self, x1, y1, x2, y2, color="#ccc", width=1, dash=None):
        d = f" stroke-dasharray='{dash}'" if dash else ""
        self.parts.append(f"<line x1='{x1:.1f}' y1='{y1:.1f}' x2='{x2:.1f}' y2='{y2:.1f}' stroke='{color}' "
                          f"stroke-width='{width}'{d}/>")

    def polyline(self, points, color, width=2, dash=None):
        d = f" stroke-dasharray='{dash}'" if dash else ""
        pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        self.parts.append(f"<polyline points='{pts}' fill='none' stroke='{color}' stroke-width='{width}'{d}/>")

    def marker(self, x, y, color, square):
        if square:
            self.rect(x - 3.5, y - 3.5, 7, 7, color)
        else:
            self.parts.append(f"<circle cx='{x:.1f}' cy='{y:.1f}' r='3.8' fill='{color}'/>")

    def render(self, height):
        return (f"<svg xmlns='http://www.w3.org/2000/svg' width='{self.width}' height='{height:.0f}' "
                f"viewBox='0 0 {self.width} {height:.0f}' {FONT}>\n<rect width='100%' height='100%' fill='white'/>\n"
                + "\n".join(self.parts) + "\n</svg>\n")


def nice_ticks(top, count=4):
    """Round tick values from 0 to at least `top`, about `count` steps."""
    raw = max(top, 1e-9) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    ticks = [0.0]
    while ticks[-1] < top:
        ticks.append(ticks[-1] + step)
    return ticks


def short(v):
    return f"{v / 1000:.1f}k" if v >= 10000 else n0(v)


def bar_panel(svg, x, y, w, h, title, groups, series, value_fmt, axis_fmt, top=None):
    """Grouped bars. groups: [(label, {series: (median, lo, hi, note)}, caption above the group)].
    Draws the panel in (x, y, w, h) and returns nothing."""
    svg.text(x, y + 12, title, size=12.5, weight="bold")
    plot_top, plot_bottom, left = y + 38, y + h - 34, x + 44
    values = [v[2] for _, g, _ in groups for v in g.values() if v]
    ticks = nice_ticks(top if top else max(values + [1]) * 1.12)  # room above the bars for their labels
    scale = (plot_bottom - plot_top) / ticks[-1]
    for t in ticks:
        ty = plot_bottom - t * scale
        svg.line(left, ty, x + w, ty, "#e6e6e6")
        svg.text(left - 5, ty + 3.5, axis_fmt(t), size=9.5, anchor="end", color="#666")
    svg.line(left, plot_bottom, x + w, plot_bottom, "#888")
    gw = (x + w - left) / max(len(groups), 1)
    bw = min(34, gw * 0.78 / max(len(series), 1))
    for i, (label, g, caption) in enumerate(groups):
        gx = left + i * gw + (gw - bw * len(series)) / 2
        for j, s in enumerate(series):
            v = g.get(s)
            if not v:
                continue
            bx = gx + j * bw
            bh = v[0] * scale
            svg.rect(bx + 1, plot_bottom - bh, bw - 2, bh, COLORS[s],
                     f"{NAMES[s]}: {value_fmt(v[0])} (range {value_fmt(v[1])}–{value_fmt(v[2])})")
            if v[2] > v[1]:  # the range over the repetitions
                cx = bx + bw / 2
                svg.line(cx, plot_bottom - v[2] * scale, cx, plot_bottom - v[1] * scale, "#111", 1)
            svg.text(bx + bw / 2, plot_bottom - v[2] * scale - 4, value_fmt(v[0]), size=9, anchor="middle")
            if v[3] and bh > 16:
                svg.text(bx + bw / 2, plot_bottom - 5, v[3], size=8.5, anchor="middle", color="white")
        for k, line in enumerate(label.split("\n")):
            svg.text(left + i * gw + gw / 2, plot_bottom + 13 + 11 * k, line, size=9.5, anchor="middle", color="#333")
        if caption:
            svg.text(left + i * gw + gw / 2, plot_top - 8, caption, size=10.5, anchor="middle", weight="bold")


def line_panel(svg, x, y, w, h, title, curves, threads):
    """Speed-up over the fewest threads, on a log2 axis of thread counts; the dashed line is ideal."""
    svg.text(x, y + 12, title, size=12.5, weight="bold")
    plot_top, plot_bottom, left, right = y + 30, y + h - 30, x + 44, x + w - 10
    top = max([s for pts in curves.values() for _, s, _ in pts] + [threads[-1] / threads[0]]) * 1.05
    ticks = nice_ticks(top)
    scale = (plot_bottom - plot_top) / ticks[-1]
    span = max(math.log2(threads[-1] / threads[0]), 1)

    def px(t):
        return left + (right - left) * math.log2(t / threads[0]) / span

    for t in ticks:
        ty = plot_bottom - t * scale
        svg.line(left, ty, right, ty, "#e6e6e6")
        svg.text(left - 5, ty + 3.5, f"{t:g}x", size=9.5, anchor="end", color="#666")
    for t in threads:
        svg.text(px(t), plot_bottom + 14, str(t), size=9.5, anchor="middle", color="#333")
    svg.text((left + right) / 2, plot_bottom + 27, "threads", size=9.5, anchor="middle", color="#666")
    svg.polyline([(px(t), plot_bottom - (t / threads[0]) * scale) for t in threads], COLORS["ideal"], 1.5, "5,4")
    legend_y = plot_top + 4
    for (net, engine), pts in curves.items():
        color, square = COLORS[engine], net == "notebook"
        svg.polyline([(px(t), plot_bottom - s * scale) for t, s, _ in pts], color, 2)
        for t, s, _ in pts:
            svg.marker(px(t), plot_bottom - s * scale, color, square)
        svg.marker(left + 10, legend_y, color, square)
        t, s, e = pts[-1]
        svg.text(left + 18, legend_y + 3.5, f"{NAMES[engine]}, {NETWORK_TITLES.get(net, net)}: {s:.2f}x at {t}, "
                 f"efficiency {e * 100:.0f}%", size=9.5)
        legend_y += 13


def chart(results, summary, curves):
    nets, threads = list(results["networks"]), sorted(results["threads"])
    has_torch = any(r["engine"] == "pytorch" for r in results["runs"])
    W = 980
    svg = Svg(W)
    m = results["meta"]
    svg.text(16, 24, "faltung" + (" beside PyTorch" if has_torch else "") +
             (" and oneDNN" if m.get("onednn") else "") + f" on {m['cpu']} ({m['cpus']} CPUs)", size=15, weight="bold")
    runs = f"medians of {m['reps']} alternating runs (whiskers: range)" if m["reps"] > 1 else "one run"
    svg.text(16, 41, f"{runs}; 1 thread in CPU time, more in wall time; % = share of the FMA peak measured in "
             f"the same run; load average "
             f"{m['load_before'].split()[0]} before, {m['load_after'].split()[0]} after", size=10, color="#555")
    lx = 16
    for s in ("faltung", "pytorch", "onednn"):
        if s == "pytorch" and not has_torch or s == "onednn" and not m.get("onednn"):
            continue
        svg.rect(lx, 50, 12, 12, COLORS[s])
        svg.text(lx + 17, 60, NAMES[s], size=11)
        lx += 90
    if has_torch:
        svg.text(lx + 10, 60, f"PyTorch {m['pytorch']['pytorch']}, {m['pytorch_memory_format']}; both sides with "
                 f"{m['allocator']}", size=10, color="#555")
    y = 72
    series = ["faltung", "pytorch"] if has_torch else ["faltung"]
    ph, pw = 215, (W - 48) / 2
    for net in nets:
        info = results["networks"][net]
        for col, what in enumerate(("train", "infer")):
            groups = []
            for t in threads:
                s = summary["networks"][(net, t)]
                g = {e: (*s[e][what], pct(s[e][what + "_pct_peak"][0])) for e in series if e in s}
                caption = ratio(s["ratio"][what][0]) if "ratio" in s else ""
                groups.append((n_threads(t), g, caption))
            title = (f"{NETWORK_TITLES.get(net, net)}: " +
                     (f"training, batch {info['batch']}" if what == "train" else f"inference, batch {info['infer_batch']}")
                     + " (images/s)")
            bar_panel(svg, 16 + col * (pw + 16), y, pw, ph, title, groups, series, short, short)
        y += ph + 8
    if summary["kernels"]:
        kthreads = sorted({k[3] for k in summary["kernels"]})
        shown = sorted({kthreads[0], kthreads[-1]})
        kseries = ["faltung", "onednn"] if any("onednn" in e for e in summary["kernels"].values()) else ["faltung"]
        for t in shown:
            groups = []
            for key, e in sorted(summary["kernels"].items(), key=kernel_order):
                if key[3] != t:
                    continue
                g = {s: (*e[s]["pct_peak"], "") for s in kseries if s in e}
                label = f"{PASS_SHORT.get(key[0], key[0])}\n{shape_title(key[1]).replace(', ', ' ')}"
                groups.append((label, g, ratio(e["ratio"][0]) if "ratio" in e else ""))
            title = (f"Convolution kernels, {n_threads(t)}: % of the FMA peak"
                     + (" (above: faltung / oneDNN)" if len(kseries) > 1 else ""))
            highest = max([v[2] for _, g, _ in groups for v in g.values()] + [0])
            bar_panel(svg, 16, y, W - 32, 225, title, groups, kseries, lambda v: f"{v:.0f}", lambda v: f"{v:.0f}%",
                      top=max(100, highest * 1.08))
            y += 233
    if len(threads) > 1:
        for col, what in enumerate(("train", "infer")):
            c = {(net, engine): pts for (net, engine, w), pts in curves.items() if w == what}
            line_panel(svg, 16 + col * (pw + 16), y, pw, 240,
                       f"Scaling, {'training' if what == 'train' else 'inference'}: speed-up over {n_threads(threads[0])}",
                       c, threads)
        y += 248
    return svg.render(y + 6)


# ---------------------------------------------------------------------------------------------

def write_outputs(results, out_dir):
    summary = summarize(results)
    curves = scaling(results, summary) if len(results["threads"]) > 1 else {}
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "results.json"), "w") as f:  # first: the measurements are the costly part
        json.dump(results, f, indent=1)
    md = markdown(results, summary, curves)
    with open(os.path.join(out_dir, "results.md"), "w") as f:
        f.write(md)
    svg = chart(results, summary, curves)
    xml.dom.minidom.parseString(svg)  # raises unless the chart is well-formed
    with open(os.path.join(out_dir, "comparison.svg"), "w") as f:
        f.write(svg)
    print("\n" + md)
    print(f"wrote {out_dir}/results.md, comparison.svg, results.json")


def load_average():
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", default="1,2", help="thread counts, e.g. 1,2 or 1,2,4,8,16 (default 1,2)")
    ap.add_argument("--reps", type=int, default=3, help="alternating repetitions (default 3)")
    ap.add_argument("--seconds", type=float, default=2.0, help="timed seconds per measurement (default 2)")
    ap.add_argument("--nets", default="small,notebook")
    ap.add_argument("--build", default=os.path.join(ROOT, "build-bench"), help="build directory (default build-bench)")
    ap.add_argument("--out", help="where the tables, chart and JSON go (default BUILD/comparison)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2, help="parallel build jobs")
    ap.add_argument("--no-build", action="store_true", help="use the programs already built")
    ap.add_argument("--no-pytorch", action="store_true", help="faltung only")
    ap.add_argument("--no-kernels", action="store_true", help="skip the convolution kernels")
    ap.add_argument("--no-tcmalloc", action="store_true", help="run both sides with glibc's malloc")
    ap.add_argument("--pytorch-memory-format", choices=["channels_last", "nchw"], default="channels_last")
    ap.add_argument("--openblas-coretype", metavar="CORE",
                    help="OPENBLAS_CORETYPE for PyTorch's OpenBLAS (default: SkylakeX where OpenBLAS would run an "
                         "older core's kernels on an AVX-512 CPU)")
    ap.add_argument("--python", help="the interpreter that runs PyTorch (default: this one, else /usr/bin/python3)")
    ap.add_argument("--from-json", metavar="FILE", help="redraw the tables and chart from a results.json, run nothing")
    ap.add_argument("--check-networks", action="store_true",
                    help="only check that PyTorch builds each network with faltung's parameter count (exit 77 "
                         "without PyTorch)")
    a = ap.parse_args()

    if a.from_json:
        with open(a.from_json) as f:
            results = json.load(f)
        write_outputs(results, a.out or os.path.dirname(os.path.abspath(a.from_json)))
        return
    threads = sorted({int(t) for t in a.threads.split(",") if t.strip()})
    build_dir = os.path.abspath(a.build)
    if not a.no_build:
        build(build_dir, a.jobs)
    if not program(build_dir, "bench_training"):
        sys.exit(f"no bench_training in {build_dir}/benchmarks (build it, or drop --no-build)")
    nets = networks(build_dir)
    nets = {n: nets[n] for n in a.nets.split(",")}
    if a.check_networks:
        check_networks(nets, pytorch_python(a.python))
        return
    tcmalloc = os.path.exists(TCMALLOC) and not a.no_tcmalloc
    python = None if a.no_pytorch else pytorch_python(a.python)
    if not a.no_pytorch and python is None:
        print("PyTorch not found (Debian: apt-get install python3-torch): faltung only", file=sys.stderr)
    coretype = openblas_coretype(a.openblas_coretype) if python else None
    git = subprocess.run(["git", "-C", ROOT, "describe", "--always", "--dirty"], capture_output=True, text=True)
    with open(os.path.join(build_dir, "CMakeCache.txt")) as f:
        cache = f.read()
    compiler = re.search(r"^CMAKE_CXX_COMPILER:\w+=(.*)$", cache, re.M)
    native = re.search(r"^FALTUNG_NATIVE:\w+=(.*)$", cache, re.M)
    meta = {"cpu": cpuinfo("model name") or "unknown CPU", "cpus": os.cpu_count(), "load_before": load_average(),
            "date": datetime.date.today().isoformat(), "reps": a.reps, "seconds": a.seconds,
            "faltung": git.stdout.strip() if git.returncode == 0 else "(not a git checkout)",
            "build": f"Release, {os.path.basename(compiler.group(1)) if compiler else '?'}"
                     + (", -march=native" if native and native.group(1) in ("ON", "1", "TRUE") else ""),
            "allocator": "tcmalloc (LD_PRELOAD)" if tcmalloc else "glibc malloc",
            "pytorch_memory_format": a.pytorch_memory_format, "openblas_coretype": coretype, "peaks": {}}
    print(f"{meta['cpu']}, {meta['cpus']} CPUs, load average {meta['load_before']}; faltung {meta['faltung']}; "
          f"threads {a.threads}, {a.reps} repetitions", flush=True)
    if os.getloadavg()[0] > 0.5:
        print(f"warning: load average {load_average()}: something else is running, the figures will be noisy")

    results = {"meta": meta, "threads": threads, "networks": nets, "runs": [], "kernels": []}
    for rep in range(a.reps):
        for t in threads:
            env = environment(t, tcmalloc)
            for i, (net, info) in enumerate(nets.items()):
                order = ["faltung", "pytorch"] if (rep + i) % 2 == 0 else ["pytorch", "faltung"]
                for engine in order:
                    if engine == "faltung":
                        r = faltung_network(build_dir, net, t, a.seconds, env)
                        meta["peaks"][str(t)] = max(meta["peaks"].get(str(t), 0), r["peak"])
                    elif python:
                        r = pytorch_network(python, info, net, t, a.seconds, pytorch_environment(env, coretype),
                                            a.pytorch_memory_format == "channels_last")
                        meta["pytorch"] = r.pop("info")
                    else:
                        continue
                    results["runs"].append(dict(r, rep=rep, threads=t, net=net, engine=engine))
                    print(f"rep {rep} threads {t} {net:<9} {engine:<8} training {r['train']:8.0f} img/s  "
                          f"inference {r['infer']:8.0f} img/s  peak RSS {r['rss']:5.0f} MiB", flush=True)
        if not a.no_kernels:
            rows, onednn = kernels(build_dir, threads, environment(None, tcmalloc))
            meta["onednn"] = onednn
            results["kernels"] += [dict(r, rep=rep) for r in rows]
            print(f"rep {rep} kernels: " + ", ".join(
                f"{r['engine']} {PASS_SHORT[r['pass']]} {r['shape']} {r['threads']}t {r['pct_peak']:.0f}%"
                for r in rows if r["shape"].endswith("_14")), flush=True)
    meta["load_after"] = load_average()
    write_outputs(results, a.out or os.path.join(build_dir, "comparison"))


if __name__ == "__main__":
    main()
