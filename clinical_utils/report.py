"""Tables and figures from run records: what the notebooks and the summary show.

Records are the dicts `run_active_learning` returns and writes (results/<experiment>/<strategy>/seed<k>.json).
Figures are seaborn on matplotlib; `save_figure` writes PNG and SVG without timestamps, so an unchanged figure
gives unchanged files.
"""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from .data import MedMNIST
from .records import read_json, write_atomic
from .selection import FUNCTIONS
from .stats import best_baseline, final_values, paired_recall, paired_table, significant

METRICS = ("rare_class_accuracy", "accuracy", "balanced_accuracy", "macro_f1", "auc")
REFINEMENT = ("relabeled", "corrected", "remaining_noise")  # label-refinement records only


def load_records(results_dir: str | Path) -> list[dict]:
    """Every run record under results_dir/<experiment>/<strategy>/seed<k>.json (other folders are ignored)."""
    records = []
    for path in sorted(Path(results_dir).glob("*/*/seed*.json")):
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


def per_class_frame(records: list[dict], class_names=None) -> pd.DataFrame:
    """One row per (experiment, strategy, seed, round, class): that class's test accuracy."""
    rows = []
    for record in records:
        p = record["parameters"]
        for r in record["rounds"]:
            for c, acc in enumerate(r["per_class_accuracy"]):
                name = class_names[c] if class_names is not None else str(c)
                rows.append({"experiment": p["experiment"], "strategy": p["strategy"], "seed": p["seed"],
                             "round": r["round"], "labeled": sum(r["labeled_per_class"]),
                             "class": f"{name}{' (rare)' if c in record['rare_classes'] else ''}", "accuracy": acc})
    return pd.DataFrame(rows)


def _strategy_style(strategies) -> tuple[dict, dict]:
    """Colours per strategy; SMI functions drawn solid, baselines dashed."""
    smi = [s for s in strategies if s in FUNCTIONS]
    rest = [s for s in strategies if s not in FUNCTIONS]
    palette = dict(zip(smi, sns.color_palette("dark", len(smi)))) | dict(
        zip(rest, sns.color_palette("pastel", len(rest))))
    dashes = {s: "" if s in FUNCTIONS else (4, 2) for s in strategies}
    return palette, dashes


def _order(frame: pd.DataFrame) -> list[str]:
    present = set(frame["strategy"])
    return [s for s in FUNCTIONS if s in present] + sorted(present - set(FUNCTIONS))


def round_curves(frame: pd.DataFrame, title: str = "") -> plt.Figure:
    """Rare-class accuracy and cumulative rare images picked against the round, mean and sd over seeds."""
    order = _order(frame)
    palette, dashes = _strategy_style(order)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    for ax, y, label in ((axes[0], "rare_class_accuracy", "rare-class test accuracy"),
                         (axes[1], "rare_picked_total", "rare images picked (cumulative)")):
        sns.lineplot(frame, x="round", y=y, hue="strategy", style="strategy", hue_order=order, style_order=order,
                     palette=palette, dashes=dashes, errorbar="sd", marker="o", ax=ax, legend=ax is axes[1])
        ax.set(ylabel=label, xticks=sorted(frame["round"].unique()))
    axes[1].legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small", title="strategy")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def per_class_curves(frame: pd.DataFrame, title: str = "") -> plt.Figure:
    """Each class's test accuracy against labeled-set size, one panel per class, mean and sd over seeds."""
    order = _order(frame)
    palette, dashes = _strategy_style(order)
    classes = list(dict.fromkeys(frame["class"]))
    cols = min(4, len(classes))
    rows = math.ceil(len(classes) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols + 2, 3.0 * rows), squeeze=False, sharey=True)
    for ax, name in zip(axes.flat, classes):
        sns.lineplot(frame[frame["class"] == name], x="labeled", y="accuracy", hue="strategy", style="strategy",
                     hue_order=order, style_order=order, palette=palette, dashes=dashes, errorbar="sd", ax=ax,
                     legend=ax is axes.flat[0])
        ax.set(title=name[:40], xlabel="labeled images", ylabel="test accuracy", ylim=(-0.02, 1.02))
    for ax in axes.flat[len(classes):]:
        ax.set_visible(False)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    axes.flat[0].get_legend().remove()
    fig.suptitle(title)
    fig.tight_layout()
    fig.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.0, 0.95), fontsize="small", title="strategy")
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


def budget_curves(frame: pd.DataFrame, title: str = "") -> plt.Figure:
    """Label refinement: balanced accuracy and the training set's remaining noise rate against the number of
    expert labels spent, mean and sd over seeds."""
    order = _order(frame)
    palette = dict(zip(order, sns.color_palette("tab10", len(order))))
    dashes = {s: "" if s == "smi" else (4, 2) for s in order}  # the targeted sampler solid
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    for ax, y, label in ((axes[0], "balanced_accuracy", "balanced test accuracy"),
                         (axes[1], "remaining_noise", "share of training labels still wrong")):
        sns.lineplot(frame, x="relabeled", y=y, hue="strategy", style="strategy", hue_order=order, style_order=order,
                     palette=palette, dashes=dashes, errorbar="sd", marker="o", ax=ax, legend=ax is axes[1])
        ax.set(xlabel="expert labels spent", ylabel=label)
    axes[1].legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small", title="sampler")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def recall_plot(recall: pd.DataFrame, title: str = "") -> plt.Figure:
    """Phase 1: per class, the share of truly clean samples each method kept (mean and sd over seeds)."""
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * recall["class"].nunique() + 2), 3.8))
    sns.barplot(recall, x="class", y="recall", hue="method", errorbar="sd", ax=ax)
    ax.set(ylabel="clean samples kept (recall)", ylim=(0, 1.05), title=title)
    ax.tick_params(axis="x", labelrotation=20)
    fig.tight_layout()
    return fig


def corrected_images(data: MedMNIST, train: np.ndarray, noisy: np.ndarray, record: dict, count: int = 16
                     ) -> plt.Figure:
    """Images a refinement run relabeled whose given label was wrong: titled 'given → true'.
    train: the run's positions into data.train; noisy: the given labels."""
    picks = [i for r in record["rounds"] for i in r["selected"]]
    wrong = [i for i in picks if noisy[i] != data.train.labels[train[i]]][:count]
    cols = min(8, max(1, len(wrong)))
    rows = max(1, math.ceil(len(wrong) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.9 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, wrong):
        _show(ax, data.train.images[train[i]])
        ax.axis("on")
        ax.set_title(f"{data.class_names[noisy[i]][:10]} →\n{data.class_names[data.train.labels[train[i]]][:10]}",
                     fontsize="x-small")
    fig.suptitle(f"{record['parameters']['strategy']}: corrected labels (given → true), seed "
                 f"{record['parameters']['seed']}", fontsize="medium")
    fig.tight_layout()
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
    table.columns = [f"{what}: {stat}".replace("mean", "rare picked / round").replace("size", "rounds")
                     for stat, what in table.columns]
    return table.round(2)


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
    vog = paired_recall(recall)
    for name in minority:
        row = vog[vog["metric"] == f"clean recall: {name}"]
        if not row.empty:
            lines.append(f"- **Phase 1, minority class {name}**: Co-teaching + VOG keeps a share of its clean "
                         f"samples that differs from Co-teaching's by {_interval(row.iloc[0])}.")
    paired = paired_table(phase2, metrics=("balanced_accuracy", "rare_class_accuracy"))
    for metric, what in (("balanced_accuracy", "balanced accuracy"), ("rare_class_accuracy", "minority accuracy")):
        rows = paired[(paired["metric"] == metric) & (paired["reference"] == "random")]
        if rows.empty:
            continue
        smi = rows[rows["strategy"] == "smi"]
        lines.append(f"- **Phase 2, {what} after the last round**, against random: of {len(rows)} samplers "
                     f"{_verdict(rows)}" + (f"; the SMI sampler {_interval(smi.iloc[0])}" if not smi.empty else "")
                     + ".")
    return "\n".join(lines)


def markdown_table(table: pd.DataFrame) -> str:
    """A GitHub-markdown rendering of a table with a (multi-)index, for the README."""
    frame = table.reset_index()
    lines = ["| " + " | ".join(frame.columns) + " |", "|" + " --- |" * len(frame.columns)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


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
        fig.savefig(paths[0], dpi=110, bbox_inches="tight", metadata={"Software": None})
        fig.savefig(paths[1], bbox_inches="tight", metadata={"Date": None, "Creator": None})
    return paths
