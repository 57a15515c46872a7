"""The figures of the notebooks and the summary (matplotlib, every method in its `style`); `save_figure` writes
PNG and SVG without timestamps, so an unchanged figure gives unchanged files.
"""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ..stats import TARGETED, mean_interval, significant
from .frames import class_label
from .style import (FROM_ZERO, LABELS, MARGIN, PALETTE, SHARES, caption, in_hue_order, merge_identical, seeds_text,
                    strategy_style)


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
    styles = strategy_style(labels)
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
    means = last.groupby("strategy")[y].mean().reindex(in_hue_order(last)).dropna()
    return None if means.empty else str(means.idxmax())


def round_curves(frame: pd.DataFrame, title: str = "") -> plt.Figure:
    """Rare-class accuracy (top) and cumulative rare images picked (bottom) against the labeled-set size; left the
    targeted SMI functions, right the baselines, random in both as the reference; mean and 95% CI over seeds.
    frame: `rounds_frame` of one experiment."""
    merged, labels = merge_identical(frame)
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
    fig.suptitle(caption(title, frame))
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
    merged, labels = merge_identical(frame)
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
    fig.suptitle(caption(title, frame))
    return fig


def budget_curves(frame: pd.DataFrame, title: str = "") -> plt.Figure:
    """Label refinement: balanced accuracy and the training set's remaining noise rate against the number of
    expert labels spent, mean and 95% CI over seeds. frame: `rounds_frame` of one experiment."""
    merged, labels = merge_identical(frame)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4), layout="constrained")
    for ax, y in zip(axes, ("balanced_accuracy", "remaining_noise")):
        _from_zero(ax, y, _draw(ax, merged, "relabeled", y, labels))
        ax.set(xlabel="expert labels spent", ylabel=LABELS[y], xticks=merged.groupby("round")["relabeled"].mean())
        ax.grid(alpha=0.3)
    fig.legend(handles=axes[0].get_legend_handles_labels()[0], title="sampler", loc="outside right upper",
               fontsize="small", frameon=False)
    fig.suptitle(caption(title, frame))
    return fig


def recall_plot(recall: pd.DataFrame, title: str = "", minority=()) -> plt.Figure:
    """Phase 1: per class, the share of truly clean samples each method kept; bars the mean, whiskers the 95% CI
    over seeds clipped to [0, 1]; the `minority` classes (names) marked *. recall: `experiments.recall_frame`
    (method, seed, class, recall)."""
    classes = list(dict.fromkeys(recall["class"]))
    methods = in_hue_order(recall, "method")
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
    ax.set(xticks=np.arange(len(classes)), xticklabels=[class_label(c) + " *" * (c in minority) for c in classes],
           xlabel="class" + " (* minority)" * bool(minority),
           ylabel=LABELS["recall"], ylim=(0, 1 + MARGIN), title=caption(title, recall, by="method"))
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
    sizes = [merge_identical(part[part["experiment"] == e], PAIRED_VALUES)[0]["strategy"].nunique()
             for e in experiments]
    fig, axes = plt.subplots(len(experiments), 1, figsize=(7.5, 0.3 * sum(sizes) + 1.1 * len(experiments) + 1),
                             height_ratios=sizes, squeeze=False, layout="constrained")
    for ax, experiment in zip(axes[:, 0], experiments):
        mine, labels = merge_identical(part[part["experiment"] == experiment], PAIRED_VALUES)
        order = in_hue_order(mine)
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
        ax.set_title(f"{experiment}: {seeds_text(mine['seeds'])}" + (f", {best.iloc[0]}" if len(best) else ""),
                     fontsize="medium", loc="left")
    axes[-1, 0].set_xlabel(f"{LABELS.get(metric, metric)}, final round: strategy − reference")
    key = [plt.Line2D([], [], color="black", marker="o", linestyle="", markerfacecolor="white", label="vs random"),
           plt.Line2D([], [], color="black", marker="s", linestyle="", markerfacecolor="white",
                      label="vs best baseline"),
           plt.Line2D([], [], color="black", marker="o", linestyle="", label="filled: 95% CI excludes 0")]
    fig.legend(handles=key, loc="outside lower center", ncol=3, fontsize="small", frameon=False)
    fig.suptitle(f"{title}\n" * bool(title) + "paired difference of the final round, mean and 95% CI over "
                 + seeds_text(part["seeds"]))
    return fig


def save_figure(fig: plt.Figure, folder: str | Path, name: str) -> list[Path]:
    """Write `name`.png and `name`.svg into folder; no dates or random ids, so reruns give identical files."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{name}.png", folder / f"{name}.svg"]
    with plt.rc_context({"svg.hashsalt": name}):
        fig.savefig(paths[0], dpi=200, bbox_inches="tight", metadata={"Software": None})
        fig.savefig(paths[1], bbox_inches="tight", metadata={"Date": None, "Creator": None})
    return paths
