"""One style per method, the same in every figure: colours, markers, order, labels and captions."""
from __future__ import annotations

import pandas as pd

from ..selection.registry import STRATEGIES
from ..stats import TARGETED


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


def strategy_style(strategies) -> dict[str, dict]:
    """Line keyword arguments (colour, marker, line style, width) per strategy; unknown names get black dots."""
    return {s: {"color": PALETTE.get(s, "#000000"), "marker": MARKERS.get(s, "."),
                "linestyle": "-" if s in TARGETED else "--", "linewidth": 2.4 if s == "smi" else 1.7,
                "markersize": 8 if s == "smi" else 5} for s in strategies}


def in_hue_order(frame: pd.DataFrame, column: str = "strategy") -> list[str]:
    """The frame's strategies (or methods) in HUE_ORDER, unknown names last in alphabetical order."""
    present = set(frame[column])
    return [s for s in HUE_ORDER if s in present] + sorted(present - set(HUE_ORDER))


def merge_identical(frame: pd.DataFrame, by_rows=None) -> tuple[pd.DataFrame, dict[str, str]]:
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
    for strategy in in_hue_order(frame):
        twin = next((kept for kept in labels if same(values[kept], values[strategy])), None)
        if twin is None:
            labels[strategy] = strategy
        else:
            labels[twin] += f" = {strategy}"
    return frame[frame["strategy"].isin(labels)], labels


def seeds_text(counts: pd.Series) -> str:
    """'N seeds' from seed counts per group, or 'a-b seeds' when they differ."""
    low, high = int(counts.min()), int(counts.max())
    return f"{high} seed{'s' * (high != 1)}" if low == high else f"{low}-{high} seeds"


def seeds_of(frame: pd.DataFrame, by: str = "strategy") -> str:
    """seeds_text of the number of seeds per `by` group of a frame with a seed column."""
    return seeds_text(frame.groupby(by)["seed"].nunique())


def caption(title: str, frame: pd.DataFrame, by: str = "strategy") -> str:
    return f"{title}\n" * bool(title) + f"mean and 95% CI over {seeds_of(frame, by)}"
