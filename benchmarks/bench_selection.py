"""SMI selection: this package's native backend against submodlib, seconds, peak memory and pick agreement.

Problem (the issue's setting): d = 512 embeddings, |Q| = 20 queries, |P| = 20 privates (conditional
functions), budget B = 100, default parameters (eta = nu = lam = 1), kernel (1 + cos) / 2.
Generator: a mixture of 20 Gaussian clusters, centres c_k ~ N(0, I_d), points c_k + 0.7 N(0, I_d) with the
cluster drawn uniformly; queries from clusters 0 and 1 (the "rare" ones), privates from the others.
submodlib gets dense kernels built as DISTIL builds them and runs LazyGreedy for the submodular functions
(its fastest exact optimizer) and NaiveGreedy for LogDetMI/CMI (LazyGreedy changes their picks). Where
picks differ, submodlib's own objective scores both sets ("value" columns): once every gain is zero,
LazyGreedy's order among the zero-gain points follows its heap, not the index, so tails can differ.

Every configuration runs in a fresh process, so its peak resident memory (ru_maxrss) is its own; the
table shows the peak and the growth over the process after imports and data generation.

    python benchmarks/bench_selection.py [--sizes 1000 5000 10000 20000 100000] [--functions flmi ...]
                                         [--submodlib-max-n 10000] [--device cpu]

Prints the table and writes results/bench/selection_<device>.json (atomically, after every row).
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


def problem(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(CLUSTERS, D)).astype(np.float32)

    def draw(count, clusters):
        return centres[rng.choice(clusters, count)] + 0.7 * rng.normal(size=(count, D)).astype(np.float32)

    return draw(n, np.arange(CLUSTERS)), draw(N_QUERY, [0, 1]), draw(N_PRIVATE, np.arange(2, CLUSTERS))


def peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def child(function: str, n: int, backend: str, device: str, picks_path: str) -> None:
    """One configuration in this (fresh) process; prints one JSON line. The submodlib child also scores
    the native picks found at `picks_path` (if any) with submodlib's own objective."""
    import torch

    from clinical_utils.selection import smi_select
    from clinical_utils.selection.reference import submodlib_function

    pool, query, private = problem(n)
    private = private if function in ("flcmi", "logdetcmi") else None
    base = peak_gib()
    start = time.perf_counter()
    if backend == "native":
        picks = smi_select(function, torch.from_numpy(pool).to(device), torch.from_numpy(query).to(device), BUDGET,
                           None if private is None else torch.from_numpy(private).to(device))
        if device != "cpu":
            torch.cuda.synchronize()
    else:
        optimizer = "NaiveGreedy" if function.startswith("logdet") else "LazyGreedy"
        f = submodlib_function(function, torch.from_numpy(pool), torch.from_numpy(query),
                               None if private is None else torch.from_numpy(private))
        picks = np.array([i for i, _ in f.maximize(budget=BUDGET, optimizer=optimizer, stopIfZeroGain=False,
                                                      stopIfNegativeGain=False, verbose=False, show_progress=False)])
    seconds = time.perf_counter() - start
    result = {"seconds": seconds, "peak_gib": peak_gib(), "growth_gib": peak_gib() - base}
    if backend == "native" and device != "cpu":
        result["gpu_peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
    if backend == "submodlib" and Path(picks_path).exists():  # the native picks, scored by submodlib
        result["value_native"] = f.evaluate(set(np.load(picks_path).tolist()))
        result["value_submodlib"] = f.evaluate(set(picks.tolist()))
    np.save(picks_path, picks)
    print(json.dumps(result))


def run(function: str, n: int, backend: str, device: str, timeout: float,
        native_picks: np.ndarray | None = None) -> tuple[dict, np.ndarray | None]:
    with tempfile.TemporaryDirectory() as tmp:
        picks_path = str(Path(tmp) / "picks.npy")
        if native_picks is not None:
            np.save(picks_path, native_picks)
        cmd = [sys.executable, __file__, "--child", function, str(n), backend, device, picks_path]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"error": f"over {timeout:.0f} s"}, None
        if done.returncode != 0:
            return {"error": (done.stderr.strip().splitlines() or ["exit %d" % done.returncode])[-1]}, None
        return json.loads(done.stdout.strip().splitlines()[-1]), np.load(picks_path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000, 10000, 20000, 100000])
    parser.add_argument("--functions", nargs="+", default=list(FUNCTIONS), choices=FUNCTIONS)
    parser.add_argument("--submodlib-max-n", type=int, default=10000,
                        help="largest n given to submodlib: at n = 20,000 its FLMI needs about 20 GB, "
                             "LogDetMI more, on a 24 GiB machine")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--out", default="results/bench")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        function, n, backend, device, picks_path = args.child
        child(function, int(n), backend, device, picks_path)
        return
    # The parent imports nothing heavy (not even clinical_utils): on Linux a child's ru_maxrss starts from the
    # parent's resident size at fork, so a large parent would inflate every child's peak.
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"selection_{args.device.split(':')[0]}.json"
    report = {"d": D, "queries": N_QUERY, "privates": N_PRIVATE, "budget": BUDGET, "clusters": CLUSTERS,
              "device": args.device, "rows": []}
    print(f"{'function':<10} {'n':>7} {'ours s':>8} {'ours GiB':>9} {'submodlib s':>12} {'submodlib GiB':>14} "
          f"{'speed-up':>9} {'memory':>7} {'same picks':>10} {'f(ours)/f(theirs)':>18}")
    for n in args.sizes:
        for function in args.functions:
            ours, our_picks = run(function, n, "native", args.device, args.timeout)
            row = {"function": function, "n": n, "ours": ours}
            if n <= args.submodlib_max_n:
                theirs, their_picks = run(function, n, "submodlib", "cpu", args.timeout, our_picks)
                row["submodlib"] = theirs
                if our_picks is not None and their_picks is not None:
                    row["same_picks"] = float(np.mean(our_picks == their_picks))
            else:
                row["submodlib"] = {"error": f"not run: n > {args.submodlib_max_n} does not fit in memory"}
            report["rows"].append(row)
            tmp = path.with_suffix(".json.tmp")
            tmp.write_text(json.dumps(report, indent=2) + "\n")
            tmp.replace(path)
            print(format_row(row), flush=True)
    print(f"wrote {path}")


def format_row(row: dict) -> str:
    ours, theirs = row["ours"], row.get("submodlib", {})

    def cell(r, key, width, fmt):
        if r and key in r:
            return f"{format(r[key], fmt):>{width}}"
        error = r.get("error", "-")
        return f"{'not run' if error.startswith('not run') else error[:width]:>{width}}"

    speed = f"{theirs['seconds'] / ours['seconds']:.0f}x" if "seconds" in theirs and "seconds" in ours else "-"
    memory = f"{theirs['peak_gib'] / ours['peak_gib']:.1f}x" if "peak_gib" in theirs and "peak_gib" in ours else "-"
    same = f"{row['same_picks']:.2f}" if "same_picks" in row else "-"
    value = (f"{theirs['value_native'] / theirs['value_submodlib']:.6f}"
             if theirs.get("value_submodlib") else "-")
    return (f"{row['function']:<10} {row['n']:>7} {cell(ours, 'seconds', 8, '.2f')} {cell(ours, 'peak_gib', 9, '.2f')} "
            f"{cell(theirs, 'seconds', 12, '.2f')} {cell(theirs, 'peak_gib', 14, '.2f')} {speed:>9} {memory:>7} "
            f"{same:>10} {value:>18}")


if __name__ == "__main__":
    main()
