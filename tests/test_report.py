import json

import matplotlib
import numpy as np

from clinical_utils import report

matplotlib.use("Agg")


def _record(strategy, seed, picks, accuracies, experiment="exp"):
    """A run record with 2 classes (1 rare): picks[r] = rare images picked in round r, budget 4."""
    rounds = []
    for r, (rare, acc) in enumerate(zip(picks, accuracies)):
        rounds.append({"round": r, "labeled_per_class": [10 + 4 * r, 1], "selected_per_class": [4 - rare, rare],
                       "selected": list(range(4 * r, 4 * r + 4)) if r else [], "per_class_accuracy": [0.9, acc],
                       "rare_class_accuracy": acc, "accuracy": (0.9 + acc) / 2, "balanced_accuracy": (0.9 + acc) / 2,
                       "macro_f1": 0.5, "auc": 0.7})
    return {"parameters": {"experiment": experiment, "strategy": strategy, "seed": seed, "dataset": "x"},
            "rare_classes": [1], "rounds": rounds, "finished": True}


def test_frames_and_final_table():
    records = [_record("flqmi", 0, [0, 3, 2], [0.1, 0.5, 0.7]), _record("flqmi", 1, [0, 1, 2], [0.1, 0.3, 0.5]),
               _record("random", 0, [0, 0, 1], [0.1, 0.2, 0.2])]
    frame = report.rounds_frame(records)
    assert frame.loc[(frame.strategy == "flqmi") & (frame.seed == 0), "rare_picked_total"].tolist() == [0, 3, 5]
    per_class = report.per_class_frame(records, ["normal", "sick"])
    assert set(per_class["class"]) == {"normal", "sick (rare)"} and len(per_class) == 2 * len(frame)
    table = report.final_table(frame)
    assert list(table.index.get_level_values("strategy")) == ["flqmi", "random"]  # best rare accuracy first
    assert table.loc[("exp", "flqmi"), "rare-class acc"] == f"0.600 ± {np.std([0.7, 0.5], ddof=1):.3f}"
    assert table.loc[("exp", "flqmi"), "rare picked"] == "4.0 ± 1.4" and table.loc[("exp", "random"), "seeds"] == 1
    lines = report.markdown_table(table).splitlines()
    assert len(lines) == 4 and lines[0].startswith("| experiment | strategy | rare-class acc")


def test_load_records_reads_only_the_record_layout(tmp_path):
    (tmp_path / "exp" / "flqmi").mkdir(parents=True)
    (tmp_path / "exp" / "flqmi" / "seed0.json").write_text(json.dumps(_record("flqmi", 0, [0, 1], [0.1, 0.2])))
    (tmp_path / "executed").mkdir()
    (tmp_path / "executed" / "x.ipynb").write_text("{}")
    (tmp_path / "bench").mkdir()
    (tmp_path / "bench" / "training_cpu.json").write_text("{}")
    records = report.load_records(tmp_path)
    assert len(records) == 1 and records[0]["parameters"]["strategy"] == "flqmi"


def test_figures_are_saved_identically_twice(tmp_path):
    frame = report.rounds_frame([_record(s, k, [0, 1, 2], [0.1, 0.4, 0.6]) for s in ("gcmi", "margin")
                                 for k in (0, 1)])
    first = report.save_figure(report.round_curves(frame, "t"), tmp_path / "a", "curves")
    second = report.save_figure(report.round_curves(frame, "t"), tmp_path / "b", "curves")
    assert [p.suffix for p in first] == [".png", ".svg"]
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]
