"""The GPU path in one command (`make gpu-check`): on a machine with CUDA, run the CUDA tests, the training
benchmark (engine against the DataLoader pipeline), the selection benchmark, and one paper-profile round of
pneumonia_binary for two strategies, all on CUDA; write results/bench/*_cuda.json and gpu_check_cuda.json.

    PYTHONPATH=. python3 benchmarks/gpu_check.py [--steps tests training selection round] [--timeout 900]

Works from the source tree (no install) on torch 2.11 and 2.14; the data root is $MEDMNIST_ROOT. Without CUDA it
stops at once with exit status 2. Each step runs in its own process; a failed step is reported and the rest go on.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "results" / "bench"

# One paper-profile round (ResNet-18, batch 20, retrained until 99% training accuracy) on PneumoniaMNIST, timed
ROUND = r"""
import json, sys, time
from clinical_utils.active.loop import STRATEGIES, run_active_learning
from clinical_utils.experiments import build_scenario, configure, load_data, of_paper, profile_values
config = configure("pneumonia_binary", profile="paper", device="cuda", seeds=[0], rounds=1, results_dir=None)
data = load_data(config)
scenario = build_scenario(data, config, seed=0)
rows = []
for strategy in ("flqmi", "entropy"):
    start = time.perf_counter()
    record = run_active_learning(data, scenario, strategy, rounds=1, budget=config.budget, model_name=config.model,
                                 train_config=config.train, seed=0, device="cuda", progress=False)
    last = record["rounds"][-1]
    rows.append({"strategy": strategy, "train_seconds": [r["train_seconds"] for r in record["rounds"]],
                 "select_seconds": last["select_seconds"], "wall_seconds": time.perf_counter() - start,
                 "train_precision": record["parameters"]["train"]["precision"]})
round_seconds = sum(r["train_seconds"][-1] + r["select_seconds"] for r in rows) / len(rows)
# the paper grid's CLINICAL runs: notebooks x strategies x seeds x (rounds + round 0), each at this round's cost
paper = profile_values("pneumonia_binary", "paper")
runs = len(of_paper("clinical")) * len(STRATEGIES) * len(paper["seeds"]) * (paper["rounds"] + 1)
grid_hours = round_seconds * runs / 3600
json.dump({"rows": rows, "mean_round_seconds": round_seconds, "paper_grid_hours_estimate": grid_hours},
          open(sys.argv[1], "w"), indent=1)
print(json.dumps(rows, indent=1), f"\npaper grid estimate: {grid_hours:.2f} GPU-hours (CLINICAL notebooks)")
"""


def steps(python: str) -> dict[str, list[str]]:
    return {
        "tests": [python, "-m", "pytest", "-q", "-o", "addopts=", "-p", "no:cacheprovider", "-k", "cuda",
                  "--continue-on-collection-errors", "tests"],
        "training": [python, "benchmarks/bench_training.py", "--device", "cuda", "--out", str(OUT)],
        "selection": [python, "benchmarks/bench_selection.py", "--device", "cuda", "--sizes", "10000", "100000",
                      "--submodlib-max-n", "10000", "--out", str(OUT)],
        "round": [python, "-c", ROUND, str(OUT / "paper_round_cuda.json")],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", nargs="+", default=["tests", "training", "selection", "round"],
                        choices=["tests", "training", "selection", "round"])
    parser.add_argument("--timeout", type=float, default=900, help="seconds per step")
    args = parser.parse_args()
    import torch
    if not torch.cuda.is_available():
        print(f"gpu-check: torch {torch.__version__} sees no CUDA GPU (torch.cuda.is_available() is False); run it "
              "on a machine with an NVIDIA GPU and a CUDA build of torch", file=sys.stderr)
        return 2
    OUT.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    report = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__, "steps": {}}
    for name in args.steps:
        print(f"== {name}", flush=True)
        start = time.perf_counter()
        try:
            done = subprocess.run(steps(sys.executable)[name], cwd=ROOT, env=env, timeout=args.timeout)
            status = "passed" if done.returncode == 0 else f"failed (exit {done.returncode})"
        except subprocess.TimeoutExpired:
            status = f"timed out after {args.timeout:.0f} s"
        report["steps"][name] = {"status": status, "seconds": round(time.perf_counter() - start, 1)}
        print(f"== {name}: {status}", flush=True)
    (OUT / "gpu_check_cuda.json").write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))
    return 0 if all(s["status"] == "passed" for s in report["steps"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
