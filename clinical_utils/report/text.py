"""Generated words: each experiment's verdict and 'What this shows', written from its numbers alone."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..refinement.run import KEEPS_ALL
from ..selection import FUNCTIONS
from ..stats import best_baseline, final_values, paired_recall, paired_table
from .style import in_hue_order


def interval_text(row) -> str:
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
        text += f", differs from random by {interval_text(one.iloc[0])}." if not one.empty else "."
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
    paired over seeds. phase2: `rounds_frame` of the sampler records; recall: `experiments.recall_frame`;
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
                lines.append(f"- **Phase 1, minority class {name}**: {what} {interval_text(row.iloc[0])}.")
    paired = paired_table(phase2, metrics=("balanced_accuracy", "rare_class_accuracy"))
    for metric, what in (("balanced_accuracy", "balanced accuracy"), ("rare_class_accuracy", "minority accuracy")):
        rows = paired[(paired["metric"] == metric) & (paired["reference"] == "random")]
        if rows.empty:
            continue
        named = [f"{label} {interval_text(rows[rows['strategy'] == name].iloc[0])}"
                 for name, label in (("smi", "the SMI sampler"), ("label_quality", "cleanlab's label quality"),
                                     ("activelab", "ActiveLab")) if name in set(rows["strategy"])]
        lines.append(f"- **Phase 2, {what} after the last round**, against random: of {len(rows)} samplers "
                     f"{_verdict(rows)}" + (f"; {', '.join(named)}" if named else "") + ".")
    last = final_values(phase2)
    fixed = (last.groupby("strategy")["corrected"].mean() / last.groupby("strategy")["relabeled"].mean()).dropna()
    if len(fixed):
        random = f"random {fixed['random']:.0%}, " if "random" in fixed else ""
        tied = lambda value: " = ".join(s for s in in_hue_order(last) if s in fixed and fixed[s] == value)
        lines.append(f"- **What the expert's budget fixed**: {tied(fixed.max())} sends the most wrong labels to "
                     f"the expert ({fixed.max():.0%} of those relabeled were wrong; {random}the lowest "
                     f"{tied(fixed.min())} {fixed.min():.0%}).")
    return "\n".join(lines)
