#!/usr/bin/env python3
"""Runs faltung's benchmarks and the PyTorch reference side by side, alternating, and prints the
median ratios (faltung images/s / PyTorch images/s) for training and inference of both reference
networks at the same thread count, the peak RSS of both, and the convolution kernels' share of
the FMA peak.

  cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DFALTUNG_BUILD_TESTS=OFF -DFALTUNG_BUILD_EXAMPLES=OFF
  cmake --build build-bench -j1 --target bench_training bench_kernels
  python3 benchmarks/compare_pytorch.py --threads 2 --reps 3 [--kernels]

PyTorch runs as ../shared/bench/torch_reference.py prescribes (Debian's python3-torch with
OpenBLAS-OpenMP); pass --torch-script PATH when the script lives elsewhere. The machines are
shared: the script prints the load average before and after, and only same-run ratios mean much.
"""
import argparse, json, os, statistics, subprocess, sys, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NETS = {"small": {"batch": 64}, "notebook": {"batch": 256}}


def run_measured(cmd, env):
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = proc.stdout.read()
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{err.decode()}")
    return out.decode(), usage.ru_maxrss / 1024.0


def faltung_net(build, net, threads, seconds):
    env = dict(os.environ, FALTUNG_BENCH_THREADS=str(threads), FALTUNG_BENCH_SECONDS=str(seconds),
               OMP_PROC_BIND="false")
    out, rss = run_measured([os.path.join(build, "benchmarks", "bench_training"),
                             f"--benchmark_filter=^(train|infer)/{net}/threads:{threads}/",
                             "--benchmark_format=json"], env)
    res = {"rss": rss}
    for b in json.loads(out)["benchmarks"]:
        res[b["name"].split("/")[0]] = b["items_per_second"]
    return res


def torch_net(script, net, threads, steps):
    env = dict(os.environ, LD_LIBRARY_PATH="/usr/lib/x86_64-linux-gnu/openblas-openmp", OPENBLAS_CORETYPE="SkylakeX")
    out, rss = run_measured(["/usr/bin/python3", script, "--net", net, "--threads", str(threads), "--steps", str(steps)], env)
    kv = dict(item.split("=", 1) for item in out.split() if "=" in item)
    return {"train": float(kv["train_img_s"]), "infer": float(kv["infer_img_s"]), "rss": rss}


def kernels(build, threads):
    env = dict(os.environ, FALTUNG_BENCH_THREADS=",".join(sorted({"1", str(threads)})))
    out, _ = run_measured([os.path.join(build, "benchmarks", "bench_kernels"), "--benchmark_filter=fma|conv|max_pool",
                           "--benchmark_format=json"], env)
    print(f"\n{'kernel':<62} {'GFLOP/s':>8} {'% peak':>7} {'img/s':>10}")
    for b in json.loads(out)["benchmarks"]:
        g = b.get("FLOP/s", 0) / 1e9
        pct = b.get("pct_peak", float("nan"))
        ips = b.get("items_per_second", float("nan"))
        print(f"{b['name']:<62} {g:8.1f} {pct:7.1f} {ips:10.0f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--torch-script", default=os.path.join(ROOT, "..", "shared", "bench", "torch_reference.py"))
    ap.add_argument("--build", default=os.path.join(ROOT, "build-bench"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--nets", default="small,notebook")
    ap.add_argument("--small-steps", type=int, default=150, help="PyTorch training batches, small net")
    ap.add_argument("--notebook-steps", type=int, default=30, help="PyTorch training batches, notebook net")
    ap.add_argument("--seconds", type=float, default=0, help="faltung: seconds per benchmark (default: about "
                    "as long as PyTorch's timed steps)")
    ap.add_argument("--kernels", action="store_true", help="also run the convolution kernel benchmarks")
    a = ap.parse_args()
    if not os.path.exists(a.torch_script):
        sys.exit(f"PyTorch reference not found: {a.torch_script} (pass --torch-script)")
    print("load average before:", os.getloadavg())
    results = {}
    for rep in range(a.reps):
        for net in a.nets.split(","):
            steps = a.small_steps if net == "small" else a.notebook_steps
            f = faltung_net(a.build, net, a.threads, a.seconds or (4 if net == "small" else 6))
            t = torch_net(a.torch_script, net, a.threads, steps)
            results.setdefault(net, []).append((f, t))
            print(f"rep {rep} {net:<9} faltung train {f['train']:8.0f} infer {f['infer']:8.0f} rss {f['rss']:6.0f} MiB | "
                  f"pytorch train {t['train']:8.0f} infer {t['infer']:8.0f} rss {t['rss']:6.0f} MiB", flush=True)
    print(f"\nthreads={a.threads}, medians over {a.reps} alternating repetitions (images/s)")
    print(f"{'net':<9} {'what':<6} {'faltung':>9} {'pytorch':>9} {'ratio':>7}")
    for net, rs in results.items():
        for what in ("train", "infer"):
            fs = statistics.median(r[0][what] for r in rs)
            ts = statistics.median(r[1][what] for r in rs)
            ratio = statistics.median(r[0][what] / r[1][what] for r in rs)
            print(f"{net:<9} {what:<6} {fs:9.0f} {ts:9.0f} {ratio:7.2f}")
        print(f"{net:<9} {'rss':<6} {statistics.median(r[0]['rss'] for r in rs):7.0f}Mi {statistics.median(r[1]['rss'] for r in rs):7.0f}Mi "
              f"{statistics.median(r[0]['rss'] / r[1]['rss'] for r in rs):7.2f}")
    if a.kernels:
        kernels(a.build, a.threads)
    print("load average after:", os.getloadavg())


if __name__ == "__main__":
    main()
