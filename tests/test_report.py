import itertools
import json
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest
from matplotlib import pyplot as plt
from matplotlib.colors import to_hex

from clinical_utils import report, stats

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


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _drawn(fig):
    fig.canvas.draw()
    return fig


def _legends_clear_of_data(fig):
    """No legend's box overlaps the data area of a visible axes."""
    _drawn(fig)
    legends = [*fig.legends, *(ax.get_legend() for ax in fig.axes if ax.get_legend())]
    plots = [ax for ax in fig.axes if ax.axison]
    return all(not leg.get_window_extent().overlaps(ax.get_window_extent()) for leg in legends for ax in plots)


def test_every_method_has_one_distinct_style():
    from matplotlib.colors import to_rgb
    from skimage.color import deltaE_ciede2000, rgb2lab  # scikit-image comes with medmnist

    from clinical_utils.active.loop import STRATEGIES
    from clinical_utils.experiments import METHODS
    from clinical_utils.refinement.refine import SAMPLERS

    for family in (STRATEGIES, SAMPLERS, METHODS):
        assert set(family) <= set(report.PALETTE) == set(report.MARKERS) == set(report.HUE_ORDER)
        assert len({report.MARKERS[m] for m in family}) == len(family)
        # no two alike to the eye: CIEDE2000 colour difference (the old palette's closest pair: 9)
        lab = {m: rgb2lab(np.array([[to_rgb(report.PALETTE[m])]])) for m in family}
        assert min(deltaE_ciede2000(lab[a], lab[b]).item() for a, b in itertools.combinations(family, 2)) > 18
    grey = to_rgb(report.PALETTE["random"])
    assert grey[0] == grey[1] == grey[2] < 0.5  # a dark neutral reference
    assert len(set(to_rgb(report.PALETTE["smi"]))) == 3  # the method of interest is a colour, not a grey
    styles = report.strategy_style(["flmi", "random", "smi", "entropy"])
    assert [styles[s]["linestyle"] for s in styles] == ["-", "--", "-", "--"]


def test_bands_are_clipped_to_the_metric_range():
    # rare-class accuracy hugging 1 and picks hugging 0: the t interval leaves [0, 1] and [0, inf)
    accuracies = {0: [0.2, 1.0, 1.0], 1: [0.2, 0.9, 1.0], 2: [0.2, 1.0, 0.96]}
    picks = {0: [0, 0, 1], 1: [0, 0, 0], 2: [0, 1, 0]}
    records = [_record(s, k, picks[k][:2] + [picks[k][2] + i], accuracies[k])  # picks differ: not merged
               for i, s in enumerate(("gcmi", "badge", "random")) for k in range(3)]
    frame = report.rounds_frame(records)
    assert stats.mean_interval([1.0, 1.0, 0.96])[2] > 1 and stats.mean_interval([1, 0, 0])[1] < 0
    fig = _drawn(report.round_curves(frame, "t"))
    axes = np.array(fig.axes).reshape(2, 2)
    for row, high in ((0, 1.0), (1, np.inf)):
        for ax in axes[row]:
            bands = [p.vertices[:, 1] for c in ax.collections for p in c.get_paths()]
            assert bands and all(((b >= 0) & (b <= high)).all() for b in bands)
    assert axes[0, 0].get_ylim() == (-report.MARGIN, 1 + report.MARGIN)  # bands reach 1
    assert "mean and 95% CI over 3 seeds" in fig.get_suptitle()
    low = [_record(s, k, [0, 1, 2 + i], [0.02, 0.1, 0.15 + k / 50]) for i, s in enumerate(("gcmi", "random"))
           for k in range(3)]
    ax = _drawn(report.round_curves(report.rounds_frame(low), "t")).axes[0]
    assert ax.get_ylim()[0] == -report.MARGIN and 0.2 < ax.get_ylim()[1] < 0.5  # from 0, up to the data
    # panels sharing the axis: it reaches the highest of them (SMI near 0.8, the baselines near 0.2)
    mixed = low + [_record(s, k, [0, 1, 5 + i], [0.02, 0.1 + i, 0.2 + 0.6 * i])
                   for i, s in enumerate(("entropy", "flmi")) for k in range(3)]
    shared = np.array(_drawn(report.round_curves(report.rounds_frame(mixed), "t")).axes).reshape(2, 2)
    assert shared[0, 0].get_ylim() == shared[0, 1].get_ylim() and 0.8 < shared[0, 1].get_ylim()[1] < 1.04
    assert _legends_clear_of_data(fig)


def test_identical_strategies_are_drawn_once_and_named_together():
    same = [_record(s, k, [0, 2, 3], [0.1, 0.5, 0.6 + k / 10]) for s in ("margin", "entropy", "least_confidence")
            for k in (0, 1)]
    bald = [_record("bald", k, [0, 2, 3], [0.1, 0.5, 0.6 + k / 10 + (k == 1) / 100]) for k in (0, 1)]  # one value
    others = [_record(s, k, [0, 2, 3], [0.1, 0.5, extra]) for s, extra in (("gcmi", 0.9), ("random", 0.2))
              for k in (0, 1)]
    fig = report.round_curves(report.rounds_frame(same + bald + others), "t")
    labels = ["bald", "entropy = least_confidence = margin", "random"]
    assert [line.get_label() for line in fig.axes[1].get_lines()] == labels  # the baselines' panel
    assert [t.get_text() for t in fig.axes[3].get_legend().get_texts()] == labels
    assert [line.get_label() for line in fig.axes[0].get_lines()] == ["gcmi", "random"]
    budget = report.budget_curves(report.rounds_frame([_refinement(s, k) for s in ("smi", "entropy", "margin")
                                                       for k in (0, 1)]), "t")
    assert [t.get_text() for t in budget.legends[0].get_texts()] == ["smi", "entropy = margin"]


def _refinement(strategy, seed):
    record = _record(strategy, seed, [0, 1, 2], [0.5, 0.6 + seed / 10, 0.7 + (strategy == "smi") / 10])
    for r in record["rounds"]:
        r.update(relabeled=4 * r["round"], corrected=r["round"], remaining_noise=0.4 - r["round"] / 100)
    return record


def test_per_class_panels_are_titled_and_fill_the_grid():
    names = ["normal", "malignant", "benign", "other", "more"]
    bonus = {"flmi": 0.01, "gcmi": 0.03, "badge": 0.02, "coreset": 0.04, "bald": 0.0, "random": 0.05}
    records = []
    for s, extra in bonus.items():
        for k in (0, 1):
            record = _record(s, k, [0, 1, 2], [0.2, 0.4, 0.5 + k / 10 + extra])
            for r in record["rounds"]:
                r["per_class_accuracy"] = [0.9, r["rare_class_accuracy"], 0.8, 0.7, 0.6]
            records.append(record)
    frame = report.per_class_frame(records, names)
    fig = _drawn(report.per_class_curves(frame, "t"))
    panels = [ax for ax in fig.axes if ax.axison]
    assert [ax.get_title() for ax in panels] == ["normal", "malignant (rare)", "benign", "other", "more"]
    assert len(fig.axes) == 6 and fig.axes[5].get_legend() is not None  # the spare slot holds the key
    # six strategies: the panel colours its best SMI function, best baseline and random, the rest are grey
    assert [t.get_text() for t in panels[1].get_legend().get_texts()] == ["gcmi", "coreset", "random"]
    assert panels[0].get_xlabel() == "labeled images" and _legends_clear_of_data(fig)
    refined = report.per_class_frame([_refinement("smi", 0), _refinement("smi", 1)], ["normal", "sick"])
    assert report.per_class_curves(refined).axes[0].get_xlabel() == "expert labels spent"
    assert set(report.per_class_frame(records[:1])["class"]) == {"class 0", "class 1 (rare)", "class 2", "class 3",
                                                                  "class 4"}


def test_recall_plot_keeps_the_method_order_and_its_legend_off_the_bars():
    recall = pd.DataFrame([{"method": m, "seed": k, "class": c, "recall": 0.5 + k / 10}
                           for m in ("coteaching_vog", "cross_entropy", "coteaching") for k in (0, 1, 2)
                           for c in ("normal", "pneumonia", "all")])
    fig = report.recall_plot(recall, "t")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["cross_entropy", "coteaching", "coteaching_vog"]
    bars = [c for c in ax.containers if hasattr(c, "patches")]
    assert [to_hex(b.patches[0].get_facecolor()) for b in bars] == [
        report.PALETTE[m].lower() for m in ("cross_entropy", "coteaching", "coteaching_vog")]
    assert _legends_clear_of_data(fig)
    marked = report.recall_plot(recall, "t", minority=["normal"]).axes[0]
    assert [t.get_text() for t in marked.get_xticklabels()] == ["normal *", "pneumonia", "all"]
    assert marked.get_xlabel() == "class (* minority)"


def _paired():
    rows = [["a", "flmi", "random", "rare_picked_total", 3.0, 1.0, 5.0, 3],
            ["a", "flmi", "best baseline (badge)", "rare_picked_total", -1.0, -4.0, 2.0, 3],
            ["a", "badge", "random", "rare_picked_total", 4.0, 2.0, 6.0, 3],
            ["a", "random", "best baseline (badge)", "rare_picked_total", -4.0, -6.0, -2.0, 3],
            ["b", "smi", "random", "rare_picked_total", 0.5, float("nan"), float("nan"), 1],
            ["a", "flmi", "random", "rare_class_accuracy", 0.1, -0.1, 0.3, 3]]
    return pd.DataFrame(rows, columns=stats.COLUMNS)


def test_paired_figure_draws_one_whisker_per_row():
    paired = _paired()
    fig = report.paired_figure(paired, "rare_picked_total", "t")
    a, b = fig.axes
    segments = sorted((s[0][0], s[1][0], s[0][1]) for c in a.collections if hasattr(c, "get_segments")
                      for s in c.get_segments())
    order = ["flmi", "badge", "random"]
    part = paired[(paired.experiment == "a") & (paired.metric == "rare_picked_total")]
    expected = sorted((lo, hi, order.index(s) + (0.18 if ref.startswith("best") else -0.18))
                      for s, ref, lo, hi in zip(part.strategy, part.reference, part.ci_low, part.ci_high))
    assert np.allclose(segments, expected)
    assert not [c for c in b.collections if hasattr(c, "get_segments") and len(c.get_segments())]  # no interval
    assert [t.get_text() for t in a.get_yticklabels()] == order
    filled = [tuple(f) for c in a.collections if not hasattr(c, "get_segments") for f in c.get_facecolors()]
    assert sum(f != (1.0, 1.0, 1.0, 1.0) for f in filled) == 3  # three intervals exclude 0
    assert [line.get_xdata()[0] for line in a.get_lines()] == [0]  # the zero line
    with pytest.raises(ValueError, match="no rows for metric 'auc'"):
        report.paired_figure(paired, "auc")


def test_paired_figure_draws_strategies_that_rank_alike_once():
    """loss, label_quality and activelab order a pool alike: one row, every name on it; a strategy that differs
    in one interval keeps its own row."""
    paired = _paired()
    twins = paired[paired["strategy"] == "flmi"].assign(strategy="gcmi")
    near = paired[paired["strategy"] == "flmi"].assign(strategy="logdetmi")
    near.loc[near.index[0], "ci_high"] += 0.5
    fig = report.paired_figure(pd.concat([paired, twins, near]), "rare_picked_total")
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels == ["flmi = gcmi", "logdetmi", "badge", "random"]


def test_every_figure_is_saved_identically_twice(tmp_path):
    frame = report.rounds_frame([_record(s, k, [0, 1, 2], [0.1, 0.4, 0.6 + k / 10]) for s in ("gcmi", "margin")
                                 for k in (0, 1)])
    refined = [_refinement(s, k) for s in ("smi", "random") for k in (0, 1)]
    recall = pd.DataFrame([{"method": m, "seed": k, "class": "all", "recall": 0.5 + k / 10}
                           for m in ("coteaching", "coteaching_vog") for k in (0, 1)])
    figures = {"curves": lambda: report.round_curves(frame, "t"),
               "per_class": lambda: report.per_class_curves(report.per_class_frame(refined, ["a", "b"]), "t"),
               "budget": lambda: report.budget_curves(report.rounds_frame(refined), "t"),
               "recall": lambda: report.recall_plot(recall, "t"),
               "paired": lambda: report.paired_figure(_paired(), title="t")}
    for name, draw in figures.items():
        first = report.save_figure(draw(), tmp_path / "a", name)
        second = report.save_figure(draw(), tmp_path / "b", name)
        assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second], name


def test_readme_tables_come_from_the_records():
    records = Path(__file__).resolve().parent / "notebooks" / "records"
    text = report.readme_tables(records)
    frame = report.rounds_frame(report.load_records(records))
    for name in ("pneumonia_binary", "retina_longtail", "retina_noisy"):
        assert f"#### {name}" in text
    first = report.final_table(frame[frame["experiment"] == "pneumonia_binary"]).loc["pneumonia_binary"].iloc[0]
    assert f"| {first.name} | {' | '.join(map(str, first))} |" in text
    assert "Phase 1, clean recall" in text and "#### Collapse" in text


def test_every_line_figure_takes_its_colours_from_the_one_palette():
    """A method has its PALETTE colour in every figure (the recall bars are checked above)."""
    records = [_record(s, k, [0, 1, i + k], [0.2, 0.5, 0.5 + k / 10 + i / 20])  # no two strategies alike
               for i, s in enumerate(("flmi", "gcmi", "badge", "random")) for k in (0, 1)]
    frame = report.rounds_frame(records)
    refined = report.rounds_frame([_refinement(s, k) for s in ("smi", "loss") for k in (0, 1)])
    figures = [report.round_curves(frame, "t"), report.per_class_curves(report.per_class_frame(records), "t"),
               report.budget_curves(refined, "t"), report.paired_figure(stats.paired_table(frame), title="t")]
    seen = set()
    for fig in figures:
        for ax in fig.axes:
            for line in ax.get_lines():
                if line.get_label() in report.PALETTE:
                    assert to_hex(line.get_color()) == report.PALETTE[line.get_label()].lower(), line.get_label()
                    seen.add(line.get_label())
    assert {"flmi", "gcmi", "badge", "random", "smi", "loss"} <= seen


def test_detector_table_marks_the_minority_and_pairs_each_method_by_seed():
    recall = pd.DataFrame([{"method": m, "seed": k, "class": c, "recall": r + k / 100, "flag precision": 0.5,
                            "flag recall": 0.25}
                           for m, r in (("coteaching_vog", 0.5), ("confident_learning", 0.7), ("coteaching", 0.6))
                           for k in (0, 1, 2) for c in ("common", "rare")])
    table = report.detector_table(recall, ["rare"])
    assert list(table.index.get_level_values("class").unique()) == ["common", "rare *"]
    row = table.loc[("rare *", "confident_learning")]
    assert row["recall"] == "0.710 [0.685, 0.735]" and row["flag precision"] == "0.500 [0.500, 0.500]"
    assert row["flag recall"] == "0.250 [0.250, 0.250]"
    assert row["recall vs coteaching_vog"].startswith("+0.200") and row["recall vs confident_learning"] == ""
    old = recall.drop(columns=["flag precision", "flag recall"])  # records made before the detector columns
    assert table.columns.tolist() == report.detector_table(old, ["rare"]).columns.tolist()
    assert report.detector_table(old, ["rare"])["flag recall"].isna().all()


def test_refinement_findings_name_cleanlabs_samplers_and_what_the_budget_fixed():
    phase2 = report.rounds_frame([_refinement(s, k) for s in ("random", "activelab", "label_quality")
                                  for k in (0, 1, 2)])
    recall = pd.DataFrame([{"method": m, "seed": k, "class": "rare", "recall": 0.5 + (m == "coteaching") / 10 + k / 50}
                           for m in ("coteaching", "coteaching_vog", "confident_learning") for k in (0, 1, 2)])
    text = report.refinement_findings(phase2, recall, ["rare"])
    assert "confident learning (cleanlab)" in text and "ActiveLab" in text and "cleanlab's label quality" in text
    assert "**What the expert's budget fixed**" in text and "25% of those relabeled were wrong" in text
    assert "activelab = label_quality = random sends the most" in text  # samplers that tie are named together
    assert "**In one line**: coteaching keeps the most clean minority samples (62% of them); 0 of 2" in text


def test_findings_open_with_a_one_line_verdict_from_the_numbers():
    records = [_record(s, k, [0, 2 + 2 * (s == "flqmi") + k, 4 + 3 * (s == "flqmi") + k],
                       [0.1, 0.3, 0.4 + 0.3 * (s == "flqmi") + k / 50]) for s in ("flqmi", "entropy", "random")
               for k in range(3)]
    text = report.findings(report.rounds_frame(records))
    lines = text.splitlines()
    assert lines[0].startswith("**What this shows**")
    assert lines[2] == ("**In one line** (SMI functions, interval excluding 0): rare images found: 1 of 1 above "
                        "random, 1 of 1 above the best baseline; rare-class accuracy: 1 of 1 above random, 1 of 1 "
                        "above the best baseline.")


def test_blind_rounds_table_counts_whole_rounds_and_shows_no_nan():
    records = [_record(s, 0, [0, 1, 2], [0.0, 0.1, 0.2]) for s in ("flqmi", "random")]
    for r in records[0]["rounds"]:
        r["pool_predicted_rare"] = 0  # flqmi: every round blind
    for r in records[1]["rounds"]:
        r["pool_predicted_rare"] = 3  # random: none
    table = report.blind_rounds_table(report.rounds_frame(records))
    assert table.loc[("exp", "flqmi")].tolist() == ["1.50", 2, "-", 0]
    assert table.loc[("exp", "random")].tolist() == ["-", 0, "1.50", 2]
    assert not table.isna().any().any()


def test_paired_figure_says_where_a_strategy_is_identical_to_its_reference():
    paired = pd.DataFrame([["e", "margin", "best baseline (entropy)", "rare_picked_total", 0.0, 0.0, 0.0, 3],
                           ["e", "margin", "random", "rare_picked_total", 5.0, 2.0, 8.0, 3],
                           ["e", "flqmi", "random", "rare_picked_total", 7.0, 3.0, 11.0, 3]],
                          columns=stats.COLUMNS)
    fig = _drawn(report.paired_figure(paired))
    assert [t.get_text() for t in fig.axes[0].texts] == ["identical to best baseline"]


def test_headline_gives_each_experiment_its_verdict():
    clinical = [_record(s, k, [0, 2 + 2 * (s == "flqmi") + k, 4 + 3 * (s == "flqmi") + k],
                        [0.1, 0.3, 0.4 + 0.3 * (s == "flqmi") + k / 50], experiment="a")
                for s in ("flqmi", "random") for k in range(3)]
    refined = [{**_refinement(s, k), "parameters": {**_refinement(s, k)["parameters"], "experiment": "b"}}
               for s in ("random", "loss") for k in range(3)]
    recall = pd.DataFrame([{"method": m, "seed": k, "class": "rare",  # cross-entropy keeps all: no detector
                            "recall": 1.0 if m == "cross_entropy" else 0.5 + (m == "coteaching") / 10}
                           for m in ("cross_entropy", "coteaching", "coteaching_vog") for k in range(3)])
    text = report.headline(report.rounds_frame(clinical + refined), {"b": (recall, ["rare"])})
    assert "- `a`: rare images found: 1 of 1 above random" in text
    assert "- `b`: coteaching keeps the most clean minority samples (60% of them)" in text


def test_every_phase_one_method_has_its_style():
    from clinical_utils.experiments import METHODS
    assert set(report.METHODS_STYLE) == set(METHODS)  # a new method is not drawn black
