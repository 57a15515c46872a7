"""The robustness sweep: training recipes judged on settings none of them was tuned on.

Settings: PneumoniaMNIST and BreastMNIST with each class as the rare one at imbalance ratios 10 and 50 (the
notebooks run 20), and RetinaMNIST's long tail with two tail choices; quick profile otherwise (5 rounds, the
quick budget), seeds 0-4; strategies random, entropy, BADGE, FLQMI, GCMI, LogDetMI, FLMI. Recipes (`RECIPES`):
the papers' (plain cross-entropy, the authors' gradient embedding, a network trained from scratch) and the
candidates, each a set of notebook parameters over it.

Records go to results/sweep/<recipe>/<setting>/<experiment>/<strategy>/seed<k>.json, written after every round;
a finished record is read back, so an interrupted sweep continues where it stopped. `--table` reads the records
only: results/sweep/table.csv (every recipe, setting and strategy, paired against random and entropy),
results/sweep/targets.csv (issue 26's targets per recipe), figures/sweep.png and the README's table.

    python benchmarks/sweep.py --recipes paper ssl_head [--only breast_binary] [--seeds 5]
    python benchmarks/sweep.py --table
"""
import argparse
import time
from pathlib import Path

import pandas as pd

from clinical_utils.batch.environment import restart_in_batch_environment
from clinical_utils.data import class_names, set_name
from clinical_utils.experiments import EXPERIMENTS, configure, load_data, run_experiment
from clinical_utils.report import load_records, rounds_frame, save_csv, save_figure
from clinical_utils.selection import FUNCTIONS
from clinical_utils.stats import final_values, mean_interval

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results" / "sweep"
# (experiment, overrides): every offline binary set with each class rare at ratios 10 and 50, and the long tail
# with two tail choices (by train frequency: grades 1, 3, 4 rare; and grades 0, 2, 3 rare)
SETTINGS = [*((name, {"rare_classes": [rare], "imbalance_ratio": ratio})
              for name in ("pneumonia_binary", "breast_binary") for rare in (0, 1) for ratio in (10, 50)),
            ("retina_longtail", {}), ("retina_longtail", {"order": [1, 4, 0, 2, 3]})]
STRATEGIES = ["random", "entropy", "badge", "flqmi", "gcmi", "logdetmi", "flmi"]
_SSL = {"pretrain": "simclr", "pretrain_epochs": 10}  # the cold start's pretraining (benchmarks/cold_start.py)
_HEAD = {**_SSL, "head_only": True, "epochs": 200, "lr": 0.05}
RECIPES = {
    "paper": {},
    # the network trained from scratch each round, a long-tail-aware loss, pool images at their likeliest rare label
    "balanced": {"class_weight": "balanced", "embedding": "gradients_rare"},
    "logit_adjust": {"logit_adjust": 1.0, "embedding": "gradients_rare"},
    # from the SimCLR backbone: fine-tuned whole, or a linear head on it kept fixed (trained to convergence: a
    # head alone on 50-300 images takes 2-10 steps an epoch, so 30 epochs at 0.01 leave it underfit)
    "ssl_finetune": {**_SSL, "class_weight": "balanced", "embedding": "gradients_rare"},
    "ssl_head": {**_HEAD, "class_weight": "balanced", "embedding": "gradients_rare"},
}
CACHE = ROOT / "benchmarks" / ".cache" / "ssl"  # shared with the cold start: one pretraining per setting and seed


def slug(name: str, overrides: dict) -> str:
    """A folder name for one setting, e.g. 'pneumonia_binary-rare0-ratio10'."""
    parts = {"rare_classes": lambda v: "rare" + "".join(map(str, v)), "imbalance_ratio": lambda v: f"ratio{v}",
             "order": lambda v: "order" + "".join(map(str, v))}
    return "-".join([name, *(parts[k](v) for k, v in overrides.items())])


def title(name: str, overrides: dict) -> str:
    """A setting as a reader names it, e.g. 'PneumoniaMNIST: normal rare, 1:10'."""
    flag = EXPERIMENTS[name].values["dataset"]
    if "imbalance_ratio" in overrides:
        rare = ", ".join(class_names(flag)[c] for c in overrides["rare_classes"])
        return f"{set_name(flag)}: {rare} rare, 1:{overrides['imbalance_ratio']}"
    tail = overrides.get("order", [0, 2, 3, 1, 4])[2:]  # the long tail's rare half; default order by train frequency
    return f"{set_name(flag)}: grades {', '.join(map(str, sorted(tail)))} rare"


TITLES = {slug(*setting): title(*setting) for setting in SETTINGS}


def run(recipes: list[str], only: list[str] | None, seeds: int) -> None:
    settings = [s for name in only for s in SETTINGS if s[0] == name] if only else SETTINGS  # in --only's order
    for recipe in recipes:
        for name, overrides in settings:
            start = time.perf_counter()
            folder = RESULTS / recipe / slug(name, overrides)
            link = folder / "pretrained"
            if "pretrain" in RECIPES[recipe] and not link.is_symlink():
                CACHE.mkdir(parents=True, exist_ok=True)
                folder.mkdir(parents=True, exist_ok=True)
                link.symlink_to(CACHE, target_is_directory=True)
            config = configure(name, profile="quick", seeds=list(range(seeds)), strategies=STRATEGIES,
                               results_dir=str(folder), **overrides,
                               **RECIPES[recipe])
            run_experiment(load_data(config), config, progress=False)
            print(f"{recipe:<14} {slug(name, overrides):<34} {time.perf_counter() - start:6.0f} s", flush=True)


SMI = [s for s in STRATEGIES if s in FUNCTIONS]
METRICS = {"rare_picked_total": "rare picked", "rare_class_accuracy": "final rare-class accuracy",
           "balanced_accuracy": "final balanced accuracy"}


def finals() -> pd.DataFrame:
    """Every finished run's last round under results/sweep/: recipe, setting, strategy, seed, METRICS, and
    `collapsed` (its seed's round-0 model, shared by every strategy, has rare-class accuracy 0)."""
    parts = []
    for recipe in RECIPES:
        for name, overrides in SETTINGS:
            records = [r for r in load_records(RESULTS / recipe / slug(name, overrides)) if r["finished"]]
            if not records:
                continue
            frame = rounds_frame(records)
            first = frame[frame["round"] == 0].groupby("seed")["rare_class_accuracy"].first()
            final = final_values(frame).assign(recipe=recipe, setting=slug(name, overrides))
            parts.append(final.assign(collapsed=final["seed"].map(first == 0)))
    return pd.concat(parts, ignore_index=True)


def paired(final: pd.DataFrame, metric: str, strategy: str, reference: str, other=None) -> tuple:
    """(mean, low, high) of strategy's metric minus reference's over the seeds both ran (final: `finals()` rows of
    one recipe and setting); `other`: the reference's rows (another recipe's) where not `final`'s."""
    ours = final[final["strategy"] == strategy].set_index("seed")[metric]
    theirs = (final if other is None else other)
    theirs = theirs[theirs["strategy"] == reference].set_index("seed")[metric]
    both = ours.index.intersection(theirs.index)
    return mean_interval((ours[both] - theirs[both]).to_numpy())


def table(final: pd.DataFrame) -> pd.DataFrame:
    """One row per (recipe, setting, strategy): seeds, collapsed initial models, the mean of every METRICS, and
    each paired against random and entropy of the same recipe (mean difference, 95% t interval); plus, for the
    recipe's best SMI function (by mean final rare-class accuracy), its difference from the paper recipe's best."""
    rows = []
    for (recipe, setting), part in final.groupby(["recipe", "setting"], sort=False):
        paper = final[(final["recipe"] == "paper") & (final["setting"] == setting)]
        best = part[part["strategy"].isin(SMI)].groupby("strategy")["rare_class_accuracy"].mean().idxmax()
        paper_best = (paper[paper["strategy"].isin(SMI)].groupby("strategy")["rare_class_accuracy"].mean().idxmax()
                      if len(paper) else None)
        for strategy, runs in part.groupby("strategy", sort=False):
            row = {"recipe": recipe, "setting": setting, "strategy": strategy, "seeds": runs["seed"].nunique(),
                   "collapsed": int(runs["collapsed"].sum()), "best_smi": strategy == best}
            for metric in METRICS:
                row[metric] = runs[metric].mean()
                for reference in ("random", "entropy"):
                    if reference != strategy:
                        mean, low, high = paired(part, metric, strategy, reference)
                        row.update({f"{metric} vs {reference}": mean, f"{metric} vs {reference} low": low,
                                    f"{metric} vs {reference} high": high})
            if strategy == best and paper_best is not None and recipe != "paper":
                mean, low, high = paired(part, "rare_class_accuracy", strategy, paper_best, paper)
                row.update({"rare_class_accuracy vs paper best smi": mean,
                            "rare_class_accuracy vs paper best smi low": low,
                            "rare_class_accuracy vs paper best smi high": high})
            rows.append(row)
    return pd.DataFrame(rows)


def targets(rows: pd.DataFrame) -> pd.DataFrame:
    """Per recipe, the issue's targets over the settings it has run: collapsed initial models (of seeds), settings
    where every SMI function picked at least 2x random's rare images, where the best SMI function's final
    rare-class accuracy is not below entropy's (interval's upper end >= 0), and where it is above the paper
    recipe's best SMI function (interval's lower end > 0)."""
    out = []
    for recipe, part in rows.groupby("recipe", sort=False):
        settings = part.groupby("setting", sort=False)
        random = part[part["strategy"] == "random"].set_index("setting")
        smi = part[part["strategy"].isin(SMI)]
        ratio = smi.groupby("setting")["rare_picked_total"].min() / random["rare_picked_total"]
        best = part[part["best_smi"]].set_index("setting")
        out.append({"recipe": recipe, "settings": settings.ngroups,
                    "collapsed seeds": f"{int(random['collapsed'].sum())} of {int(random['seeds'].sum())}",
                    "settings with every SMI >= 2x random's rare picks": int((ratio >= 2).sum()),
                    "lowest SMI / random rare picks": round(float(ratio.min()), 2),
                    "best SMI not below entropy": int((best["rare_class_accuracy vs entropy high"] >= 0).sum()),
                    "best SMI above paper recipe's": int((best.get("rare_class_accuracy vs paper best smi low",
                                                                    pd.Series(dtype=float)) > 0).sum())})
    return pd.DataFrame(out)


def t_interval(values) -> tuple[float, float]:
    """seaborn's errorbar: the 95% t interval of the mean (`stats.mean_interval`), clipped to [0, 1] (a share)."""
    _, low, high = mean_interval(values)
    return max(low, 0.0), min(high, 1.0)


def figure(final: pd.DataFrame, rows: pd.DataFrame):
    """Per setting: the final rare-class accuracy of each recipe's best SMI function (`table` rows) and of entropy
    and random, mean and 95% t interval over seeds (seaborn)."""
    import seaborn as sns

    best = rows.query("best_smi")[["recipe", "setting", "strategy"]]
    picked = final.merge(best, on=["recipe", "setting", "strategy"]).assign(strategy="best SMI")
    shown = pd.concat([picked, final[final["strategy"].isin(["entropy", "random"])]])
    recipes = [r for r in RECIPES if r in set(final["recipe"])]
    shown = shown.assign(setting=shown["setting"].map(TITLES))
    grid = sns.catplot(shown, x="recipe", y="rare_class_accuracy", hue="strategy", col="setting", col_wrap=5,
                       col_order=[t for t in TITLES.values() if t in set(shown["setting"])],
                       kind="point", errorbar=t_interval, dodge=0.4, linestyle="none", height=2.6, aspect=1.1,
                       order=recipes, hue_order=["best SMI", "entropy", "random"],
                       palette=["#0072B2", "#E69F00", "#555555"])
    grid.set_xticklabels(recipes, rotation=45, ha="right")
    grid.set(ylim=(-0.03, 1.03))
    grid.set_titles("{col_name}", size=8)
    grid.set_axis_labels("", "final rare-class accuracy")
    grid.figure.suptitle("Robustness sweep: final rare-class accuracy by recipe (mean and 95% t interval over "
                         "seeds)", y=1.02)
    return grid.figure


def _interval(row, column: str, digits: int = 2) -> str:
    """'mean [low, high]' of a `table` row's paired difference `column` ('' where it has none)."""
    mean, low, high = (row.get(f"{column}{end}") for end in ("", " low", " high"))
    if mean is None or pd.isna(mean):
        return ""
    return f"{mean:+.{digits}f} [{low:+.{digits}f}, {high:+.{digits}f}]" if pd.notna(low) else f"{mean:+.{digits}f}"


def markdown(rows: pd.DataFrame) -> str:
    """The README's table: per setting and recipe, collapsed initial models, rare images picked (random, entropy,
    the lowest and highest SMI function), and the best SMI function's final rare-class accuracy with its paired
    differences from entropy and from the paper recipe's best SMI function."""
    lines = ["| setting | recipe | collapsed | rare picked: random / entropy / SMI lowest-highest | best SMI | "
             "final rare-class acc. | vs entropy | vs paper's best SMI |", "|" + " --- |" * 8]
    for (setting, recipe), part in rows.groupby(["setting", "recipe"], sort=False):
        by = part.set_index("strategy")
        smi = by.loc[[s for s in SMI if s in by.index], "rare_picked_total"]
        best = part[part["best_smi"]].iloc[0]
        lines.append(f"| {TITLES[setting]} | {recipe} | "
                     f"{by.loc['random', 'collapsed']} of {by.loc['random', 'seeds']} | "
                     f"{by.loc['random', 'rare_picked_total']:.1f} / {by.loc['entropy', 'rare_picked_total']:.1f} / "
                     f"{smi.min():.1f}-{smi.max():.1f} | {best['strategy']} | {best['rare_class_accuracy']:.2f} | "
                     f"{_interval(best, 'rare_class_accuracy vs entropy')} | "
                     f"{_interval(best, 'rare_class_accuracy vs paper best smi')} |")
    return "\n".join(lines)


def write_table() -> None:
    final = finals()
    rows = table(final)
    save_csv(rows, RESULTS / "table.csv")
    summary = targets(rows)
    save_csv(summary, RESULTS / "targets.csv")
    save_figure(figure(final, rows), ROOT / "figures", "sweep")
    with pd.option_context("display.width", 250, "display.max_columns", 20):
        print(summary.to_string(index=False))
    print(markdown(rows.sort_values("setting", key=lambda c: c.map([slug(*s) for s in SETTINGS].index),
                                    kind="stable")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipes", nargs="+", choices=list(RECIPES), default=list(RECIPES))
    parser.add_argument("--only", nargs="+", help="experiments to run, in this order (default: every setting)")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--table", action="store_true", help="only read the records: table, targets and figure")
    args = parser.parse_args()
    if args.table:
        write_table()
        return
    restart_in_batch_environment()
    run(args.recipes, args.only, args.seeds)


if __name__ == "__main__":
    main()
