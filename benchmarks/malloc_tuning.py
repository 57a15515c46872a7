"""What glibc's malloc settings cost a kernel: the loop's inference (pool predictions with features, batch 1024)
and training, each in a fresh one-thread process, with glibc's defaults and with the batch's MALLOC_TUNING.

    python benchmarks/malloc_tuning.py [--repeats 3]

Prints wall, user and system seconds and minor page faults (best of the repeats, alternating the two settings) and
writes results/bench/malloc_tuning.json. Run it with nothing else on the machine.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from clinical_utils.batch.environment import MALLOC_TUNING

JOB = r"""
import json, resource, sys, time, torch
torch.set_num_threads(1)
from clinical_utils.data import load_medmnist
from clinical_utils.training.models import build_model
from clinical_utils.training.train import TrainConfig, predict, train
data = load_medmnist("pneumoniamnist")
model = build_model("small_cnn", 1, 2)
out = {}
for name, work in (("inference", lambda: [predict(model, data.train.images[:1100], "cpu", features=True)
                                          for _ in range(5)]),
                   ("training", lambda: train(model, data.train.images[:600], data.train.labels[:600],
                                              TrainConfig(epochs=8, batch_size=32), "cpu", progress=False))):
    r0, t = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    work()
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    out[name] = {"wall": time.perf_counter() - t, "user": r1.ru_utime - r0.ru_utime,
                 "system": r1.ru_stime - r0.ru_stime, "minor_faults": r1.ru_minflt - r0.ru_minflt}
print(json.dumps(out))
"""


def run(tuned: bool) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in MALLOC_TUNING}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", **(MALLOC_TUNING if tuned else {}))
    done = subprocess.run([sys.executable, "-c", JOB], env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="results/bench")
    args = parser.parse_args()
    runs = {"glibc defaults": [], "MALLOC_TUNING": []}
    for _ in range(args.repeats):
        runs["glibc defaults"].append(run(False))
        runs["MALLOC_TUNING"].append(run(True))
    best = {setting: {work: min((r[work] for r in rs), key=lambda m: m["wall"]) for work in rs[0]}
            for setting, rs in runs.items()}
    print(f"{'setting':<16} {'work':<10} {'wall s':>7} {'user s':>7} {'system s':>8} {'minor faults':>13}")
    for setting, works in best.items():
        for work, m in works.items():
            print(f"{setting:<16} {work:<10} {m['wall']:>7.2f} {m['user']:>7.2f} {m['system']:>8.2f} "
                  f"{m['minor_faults']:>13,}")
    for work in best["glibc defaults"]:
        print(f"{work}: {best['glibc defaults'][work]['wall'] / best['MALLOC_TUNING'][work]['wall']:.2f}x faster "
              "with MALLOC_TUNING")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    Path(args.out, "malloc_tuning.json").write_text(json.dumps({"best": best, "runs": runs}, indent=1) + "\n")


if __name__ == "__main__":
    main()
