import json

import numpy as np
import pytest

from clinical_utils import data as D
from clinical_utils.loop import STRATEGIES, run_active_learning
from clinical_utils.train import TrainConfig

CONFIG = TrainConfig(epochs=2, batch_size=32, optimizer="adam", lr=3e-3)


@pytest.fixture
def setting(fixture_root):
    blood = D.load_medmnist("bloodmnist", root=fixture_root, verify=False)
    scenario = D.binary_imbalance(blood, rare_classes=[6, 7], ratio=5, labeled_per_class=10, pool_per_class=20,
                                  exemplars_per_class=3, seed=0)
    return blood, scenario


def _run(setting, strategy, path=None, rounds=2, **kwargs):
    blood, scenario = setting
    return run_active_learning(blood, scenario, strategy, rounds=rounds, budget=6, train_config=CONFIG, seed=1,
                               device="cpu", record_path=path, **kwargs)


def _without_timings(record):
    return [{k: v for k, v in r.items() if not k.endswith("seconds")} for r in record["rounds"]]


def test_record_holds_every_round(setting, tmp_path):
    blood, scenario = setting
    record = _run(setting, "flqmi", tmp_path / "r.json")
    assert record["finished"] and [r["round"] for r in record["rounds"]] == [0, 1, 2]
    assert json.loads((tmp_path / "r.json").read_text())["rounds"] == json.loads(json.dumps(record["rounds"]))
    counts = [sum(r["labeled_per_class"]) for r in record["rounds"]]
    assert counts == [len(scenario.labeled), len(scenario.labeled) + 6, len(scenario.labeled) + 12]
    picked = np.concatenate([r["selected"] for r in record["rounds"]])
    assert len(set(picked.tolist())) == 12 and np.isin(picked, scenario.pool).all()
    for r in record["rounds"][1:]:
        assert r["selected_per_class"] == np.bincount(blood.train.labels[r["selected"]], minlength=8).tolist()
    for key in ("per_class_accuracy", "rare_class_accuracy", "accuracy", "balanced_accuracy", "macro_f1", "auc",
                "train_seconds", "select_seconds"):
        assert key in record["rounds"][-1]
    assert record["rare_classes"] == [6, 7] and record["parameters"]["strategy"] == "flqmi"
    assert {"versions", "git_commit", "device"} <= set(record)
    assert not list(tmp_path.glob("*.tmp"))


def test_resumed_run_equals_uninterrupted_run(setting, tmp_path):
    whole = _run(setting, "flmi", tmp_path / "whole.json")
    _run(setting, "flmi", tmp_path / "part.json", rounds=2)  # a run whose record stopped after round 1...
    record = json.loads((tmp_path / "part.json").read_text())
    record["rounds"] = record["rounds"][:2]
    record["finished"] = False
    (tmp_path / "part.json").write_text(json.dumps(record))
    resumed = _run(setting, "flmi", tmp_path / "part.json")  # ...continues from round 2
    assert _without_timings(resumed) == _without_timings(whole)


def test_finished_run_is_not_redone(setting, tmp_path):
    first = _run(setting, "entropy", tmp_path / "r.json")
    written = (tmp_path / "r.json").read_bytes()
    again = _run(setting, "entropy", tmp_path / "r.json")
    assert again["rounds"] == json.loads(json.dumps(first["rounds"]))  # timings too: nothing was retrained
    assert (tmp_path / "r.json").read_bytes() == written  # not even rewritten: its versions and commit stay


@pytest.mark.parametrize("strategy", [s for s in STRATEGIES if s not in ("flqmi", "flmi", "entropy", "random")])
def test_every_strategy_runs_a_round(setting, strategy):
    blood, scenario = setting
    record = _run(setting, strategy, rounds=1, queries="misclassified")
    chosen = record["rounds"][1]["selected"]
    assert len(set(chosen)) == 6 and np.isin(chosen, scenario.pool).all()
    assert not np.isin(chosen, scenario.labeled).any()


def test_bad_requests_are_rejected(setting, tmp_path):
    with pytest.raises(ValueError, match="unknown strategy"):
        _run(setting, "uncertainty")
    with pytest.raises(ValueError, match="pool has"):
        _run(setting, "random", rounds=100)
    _run(setting, "random", tmp_path / "r.json", rounds=1)
    with pytest.raises(ValueError, match="other parameters"):
        _run(setting, "margin", tmp_path / "r.json", rounds=1)
    blood, scenario = setting
    other = D.binary_imbalance(blood, rare_classes=[6, 7], ratio=5, labeled_per_class=10, pool_per_class=20,
                               exemplars_per_class=3, seed=1)  # same sizes, other images
    with pytest.raises(ValueError, match="other parameters"):
        run_active_learning(blood, other, "random", rounds=1, budget=6, train_config=CONFIG, seed=1, device="cpu",
                            record_path=tmp_path / "r.json")
