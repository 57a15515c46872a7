"""Cold start: round 0 with no trained model, only the initial labeled set and the rare exemplars (val).

For each setting of the robustness sweep (PneumoniaMNIST and BreastMNIST with each class as the rare one at
imbalance ratios 10 and 50, RetinaMNIST's long tail with two tail choices) and each seed, a small CNN's backbone
is pretrained by SimCLR on the labeled images and the pool (no labels; `representation`, cached in
benchmarks/.cache/), and round 0 picks `budget` pool images (the quick profile's) by:
  random; TypiClust (k-means on the self-supervised features, the cold-start baseline);
  FLQMI, GCMI, FLMI, LogDetMI with the rare exemplars as queries, on the self-supervised features ("ssl") and, to
  see what the pretraining adds, on the features of the same network untrained ("init").
Counts the rare images picked, and pairs every method with random over seeds (mean difference, 95% t interval).
Prints a table and saves results/bench/cold_start.json.

    python benchmarks/cold_start.py [--seeds 5] [--epochs 10] [--only pneumonia_binary ...]
"""
import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from clinical_utils.batch.environment import restart_in_batch_environment
from clinical_utils.experiments import build_scenario, configure, load_data
from clinical_utils.selection import random_select, smi_select, typiclust_select
from clinical_utils.stats import mean_interval
from clinical_utils.training.models import build_model
from clinical_utils.training.representation import PretrainConfig, pretrained_backbone, ssl_features
from clinical_utils.training.train import predict
from sweep import CACHE, SETTINGS  # the robustness sweep's settings and its SimCLR cache (benchmarks/ is on the path)

ROOT = Path(__file__).resolve().parents[1]
FUNCTIONS = ("flqmi", "gcmi", "flmi", "logdetmi")


def label(name: str, overrides: dict) -> str:
    return name + "".join(f" {k}={v}" for k, v in overrides.items())


def round_zero(data, config, seed: int, pretrain: PretrainConfig) -> dict:
    """Rare images picked at round 0 by every method, for one seed."""
    scenario = build_scenario(data, config, seed)
    rare = np.isin(data.train.labels[scenario.pool], scenario.rare_classes)
    exemplars = scenario.exemplars[np.isin(data.val.labels[scenario.exemplars], scenario.rare_classes)]
    unlabeled = data.train.images[np.concatenate([scenario.labeled, scenario.pool])]
    start = time.perf_counter()
    state = pretrained_backbone(unlabeled, config.model, seed, pretrain, CACHE)
    pretrain_seconds = time.perf_counter() - start
    spaces = {"ssl": lambda images: ssl_features(images, config.model, state)}
    untrained = build_model(config.model, data.n_channels, data.n_classes, data.size, seed=seed)
    spaces["init"] = lambda images: predict(untrained, images, "cpu", features=True)[1]
    budget = config.budget
    out = {"rare_classes": list(scenario.rare_classes), "pool": int(len(scenario.pool)),
           "rare_in_pool": int(rare.sum()), "budget": budget,
           "pretrain_seconds": round(pretrain_seconds, 1),
           "random": int(rare[random_select(len(scenario.pool), budget, seed)].sum())}
    for space, embed in spaces.items():
        pool, queries = embed(data.train.images[scenario.pool]), embed(data.val.images[exemplars])
        labeled = embed(data.train.images[scenario.labeled])
        if space == "ssl":
            out["typiclust"] = int(rare[typiclust_select(pool, budget, labeled, seed)].sum())
        for function in FUNCTIONS:
            out[f"{function} ({space})"] = int(rare[smi_select(function, pool, queries, budget)].sum())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=PretrainConfig.epochs, help="SimCLR epochs")
    parser.add_argument("--only", nargs="+", help="experiments to run (default: every setting)")
    args = parser.parse_args()
    restart_in_batch_environment()
    pretrain = PretrainConfig(epochs=args.epochs)
    rows, start = [], time.perf_counter()
    for name, overrides in SETTINGS:
        if args.only and name not in args.only:
            continue
        config = configure(name, profile="quick", **overrides)
        data = load_data(config)  # from $MEDMNIST_ROOT where it is set
        seeds = [round_zero(data, config, seed, pretrain) for seed in range(args.seeds)]
        methods = [k for k in seeds[0] if k not in ("rare_classes", "pool", "rare_in_pool", "budget",
                                                     "pretrain_seconds")]
        picked = {m: [s[m] for s in seeds] for m in methods}
        paired = {m: mean_interval(np.subtract(picked[m], picked["random"])) for m in methods if m != "random"}
        rows.append({"setting": label(name, overrides), "rare_classes": seeds[0]["rare_classes"],
                     "pool": [s["pool"] for s in seeds], "rare_in_pool": [s["rare_in_pool"] for s in seeds],
                     "budget": config.budget, "pretrain_seconds": [s["pretrain_seconds"] for s in seeds],
                     "rare_picked": picked, "vs_random": {m: dict(zip(("mean", "low", "high"), v))
                                                          for m, v in paired.items()}})
        print(f"\n{rows[-1]['setting']} (rare {rows[-1]['rare_classes']}; pool {seeds[0]['pool']}, "
              f"{np.mean(rows[-1]['rare_in_pool']):.0f} rare; budget {config.budget}; {args.seeds} seeds)")
        for m in methods:
            line = f"  {m:<16} {np.mean(picked[m]):5.1f} rare of {config.budget}"
            if m in paired:
                mean, low, high = paired[m]
                line += f"   vs random {mean:+5.1f} [{low:+.1f}, {high:+.1f}]"
            print(line, flush=True)
    result = {"seeds": args.seeds, "pretrain": asdict(pretrain),
              "threads": torch.get_num_threads(), "seconds": round(time.perf_counter() - start, 1),
              "settings": rows}
    out = ROOT / "results" / "bench" / "cold_start.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"\n{out.relative_to(ROOT)} ({result['seconds'] / 60:.1f} min)")


if __name__ == "__main__":
    main()
