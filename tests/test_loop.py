import json

import numpy as np
import pytest

from clinical_utils import data as D
from clinical_utils.active.loop import STRATEGIES, run_active_learning
from clinical_utils.training.train import TrainConfig
from exactness import exact

CONFIG = TrainConfig(epochs=2, batch_size=32, optimizer="adam", lr=3e-3)


@pytest.fixture
def setting(fixture_root):
    blood = D.load_medmnist("bloodmnist", root=fixture_root, verify=False)
    scenario = D.binary_imbalance(blood, rare_classes=[6, 7], ratio=5, labeled_per_class=10, pool_per_class=20,
                                  exemplars_per_class=3, seed=0)
    return blood, scenario


def _run(setting, strategy, path=None, rounds=2, train_config=CONFIG, **kwargs):
    blood, scenario = setting
    return run_active_learning(blood, scenario, strategy, rounds=rounds, budget=6, train_config=train_config, seed=1,
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
    assert record["parameters"]["train"]["precision"] in ("bf16", "fp32")  # what ran, never "auto"
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


def test_equal_picks_give_equal_models_whatever_their_order(fixture_root):
    """On two classes entropy, margin and least confidence rank the pool identically; the labeled set is kept
    sorted, so their records are identical too (training batches do not depend on pick order)."""
    pneumonia = D.load_medmnist("pneumoniamnist", root=fixture_root, verify=False)
    scenario = D.binary_imbalance(pneumonia, rare_classes=[1], ratio=5, labeled_per_class=20, pool_per_class=40,
                                  exemplars_per_class=3, seed=0)
    runs = [run_active_learning(pneumonia, scenario, s, rounds=2, budget=6, train_config=CONFIG, seed=0,
                                device="cpu") for s in ("entropy", "margin", "least_confidence")]
    assert _without_timings(runs[0]) == _without_timings(runs[1]) == _without_timings(runs[2])


def test_round_zero_is_shared_by_the_strategies_of_a_seed(setting):
    """Round 0 does not depend on the strategy: trained once, its weights reused, the same numbers as training
    it again."""
    shared = {}
    first = _run(setting, "random", rounds=1, initial_models=shared)
    assert len(shared) == 1
    again = _run(setting, "entropy", rounds=1, initial_models=shared)
    alone = _run(setting, "entropy", rounds=1)
    assert _without_timings(again) == _without_timings(alone)
    assert first["rounds"][0]["train_seconds"] == again["rounds"][0]["train_seconds"]  # not trained again


@pytest.mark.parametrize("embedding", ["gradients_rare", "features"])
def test_other_smi_embeddings_run(setting, embedding):
    blood, scenario = setting
    record = _run(setting, "flqmi", rounds=1, embedding=embedding)
    assert record["parameters"]["embedding"] == embedding
    assert len(set(record["rounds"][1]["selected"])) == 6


def test_query_set_grows_with_the_rare_images_found(setting, monkeypatch):
    """Every rare image the expert labels joins the query set of the next round."""
    from clinical_utils.selection import registry
    blood, scenario = setting
    sizes = []
    real = registry.smi_select

    def spy(function, pool, query, budget, private=None, **kwargs):
        sizes.append(len(query))
        return real(function, pool, query, budget, private, **kwargs)

    monkeypatch.setattr(registry, "smi_select", spy)
    record = _run(setting, "flqmi", rounds=3)
    found = np.cumsum([sum(r["selected_per_class"][c] for c in scenario.rare_classes) for r in record["rounds"]])
    exemplars = int(np.isin(blood.val.labels[scenario.exemplars], scenario.rare_classes).sum())
    assert sizes == [exemplars + int(f) for f in found[:-1]]


@pytest.mark.parametrize("change, message", [
    (lambda s: {"pool": s.pool[::-1].copy()}, "sorted and without repeats"),
    (lambda s: {"pool": np.sort(np.concatenate([s.pool, s.pool[:1]]))}, "sorted and without repeats"),
    (lambda s: {"labeled": np.sort(np.concatenate([s.labeled, s.pool[:1]]))}, "share images"),
    (lambda s: {"test": np.array([0, 10**6])}, "outside"),
])
def test_hand_built_scenarios_are_checked(setting, change, message):
    import dataclasses
    blood, scenario = setting
    bad = dataclasses.replace(scenario, **change(scenario))
    with pytest.raises(D.DataError, match=message):
        run_active_learning(blood, bad, "random", rounds=1, budget=2, train_config=CONFIG, device="cpu")


def test_a_pretrained_backbone_is_made_once_per_seed_shared_by_strategies_and_recorded(setting, tmp_path):
    """pretrain: the SimCLR backbone is trained once for the seed (one cache file for two strategies), every
    round's model starts from it (with head_only it stays as it is), and the record says so."""
    from clinical_utils.training.representation import PretrainConfig, pretrained_backbone

    blood, scenario = setting
    pretrain = PretrainConfig(epochs=1, batch_size=32)
    head_only = TrainConfig(epochs=2, batch_size=32, head_only=True)
    shared = {}
    records = [_run(setting, strategy, rounds=1, pretrain=pretrain, pretrain_cache=tmp_path, train_config=head_only,
                    initial_models=shared) for strategy in ("random", "flqmi")]
    assert len(list(tmp_path.glob("*.pt"))) == 1
    assert all(r["parameters"]["pretrain"] == vars(pretrain) for r in records)
    assert records[0]["parameters"]["train"]["head_only"] is True
    assert "pretrain" not in _run(setting, "random", rounds=0)["parameters"]  # records made before stay equal
    unlabeled = blood.train.images[np.concatenate([scenario.labeled, scenario.pool])]
    state = pretrained_backbone(unlabeled, "small_cnn", 1, pretrain, tmp_path)  # read back: the same key
    assert len(list(tmp_path.glob("*.pt"))) == 1
    (weights, _), = shared.values()  # round 0's model: the pretrained backbone, kept fixed, and a trained head
    for name, tensor in state.items():
        exact(weights[f"backbone.{name}"], tensor)
