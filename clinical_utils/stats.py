"""Paired differences between strategies over seeds, with 95% confidence intervals (scipy).

All strategies of one seed share the split and the initial model, so a strategy is compared with a reference
seed by seed: the differences of their final-round values, their mean, and a 95% confidence interval of that
mean. The interval is Student's t (`scipy.stats.ttest_1samp(...).confidence_interval`), not a bootstrap: with
3-10 seeds a bootstrap has few distinct resamples (10 at n = 3) and its intervals are too narrow. Measured by
`benchmarks/interval_coverage.py` (results/bench/interval_coverage.json), a nominal 95% interval covered the true
mean of normal differences 74% / 85% / 89% of the time at 3 / 5 / 10 seeds with scipy's percentile bootstrap
(BCa: 71% / 85% / 89%), and 96% / 95% / 94% with t; for skewed differences t covered 88-91%, the bootstraps
68-89%. The t interval is exact for normal differences and widens as it should for few seeds. With fewer than
two seeds there is no interval (NaN); when every difference is equal the interval is that value.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from .selection.registry import STRATEGIES

PAIRED_METRICS = ("rare_picked_total", "rare_class_accuracy", "balanced_accuracy", "auc")
TARGETED = tuple(n for n, s in STRATEGIES.items() if s.family == "smi")  # the SMI functions and the SMI sampler
COLUMNS = ["experiment", "strategy", "reference", "metric", "mean_difference", "ci_low", "ci_high", "seeds"]


def mean_interval(differences, confidence: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high) of paired differences (n,): the t confidence interval of their mean."""
    d = np.asarray(differences, dtype=float)
    d = d[np.isfinite(d)]
    if len(d) == 0:
        return float("nan"), float("nan"), float("nan")
    mean = float(d.mean())
    if len(d) < 2:
        return mean, float("nan"), float("nan")
    if np.ptp(d) <= 1e-12 * max(1.0, abs(mean)):  # no spread (to rounding): every seed gave this difference
        return mean, mean, mean
    ci = stats.ttest_1samp(d, 0.0).confidence_interval(confidence)
    return mean, float(ci.low), float(ci.high)


def final_values(frame: pd.DataFrame) -> pd.DataFrame:
    """The last round of every (experiment, strategy, seed) run in a `report.rounds_frame`."""
    last = frame.groupby(["experiment", "strategy", "seed"])["round"].transform("max")
    return frame[frame["round"] == last]


def best_baseline(final: pd.DataFrame, metric: str) -> str | None:
    """The non-targeted strategy with the highest mean final `metric` in one experiment's final values."""
    means = final[~final["strategy"].isin(TARGETED)].groupby("strategy")[metric].mean().dropna()
    return None if means.empty else str(means.idxmax())


def paired_table(frame: pd.DataFrame, metrics=PAIRED_METRICS) -> pd.DataFrame:
    """Every strategy against random and against its experiment's best baseline (per metric), paired by seed.

    frame: `report.rounds_frame` of one or more experiments. Returns one row per (experiment, strategy,
    reference, metric) with the columns `COLUMNS`; `reference` is 'random' or 'best baseline (<name>)'.
    """
    rows = []
    for experiment, final in final_values(frame).groupby("experiment", sort=False):
        for metric in metrics:
            if metric not in final or final[metric].isna().all():
                continue
            wide = final.pivot_table(index="seed", columns="strategy", values=metric, aggfunc="first")
            best = best_baseline(final, metric)
            references = [(name, label) for name, label in (("random", "random"),
                                                           (best, f"best baseline ({best})"))
                          if name is not None and name in wide]
            if best == "random":  # the same comparison twice otherwise
                references = references[:1]
            for strategy in wide.columns:
                for reference, label in references:
                    if strategy == reference:
                        continue
                    both = wide[[strategy, reference]].dropna()
                    mean, low, high = mean_interval(both[strategy] - both[reference])
                    rows.append([experiment, strategy, label, metric, mean, low, high, len(both)])
    return pd.DataFrame(rows, columns=COLUMNS)


def paired_recall(recall: pd.DataFrame, method: str = "coteaching_vog", reference: str = "coteaching",
                  experiment: str = "") -> pd.DataFrame:
    """Phase 1 of label refinement: `method` against `reference` in each class's clean recall, paired by seed.

    recall: `experiments.recall_frame` (method, seed, class, recall). Same columns as `paired_table`;
    metric is 'clean recall: <class>'.
    """
    rows = []
    for name, part in recall.groupby("class", sort=False):
        wide = part.pivot_table(index="seed", columns="method", values="recall", aggfunc="first")
        if method not in wide or reference not in wide:
            continue
        both = wide[[method, reference]].dropna()
        mean, low, high = mean_interval(both[method] - both[reference])
        rows.append([experiment, method, reference, f"clean recall: {name}", mean, low, high, len(both)])
    return pd.DataFrame(rows, columns=COLUMNS)


def significant(table: pd.DataFrame) -> pd.Series:
    """Rows whose interval excludes 0 (NaN intervals never do)."""
    return (table["ci_low"] > 0) | (table["ci_high"] < 0)
