"""One round's selection step on paper_cpu (ResNet-18 (28), PneumoniaMNIST seed 0: 1,103 pool images, 20 queries),
ours against DISTIL's `SMI.select` on the same trained model, pool and queries, in one process.

The step is mostly the pool's forward pass, so this times `predict` at several batch sizes (checking that each
gives exactly the outputs of the default batch, so records do not change), then the strategies on its outputs
(`loop.select`), then DISTIL's select (its gradient embeddings from the same network through a thin adapter,
submodlib kernels, LazyGreedy) when a checkout is given. Best of --repeats, fp32, the batch's environment
(MALLOC_TUNING; re-executes itself with it), torch's default thread count (2 here, as paper_cpu ran). Prints the
table and writes results/bench/select_step_cpu.json. Run it with nothing else on the machine.

    python benchmarks/select_step.py [--distil /path/to/distil] [--repeats 3]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from clinical_utils.batch.environment import restart_in_batch_environment

ROOT = Path(__file__).resolve().parents[1]
BATCHES = (16, 32, 64, 128, 256)
STRATEGIES = ("random", "entropy", "flqmi", "flmi", "logdetmi")


def best_of(repeats: int, work) -> tuple[float, object]:
    """(fastest seconds, last result) of `repeats` calls of work()."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = work()
        times.append(time.perf_counter() - start)
    return min(times), out


class DistilAdapter(torch.nn.Module):
    """Our classifier with the interface DISTIL's strategies call: forward(x, last, freeze), get_embedding_dim()."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x, last=False, freeze=False):
        with torch.set_grad_enabled(not freeze and torch.is_grad_enabled()):
            h = self.model.features(x)
        out = self.model.head(h)
        return (out, h) if last else out

    def get_embedding_dim(self):
        return self.model.feature_dim


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--distil", type=Path, help="a checkout of decile-team/distil (its SMI select is timed)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    restart_in_batch_environment()

    from clinical_utils.experiments import build_scenario, configure, load_data
    from clinical_utils.active.loop import select
    from clinical_utils.training.models import build_model
    from clinical_utils.records import write_json_atomic
    from clinical_utils.training.train import predict, train

    config = configure("pneumonia_binary", profile="paper_cpu", seeds=[0])
    data = load_data(config)
    scenario = build_scenario(data, config, 0)
    labeled, pool = scenario.labeled, scenario.pool
    rare = scenario.exemplars[np.isin(data.val.labels[scenario.exemplars], scenario.rare_classes)]
    query_images, query_labels = data.val.images[rare], data.val.labels[rare]
    model = build_model("resnet18", 1, 2, seed=0)
    train(model, data.train.images[labeled], data.train.labels[labeled], config.train, "cpu", seed=0, progress=False)
    pool_images = data.train.images[pool]
    rows = []

    default_probs, default_feats = predict(model, pool_images, "cpu", features=True)
    for batch in BATCHES:
        seconds, (probs, feats) = best_of(args.repeats, lambda: predict(model, pool_images, "cpu", batch, True))
        same = bool(np.array_equal(probs, default_probs) and np.array_equal(feats, default_feats))
        rows.append({"step": f"predict, batch {batch}", "seconds": seconds, "same_outputs_as_default": same})
    for strategy in STRATEGIES:
        seconds, _ = best_of(args.repeats, lambda: select(
            strategy, model, default_probs, default_feats, data.train.images[labeled], data.train.labels[labeled],
            scenario.rare_classes, query_images, query_labels, config.budget, 0, "cpu"))
        rows.append({"step": f"strategy {strategy} (after predict)", "seconds": seconds})
    if args.distil:
        sys.path.insert(0, str(args.distil.resolve()))
        from distil.active_learning_strategies import SMI
        from torch.utils.data import TensorDataset

        def as_float(images):  # our normalisation, so both see the same inputs
            return torch.as_tensor(images).float().mul(2 / 255).sub(1)

        class Unlabeled(torch.utils.data.Dataset):
            def __init__(self, x):
                self.x = x

            def __len__(self):
                return len(self.x)

            def __getitem__(self, i):
                return self.x[i]

        adapter = DistilAdapter(model).eval()
        unlabeled = Unlabeled(as_float(pool_images))
        queries = TensorDataset(as_float(query_images), torch.as_tensor(query_labels, dtype=torch.long))
        for function in ("fl1mi", "fl2mi", "logdetmi"):
            strategy = SMI(TensorDataset(as_float(data.train.images[labeled])), unlabeled, queries, adapter, 2,
                           {"batch_size": 20, "device": "cpu", "metric": "cosine", "optimizer": "LazyGreedy",
                            "smi_function": function})
            seconds, _ = best_of(args.repeats, lambda: strategy.select(config.budget))
            rows.append({"step": f"DISTIL SMI.select {function} (its forward pass included)", "seconds": seconds})
    for row in rows:
        same = {True: "same outputs", False: "OUTPUTS DIFFER"}.get(row.get("same_outputs_as_default"), "")
        print(f"{row['step']:<58} {row['seconds']:7.2f} s  {same}")
    write_json_atomic(ROOT / "results" / "bench" / "select_step_cpu.json",
                      {"threads": torch.get_num_threads(), "pool": int(len(pool)), "queries": int(len(rare)),
                       "repeats": args.repeats, "rows": rows})


if __name__ == "__main__":
    main()
