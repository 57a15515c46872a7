"""Label refinement's targets (issue 27): two starts, two pipelines, both offline noisy experiments.

Starts: `scratch` (the quick profile as it is: phase 1's networks from random weights) and `simclr` (phase 1's
networks start from a SimCLR backbone pretrained on the noisy training images without their labels, the same
pretraining as the sweep's, 10 epochs). Pipelines: phase 2 from Co-teaching + VOG (the paper's) and from confident
learning (cleanlab's). Quick profile otherwise, PneumoniaMNIST and RetinaMNIST, seeds 0-4; a seed's split and
noise are the same under every start, so every comparison is paired by seed.

Records go to results/refinement/<start>/<phase2_from>/<experiment>/...; a finished record is read back, and a
pipeline's phase 1 is copied from its sibling when that one has run (the same phase-1 records and weights).
`--table` reads the records only and writes results/refinement/targets.csv (per experiment and start: the best
phase-1 detector's minority clean recall (cross-entropy keeps every sample, so it is no candidate) and the best
pipeline's minority accuracy, each against Co-teaching + VOG with entropy and against confident learning +
ActiveLab), results/refinement/claims.csv (the paper's two claims under each start), results/refinement/starts.csv
(simclr minus scratch, per method and pipeline) and figures/refinement_starts.png.

    python benchmarks/refinement_starts.py [--starts scratch simclr] [--only pneumonia_noisy]
    python benchmarks/refinement_starts.py --table
"""
import argparse
import shutil
import time
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from clinical_utils.batch.environment import restart_in_batch_environment
from clinical_utils.experiments import (KEEPS_ALL, configure, load_data, load_phase1_records, of_paper,
                                        recall_frame, run_noisy_experiment)
from clinical_utils.report import load_records, rounds_frame, save_csv, save_figure
from clinical_utils.stats import final_values, mean_interval, paired_recall, paired_table

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results" / "refinement"
STARTS = {"scratch": {}, "simclr": {"pretrain": "simclr", "pretrain_epochs": 10}}
PIPELINES = ("coteaching_vog", "confident_learning")  # phase 2 starts from what this phase-1 method kept
PAPER, CLEANLAB = ("coteaching_vog", "entropy"), ("confident_learning", "activelab")  # the two reference pairings


def folder(start: str, phase2_from: str) -> Path:
    return RESULTS / start / phase2_from


def run(starts: list[str], experiments: list[str]) -> None:
    for start in starts:
        for phase2_from in PIPELINES:
            here = folder(start, phase2_from)
            for experiment in experiments:
                sibling = folder(start, next(p for p in PIPELINES if p != phase2_from)) / experiment / "phase1"
                if sibling.is_dir() and not (here / experiment / "phase1").is_dir():  # phase 1 is the same
                    shutil.copytree(sibling, here / experiment / "phase1")
                config = configure(experiment, **STARTS[start], phase2_from=phase2_from,
                                         results_dir=str(here))
                began = time.perf_counter()
                print(f"{start} / {phase2_from} / {experiment} ...", flush=True)
                run_noisy_experiment(load_data(config), config, progress=False)
                print(f"    {time.perf_counter() - began:.0f} s", flush=True)


def phase1(start: str, experiment: str) -> tuple[list[dict], list[str]]:
    """One start's phase-1 records of an experiment (the same under both pipelines) and its minority classes'
    names as the records spell them."""
    records = load_phase1_records(folder(start, PIPELINES[0]), experiment)
    return records, [records[0]["clean_recall"][c]["class"] for c in records[0]["rare_classes"]]


def minority_recall(start: str, experiment: str) -> pd.DataFrame:
    """Per (method, seed): phase 1's clean recall averaged over the minority classes."""
    records, minority = phase1(start, experiment)
    recall = recall_frame(records)
    return recall[recall["class"].isin(minority)].groupby(["method", "seed"])["recall"].mean().unstack("method")


def minority_accuracy(start: str, experiment: str) -> pd.DataFrame:
    """Per seed, one column per pipeline (phase-1 method, sampler): the last round's minority-class accuracy."""
    columns = {}
    for phase2_from in PIPELINES:
        records = [r for r in load_records(folder(start, phase2_from)) if r["parameters"]["experiment"] == experiment]
        if not records:
            continue
        final = final_values(rounds_frame(records))
        for sampler, part in final.groupby("strategy"):
            columns[(phase2_from, sampler)] = part.set_index("seed")["rare_class_accuracy"]
    return pd.DataFrame(columns)


def interval(difference: pd.Series) -> str:
    mean, low, high = mean_interval(difference.dropna())
    return _interval_text({"mean_difference": mean, "ci_low": low, "ci_high": high})


def targets(start: str, experiment: str) -> list[dict]:
    """The issue's two targets for one experiment under one start, each against both reference pairings."""
    rows = []
    recall = minority_recall(start, experiment)
    best = recall.drop(columns=KEEPS_ALL).mean().idxmax()
    rows.append({"experiment": experiment, "start": start, "target": "phase 1: minority clean recall",
                 "best": best, "best mean": round(recall[best].mean(), 3),
                 "vs coteaching_vog": interval(recall[best] - recall[PAPER[0]]) if best != PAPER[0] else "(itself)",
                 "vs confident_learning": (interval(recall[best] - recall[CLEANLAB[0]]) if best != CLEANLAB[0]
                                           else "(itself)")})
    accuracy = minority_accuracy(start, experiment)
    if not accuracy.empty:
        best = accuracy.mean().idxmax()
        twins = [sampler for (source, sampler) in accuracy if source == best[0] and accuracy[(source, sampler)]
                 .equals(accuracy[best])]  # samplers that picked alike (loss, label_quality, activelab)
        rows.append({"experiment": experiment, "start": start, "target": "phase 2: minority accuracy",
                     "best": f"{best[0]} + {' = '.join(twins)}", "best mean": round(accuracy[best].mean(), 3),
                     "vs coteaching_vog": (interval(accuracy[best] - accuracy[PAPER]) if best != PAPER
                                           else "(itself)") + f" (paper pairing {accuracy[PAPER].mean():.3f})",
                     "vs confident_learning": (interval(accuracy[best] - accuracy[CLEANLAB]) if best != CLEANLAB
                                               else "(itself)") + f" (cleanlab pairing "
                                                                  f"{accuracy[CLEANLAB].mean():.3f})"})
    return rows


def claims(start: str, experiment: str) -> list[dict]:
    """The paper's two claims under one start: Co-teaching + VOG keeps more clean minority samples than
    Co-teaching (per minority class), and phase-2 samplers end above random (balanced accuracy, paper pipeline)."""
    records, minority = phase1(start, experiment)
    vog = paired_recall(recall_frame(records), "coteaching_vog", "coteaching").set_index("metric")
    rows = [{"experiment": experiment, "start": start, "claim": f"VOG keeps more clean {name} samples",
             "difference": _interval_text(vog.loc[f"clean recall: {name}"])} for name in minority]
    phase2 = rounds_frame([r for r in load_records(folder(start, PAPER[0]))
                           if r["parameters"]["experiment"] == experiment])
    versus = paired_table(phase2, metrics=("balanced_accuracy",))
    versus = versus[versus["reference"] == "random"]
    above = versus[versus["ci_low"] > 0]
    rows.append({"experiment": experiment, "start": start, "claim": "samplers end above random (balanced accuracy)",
                 "difference": f"{len(above)} of {len(versus)}" + (
                     ": " + ", ".join(f"{row['strategy']} {_interval_text(row)}" for _, row in above.iterrows())
                     if len(above) else "")})
    return rows


def _interval_text(row) -> str:
    return f"{row['mean_difference']:+.3f} [{row['ci_low']:+.3f}, {row['ci_high']:+.3f}]"


def start_differences(experiment: str) -> pd.DataFrame:
    """Per seed, simclr minus scratch: each phase-1 method's minority clean recall and each pipeline's minority
    accuracy (columns experiment, what, method, seed, scratch, simclr, difference)."""
    frames = []
    for what, measure in (("minority clean recall", minority_recall), ("minority accuracy", minority_accuracy)):
        scratch, simclr = (measure(start, experiment) for start in STARTS)
        for column in scratch:
            if column in simclr:
                both = pd.DataFrame({"scratch": scratch[column], "simclr": simclr[column]}).dropna()
                frames.append(both.assign(experiment=experiment, what=what, difference=both["simclr"] - both["scratch"],
                                          method=column if isinstance(column, str) else " + ".join(column))
                              .rename_axis("seed").reset_index())
    return pd.concat(frames)[["experiment", "what", "method", "seed", "scratch", "simclr", "difference"]]


def summary(differences: pd.DataFrame) -> pd.DataFrame:
    """Per experiment, measure and method: the means under each start and the paired difference's 95% t interval."""
    rows = []
    for (experiment, what, method), part in differences.groupby(["experiment", "what", "method"], sort=False):
        mean, low, high = mean_interval(part["difference"])
        rows.append({"experiment": experiment, "what": what, "method": method, "scratch": part["scratch"].mean(),
                     "simclr": part["simclr"].mean(), "difference": mean, "ci_low": low, "ci_high": high})
    return pd.DataFrame(rows)


SHOWN = ("coteaching", "coteaching_vog", "confident_learning", " + ".join(PAPER), "coteaching_vog + random",
         " + ".join(CLEANLAB), "confident_learning + random")  # the figure's rows; starts.csv has every one


def figure(differences: pd.DataFrame) -> plt.Figure:
    """simclr minus scratch, mean and 95% t interval over seeds (seaborn), one panel per experiment and measure:
    the three detectors, and each pipeline's reference pairing and random."""
    shown = differences[differences["method"].isin(SHOWN)]
    experiments, measures = list(dict.fromkeys(shown["experiment"])), list(dict.fromkeys(shown["what"]))
    fig, axes = plt.subplots(len(experiments), len(measures), figsize=(5.4 * len(measures), 2.5 * len(experiments)),
                             layout="constrained", squeeze=False, sharex="col")
    for (experiment, what), part in shown.groupby(["experiment", "what"], sort=False):
        ax = axes[experiments.index(experiment), measures.index(what)]
        sns.pointplot(part, x="difference", y="method", order=[m for m in SHOWN if m in set(part["method"])],
                      errorbar=lambda values: mean_interval(values)[1:], linestyle="none", capsize=0.2, ax=ax,
                      color=sns.color_palette("colorblind")[0], markersize=5)
        ax.axvline(0, color="grey", lw=1)
        ax.grid(axis="x", alpha=0.3)
        ax.set(title=f"{experiment}: {what}", ylabel="", xlabel="simclr start minus scratch")
    fig.suptitle("Label refinement from a SimCLR-pretrained start, paired by seed\n(mean and 95% t interval over 5 "
                 "seeds, quick profile)")
    return fig


def table(experiments: list[str]) -> None:
    rows = [row for start in STARTS for experiment in experiments for row in targets(start, experiment)]
    frame = pd.DataFrame(rows)
    save_csv(frame, RESULTS / "targets.csv")
    print(frame.to_string(index=False))
    said = pd.DataFrame([row for start in STARTS for experiment in experiments for row in claims(start, experiment)])
    save_csv(said, RESULTS / "claims.csv")
    print(said.to_string(index=False))
    differences = pd.concat([start_differences(experiment) for experiment in experiments])
    effects = summary(differences).round(3)
    save_csv(effects, RESULTS / "starts.csv")
    print(effects.to_string(index=False))
    print(save_figure(figure(differences), ROOT / "figures", "refinement_starts"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", nargs="+", choices=list(STARTS), default=list(STARTS))
    parser.add_argument("--only", nargs="+", choices=of_paper("refinement", offline=True),
                        default=list(of_paper("refinement", offline=True)))
    parser.add_argument("--table", action="store_true", help="read the records only: tables and figure")
    args = parser.parse_args()
    if args.table:
        table(args.only)
        return
    restart_in_batch_environment()
    run(args.starts, args.only)
    table(args.only)


if __name__ == "__main__":
    main()
