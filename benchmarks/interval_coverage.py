"""How often a 95% interval over seeds contains the true mean difference: Student's t against scipy's bootstrap.

The paired tables (clinical_utils/stats.py) compare strategies over 3-10 seeds. This simulates that setting:
paired differences drawn from a known distribution (normal, and a skewed one: exponential minus its mean), n
seeds, many repetitions; it counts how often each interval covers the true mean (0), and their median width.
Intervals: the t interval (`scipy.stats.ttest_1samp(...).confidence_interval`, what stats.py uses) and
`scipy.stats.bootstrap` with the percentile and BCa methods (9,999 resamples).

    python benchmarks/interval_coverage.py [--repetitions 1000] [--seeds 3 5 10]

Prints the table and writes results/bench/interval_coverage.json.
"""
from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import numpy as np
from scipy import stats

DRAWS = {"normal": lambda rng, n: rng.normal(size=n), "skewed": lambda rng, n: rng.exponential(size=n) - 1.0}


def intervals(d: np.ndarray, rng: np.random.Generator) -> dict[str, tuple[float, float]]:
    t = stats.ttest_1samp(d, 0.0).confidence_interval(0.95)
    out = {"t": (t.low, t.high)}
    for method in ("percentile", "BCa"):
        with warnings.catch_warnings():  # BCa warns (and returns NaN) when every resample has the same mean
            warnings.simplefilter("ignore")
            ci = stats.bootstrap((d,), np.mean, confidence_level=0.95, n_resamples=9999, method=method,
                                 random_state=rng).confidence_interval
        out[f"bootstrap {method}"] = (ci.low, ci.high)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repetitions", type=int, default=1000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[3, 5, 10])
    parser.add_argument("--out", default="results/bench")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    rows = []
    print(f"{'differences':<12} {'seeds':>5} {'interval':<22} {'coverage':>9} {'median width':>13}")
    for name, draw in DRAWS.items():
        for n in args.seeds:
            found: dict[str, list] = {}
            for _ in range(args.repetitions):
                for method, (low, high) in intervals(draw(rng, n), rng).items():
                    found.setdefault(method, []).append((low, high))
            for method, bounds in found.items():
                low, high = np.array(bounds).T
                row = {"differences": name, "seeds": n, "interval": method,
                       "coverage": float(np.mean((low <= 0) & (high >= 0))),  # NaN bounds count as misses
                       "median_width": float(np.nanmedian(high - low)), "repetitions": args.repetitions}
                rows.append(row)
                print(f"{name:<12} {n:>5} {method:<22} {row['coverage']:>9.3f} {row['median_width']:>13.2f}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "interval_coverage.json.tmp"
    tmp.write_text(json.dumps({"confidence": 0.95, "rows": rows}, indent=1) + "\n")
    tmp.replace(out / "interval_coverage.json")
    print(f"wrote {out / 'interval_coverage.json'}")


if __name__ == "__main__":
    main()
