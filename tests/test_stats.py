import numpy as np
import pandas as pd
import pytest

from clinical_utils import report, stats


def _frame(values: dict) -> pd.DataFrame:
    """A rounds_frame-like table: values[strategy] = final rare_class_accuracy per seed (round 0 is 0.1)."""
    rows = []
    for strategy, per_seed in values.items():
        for seed, v in enumerate(per_seed):
            for round_, value in ((0, 0.1), (2, v)):
                rows.append({"experiment": "e", "strategy": strategy, "seed": seed, "round": round_,
                             "rare_class_accuracy": value, "rare_picked_total": 10 * value, "rare_picked": 1,
                             "pool_predicted_rare": 0 if strategy == "gcmi" and round_ else 5})
    return pd.DataFrame(rows)


def test_differences_are_paired_by_seed():
    """The seeds differ a lot, flqmi beats entropy by exactly 0.05 on each: paired, the interval is that value."""
    base = [0.1, 0.5, 0.9, 0.3]
    frame = _frame({"random": [0.0, 0.2, 0.4, 0.1], "entropy": base, "flqmi": [b + 0.05 for b in base]})
    table = stats.paired_table(frame, metrics=["rare_class_accuracy"])
    row = table[(table["strategy"] == "flqmi") & (table["reference"] == "best baseline (entropy)")].iloc[0]
    assert row["mean_difference"] == pytest.approx(0.05)
    assert row["ci_low"] == pytest.approx(0.05) and row["ci_high"] == pytest.approx(0.05) and row["seeds"] == 4
    assert list(table.columns) == stats.COLUMNS
    assert not ((table["strategy"] == "entropy") & (table["reference"].str.contains("entropy"))).any()
    assert stats.significant(table).loc[row.name]


def test_the_interval_is_students_t():
    mean, low, high = stats.mean_interval([1.0, 2.0, 3.0])
    assert mean == 2.0 and high - mean == pytest.approx(4.302653 / np.sqrt(3), rel=1e-5)
    assert np.isnan(stats.mean_interval([1.0])[1])


def test_best_baseline_is_the_best_non_targeted_strategy():
    frame = _frame({"random": [0.2, 0.2], "margin": [0.5, 0.6], "flmi": [0.9, 0.9]})
    assert stats.best_baseline(stats.final_values(frame), "rare_class_accuracy") == "margin"


def test_phase_one_recall_is_paired_per_class():
    recall = pd.DataFrame([{"method": m, "seed": s, "class": c, "recall": r}
                           for s in range(3) for c, (a, b) in (("normal", (0.5 + s / 10, 0.6 + s / 10)),
                                                              ("pneumonia", (0.9, 0.8)))
                           for m, r in (("coteaching", a), ("coteaching_vog", b))])
    table = stats.paired_recall(recall, experiment="x")
    assert table.set_index("metric")["mean_difference"].to_dict() == pytest.approx(
        {"clean recall: normal": 0.1, "clean recall: pneumonia": -0.1})


def test_views_of_paired_and_blind_rounds():
    frame = _frame({"random": [0.2, 0.3], "entropy": [0.4, 0.5], "gcmi": [0.6, 0.9]})
    view = report.paired_view(stats.paired_table(frame))
    assert view.loc[("e", "gcmi"), ("rare_class_accuracy", "random")].startswith("+0.500")
    blind = report.blind_rounds_table(frame)
    assert blind.loc[("e", "gcmi"), "blind: rounds"] == 2 and blind.loc[("e", "random"), "blind: rounds"] == 0
    collapse = report.collapse_table(frame)
    assert collapse.loc["e", "initial model collapsed"] == 0 and collapse.loc["e", "runs with such a round"] == 2
