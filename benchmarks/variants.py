"""One setting changed from the quick profile, every strategy paired with the committed reference seed by seed.

The reference (results/quick/) runs the authors' choices. This runs the quick profile's experiments with one
parameter changed, e.g. `embedding=gradients_rare` (SMI compares each pool image at its likeliest rare label) or
`class_weight=balanced` (each class's loss weighted n / (K n_c), so the small CNN stops calling every image
common), and pairs each strategy with its reference run of the same seed and split: mean difference of the final
round's rare images found, rare-class accuracy, balanced accuracy and AUC, with 95% t intervals. It also pairs the
strategies with each other within the variant (`stats.paired_table`: against random and the best baseline), and
counts the rounds whose picking model predicted no pool image rare.

Records go to results/bench/<name>/<value>/ (read back when their parameters are equal); the tables to
results/bench/variant_<name>_<value>.json. One thread per process in the batch's environment (re-executes itself
with it), as the reference; about 30 minutes per experiment and value for all 13 strategies (5 for the 6 SMI
functions). Runs of different experiments may go in parallel processes; a last run over all of them then only
reads the records and writes the whole table.

    python benchmarks/variants.py embedding=gradients_rare --strategies flmi flqmi gcmi logdetmi flcmi logdetcmi
    python benchmarks/variants.py class_weight=balanced [--experiments pneumonia_binary breast_binary]
"""
from __future__ import annotations

import argparse
import ast
from pathlib import Path

import pandas as pd
import torch

from clinical_utils import report
from clinical_utils.active.loop import STRATEGIES
from clinical_utils.batch.environment import restart_in_batch_environment
from clinical_utils.experiments import configure, load_data, of_paper, run_experiment
from clinical_utils.records import record_path, write_json_atomic
from clinical_utils.stats import PAIRED_METRICS, final_values, mean_interval, paired_table

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "results" / "quick"


def setting(text: str) -> tuple[str, object]:
    """'name=value' with a Python literal value (a bare word is a string)."""
    name, _, value = text.partition("=")
    try:
        return name, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return name, value


def blind_rounds(frame: pd.DataFrame) -> pd.DataFrame:
    """Per strategy: selection rounds whose picking model predicted no pool image rare, and all selection rounds."""
    picking = frame[frame["round"] > 0]
    return picking.groupby(["experiment", "strategy"]).agg(
        blind=("pool_predicted_rare", lambda s: int((s == 0).sum())), rounds=("round", "size")).reset_index()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("change", type=setting, help="NAME=VALUE, a parameter of the experiment notebooks")
    offline = list(of_paper("clinical", offline=True))
    parser.add_argument("--experiments", nargs="+", default=offline, choices=offline)
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=STRATEGIES)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the reference's: 1)")
    args = parser.parse_args()
    restart_in_batch_environment()
    torch.set_num_threads(args.threads)
    name, value = args.change
    out = ROOT / "results" / "bench" / name / str(value)
    frames = []
    for experiment in args.experiments:
        reference = configure(experiment, strategies=args.strategies, results_dir=str(REFERENCE))
        missing = [s for s in args.strategies for k in reference.seeds
                   if not record_path(REFERENCE, experiment, s, k).exists()]
        if missing:
            raise SystemExit(f"the committed reference has no {experiment} records for {sorted(set(missing))} under "
                             f"{REFERENCE}; pass --strategies from those it holds")
        variant = configure(experiment, strategies=args.strategies, results_dir=str(out), **{name: value})
        data = load_data(variant)  # the variant may change the data (dataset, data_root)
        frames.append(report.rounds_frame(run_experiment(data, reference, progress=False)).assign(variant="reference"))
        frames.append(report.rounds_frame(run_experiment(data, variant)).assign(variant=f"{name}={value}"))
    frame = pd.concat(frames, ignore_index=True)
    final = final_values(frame)
    rows = []
    for (experiment, strategy), part in final.groupby(["experiment", "strategy"], sort=False):
        for metric in PAIRED_METRICS:
            wide = part.pivot_table(index="seed", columns="variant", values=metric, aggfunc="first").dropna()
            mean, low, high = mean_interval(wide[f"{name}={value}"] - wide["reference"])
            rows.append({"experiment": experiment, "strategy": strategy, "metric": metric,
                         "reference": float(wide["reference"].mean()), "variant": float(wide[f"{name}={value}"].mean()),
                         "mean_difference": mean, "ci_low": low, "ci_high": high, "seeds": len(wide)})
    against_reference = pd.DataFrame(rows)
    variant_frame = frame[frame["variant"] != "reference"]
    within = paired_table(variant_frame)
    blind = blind_rounds(frame[frame["variant"] == "reference"]).merge(
        blind_rounds(variant_frame), on=["experiment", "strategy"], suffixes=("_reference", "_variant"))
    with pd.option_context("display.width", 220, "display.max_rows", None):
        print(f"{name}={value} minus the reference, paired by seed (final round, 95% t interval):")
        print(against_reference.round(3).to_string(index=False))
        if not within.empty:  # needs random or a baseline among the strategies
            print(f"\nwithin {name}={value}: every strategy against random and the best baseline")
            print(within.round(3).to_string(index=False))
        print("\nselection rounds whose picking model predicted no pool image rare")
        print(blind.to_string(index=False))
    write_json_atomic(ROOT / "results" / "bench" / f"variant_{name}_{value}.json",
                      {"change": {name: value}, "threads": args.threads,
                       "against_reference": against_reference.to_dict("records"),
                       "within_variant": within.to_dict("records"), "blind_rounds": blind.to_dict("records")})


if __name__ == "__main__":
    main()
