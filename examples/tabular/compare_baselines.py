#!/usr/bin/python3
"""The lecture's tabular table, measured here: faltung's logistic regression and MLP (the tabular
example) beside scikit-learn's LogisticRegression, XGBoost and a PyTorch MLP, all trained on the
same CSV files in the same run, one table per data set.

  cmake --build build -j2 --target tabular
  examples/tabular/compare_baselines.py --build build --threads 2

The data sets are the lecture's: make_classification 50,000 x 20 ("small") and 500,000 x 30
("large"), split 80/20, written once by `tabular --write-csv` into --work (default
build/tabular_sets). `--csv FILE --label COLUMN` compares on your file instead (faltung splits it
with --seed and writes the two halves, so every model sees the same rows).

Every model trains on the training file's features standardised with the training statistics and
is scored on the test file; the time is the training alone, as the lecture's table. The PyTorch MLP
is the same network as faltung's (the --mlp layers, Glorot-uniform weights, zero biases), trained
the same way: Adam (lr 1e-3, epsilon 1e-7 as Keras), batch 32, --epochs epochs, reshuffled each
epoch, in a plain indexing loop (no DataLoader). Each model runs in its own process with the same
environment, tuned as CPU users tune PyTorch: OMP_NUM_THREADS and torch.set_num_threads(--threads),
tcmalloc preloaded when installed (libtcmalloc-minimal4), OpenBLAS's OpenMP build and its core type
set on AVX-512 machines. The faltung rows run with the same preload.

Needs Debian's python3-sklearn, python3-xgboost, python3-torch (and python3-numpy).
"""
import argparse, csv, json, os, statistics, subprocess, sys, time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SETS = {"small": (50000, 20), "large": (500000, 30)}
TCMALLOC = "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4"
OPENBLAS_OPENMP = "/usr/lib/x86_64-linux-gnu/openblas-openmp"


# ------------------------------------------------------------------------------------------------
# Worker: one baseline in this process, its result as one JSON line on stdout.

def load_table(path):
    """Features (float32) and label texts of a CSV written by faltung's write_csv (label last)."""
    import numpy as np
    with open(path, newline="") as f:
        header = next(csv.reader(f))
    last = len(header) - 1
    x = np.loadtxt(path, delimiter=",", skiprows=1, usecols=range(last), dtype=np.float32, ndmin=2)
    labels = np.loadtxt(path, delimiter=",", skiprows=1, usecols=[last], dtype=str, ndmin=1)
    return x, labels


def parse_mlp(spec):
    """The hidden layers of an architecture spec of dense layers: [(units, activation), ...]."""
    layers = []
    for token in spec.split(","):
        parts = token.strip().lower().split(":")
        if parts[0] not in ("dense", "fc") or len(parts) not in (2, 3):
            sys.exit(f"--mlp: only dense:UNITS[:relu|tanh|sigmoid] layers have a PyTorch twin here, got '{token}'")
        layers.append((int(parts[1]), parts[2] if len(parts) == 3 else "linear"))
    return layers


def worker(a):
    import numpy as np
    from sklearn.preprocessing import StandardScaler
    x_train, l_train = load_table(a.train)
    x_test, l_test = load_table(a.test)
    classes, y_all = np.unique(np.concatenate([l_train, l_test]), return_inverse=True)
    y_train, y_test = y_all[: len(l_train)], y_all[len(l_train):]
    scaler = StandardScaler().fit(x_train)
    x_train, x_test = scaler.transform(x_train).astype(np.float32), scaler.transform(x_test).astype(np.float32)

    if a.worker == "logreg":
        from sklearn.linear_model import LogisticRegression
        model = LogisticRegression()
        start = time.perf_counter()
        model.fit(x_train, y_train)
        seconds = time.perf_counter() - start
        accuracy, name = model.score(x_test, y_test), "logistic regression (lbfgs)"
    elif a.worker == "xgboost":
        import xgboost
        model = xgboost.XGBClassifier(n_jobs=a.threads, tree_method="hist")
        start = time.perf_counter()
        model.fit(x_train, y_train)
        seconds = time.perf_counter() - start
        accuracy, name = float((model.predict(x_test) == y_test).mean()), "XGBoost (100 trees, hist)"
    else:
        import torch
        torch.set_num_threads(a.threads)
        torch.manual_seed(a.seed)
        binary = len(classes) == 2
        layers, width, sizes = [], x_train.shape[1], [str(x_train.shape[1])]
        for units, activation in parse_mlp(a.mlp) + [(1 if binary else len(classes), "linear")]:
            layers.append(torch.nn.Linear(width, units))
            torch.nn.init.xavier_uniform_(layers[-1].weight)
            torch.nn.init.zeros_(layers[-1].bias)
            if activation != "linear":
                layers.append({"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh, "sigmoid": torch.nn.Sigmoid}[activation]())
            width = units
            sizes.append(str(units))
        model = torch.nn.Sequential(*layers)
        loss_fn = torch.nn.BCEWithLogitsLoss() if binary else torch.nn.CrossEntropyLoss()
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
        x = torch.from_numpy(x_train)
        y = torch.from_numpy(y_train.astype(np.float32)).unsqueeze(1) if binary else torch.from_numpy(y_train)
        n = x.shape[0]
        start = time.perf_counter()
        for _ in range(a.epochs):
            order = torch.randperm(n)
            for first in range(0, n, a.batch):
                rows = order[first:first + a.batch]
                optimizer.zero_grad(set_to_none=True)
                loss_fn(model(x[rows]), y[rows]).backward()
                optimizer.step()
        seconds = time.perf_counter() - start
        with torch.no_grad():
            out = model(torch.from_numpy(x_test))
            pred = (out[:, 0] > 0).long() if binary else out.argmax(1)
        accuracy = float((pred.numpy() == y_test).mean())
        name = f"MLP {'-'.join(sizes)} ({a.epochs} epochs)"
    print(json.dumps({"model": name, "accuracy": float(accuracy), "seconds": seconds}))


# ------------------------------------------------------------------------------------------------
# Driver

def environment(threads):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    if os.path.exists(TCMALLOC):
        env["LD_PRELOAD"] = TCMALLOC + (":" + env["LD_PRELOAD"] if env.get("LD_PRELOAD") else "")
    if os.path.isdir(OPENBLAS_OPENMP):
        env["LD_LIBRARY_PATH"] = OPENBLAS_OPENMP + (":" + env["LD_LIBRARY_PATH"] if env.get("LD_LIBRARY_PATH") else "")
    # Debian's OpenBLAS 0.3.21 does not recognise the newest CPUs and falls back to a generic
    # kernel; on an AVX-512 machine name the core type for it.
    try:
        if "avx512f" in open("/proc/cpuinfo").read() and "OPENBLAS_CORETYPE" not in env:
            env["OPENBLAS_CORETYPE"] = "SkylakeX"
    except OSError:
        pass
    return env


def run(cmd, env):
    proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout}{proc.stderr}")
    return proc.stdout


def faltung_rows(a, tabular, train, test, env):
    results = os.path.join(os.path.dirname(train), "faltung_results.csv")
    run([tabular, "--csv", train, "--test-csv", test, "--label", "-1", "--threads", str(a.threads), "--epochs",
         str(a.epochs), "--batch", str(a.batch), "--mlp", a.mlp, "--seed", str(a.seed), "--results", results], env)
    with open(results, newline="") as f:
        rows = list(csv.DictReader(f))
    return [{"framework": "faltung", "model": r["model"] + (" (Dense, Adam" if r["model"].startswith("logistic") else " (")
             + f"{', ' if r['model'].startswith('logistic') else ''}{r['epochs']} epochs)",
             "accuracy": float(r["accuracy"]), "seconds": float(r["seconds"])} for r in rows]


def baseline_row(a, which, train, test, env):
    out = run([sys.executable, os.path.abspath(__file__), "--worker", which, "--train", train, "--test", test,
               "--threads", str(a.threads), "--epochs", str(a.epochs), "--batch", str(a.batch), "--mlp", a.mlp,
               "--seed", str(a.seed)], env)
    r = json.loads(out.strip().splitlines()[-1])
    r["framework"] = {"logreg": "scikit-learn", "xgboost": "XGBoost", "torch": "PyTorch"}[which]
    return r


def seconds_text(s):
    return f"{s * 1000:.0f} ms" if s < 1 else f"{s:.2f} s" if s < 10 else f"{s:.1f} s"


def load_average():
    try:
        return open("/proc/loadavg").read().split()[0]
    except OSError:
        return "?"


def compare(a, title, train, test, tabular, env):
    print(f"\n## {title}: {train} and {test}, {a.threads} thread(s), batch {a.batch}, load average {load_average()}",
          flush=True)
    # Repetitions alternate faltung and the baselines, so that a busy spell of the shared
    # machine hits both; the table shows the median time of each model.
    runs = {}
    for rep in range(a.reps):
        rows = faltung_rows(a, tabular, train, test, env)
        for which in a.baselines:
            if which == "torch" and title == "large" and a.skip_torch_large:
                continue
            rows.append(baseline_row(a, which, train, test, env))
        for r in rows:
            runs.setdefault((r["framework"], r["model"]), []).append(r)
        print(f"  repetition {rep + 1}/{a.reps} done, load average {load_average()}", flush=True)
    print("\n| framework | model | accuracy | training time |\n|---|---|---|---|")
    medians = {}
    for (framework, model), rs in runs.items():
        seconds = statistics.median(r["seconds"] for r in rs)
        spread = f" ({seconds_text(min(r['seconds'] for r in rs))}-{seconds_text(max(r['seconds'] for r in rs))})" \
            if len(rs) > 1 else ""
        medians[(framework, model.split(" ")[0])] = seconds
        print(f"| {framework} | {model} | {statistics.median(r['accuracy'] for r in rs):.4f} | "
              f"{seconds_text(seconds)}{spread} |")
    if ("faltung", "MLP") in medians and ("PyTorch", "MLP") in medians:
        ratio = medians[("PyTorch", "MLP")] / medians[("faltung", "MLP")]
        print(f"\nfaltung's MLP trains {ratio:.1f}x faster than PyTorch's (median times)." if ratio >= 1 else
              f"\nfaltung's MLP trains {1 / ratio:.1f}x SLOWER than PyTorch's (median times).")
    sys.stdout.flush()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--build", default=os.path.join(ROOT, "build"), help="faltung's build directory (default build)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--sets", default="small,large", help="small (50,000 x 20), large (500,000 x 30); default both")
    p.add_argument("--csv", help="your CSV file instead of the generated sets (with --label)")
    p.add_argument("--label", help="the label column of --csv: a name or a 0-based index")
    p.add_argument("--work", help="where the CSV files go (default BUILD/tabular_sets)")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--mlp", default="dense:64:relu,dense:32:relu", help="the MLP's hidden layers")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--reps", type=int, default=1, help="repetitions, alternating the frameworks (median shown)")
    p.add_argument("--baselines", default="logreg,xgboost,torch", help="which of logreg, xgboost, torch to run")
    p.add_argument("--skip-torch-large", action="store_true",
                   help="leave out the PyTorch MLP on the large set (minutes)")
    # Worker mode (internal).
    p.add_argument("--worker", choices=["logreg", "xgboost", "torch"], help=argparse.SUPPRESS)
    p.add_argument("--train", help=argparse.SUPPRESS)
    p.add_argument("--test", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker:
        return worker(a)

    a.baselines = [b for b in a.baselines.split(",") if b]
    tabular = os.path.join(a.build, "examples", "tabular")
    if not os.access(tabular, os.X_OK):
        sys.exit(f"{tabular} not found: build it first (cmake --build {a.build} --target tabular)")
    work = a.work or os.path.join(a.build, "tabular_sets")
    env = environment(a.threads)
    print(f"faltung: {tabular}; Python {sys.version.split()[0]}; environment: OMP_NUM_THREADS={a.threads}"
          f" LD_PRELOAD={env.get('LD_PRELOAD', '')} OPENBLAS_CORETYPE={env.get('OPENBLAS_CORETYPE', '')}")
    if a.csv:
        if not a.label:
            sys.exit("--csv needs --label COLUMN")
        out = os.path.join(work, "csv")
        run([tabular, "--csv", a.csv, "--label", a.label, "--seed", str(a.seed), "--write-csv", out], env)
        compare(a, os.path.basename(a.csv), os.path.join(out, "train.csv"), os.path.join(out, "test.csv"), tabular, env)
        return
    for name in [s for s in a.sets.split(",") if s]:
        if name not in SETS:
            sys.exit(f"--sets: unknown set '{name}' (small, large)")
        samples, features = SETS[name]
        out = os.path.join(work, name)
        run([tabular, "--samples", str(samples), "--features", str(features), "--seed", str(a.seed),
             "--write-csv", out], env)
        compare(a, name, os.path.join(out, "train.csv"), os.path.join(out, "test.csv"), tabular, env)


if __name__ == "__main__":
    main()
