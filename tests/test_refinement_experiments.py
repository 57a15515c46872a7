import json

import nbformat
import numpy as np
import pytest

from clinical_utils.experiments import (METHODS, configure, load_data, load_phase1_records, noisy_split, of_paper,
                                        parameters_of, profile_values, recall_frame, run_noisy_experiment)
from clinical_utils.params import ConfigError
from clinical_utils.refinement import run as refinement_run
from exactness import exact
from medmnist_fixtures import write_download_sets


def test_configure_fills_from_the_profile_and_checks_values():
    smoke = configure("retina_noisy", profile="smoke")
    assert smoke.rounds == profile_values("retina_noisy", "smoke")["rounds"] and smoke.noise_rate == 0.6
    assert smoke.coteaching.forget_rate == 0.6 and smoke.coteaching.vog == "head"  # tau = the noise rate
    assert configure("retina_noisy", forget_rate=0.5).coteaching.forget_rate == 0.5
    for bad, message in (({"noise_rate": 1.0}, "noise_rate"), ({"samplers": ["flmi"]}, "samplers"),
                         ({"phase2_from": "cross_entropy"}, "no pool"),
                         ({"phase2_from": "coteach"}, "phase2_from = 'coteach' .* one of \\['cross_entropy'"), ({"window": 1}, "window"),
                         ({"vog": "pixel"}, "vog"), ({"noise": "matrix"}, "noise"), ({"rounds": 0}, "rounds"),
                         ({"mix_ratio": 2.0}, "mix_ratio"), ({"rare_classes": []}, "rare_classes"),
                         ({"epoch": 3}, r"for retina_noisy: 'epoch' \(did you mean 'epochs'"),
                         ({"profile": "full"}, "profile"), ({"device": "tpu"}, "device"),
                         ({"rare_classes": [7]}, "rare_classes .* 0..4"), ({"cl_folds": 1}, "cl_folds"),
                         ({"cl_filter_by": "loss"}, "cl_filter_by"), ({"cl_min_examples_per_class": -1}, "cl_min"),
                         ({"cl_folds": 301, "train_size": 300}, "cl_folds .* from 2 to train_size"),
                         ({"cl_filter_by": "low_self_confidence", "cl_min_examples_per_class": 5}, "which ignores it"),
                         ({"pretrain": "byol"}, "pretrain"), ({"weights": "/no/such.pt"}, "weights: .*does not exist"),
                         ({"weights": "w.pt", "pretrain": "simclr"}, "None while pretrain is set")):
        with pytest.raises(ConfigError, match=message):
            configure("retina_noisy", **bad)
    with pytest.raises(ConfigError, match="unknown parameter.*for retina_longtail: 'noise_rate'"):
        configure("retina_longtail", noise_rate=0.5)  # a label-refinement parameter on a CLINICAL experiment
    with pytest.raises(ConfigError, match="unknown profile 'paper_cpu' for retina_noisy"):
        configure("retina_noisy", profile="paper_cpu")


@pytest.mark.parametrize("name", of_paper("refinement"))
def test_committed_noisy_notebooks_are_the_generated_ones(name):
    import make_notebooks

    committed = nbformat.read(make_notebooks.HERE / f"{name}.ipynb", as_version=4)
    assert [c.source for c in committed.cells] == [c.source for c in make_notebooks.noisy_notebook(name).cells]
    params = next(c for c in committed.cells if "parameters" in c.metadata.get("tags", []))
    assert [line.split("=")[0].strip() for line in params.source.splitlines()] == [p.name for p in parameters_of(name)]
    shown = {}
    exec(params.source, {}, shown)
    assert shown == profile_values(name, "quick")


def test_split_noise_and_default_minority_classes(tmp_path):
    config = configure("path_noisy", profile="smoke", data_root=str(write_download_sets(tmp_path)),
                             verify_data=False, train_size=300)
    data = load_data(config)
    split = noisy_split(data, config, seed=4)
    assert len(split.train) == 300 and (split.true == data.train.labels[split.train]).all()
    assert abs((split.noisy != split.true).mean() - 0.8) < 0.02
    share = np.bincount(split.noisy, minlength=9) / 300  # the labels as given, never the true ones
    assert split.rare_classes == np.flatnonzero(share < 1 / 9).tolist()
    with pytest.raises(ConfigError, match="larger than"):
        noisy_split(data, configure("path_noisy", profile="smoke", train_size=10**6, data_root=str(tmp_path),
                                          verify_data=False), seed=0)


def test_experiment_writes_phase1_and_phase2_records_and_reads_them_back(tmp_path):
    config = configure("derma_noisy", profile="smoke", data_root=str(write_download_sets(tmp_path / "d")),
                             verify_data=False, samplers=["random", "smi"], results_dir=str(tmp_path / "r"))
    data = load_data(config)
    phase1, phase2 = run_noisy_experiment(data, config, progress=False)
    assert [r["parameters"]["method"] for r in phase1] == list(METHODS)
    assert {r["parameters"]["train"]["precision"] for r in phase1} == {"fp32"}  # smoke's, resolved as it ran
    assert {r["parameters"]["finetune"]["precision"] for r in phase2} == {"fp32"}
    assert len(load_phase1_records(tmp_path / "r", "derma_noisy")) == len(METHODS) == 4
    assert (tmp_path / "r" / "derma_noisy" / "phase1" / "coteaching_vog" / "seed0.pt").exists()
    ce = next(r for r in phase1 if r["parameters"]["method"] == "cross_entropy")
    assert len(ce["kept"]) == config.train_size  # cross-entropy sets nothing aside
    ct = next(r for r in phase1 if r["parameters"]["method"] == "coteaching")
    assert len(ct["kept"]) < config.train_size
    assert set(recall_frame(phase1)["method"]) == set(METHODS)
    cl = next(r for r in phase1 if r["parameters"]["method"] == "confident_learning")
    assert cl["parameters"]["confident_learning"] == {"folds": 5, "filter_by": "prune_by_noise_rate",
                                                      "min_examples_per_class": 1}
    assert "confident_learning" not in ct["parameters"] and "pretrain" not in ct["parameters"]  # only where set
    assert 0 < len(cl["kept"]) < config.train_size
    assert {"flag precision", "flag recall"} <= set(cl["clean_recall"][0])
    records = sorted((tmp_path / "r" / "derma_noisy").glob("*/seed0.json"))
    assert [p.parent.name for p in records] == ["random", "smi"]
    written = [p.read_bytes() for p in records]
    again1, again2 = run_noisy_experiment(data, config, progress=False)
    # compared as JSON: a class with nothing flagged has NaN flag precision, and NaN equals nothing, not even NaN
    assert [p.read_bytes() for p in records] == written and json.dumps(again1) == json.dumps(phase1)


def test_phase1_starts_from_a_pretrained_backbone_or_a_weights_file(tmp_path):
    """pretrain: one SimCLR backbone per seed (cached under results_dir), recorded; weights: a local file, read,
    fitted to the model and recorded by name and SHA-1."""
    import torch

    from clinical_utils.training.models import build_model

    root = str(write_download_sets(tmp_path / "d"))
    common = dict(profile="smoke", data_root=root, verify_data=False, samplers=["random"], rounds=1, budget=4)
    config = configure("derma_noisy", pretrain="simclr", pretrain_epochs=1, results_dir=str(tmp_path / "p"),
                             **common)
    phase1, _ = run_noisy_experiment(load_data(config), config, progress=False)
    assert all(r["parameters"]["pretrain"]["epochs"] == 1 for r in phase1)
    assert len(list((tmp_path / "p" / "pretrained").glob("*.pt"))) == 1  # one backbone for every method
    weights = tmp_path / "w.pt"
    source = build_model("small_cnn", 3, 7, seed=5)
    torch.save(source.state_dict(), weights)
    config = configure("derma_noisy", weights=str(weights), results_dir=str(tmp_path / "w"), **common)
    data = load_data(config)
    phase1, _ = run_noisy_experiment(data, config, progress=False)
    assert {r["parameters"]["weights"]["file"] for r in phase1} == {"w.pt"}
    # with training switched off, phase 1's network is the file's backbone under a fresh head
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(refinement_run, "train", lambda *a, **k: type("Fit", (), {"history": [], "seconds": 0})())
        model, _ = refinement_run.run_phase1(data, config, noisy_split(data, config, 0), "cross_entropy", 0,
                                                tmp_path / "untrained")
    for name, tensor in source.backbone.state_dict().items():
        exact(model.backbone.state_dict()[name], tensor)
    with pytest.raises(ConfigError, match="weights: .* does not fit small_cnn's backbone"):
        torch.save(build_model("small_cnn", 1, 2).state_dict(), weights)  # one channel: DermaMNIST has three
        configure("derma_noisy", weights=str(weights), **common)
