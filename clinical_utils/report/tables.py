"""The tables of the notebooks, the summary and the results page, read from run records."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..experiments import load_phase1_records, of_paper, recall_frame
from ..records import write_atomic
from ..stats import mean_interval, paired_recall, paired_table, significant
from .frames import load_records, rounds_frame
from .style import in_hue_order
from .text import interval_text


def _mean_sd_table(frame: pd.DataFrame, columns: dict, sort_by: str, counts=("rare_picked_total", "corrected"),
                   group=("experiment", "strategy")) -> pd.DataFrame:
    """The last round of every run, 'mean ± sd' over seeds per group, best `sort_by` first."""
    group = list(group)
    last = frame[frame["round"] == frame.groupby([*group, "seed"])["round"].transform("max")]
    grouped = last.groupby(group)
    mean, sd = grouped[list(columns)].mean(), grouped[list(columns)].std(ddof=1).fillna(0.0)
    table = pd.DataFrame(index=mean.index)
    for col, name in columns.items():
        digits = 1 if col in counts else 3
        table[name] = [f"{m:.{digits}f} ± {s:.{digits}f}" for m, s in zip(mean[col], sd[col])]
    table["seeds"] = grouped.size()
    table["_sort"] = mean[sort_by]
    return table.sort_values([group[0], "_sort"], ascending=[True, False]).drop(columns="_sort")


def final_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Per (experiment, strategy): the last round's metrics and the total rare picks, 'mean ± sd' over seeds,
    best rare-class accuracy first."""
    return _mean_sd_table(frame, {"rare_class_accuracy": "rare-class acc", "accuracy": "accuracy",
                                  "balanced_accuracy": "balanced acc", "rare_picked_total": "rare picked"},
                          "rare_class_accuracy")


def refinement_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Per (experiment, sampler) of label-refinement runs: the last round's balanced accuracy, macro-F1,
    minority-class accuracy, labels corrected and remaining noise, 'mean ± sd' over seeds, best balanced first."""
    return _mean_sd_table(frame, {"balanced_accuracy": "balanced acc", "macro_f1": "macro-F1",
                                  "rare_class_accuracy": "minority acc", "corrected": "corrected",
                                  "remaining_noise": "remaining noise"}, "balanced_accuracy")


def detector_table(recall: pd.DataFrame, minority: list[str],
                   references: tuple[str, ...] = ("coteaching_vog", "confident_learning")) -> pd.DataFrame:
    """Phase 1 per class (minority classes marked *) and method: the share of clean samples kept (clean recall)
    and the set aside as a detector of wrong labels (flag precision, flag recall), each 'mean [95% CI]' over
    seeds ('-' where nothing was flagged); and each method's clean recall minus each reference's, paired by seed
    ('+d [95% CI low, high]'). recall: `experiments.recall_frame`; records made before the flag columns
    existed show them empty (NaN)."""
    def mean_ci(values: pd.Series) -> str:
        values = values.dropna()
        if len(values) < 2:
            return f"{values.mean():.3f}" if len(values) else "-"
        mean, low, high = mean_interval(values)
        return f"{mean:.3f} [{max(low, 0):.3f}, {min(high, 1):.3f}]"  # shares: the interval clipped to [0, 1]

    rows = []
    for (name, method), part in recall.groupby(["class", "method"], sort=False):
        row = {"class": f"{name} *" if name in minority else name, "method": method}
        for column in ("recall", "flag precision", "flag recall"):
            row[column] = mean_ci(part[column]) if column in part else np.nan
        for reference in references:
            paired = paired_recall(recall[recall["class"] == name], method, reference)
            row[f"recall vs {reference}"] = interval_text(paired.iloc[0]) if method != reference and len(paired) else ""
        rows.append(row)
    return pd.DataFrame(rows).set_index(["class", "method"])


def paired_view(paired: pd.DataFrame, metrics=("rare_picked_total", "rare_class_accuracy")) -> pd.DataFrame:
    """`stats.paired_table` as 'mean [low, high]' strings: one row per (experiment, strategy), one column per
    (reference, metric); '*' marks an interval that excludes 0."""
    part = paired[paired["metric"].isin(metrics)].copy()
    digits = part["metric"].map(lambda m: 1 if m.startswith("rare_picked") else 3)
    mark = np.where(significant(part), "*", "")
    part["value"] = [f"{m:+.{d}f} [{lo:+.{d}f}, {hi:+.{d}f}]{s}" if np.isfinite(lo) else f"{m:+.{d}f}"
                     for m, lo, hi, d, s in zip(part["mean_difference"], part["ci_low"], part["ci_high"], digits,
                                                mark)]
    part["reference"] = part["reference"].str.replace(r" \(.*\)", "", regex=True)
    view = part.pivot_table(index=["experiment", "strategy"], columns=["metric", "reference"], values="value",
                            aggfunc="first", sort=False)
    return view.reindex(columns=[c for m in metrics for c in view.columns if c[0] == m]).fillna("")


def collapse_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Per experiment: seeds whose initial model (round 0, shared by every strategy) has rare-class accuracy 0,
    and runs whose picking model predicted no pool image rare in some round (`pool_predicted_rare` == 0)."""
    first = frame[frame["round"] == 0].groupby(["experiment", "seed"])["rare_class_accuracy"].first()
    out = pd.DataFrame({"seeds": first.groupby("experiment").size(),
                        "initial model collapsed": (first == 0).groupby("experiment").sum()})
    if "pool_predicted_rare" in frame:
        later = frame[frame["round"] > 0].dropna(subset=["pool_predicted_rare"])
        blind = later.groupby(["experiment", "strategy", "seed"])["pool_predicted_rare"].min() == 0
        out["rounds where no pool image is predicted rare"] = (
            later["pool_predicted_rare"] == 0).groupby(later["experiment"]).mean().map(lambda x: f"{x:.0%}")
        out["runs with such a round"] = blind.groupby("experiment").sum()
    return out


def blind_rounds_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Per (experiment, strategy): rare images picked per round when the picking model predicted no pool image
    rare ('blind' rounds) and when it predicted some, mean over those rounds, with the number of rounds."""
    later = frame[frame["round"] > 0].dropna(subset=["pool_predicted_rare"])
    blind = np.where(later["pool_predicted_rare"] == 0, "blind", "sees rare")
    table = later.groupby(["experiment", "strategy", blind])["rare_picked"].agg(["mean", "size"]).unstack()
    out = pd.DataFrame(index=table.index)
    for what in ("blind", "sees rare"):  # counts as whole numbers, a mean over no rounds as '-', never NaN
        rounds = table.get(("size", what), pd.Series(0, index=table.index)).fillna(0).astype(int)
        means = table.get(("mean", what), pd.Series(np.nan, index=table.index))
        out[f"{what}: rare picked / round"] = [f"{m:.2f}" if n else "-" for m, n in zip(means, rounds)]
        out[f"{what}: rounds"] = rounds
    return out


def run_overview(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per experiment of a `rounds_frame`: strategies, seeds, rounds and unfinished runs."""
    runs = frame.groupby(["experiment", "strategy", "seed"]).agg(rounds=("round", "max"), finished=("finished", "all"))
    grouped = runs.reset_index().groupby("experiment")
    return pd.DataFrame({"strategies": grouped["strategy"].nunique(), "seeds": grouped["seed"].nunique(),
                         "rounds": grouped["rounds"].max(), "unfinished runs": grouped["finished"].agg(
                             lambda f: int((~f).sum()))})


def markdown_table(table: pd.DataFrame) -> str:
    """A GitHub-markdown rendering of a table with a (multi-)index, for the results page."""
    frame = table.reset_index()
    names = [" vs ".join(p for p in c if p) if isinstance(c, tuple) else str(c) for c in frame.columns]
    lines = ["| " + " | ".join(names) + " |", "|" + " --- |" * len(names)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def readme_tables(results_dir: str | Path) -> str:
    """The results page's tables (docs/results.md), as Markdown, from the records under results_dir: per CLINICAL
    experiment the final round (mean ± sd) and the paired differences, the collapse table, and per label-refinement
    experiment the final round and phase 1's clean recall. `python -m clinical_utils.report results/quick` prints
    them."""
    frame = rounds_frame(load_records(results_dir))
    parts = []
    for name, part in frame.groupby("experiment", sort=True):
        if name in of_paper("refinement"):
            recall = recall_frame(load_phase1_records(results_dir, name))
            paired = pd.concat([paired_table(part), paired_recall(recall, experiment=name)], ignore_index=True)
            means = recall.groupby(["class", "method"], sort=False)["recall"].mean().unstack().round(3)
            parts += [f"#### {name}", markdown_table(refinement_table(part).loc[name]),
                      "Phase 1, clean recall, mean over seeds:", markdown_table(means),
                      "Paired differences:", markdown_table(paired_view(paired, ("balanced_accuracy",
                                                                                 "rare_class_accuracy")))]
        else:
            parts += [f"#### {name}", markdown_table(final_table(part).loc[name]),
                      "Paired differences:", markdown_table(paired_view(paired_table(part)))]
    targeted = frame[~frame["experiment"].isin(of_paper("refinement"))]
    if len(targeted):
        parts += ["#### Collapse", markdown_table(collapse_table(targeted))]
    return "\n\n".join(parts) + "\n"


def picks_table(records: list[dict], round_: int = 1, seed: int | None = None, first: int = 10) -> pd.DataFrame:
    """Per strategy of one seed: rare images picked in each round, and the first `first` pool indices picked in
    `round_`, in pick order (text, so that nbval sees what each strategy selected)."""
    seed = records[0]["parameters"]["seed"] if seed is None else seed
    chosen = {r["parameters"]["strategy"]: r for r in records if r["parameters"]["seed"] == seed}
    rows = {}
    for strategy in in_hue_order(pd.DataFrame({"strategy": list(chosen)})):
        record = chosen[strategy]
        rare = record["rare_classes"]
        rows[strategy] = {"rare picked per round": " ".join(
            str(sum(r["selected_per_class"][c] for c in rare)) for r in record["rounds"][1:]),
            f"round {round_} picks": " ".join(map(str, record["rounds"][round_]["selected"][:first]))
            if len(record["rounds"]) > round_ else ""}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis(f"strategy (seed {seed})")


def save_csv(table: pd.DataFrame, path: str | Path) -> Path:
    """Write `table` as CSV (4 decimals), atomically (`records.write_atomic`)."""
    write_atomic(Path(path), lambda tmp: table.to_csv(tmp, index=False, float_format="%.4f"))
    return Path(path)
