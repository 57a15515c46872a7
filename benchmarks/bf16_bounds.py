"""What FLMI's bf16 bounds cost on this machine's CPU (the point: one where bf16 is not fast, `train.native_bf16`):
`smi_select("flmi")` on plain embeddings with the kernel not kept (memory_budget=0), once with the bf16 bounds
forced on and once without them (exact fp32 gains), each in a fresh process.

    python benchmarks/bf16_bounds.py [--data isotropic clustered] [--sizes 20000]

Prints seconds and whether the picks agree, and writes results/bench/bf16_bounds_<capability>.json (torch's CPU
capability, e.g. avx2; with whether torch computes bf16 in fast kernels there, the CPU as records describe it, torch's
version and thread count). Run it with nothing else on the machine.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from bench_selection import BUDGET
from clinical_utils.records import describe_device, write_json_atomic
from clinical_utils.training.train import native_bf16

CHILD = r"""
import json, sys, time
sys.path.insert(0, sys.argv[4])
from bench_selection import BUDGET, problem
import clinical_utils.selection.smi as smi
data, n, bounds = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "on"
smi.native_bf16 = lambda device: bounds  # the choice smi_select makes, forced either way
pool, query, _ = problem(data, n)
start = time.perf_counter()
picks = smi.smi_select("flmi", pool, query, BUDGET, memory_budget=0)
print(json.dumps({"seconds": time.perf_counter() - start, "picks": picks.tolist()}))
"""


def run(data: str, n: int, bounds: bool) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD, data, str(n), "on" if bounds else "off",
                           str(Path(__file__).resolve().parent)], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", nargs="+", default=["isotropic", "clustered"], choices=["isotropic", "clustered"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[20000])
    parser.add_argument("--out", default="results/bench")
    args = parser.parse_args()
    capability = torch.backends.cpu.get_cpu_capability().lower()
    rows = []
    cpu = torch.device("cpu")
    print(f"{describe_device(cpu)}, fast bf16: {native_bf16(cpu)}, {torch.get_num_threads()} threads; FLMI, "
          f"B = {BUDGET}")
    print(f"{'data':<10} {'n':>7} {'bf16 bounds s':>14} {'exact fp32 s':>13} {'ratio':>6} {'same picks':>11}")
    for data in args.data:
        for n in args.sizes:
            on, off = run(data, n, True), run(data, n, False)
            same = float(np.mean(np.array(on["picks"]) == np.array(off["picks"])))
            rows.append({"data": data, "n": n, "bounds_seconds": on["seconds"], "exact_seconds": off["seconds"],
                         "same_picks": same})
            print(f"{data:<10} {n:>7} {on['seconds']:>14.1f} {off['seconds']:>13.1f} "
                  f"{on['seconds'] / off['seconds']:>5.1f}x {same:>11.2f}", flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / f"bf16_bounds_{capability}.json", {
        "device": describe_device(cpu), "native_bf16": native_bf16(cpu), "torch": torch.__version__,
        "threads": torch.get_num_threads(), "budget": BUDGET, "rows": rows})


if __name__ == "__main__":
    main()
