"""SMI selection: this package's native backend against submodlib, seconds, peak memory and pick agreement.

Problem (the issue's setting): |Q| = 20 queries, |P| = 20 privates (conditional functions), budget B = 100,
default parameters (eta = nu = lam = 1), kernel (1 + cos) / 2, on four kinds of data (--data):
  clustered     d = 512, a mixture of 20 Gaussian clusters: centres c_k ~ N(0, I_d), points c_k + 0.7 N(0, I_d),
                the cluster drawn uniformly; queries from clusters 0 and 1 (the "rare" ones), privates from the others;
  isotropic     d = 512, every point N(0, I_d): no cluster structure, so gains stay close together;
  gradients_k2  the loop's real input: factored gradient embeddings (K = 2 classes, 512-d penultimate features) of
  gradients_k5  a ResNet-18 (28) trained for 10 epochs on 1,000 PneumoniaMNIST (K = 2) or 540 RetinaMNIST (K = 5)
                training images, the other training images as the pool at their predicted labels, tiled to n rows
                (each copy's features times 1 + 0.05 N(0, 1), so no two rows are equal); queries: 20 pool images
                of the rarest class (pneumonia; RetinaMNIST's grade 4) at their true label, privates: 20 others.
                The model and its outputs are cached in benchmarks/.cache/ (needs $MEDMNIST_ROOT or internet).
submodlib gets dense kernels built as DISTIL builds them and runs LazyGreedy (DISTIL's default optimizer) and, for
LogDetMI/CMI, also NaiveGreedy ("submodlib naive"): LazyGreedy assumes submodularity, which the log-det MI
functions lack, so its picks may differ from exact greedy's. Where picks differ, submodlib's own objective
scores both sets ("value" columns): once every gain is zero, LazyGreedy's order among the zero-gain points
follows its heap, not the index, so tails can differ.

Every configuration runs in a fresh process, so its peak resident memory (ru_maxrss) is its own; the
table shows the peak and the growth over the process after imports and data generation.

    python benchmarks/bench_selection.py [--data clustered isotropic gradients_k2 gradients_k5]
                                         [--sizes 1000 5000 10000 20000 100000] [--functions flmi ...]
                                         [--submodlib-max-n 10000] [--device cpu]

Prints the table and writes results/bench/selection_<data>_<device>.json (atomically, after every row; rows of
sizes or functions not run this time are kept from the file).
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

D, N_QUERY, N_PRIVATE, BUDGET, CLUSTERS = 512, 20, 20, 100, 20
FUNCTIONS = ("flmi", "flqmi", "gcmi", "logdetmi", "flcmi", "logdetcmi")
DATA = ("clustered", "isotropic", "gradients_k2", "gradients_k5")
SOURCES = {"gradients_k2": ("pneumoniamnist", 1), "gradients_k5": ("retinamnist", 4)}  # (set, rarest class)
CACHE = Path(__file__).resolve().parent / ".cache"


def problem(data: str, n: int, seed: int = 0):
    """(pool, query, private) of `data` with n pool rows: float32 arrays, or GradientEmbeddings."""
    rng = np.random.default_rng(seed)
    if data in SOURCES:
        return gradient_problem(data, n, rng)
    if data == "isotropic":
        return tuple(rng.normal(size=(m, D)).astype(np.float32) for m in (n, N_QUERY, N_PRIVATE))
    centres = rng.normal(size=(CLUSTERS, D)).astype(np.float32)

    def draw(count, clusters):
        return centres[rng.choice(clusters, count)] + 0.7 * rng.normal(size=(count, D)).astype(np.float32)

    return draw(n, np.arange(CLUSTERS)), draw(N_QUERY, [0, 1]), draw(N_PRIVATE, np.arange(2, CLUSTERS))


def gradient_problem(data: str, n: int, rng: np.random.Generator):
    from clinical_utils.selection import gradient_embedding

    with np.load(model_outputs(data)) as f:
        probs, feats, labels = f["probs"], f["feats"], f["labels"]
    rare = SOURCES[data][1]
    picks = rng.permutation(len(labels))
    query = picks[labels[picks] == rare][:N_QUERY]
    private = picks[labels[picks] != rare][:N_PRIVATE]
    rows = np.resize(np.arange(len(labels)), n)  # tiled: 0, 1, ..., N - 1, 0, 1, ...
    jitter = (1 + 0.05 * rng.normal(size=(n, feats.shape[1]))).astype(np.float32)
    return (gradient_embedding(probs[rows], feats[rows] * jitter),
            gradient_embedding(probs[query], feats[query], labels[query]),
            gradient_embedding(probs[private], feats[private], labels[private]))


def model_outputs(data: str) -> Path:
    """benchmarks/.cache/<set>_resnet18.npz: probabilities, features and labels of the pool images, computed once."""
    flag = SOURCES[data][0]
    path = CACHE / f"{flag}_resnet18.npz"
    if path.exists():
        return path
    from clinical_utils.data import load_medmnist
    from clinical_utils.training.models import build_model
    from clinical_utils.training.train import TrainConfig, predict, train

    split = load_medmnist(flag).train
    order = np.random.default_rng(0).permutation(len(split.labels))
    fit, pool = order[:min(1000, len(order) // 2)], order[min(1000, len(order) // 2):]  # RetinaMNIST: 1,080
    model = build_model("resnet18", split.images.shape[1], int(split.labels.max()) + 1, seed=0)
    train(model, split.images[fit], split.labels[fit], TrainConfig(epochs=10, batch_size=64), "cpu", 0, False)
    probs, feats = predict(model, split.images[pool], "cpu", features=True)
    CACHE.mkdir(exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, probs=probs, feats=feats, labels=split.labels[pool])
    tmp.replace(path)
    return path


def peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def child(data: str, function: str, n: int, backend: str, device: str, picks_path: str) -> None:
    """One configuration in this (fresh) process; prints one JSON line. backend: native, submodlib (LazyGreedy) or
    submodlib_naive (NaiveGreedy). A submodlib child also scores the native picks found at `picks_path` (if any)
    with submodlib's own objective."""
    import torch

    from clinical_utils.selection import GradientEmbedding, smi_select
    from clinical_utils.selection.reference import submodlib_function

    pool, query, private = problem(data, n)
    private = private if function in ("flcmi", "logdetcmi") else None

    def to(x, where=device if backend == "native" else "cpu"):
        return GradientEmbedding(to(x.e), to(x.h)) if isinstance(x, GradientEmbedding) else \
            torch.as_tensor(x).to(where)

    base = peak_gib()
    start = time.perf_counter()
    if backend == "native":
        picks = smi_select(function, to(pool), to(query), BUDGET, None if private is None else to(private))
        if device != "cpu":
            torch.cuda.synchronize()
    else:
        f = submodlib_function(function, *(None if x is None else to(x) for x in (pool, query, private)))
        optimizer = "NaiveGreedy" if backend == "submodlib_naive" else "LazyGreedy"
        picks = np.array([i for i, _ in f.maximize(budget=BUDGET, optimizer=optimizer, stopIfZeroGain=False,
                                                      stopIfNegativeGain=False, verbose=False, show_progress=False)])
    seconds = time.perf_counter() - start
    result = {"seconds": seconds, "peak_gib": peak_gib(), "growth_gib": peak_gib() - base}
    if backend == "native" and device != "cpu":
        result["gpu_peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
    if backend != "native" and Path(picks_path).exists():  # the native picks, scored by submodlib
        result["value_native"] = f.evaluate(set(np.load(picks_path).tolist()))
        result["value_submodlib"] = f.evaluate(set(picks.tolist()))
    np.save(picks_path, picks)
    print(json.dumps(result))


def run(data: str, function: str, n: int, backend: str, device: str, timeout: float,
        native_picks: np.ndarray | None = None) -> tuple[dict, np.ndarray | None]:
    with tempfile.TemporaryDirectory() as tmp:
        picks_path = str(Path(tmp) / "picks.npy")
        if native_picks is not None:
            np.save(picks_path, native_picks)
        cmd = [sys.executable, __file__, "--child", data, function, str(n), backend, device, picks_path]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"error": f"over {timeout:.0f} s"}, None
        if done.returncode != 0:
            return {"error": (done.stderr.strip().splitlines() or ["exit %d" % done.returncode])[-1]}, None
        return json.loads(done.stdout.strip().splitlines()[-1]), np.load(picks_path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", nargs="+", default=list(DATA), choices=DATA)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000, 10000, 20000, 100000])
    parser.add_argument("--functions", nargs="+", default=list(FUNCTIONS), choices=FUNCTIONS)
    parser.add_argument("--submodlib-max-n", type=int, default=10000,
                        help="largest n given to submodlib: at n = 20,000 its FLMI needs about 20 GB, "
                             "LogDetMI more, on a 24 GiB machine")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--out", default="results/bench")
    parser.add_argument("--child", nargs=6, help=argparse.SUPPRESS)
    parser.add_argument("--prepare", choices=list(SOURCES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.prepare:
        model_outputs(args.prepare)
        return
    if args.child:
        data, function, n, backend, device, picks_path = args.child
        child(data, function, int(n), backend, device, picks_path)
        return
    # The parent imports nothing heavy (not even clinical_utils): on Linux a child's ru_maxrss starts from the
    # parent's resident size at fork, so a large parent would inflate every child's peak.
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for data in args.data:
        if data in SOURCES:  # train the model once, in its own process, before any configuration is measured
            subprocess.run([sys.executable, __file__, "--prepare", data], check=True)
        path = out / f"selection_{data}_{args.device.split(':')[0]}.json"
        report = {"data": data, "d": D, "queries": N_QUERY, "privates": N_PRIVATE, "budget": BUDGET,
                  "device": args.device, "rows": []}
        if path.exists():  # rows of other sizes or functions, from an earlier run, stay
            report["rows"] = [r for r in json.loads(path.read_text())["rows"]
                              if r["n"] not in args.sizes or r["function"] not in args.functions]
        print(f"== {data}\n{'function':<10} {'n':>7} {'ours s':>8} {'ours GiB':>9} {'submodlib s':>12} "
              f"{'submodlib GiB':>14} {'speed-up':>9} {'memory':>7} {'same picks':>10} {'f(ours)/f(theirs)':>18} "
              f"{'naive s':>8} {'vs naive':>9}")
        for n in args.sizes:
            for function in args.functions:
                ours, our_picks = run(data, function, n, "native", args.device, args.timeout)
                row = {"data": data, "function": function, "n": n, "ours": ours}
                backends = ("submodlib", "submodlib_naive") if function.startswith("logdet") else ("submodlib",)
                for backend in backends:
                    if n > args.submodlib_max_n:
                        row[backend] = {"error": f"not run: n > {args.submodlib_max_n} does not fit in memory"}
                        continue
                    theirs, their_picks = run(data, function, n, backend, "cpu", args.timeout, our_picks)
                    row[backend] = theirs
                    if our_picks is not None and their_picks is not None:
                        row[f"same_picks_{backend}"] = float(np.mean(our_picks == their_picks))
                report["rows"].append(row)
                report["rows"].sort(key=lambda r: (r["n"], FUNCTIONS.index(r["function"])))
                tmp = path.with_suffix(".json.tmp")
                tmp.write_text(json.dumps(report, indent=2) + "\n")
                tmp.replace(path)
                print(format_row(row), flush=True)
        print(f"wrote {path}")


def format_row(row: dict) -> str:
    ours, theirs, naive = row["ours"], row.get("submodlib", {}), row.get("submodlib_naive", {})

    def cell(r, key, width, fmt):
        if r and key in r:
            return f"{format(r[key], fmt):>{width}}"
        error = r.get("error", "-")
        return f"{'not run' if error.startswith('not run') else error[:width]:>{width}}"

    def ratio(r, key, fmt):
        return format(r[key] / ours[key], fmt) + "x" if key in r and key in ours else "-"

    same = row.get("same_picks_submodlib")
    value = (f"{theirs['value_native'] / theirs['value_submodlib']:.6f}"
             if theirs.get("value_submodlib") else "-")
    return (f"{row['function']:<10} {row['n']:>7} {cell(ours, 'seconds', 8, '.2f')} {cell(ours, 'peak_gib', 9, '.2f')} "
            f"{cell(theirs, 'seconds', 12, '.2f')} {cell(theirs, 'peak_gib', 14, '.2f')} "
            f"{ratio(theirs, 'seconds', '.0f'):>9} {ratio(theirs, 'peak_gib', '.1f'):>7} "
            f"{'-' if same is None else format(same, '.2f'):>10} {value:>18} "
            f"{cell(naive, 'seconds', 8, '.2f') if naive else '-':>8} {ratio(naive, 'seconds', '.0f'):>9}")


if __name__ == "__main__":
    main()
