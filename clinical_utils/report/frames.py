"""Run records as data frames: one row per round (and per class), the shapes every table and figure reads."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..records import read_json, record_paths


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


def class_label(name) -> str:
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
                name = class_label(class_names[c] if class_names is not None else c)
                rows.append({"experiment": p["experiment"], "strategy": p["strategy"], "seed": p["seed"],
                             "round": r["round"], "labeled": sum(r["labeled_per_class"]),
                             "class": f"{name}{' (rare)' if c in record['rare_classes'] else ''}", "accuracy": acc,
                             **{m: r[m] for m in ("relabeled",) if m in r}})
    return pd.DataFrame(rows)
