"""Does this machine run one-thread training processes side by side at full speed? What the grid's workers get.

The same job (the small CNN, one thread, the precision `auto` resolves to, 1,000 PneumoniaMNIST images, 10
epochs) runs alone, then as N copies at once (N = 1 .. the core count). Throughput against one process alone:
N x (time alone / time per copy); N on N independent cores gives N.

    python benchmarks/parallel_scaling.py [--epochs 10] [--images 1000]

Prints the table and writes results/bench/parallel_scaling.json. Run it with nothing else on the machine.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

JOB = r"""
import sys, time, torch
torch.set_num_threads(1)
from clinical_utils.data import load_medmnist
from clinical_utils.training.models import build_model
from clinical_utils.training.train import TrainConfig, train
n, epochs = int(sys.argv[1]), int(sys.argv[2])
data = load_medmnist("pneumoniamnist")
model = build_model("small_cnn", 1, 2)
start = time.perf_counter()
train(model, data.train.images[:n], data.train.labels[:n], TrainConfig(epochs=epochs, batch_size=32), "cpu",
      progress=False)
print(time.perf_counter() - start)
"""


def run_copies(copies: int, images: int, epochs: int) -> list[float]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", JOB, str(images), str(epochs)], stdout=subprocess.PIPE,
                              text=True, env=env) for _ in range(copies)]
    return [float(p.communicate()[0].strip().splitlines()[-1]) for p in procs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--out", default="results/bench")
    args = parser.parse_args()
    alone = sum(run_copies(1, args.images, args.epochs)[0] for _ in range(2)) / 2
    rows = [{"copies": 1, "seconds_per_copy": round(alone, 2), "throughput": 1.0}]
    for copies in range(2, (os.cpu_count() or 1) + 1):
        times = run_copies(copies, args.images, args.epochs)
        seconds = sum(times) / len(times)  # the mean, as for the process alone
        rows.append({"copies": copies, "seconds_per_copy": round(seconds, 2),
                     "throughput": round(copies * alone / seconds, 2)})
    print(f"{'copies':>6}  {'s per copy':>10}  {'throughput vs one alone':>23}")
    for row in rows:
        print(f"{row['copies']:>6}  {row['seconds_per_copy']:>10.2f}  {row['throughput']:>23.2f}")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    Path(args.out, "parallel_scaling.json").write_text(json.dumps(
        {"cpu_count": os.cpu_count(), "images": args.images, "epochs": args.epochs, "rows": rows,
         "when": time.strftime("%Y-%m-%d %H:%M")}, indent=1) + "\n")


if __name__ == "__main__":
    main()
