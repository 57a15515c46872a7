"""Tables and figures from run records: what the notebooks and the summary show.

Records are the dicts `run_active_learning` returns and writes (results/<experiment>/<strategy>/seed<k>.json).
Figures are matplotlib, every method in one style (`PALETTE`, `MARKERS`, `HUE_ORDER`); `save_figure` writes PNG
and SVG without timestamps, so an unchanged figure gives unchanged files.
"""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .data import MedMNIST
from .noisy_experiments import KEEPS_ALL, NOISY_EXPERIMENTS, load_phase1_records, recall_frame
from .records import read_json, record_paths, write_atomic
from .selection import FUNCTIONS
from .selection.registry import STRATEGIES
from .stats import TARGETED, best_baseline, final_values, mean_interval, paired_recall, paired_table, significant

METRICS = ("rare_class_accuracy", "accuracy", "balanced_accuracy", "macro_f1", "auc")
REFINEMENT = ("relabeled", "corrected", "remaining_noise")  # label-refinement records only


def load_records(results_dir: str | Path) -> list[dict]:
    """Every run record under results_dir/<experiment>/<strategy>/seed<k>.json (other folders are ignored)."""
    records = []
    for path in record_paths(results_dir):
        record = read_json(path)
        if "rounds" in record and "parameters" in record:
            record["parameters"].setdefault("experiment", path.parent.parent.name)
            records.append(record)
    return records


def rounds_frame(records: list[dict]) -> pd.DataFrame:
    """One row per (experiment, strategy, seed, round): the metrics, labeled-set size and rare picks."""
    rows = []
    for record in records:
        p = record["parameters"]
        rare = record["rare_classes"]
        picked = 0
        for r in record["rounds"]:
            picked += sum(r["selected_per_class"][c] for c in rare)
            rows.append({"experiment": p["experiment"], "strategy": p["strategy"], "seed": p["seed"],
                         "round": r["round"], "labeled": sum(r["labeled_per_class"]),
                         "rare_picked": sum(r["selected_per_class"][c] for c in rare), "rare_picked_total": picked,
                         **{m: r[m] for m in METRICS}, "finished": record["finished"],
                         "pool_predicted_rare": r.get("pool_predicted_rare"),
                         **{m: r[m] for m in REFINEMENT if m in r}})
    return pd.DataFrame(rows)


def _class_label(name) -> str:
    """A class name for titles: 'class 3' where the name is only the index (RetinaMNIST's grades)."""
    return f"class {name}" if str(name).isdigit() else str(name)


def per_class_frame(records: list[dict], class_names=None) -> pd.DataFrame:
    """One row per (experiment, strategy, seed, round, class): that class's test accuracy. The class column holds
    the class name ('class <k>' when the name is just the index), with ' (rare)' for rare classes; label
    refinement records also give the expert labels spent so far (`relabeled`)."""
    rows = []
    for record in records:
        p = record["parameters"]
        for r in record["rounds"]:
            for c, acc in enumerate(r["per_class_accuracy"]):
                name = _class_label(class_names[c] if class_names is not None else c)
                rows.append({"experiment": p["experiment"], "strategy": p["strategy"], "seed": p["seed"],
                             "round": r["round"], "labeled": sum(r["labeled_per_class"]),
                             "class": f"{name}{' (rare)' if c in record['rare_classes'] else ''}", "accuracy": acc,
                             **{m: r[m] for m in ("relabeled",) if m in r}})
    return pd.DataFrame(rows)


# One style per method, the same in every figure: strategies take their colour and marker from the registry
# (`selection.registry`; the SMI functions and sampler drawn solid, the baselines dashed); the phase-1 methods of
# label refinement only meet each other (recall_plot).
METHODS_STYLE = {"cross_entropy": ("#9E9E9E", "o"), "coteaching": ("#0072B2", "s"), "coteaching_vog": ("#E41A1C", "^"),
                 "confident_learning": ("#E69F00", "D")}
PALETTE = {**{name: s.colour for name, s in STRATEGIES.items()}, **{m: c for m, (c, _) in METHODS_STYLE.items()}}
MARKERS = {**{name: s.marker for name, s in STRATEGIES.items()}, **{m: k for m, (_, k) in METHODS_STYLE.items()}}
# legends, panels and tables list the SMI functions and sampler first, then the baselines alphabetically
HUE_ORDER = (*TARGETED, *sorted(set(STRATEGIES) - set(TARGETED)), *METHODS_STYLE)
LABELS = {"rare_class_accuracy": "rare-class test accuracy", "rare_picked_total": "rare images picked (cumulative)",
          "balanced_accuracy": "balanced test accuracy", "remaining_noise": "share of training labels still wrong",
          "accuracy": "test accuracy", "auc": "test AUC", "macro_f1": "macro-F1",
          "recall": "clean samples kept (recall)"}
SHARES = {"rare_class_accuracy", "accuracy", "balanced_accuracy", "macro_f1", "auc", "remaining_noise", "recall"}
# Shares whose axis starts at 0 (a ratio scale: a zoom that leaves 0 out magnifies small differences) and ends
# where the data and their bands do, at most 1, so that accuracies of 0-0.2 are not a flat line at the bottom. The
# others (counts, the remaining noise, which only falls from the noise rate) are autoscaled to their bands, which
# are clipped to the metric's range, so the axis cannot leave it by more than matplotlib's 5% margin.
FROM_ZERO = SHARES - {"remaining_noise"}
MARGIN = 0.03  # y-axis room around [0, 1], so lines on the bounds stay visible


def _strategy_style(strategies) -> dict[str, dict]:
    """Line keyword arguments (colour, marker, line style, width) per strategy; unknown names get black dots."""
    return {s: {"color": PALETTE.get(s, "#000000"), "marker": MARKERS.get(s, "."),
                "linestyle": "-" if s in TARGETED else "--", "linewidth": 2.4 if s == "smi" else 1.7,
                "markersize": 8 if s == "smi" else 5} for s in strategies}


def _order(frame: pd.DataFrame, column: str = "strategy") -> list[str]:
    """The frame's strategies (or methods) in HUE_ORDER, unknown names last in alphabetical order."""
    present = set(frame[column])
    return [s for s in HUE_ORDER if s in present] + sorted(present - set(HUE_ORDER))


def _merge_identical(frame: pd.DataFrame, by_rows=None) -> tuple[pd.DataFrame, dict[str, str]]:
    """Strategies whose data equal an earlier one's (e.g. entropy, margin and least confidence on a binary task;
    loss, label_quality and activelab, which rank alike) are drawn once: the frame without their rows, and the
    label per kept strategy, 'entropy = least_confidence = margin'. Equal means every column of their rows
    (`rounds_frame` rows), or, with `by_rows`, the values of those columns after sorting by the first (e.g.
    a `stats.paired_table`'s reference, mean_difference, ci_low, ci_high)."""
    keys = by_rows[:1] if by_rows else [c for c in ("experiment", "seed", "round", "class") if c in frame]
    values = {s: (part[by_rows] if by_rows else part.drop(columns="strategy")).sort_values(keys)
              .reset_index(drop=True) for s, part in frame.groupby("strategy")}
    # rows: equal frames; paired rows: equal values, where a one-seed row's NaN interval equals nothing (a strategy
    # tied with others on one seed is not shown to pick alike)
    same = ((lambda a, b: a.to_numpy().tolist() == b.to_numpy().tolist()) if by_rows else
            (lambda a, b: a.equals(b)))
    labels: dict[str, str] = {}
    for strategy in _order(frame):
        twin = next((kept for kept in labels if same(values[kept], values[strategy])), None)
        if twin is None:
            labels[strategy] = strategy
        else:
            labels[twin] += f" = {strategy}"
    return frame[frame["strategy"].isin(labels)], labels


def _seeds_text(counts: pd.Series) -> str:
    """'N seeds' from seed counts per group, or 'a-b seeds' when they differ."""
    low, high = int(counts.min()), int(counts.max())
    return f"{high} seed{'s' * (high != 1)}" if low == high else f"{low}-{high} seeds"


def _seeds(frame: pd.DataFrame, by: str = "strategy") -> str:
    """_seeds_text of the number of seeds per `by` group of a frame with a seed column."""
    return _seeds_text(frame.groupby(by)["seed"].nunique())


def _caption(title: str, frame: pd.DataFrame, by: str = "strategy") -> str:
    return f"{title}\n" * bool(title) + f"mean and 95% CI over {_seeds(frame, by)}"


def _interval_frame(frame: pd.DataFrame, x: str, y: str) -> pd.DataFrame:
    """Per (strategy, round): mean x, and the mean of y with its 95% t interval over seeds (`stats.mean_interval`)
    clipped to y's range ([0, 1] for shares, [0, inf) for counts); columns strategy, round, x, mean, low, high."""
    rows = [(s, r, part[x].mean(), *mean_interval(part[y]))
            for (s, r), part in frame.groupby(["strategy", "round"], sort=True)]
    out = pd.DataFrame(rows, columns=["strategy", "round", "x", "mean", "low", "high"])
    out[["low", "high"]] = out[["low", "high"]].clip(lower=0.0, upper=1.0 if y in SHARES else None)
    return out


def _draw(ax, frame: pd.DataFrame, x: str, y: str, labels: dict[str, str], faint=()) -> float:
    """Mean line per strategy in `labels` with its clipped 95% CI band; strategies in `faint` as thin grey lines
    without band, below the others. Returns the highest band or line drawn (for `_from_zero`)."""
    summary = _interval_frame(frame, x, y)
    styles = _strategy_style(labels)
    for strategy in faint:
        part = summary[summary["strategy"] == strategy]
        ax.plot(part["x"], part["mean"], color="#BBBBBB", linewidth=0.8, zorder=1)
    alpha = min(0.15, 0.45 / len(styles))  # where many bands overlap, their stack stays translucent
    for strategy, style in styles.items():  # in the legend's order
        part = summary[summary["strategy"] == strategy]
        ax.fill_between(part["x"], part["low"], part["high"], color=style["color"], linewidth=0, zorder=2,
                        alpha=alpha / 2 if strategy == "random" else alpha)  # the dark grey would hide the rest
        ax.plot(part["x"], part["mean"], label=labels[strategy], zorder=3, **style)
    return float(np.nanmax([summary["high"].max(), summary["mean"].max()]))


def _from_zero(ax, y: str, top: float) -> None:
    """A share's y-axis from 0 to just above `top` (the highest band of every axis sharing it), at most 1."""
    if y in FROM_ZERO:
        ax.set_ylim(-MARGIN, min(1.0, top * 1.1) + MARGIN)


def _best(frame: pd.DataFrame, y: str, strategies) -> str | None:
    """The strategy among `strategies` with the highest final-round mean of y (first in HUE_ORDER on ties)."""
    last = frame[frame["strategy"].isin(strategies)]
    last = last[last["round"] == last.groupby("strategy")["round"].transform("max")]
    means = last.groupby("strategy")[y].mean().reindex(_order(last)).dropna()
    return None if means.empty else str(means.idxmax())


def round_curves(frame: pd.DataFrame, title: str = "") -> plt.Figure:
    """Rare-class accuracy (top) and cumulative rare images picked (bottom) against the labeled-set size; left the
    targeted SMI functions, right the baselines, random in both as the reference; mean and 95% CI over seeds.
    frame: `rounds_frame` of one experiment."""
    merged, labels = _merge_identical(frame)
    order = list(labels)
    families = [[s for s in order if s in TARGETED or s == "random"],
                [s for s in order if s not in TARGETED]]
    families = [f for f in families if set(f) - {"random"}] or [order]
    fig, axes = plt.subplots(2, len(families), figsize=(5.4 * len(families), 7.6), squeeze=False,
                             sharex=True, sharey="row", layout="constrained")
    ticks = merged.groupby("round")["labeled"].mean()
    tops = np.zeros(2)
    for col, family in enumerate(families):
        for row, y in enumerate(("rare_class_accuracy", "rare_picked_total")):
            ax = axes[row, col]
            tops[row] = max(tops[row], _draw(ax, merged, "labeled", y, {s: labels[s] for s in family}))
            ax.set(xticks=ticks, ylabel=LABELS[y] if col == 0 else "", xlabel="labeled images" if row else "")
            ax.grid(alpha=0.3)
        axes[0, col].set_title("SMI functions" if family[0] in TARGETED else "baselines")
        axes[1, col].legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, fontsize="small",
                            frameon=False)
    _from_zero(axes[0, 0], "rare_class_accuracy", tops[0])  # the row shares it
    fig.suptitle(_caption(title, frame))
    return fig


def _grid(n: int) -> tuple[int, int]:
    """(rows, columns) for n panels, at most 4 columns, as few empty slots as possible."""
    cols = n if n <= 4 else min((3, 4), key=lambda c: (-n % c, -c))
    return math.ceil(n / cols), cols


def per_class_curves(frame: pd.DataFrame, title: str = "") -> plt.Figure:
    """Each class's test accuracy against the labeled-set size (label refinement: the expert labels spent), one
    panel per class, mean and 95% CI over seeds. frame: `per_class_frame` of one experiment.

    With more than four strategies a panel would be a tangle, so each panel colours its best targeted strategy,
    its best baseline (by that class's final-round mean accuracy) and random, with their bands; the others are
    thin grey lines. An empty grid slot holds the key."""
    merged, labels = _merge_identical(frame)
    x = "relabeled" if "relabeled" in merged and merged["relabeled"].notna().all() else "labeled"
    classes = list(dict.fromkeys(merged["class"]))
    ticks = merged.groupby("round")[x].mean()
    highlight = len(labels) > 4
    rows, cols = _grid(len(classes))
    fig, axes = plt.subplots(rows, cols, figsize=(3.9 * cols, 3.6 * rows + 0.6), squeeze=False,
                             sharey=True, layout="constrained")
    top = 0.0
    for ax, name in zip(axes.flat, classes):
        part = merged[merged["class"] == name]
        if highlight:
            shown = [s for s in (_best(part, "accuracy", [s for s in labels if s in TARGETED]),
                                 _best(part, "accuracy", [s for s in labels if s not in TARGETED and s != "random"]),
                                 "random") if s in labels]
            top = max(top, _draw(ax, part, x, "accuracy", {s: labels[s] for s in shown},
                                 faint=[s for s in labels if s not in shown]))
            ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), fontsize="small", frameon=False)
        else:
            top = max(top, _draw(ax, part, x, "accuracy", labels))
        ax.set_title(name, fontweight="bold" if name.endswith("(rare)") else "normal")
        ax.set(xlabel="expert labels spent" if x == "relabeled" else "labeled images", ylabel="test accuracy",
               xticks=ticks)
        ax.grid(alpha=0.3)
    _from_zero(axes.flat[0], "accuracy", top)  # every panel shares it
    spare = list(axes.flat[len(classes):])
    for ax in spare:
        ax.axis("off")
    if highlight:
        handles = [plt.Line2D([], [], color="#555555", linestyle="-", label="SMI (targeted)"),
                   plt.Line2D([], [], color="#555555", linestyle="--", label="baseline"),
                   plt.Line2D([], [], color="#BBBBBB", linewidth=0.8, label="other strategies")]
        key = "coloured: the class's best targeted strategy,\nbest baseline (final round) and random"
    else:
        handles, key = axes.flat[0].get_legend_handles_labels()[0], "strategy"
    (spare[0] if spare else fig).legend(handles=handles, title=key, loc="center" if spare else "outside lower center",
                                        fontsize="small", title_fontsize="small", frameon=False,
                                        ncol=1 if spare else len(handles))
    fig.suptitle(_caption(title, frame))
    return fig


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
    ('+d [95% CI low, high]'). recall: `noisy_experiments.recall_frame`; records made before the flag columns
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
            row[f"recall vs {reference}"] = _interval(paired.iloc[0]) if method != reference and len(paired) else ""
        rows.append(row)
    return pd.DataFrame(rows).set_index(["class", "method"])


def budget_curves(frame: pd.DataFrame, title: str = "") -> plt.Figure:
    """Label refinement: balanced accuracy and the training set's remaining noise rate against the number of
    expert labels spent, mean and 95% CI over seeds. frame: `rounds_frame` of one experiment."""
    merged, labels = _merge_identical(frame)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4), layout="constrained")
    for ax, y in zip(axes, ("balanced_accuracy", "remaining_noise")):
        _from_zero(ax, y, _draw(ax, merged, "relabeled", y, labels))
        ax.set(xlabel="expert labels spent", ylabel=LABELS[y], xticks=merged.groupby("round")["relabeled"].mean())
        ax.grid(alpha=0.3)
    fig.legend(handles=axes[0].get_legend_handles_labels()[0], title="sampler", loc="outside right upper",
               fontsize="small", frameon=False)
    fig.suptitle(_caption(title, frame))
    return fig


def recall_plot(recall: pd.DataFrame, title: str = "", minority=()) -> plt.Figure:
    """Phase 1: per class, the share of truly clean samples each method kept; bars the mean, whiskers the 95% CI
    over seeds clipped to [0, 1]; the `minority` classes (names) marked *. recall: `noisy_experiments.recall_frame`
    (method, seed, class, recall)."""
    classes = list(dict.fromkeys(recall["class"]))
    methods = _order(recall, "method")
    width = 0.8 / len(methods)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * len(classes) + 2), 4.2), layout="constrained")
    for k, method in enumerate(methods):
        part = recall[recall["method"] == method].groupby("class")["recall"]
        mean, low, high = np.array([mean_interval(part.get_group(c)) if c in part.groups else (np.nan,) * 3
                                    for c in classes]).T
        low, high = np.clip(low, 0, 1), np.clip(high, 0, 1)
        x = np.arange(len(classes)) + (k - (len(methods) - 1) / 2) * width
        ax.bar(x, mean, width, color=PALETTE.get(method, "#000000"), label=method)
        ax.errorbar(x, mean, yerr=[mean - low, high - mean], fmt="none", ecolor="black", elinewidth=1, capsize=2)
    ax.set(xticks=np.arange(len(classes)), xticklabels=[_class_label(c) + " *" * (c in minority) for c in classes],
           xlabel="class" + " (* minority)" * bool(minority),
           ylabel=LABELS["recall"], ylim=(0, 1 + MARGIN), title=_caption(title, recall, by="method"))
    ax.grid(axis="y", alpha=0.3)
    ax.legend(title="phase-1 method", loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=len(methods),
              frameon=False)
    return fig


PAIRED_VALUES = ["reference", "mean_difference", "ci_low", "ci_high"]  # a strategy's paired rows, compared


def paired_figure(paired: pd.DataFrame, metric: str = "rare_picked_total", title: str = "") -> plt.Figure:
    """Dot and whisker per (strategy, reference) of one metric: the mean paired final-round difference to random
    (circle) and to the experiment's best baseline (square) with its 95% CI; filled where the interval excludes
    0. One panel per experiment, one row per strategy. paired: `stats.paired_table` (columns `stats.COLUMNS`)."""
    part = paired[paired["metric"] == metric]
    if part.empty:
        raise ValueError(f"the paired table has no rows for metric {metric!r}; it has {sorted(set(paired['metric']))}")
    experiments = list(dict.fromkeys(part["experiment"]))
    sizes = [_merge_identical(part[part["experiment"] == e], PAIRED_VALUES)[0]["strategy"].nunique()
             for e in experiments]
    fig, axes = plt.subplots(len(experiments), 1, figsize=(7.5, 0.3 * sum(sizes) + 1.1 * len(experiments) + 1),
                             height_ratios=sizes, squeeze=False, layout="constrained")
    for ax, experiment in zip(axes[:, 0], experiments):
        mine, labels = _merge_identical(part[part["experiment"] == experiment], PAIRED_VALUES)
        order = _order(mine)
        for reference, marker, shift in (("random", "o", -0.18), ("best baseline", "s", 0.18)):
            rows = mine[mine["reference"].str.startswith(reference)]
            y = rows["strategy"].map(order.index) + shift
            colours = rows["strategy"].map(lambda s: PALETTE.get(s, "#000000"))
            whisker = rows["ci_low"].notna()
            ax.hlines(y[whisker], rows.loc[whisker, "ci_low"], rows.loc[whisker, "ci_high"], colors=colours[whisker],
                      linewidth=1.6)
            ax.scatter(rows["mean_difference"], y, s=36, marker=marker, edgecolors=colours, linewidths=1.4,
                       facecolors=np.where(significant(rows), colours, "white"), zorder=3)
            tied = (rows["ci_low"] == 0) & (rows["ci_high"] == 0)  # the same final value on every seed
            for y_tied in y[tied]:
                ax.annotate(f"identical to {reference}", (0, y_tied), xytext=(6, 0), textcoords="offset points",
                            va="center", fontsize="x-small", color="#555555")
        ax.axvline(0, color="black", linewidth=0.8)
        ax.set(yticks=range(len(order)), yticklabels=[labels[s] for s in order], ylim=(len(order) - 0.5, -0.5))
        ax.grid(axis="x", alpha=0.3)
        best = mine.loc[mine["reference"].str.startswith("best baseline"), "reference"]
        ax.set_title(f"{experiment}: {_seeds_text(mine['seeds'])}" + (f", {best.iloc[0]}" if len(best) else ""),
                     fontsize="medium", loc="left")
    axes[-1, 0].set_xlabel(f"{LABELS.get(metric, metric)}, final round: strategy − reference")
    key = [plt.Line2D([], [], color="black", marker="o", linestyle="", markerfacecolor="white", label="vs random"),
           plt.Line2D([], [], color="black", marker="s", linestyle="", markerfacecolor="white",
                      label="vs best baseline"),
           plt.Line2D([], [], color="black", marker="o", linestyle="", label="filled: 95% CI excludes 0")]
    fig.legend(handles=key, loc="outside lower center", ncol=3, fontsize="small", frameon=False)
    fig.suptitle(f"{title}\n" * bool(title) + "paired difference of the final round, mean and 95% CI over "
                 + _seeds_text(part["seeds"]))
    return fig


def corrected_images(data: MedMNIST, train: np.ndarray, noisy: np.ndarray, record: dict, count: int = 16
                     ) -> plt.Figure:
    """Images a refinement run relabeled whose given label was wrong: titled 'given → true'.
    train: the run's positions into data.train; noisy: the given labels."""
    picks = [i for r in record["rounds"] for i in r["selected"]]
    wrong = [i for i in picks if noisy[i] != data.train.labels[train[i]]][:count]
    cols = min(8, max(1, len(wrong)))
    rows = max(1, math.ceil(len(wrong) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 2.1 * rows), squeeze=False, layout="constrained")
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, wrong):
        _show(ax, data.train.images[train[i]])
        ax.axis("on")
        ax.set_title(f"{data.class_names[noisy[i]][:10]} →\n{data.class_names[data.train.labels[train[i]]][:10]}",
                     fontsize="x-small", linespacing=1.1)
    fig.suptitle(f"{record['parameters']['strategy']}: corrected labels (given → true), seed "
                 f"{record['parameters']['seed']}", fontsize="medium")
    return fig


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


def _interval(row) -> str:
    """'+d [low, high]' of one paired_table row, counts to 1 decimal and rates to 3."""
    d = 1 if row["metric"].startswith("rare_picked") else 3
    if not np.isfinite(row["ci_low"]):
        return f"{row['mean_difference']:+.{d}f} (one seed: no interval)"
    return f"{row['mean_difference']:+.{d}f} [95% CI {row['ci_low']:+.{d}f}, {row['ci_high']:+.{d}f}]"


def _verdict(rows: pd.DataFrame) -> str:
    """How many of `rows` (paired_table rows) are above, below or indistinguishable from their reference."""
    up, down = int((rows["ci_low"] > 0).sum()), int((rows["ci_high"] < 0).sum())
    return f"{up} higher, {down} lower, {len(rows) - up - down} not distinguishable"


def smi_verdict(frame: pd.DataFrame) -> str:
    """One CLINICAL experiment in a line: how many SMI functions end above random and above the best baseline,
    by an interval excluding 0, in rare images found and in rare-class accuracy ('' without SMI runs)."""
    paired = paired_table(frame)
    smi = [s for s in FUNCTIONS if s in set(frame["strategy"])]
    parts = []
    for metric, what in (("rare_picked_total", "rare images found"), ("rare_class_accuracy", "rare-class accuracy")):
        rows = paired[(paired["metric"] == metric) & paired["strategy"].isin(smi)]
        above = [f"{int((part['ci_low'] > 0).sum())} of {len(smi)} above {name}"
                 for part, name in ((rows[rows["reference"] == "random"], "random"),
                                    (rows[rows["reference"].str.startswith("best baseline")], "the best baseline"))
                 if not part.empty]
        if above:
            parts.append(f"{what}: {', '.join(above)}")
    return "; ".join(parts)


def refinement_verdict(phase2: pd.DataFrame, recall: pd.DataFrame, minority: list[str]) -> str:
    """One label-refinement experiment in a line: the phase-1 detector that keeps the most clean minority samples
    (cross-entropy keeps every sample, so it is none), and how many phase-2 samplers end above random in balanced
    accuracy ('' when either is missing)."""
    detectors = recall[recall["class"].isin(minority) & (recall["method"] != KEEPS_ALL)]
    kept = detectors.groupby("method")["recall"].mean()
    versus = paired_table(phase2, metrics=("balanced_accuracy",))
    versus = versus[versus["reference"] == "random"]
    if kept.empty or versus.empty:
        return ""
    return (f"{kept.idxmax()} keeps the most clean minority samples ({kept.max():.0%} of them); "
            f"{int((versus['ci_low'] > 0).sum())} of {len(versus)} phase-2 samplers end above random in balanced "
            "accuracy")


def headline(frame: pd.DataFrame, minority: dict[str, tuple[pd.DataFrame, list[str]]]) -> str:
    """The summary's first words, in Markdown: each experiment's one-line verdict. frame: `rounds_frame` of every
    experiment; minority: per label-refinement experiment, its `recall_frame` and minority class names."""
    lines = ["**In one line per experiment** (paired by seed; an effect counts where its 95% interval excludes 0):",
             ""]
    for name, part in frame.groupby("experiment", sort=True):
        verdict = refinement_verdict(part, *minority[name]) if name in minority else smi_verdict(part)
        lines.append(f"- `{name}`: {verdict or 'nothing to compare'}.")
    return "\n".join(lines)


def findings(frame: pd.DataFrame) -> str:
    """'What this shows' for one CLINICAL experiment, in Markdown, written from its numbers alone: the SMI
    functions against random and the best baseline (paired over seeds, 95% t intervals), the best function by
    name, collapsed initial models, blind rounds, and seeds on which a strategy found fewer rare images than
    random. frame: `rounds_frame` of one experiment."""
    paired = paired_table(frame)
    final = final_values(frame)
    seeds, rounds = final["seed"].nunique(), int(final["round"].max())
    smi = [s for s in FUNCTIONS if s in set(frame["strategy"])]
    lines = [f"**What this shows**, from the records above ({seeds} seeds, {rounds} rounds; every strategy of a "
             "seed starts from the same split and initial model, so differences are paired by seed; an effect "
             "counts only where its 95% confidence interval excludes 0):", ""]
    for metric, what in (("rare_picked_total", "rare images found over all rounds"),
                         ("rare_class_accuracy", "rare-class test accuracy after the last round")):
        rows = paired[(paired["metric"] == metric) & paired["strategy"].isin(smi)]
        if rows.empty:
            continue
        means = final.groupby("strategy")[metric].mean()
        digits = 1 if metric == "rare_picked_total" else 3
        best = means[smi].idxmax()
        vs_random = rows[rows["reference"] == "random"]
        vs_best = rows[rows["reference"].str.startswith("best baseline")]
        text = f"- **{what}**: of {len(smi)} SMI functions, against random {_verdict(vs_random)}"
        if not vs_best.empty:
            baseline = best_baseline(final, metric)
            text += f"; against the best baseline ({baseline}, mean {means[baseline]:.{digits}f}) {_verdict(vs_best)}"
        text += (f". The best, {best} (mean {means[best]:.{digits}f}; random "
                 f"{means.get('random', float('nan')):.{digits}f})")
        one = vs_random[vs_random["strategy"] == best]
        text += f", differs from random by {_interval(one.iloc[0])}." if not one.empty else "."
        lines.append(text)
    verdict = smi_verdict(frame)
    if verdict:  # the one line a reader takes away, before the details
        lines[2:2] = [f"**In one line** (SMI functions, interval excluding 0): {verdict}.", ""]
    first = frame[frame["round"] == 0].groupby("seed")["rare_class_accuracy"].first()
    lines.append(f"- **Collapse**: the initial model predicts no rare test image (rare-class accuracy 0) on "
                 f"{int((first == 0).sum())} of {len(first)} seeds.")
    later = frame[frame["round"] > 0].dropna(subset=["pool_predicted_rare"])
    if not later.empty:
        blind = later["pool_predicted_rare"] == 0
        lines.append(f"- **Blind rounds**: in {blind.mean():.0%} of the selection rounds the picking model "
                     "predicted no pool image rare (the gradient embeddings then carry no rare direction).")
    if "random" in set(final["strategy"]):
        wide = final.pivot_table(index="seed", columns="strategy", values="rare_picked_total", aggfunc="first")
        fewer = {s: int((wide[s] < wide["random"]).sum()) for s in smi if s in wide}
        fewer = {s: n for s, n in fewer.items() if n}
        lines.append("- **Fewer rare images than random** on some seed: " + (
            ", ".join(f"{s} ({n} of {len(wide)} seeds)" for s, n in fewer.items()) if fewer else "no SMI function")
                     + ".")
    return "\n".join(lines)


def refinement_findings(phase2: pd.DataFrame, recall: pd.DataFrame, minority: list[str]) -> str:
    """'What this shows' for one label-refinement experiment, in Markdown, from its numbers alone: Co-teaching +
    VOG against Co-teaching in the minority classes' clean recall, and each phase-2 sampler against random,
    paired over seeds. phase2: `rounds_frame` of the sampler records; recall: `noisy_experiments.recall_frame`;
    minority: the minority classes' names as `recall` spells them."""
    seeds = phase2["seed"].nunique()
    lines = [f"**What this shows**, from the records above ({seeds} seeds, paired by seed; an effect counts only "
             "where its 95% confidence interval excludes 0):", ""]
    verdict = refinement_verdict(phase2, recall, minority)
    if verdict:  # the one line a reader takes away, before the details
        lines += [f"**In one line**: {verdict}.", ""]
    for method, reference, what in (("coteaching_vog", "coteaching", "Co-teaching + VOG keeps a share of its clean "
                                     "samples that differs from Co-teaching's by"),
                                    ("confident_learning", "coteaching_vog", "confident learning (cleanlab) keeps a "
                                     "share that differs from Co-teaching + VOG's by")):
        paired = paired_recall(recall, method, reference)
        for name in minority:
            row = paired[paired["metric"] == f"clean recall: {name}"]
            if not row.empty:
                lines.append(f"- **Phase 1, minority class {name}**: {what} {_interval(row.iloc[0])}.")
    paired = paired_table(phase2, metrics=("balanced_accuracy", "rare_class_accuracy"))
    for metric, what in (("balanced_accuracy", "balanced accuracy"), ("rare_class_accuracy", "minority accuracy")):
        rows = paired[(paired["metric"] == metric) & (paired["reference"] == "random")]
        if rows.empty:
            continue
        named = [f"{label} {_interval(rows[rows['strategy'] == name].iloc[0])}"
                 for name, label in (("smi", "the SMI sampler"), ("label_quality", "cleanlab's label quality"),
                                     ("activelab", "ActiveLab")) if name in set(rows["strategy"])]
        lines.append(f"- **Phase 2, {what} after the last round**, against random: of {len(rows)} samplers "
                     f"{_verdict(rows)}" + (f"; {', '.join(named)}" if named else "") + ".")
    last = final_values(phase2)
    fixed = (last.groupby("strategy")["corrected"].mean() / last.groupby("strategy")["relabeled"].mean()).dropna()
    if len(fixed):
        random = f"random {fixed['random']:.0%}, " if "random" in fixed else ""
        tied = lambda value: " = ".join(s for s in _order(last) if s in fixed and fixed[s] == value)
        lines.append(f"- **What the expert's budget fixed**: {tied(fixed.max())} sends the most wrong labels to "
                     f"the expert ({fixed.max():.0%} of those relabeled were wrong; {random}the lowest "
                     f"{tied(fixed.min())} {fixed.min():.0%}).")
    return "\n".join(lines)


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
        if name in NOISY_EXPERIMENTS:
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
    targeted = frame[~frame["experiment"].isin(list(NOISY_EXPERIMENTS))]
    if len(targeted):
        parts += ["#### Collapse", markdown_table(collapse_table(targeted))]
    return "\n\n".join(parts) + "\n"


def _show(ax, image: np.ndarray) -> None:
    """One uint8 (C, H, W) image on an axis, without ticks."""
    ax.imshow(image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0), cmap="gray", vmin=0, vmax=255)
    ax.set_xticks([])
    ax.set_yticks([])


def class_examples(data: MedMNIST, indices: np.ndarray, per_class: int = 8, seed: int = 0) -> plt.Figure:
    """A grid of train images, one row per class: `per_class` drawn from `indices` (e.g. labeled + pool)."""
    rng = np.random.default_rng(seed)
    labels = data.train.labels[indices]
    fig, axes = plt.subplots(data.n_classes, per_class, figsize=(1.1 * per_class + 1.5, 1.15 * data.n_classes),
                             squeeze=False)
    for c in range(data.n_classes):
        mine = indices[labels == c]
        shown = rng.choice(mine, size=min(per_class, len(mine)), replace=False) if len(mine) else []
        for j, ax in enumerate(axes[c]):
            if j < len(shown):
                _show(ax, data.train.images[shown[j]])
            else:
                ax.axis("off")
        axes[c][0].set_ylabel(data.class_names[c][:18], rotation=0, ha="right", va="center", fontsize="small")
    fig.tight_layout()
    return fig


def picked_images(data: MedMNIST, records: list[dict], round_: int = 1, seed: int | None = None,
                  columns: int = 20) -> plt.Figure:
    """What each strategy picked in one round (one row per strategy, first `columns` picks in pick order);
    rare-class images are framed in red."""
    chosen = [r for r in records if seed is None or r["parameters"]["seed"] == seed]
    seed = chosen[0]["parameters"]["seed"]
    chosen = [r for r in chosen if r["parameters"]["seed"] == seed and len(r["rounds"]) > round_]
    order = _order(pd.DataFrame({"strategy": [r["parameters"]["strategy"] for r in chosen]}))
    chosen.sort(key=lambda r: order.index(r["parameters"]["strategy"]))
    columns = min(columns, max(len(r["rounds"][round_]["selected"]) for r in chosen))
    fig, axes = plt.subplots(len(chosen), columns, figsize=(0.62 * columns + 1.6, 0.7 * len(chosen) + 0.4),
                             squeeze=False)
    for row, record in zip(axes, chosen):
        picks = record["rounds"][round_]["selected"][:columns]
        rare = record["rare_classes"]
        n_rare = sum(int(data.train.labels[i]) in rare for i in record["rounds"][round_]["selected"])
        for j, ax in enumerate(row):
            if j >= len(picks):
                ax.axis("off")
                continue
            _show(ax, data.train.images[picks[j]])
            if int(data.train.labels[picks[j]]) in rare:
                for side in ax.spines.values():
                    side.set(color="red", linewidth=2.5)
        row[0].set_ylabel(f"{record['parameters']['strategy']}\n{n_rare} rare", rotation=0, ha="right",
                          va="center", fontsize="small")
    fig.suptitle(f"round {round_} picks, seed {seed} (red: rare class)", fontsize="medium")
    fig.tight_layout()
    return fig


def picks_table(records: list[dict], round_: int = 1, seed: int | None = None, first: int = 10) -> pd.DataFrame:
    """Per strategy of one seed: rare images picked in each round, and the first `first` pool indices picked in
    `round_`, in pick order (text, so that nbval sees what each strategy selected)."""
    seed = records[0]["parameters"]["seed"] if seed is None else seed
    chosen = {r["parameters"]["strategy"]: r for r in records if r["parameters"]["seed"] == seed}
    rows = {}
    for strategy in _order(pd.DataFrame({"strategy": list(chosen)})):
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


def save_figure(fig: plt.Figure, folder: str | Path, name: str) -> list[Path]:
    """Write `name`.png and `name`.svg into folder; no dates or random ids, so reruns give identical files."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{name}.png", folder / f"{name}.svg"]
    with plt.rc_context({"svg.hashsalt": name}):
        fig.savefig(paths[0], dpi=200, bbox_inches="tight", metadata={"Software": None})
        fig.savefig(paths[1], bbox_inches="tight", metadata={"Date": None, "Creator": None})
    return paths


if __name__ == "__main__":
    import sys

    print(readme_tables(sys.argv[1] if len(sys.argv) > 1 else "results/quick"))
