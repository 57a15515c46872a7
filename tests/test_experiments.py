import json

import nbformat
import pytest

from clinical_utils.active.loop import STRATEGIES
from clinical_utils.experiments import (build_scenario, configure, load_data, of_paper, parameters_of, profile_values,
                                        run_experiment)
from clinical_utils.params import ConfigError
from clinical_utils.records import record_path
from medmnist_fixtures import write_download_sets


def test_missing_names_take_the_profile_value_and_given_values_are_literal():
    smoke = configure("pneumonia_binary", profile="smoke")
    profile = profile_values("pneumonia_binary", "smoke")
    assert (smoke.rounds, smoke.budget, smoke.seeds) == (profile["rounds"], profile["budget"], profile["seeds"])
    assert smoke.rare_classes == [1] and smoke.imbalance == 20 and smoke.results_dir is None and not smoke.changed
    mine = configure("pneumonia_binary", profile="smoke", rounds=7, strategies="all", imbalance_ratio=100)
    assert mine.rounds == 7 and mine.strategies == list(STRATEGIES) and mine.imbalance == 100
    assert mine.changed == {"imbalance_ratio": 20, "rounds": 2}  # "all" is smoke's own value
    assert configure("pneumonia_binary").profile == "quick"
    paper = configure("breast_binary", profile="paper")
    assert paper.model == "resnet18" and paper.train.target_train_accuracy == 0.99 and paper.labeled == 40
    # None means what the parameters cell says, under every profile: all the pool, a fixed epoch count
    assert configure("pneumonia_binary", profile="paper").pool == 1050
    literal = configure("pneumonia_binary", profile="paper", pool_per_class=None, target_train_accuracy=None)
    assert literal.pool is None and literal.train.target_train_accuracy is None
    assert literal.changed == {"pool_per_class": 1050, "target_train_accuracy": 0.99}
    for name in ("budget", "seeds", "model", "precision", "exemplars_per_class"):  # None means nothing for these
        with pytest.raises(ConfigError, match=f"parameter {name} = None"):
            configure("pneumonia_binary", **{name: None})


def test_the_settings_table_is_a_table_that_names_what_differs_from_the_profile():
    table = configure("breast_binary", budget=5).table()
    assert list(table.columns) == ["value"] and table.loc["budget", "value"] == "5"
    assert table.loc["profile", "value"] == "quick, except budget (profile: 10)"
    assert table.loc["train.precision", "value"] == "auto" and "changed" not in table.index
    assert "<table" in table._repr_html_()


@pytest.mark.parametrize("name, value", [
    ("rounds", 0), ("budget", 2.5), ("strategies", ["flqmi", "typo"]), ("strategies", ["random", "random"]),
    ("strategies", []), ("seeds", []), ("seeds", [1, 1]), ("seeds", [-1]), ("model", "vgg"), ("queries", "some"),
    ("lr", 0), ("target_train_accuracy", 2), ("target_train_accuracy", 0), ("rare_classes", [1, 1]),
    ("pool_per_class", 0), ("imbalance_ratio", 0.5),
    ("rare_classes", "1"), ("balanced_test", "yes"), ("batch_size", 1), ("results_dir", 3), ("device", "tpu"),
    ("rare_classes", [5]), ("embedding", "pixels"), ("class_weight", "inverse"), ("pretrain", "byol"),
    ("pretrain_epochs", 0), ("head_only", "yes"), ("head_only", True)])
def test_bad_values_name_the_parameter(name, value):
    with pytest.raises(ConfigError, match=f"parameter {name} = "):
        # head_only=True is refused without pretrain: a linear head on untrained features
        configure("pneumonia_binary", **{name: value})


def test_unknown_names_profiles_and_experiments_are_rejected():
    with pytest.raises(ConfigError, match=r"unknown parameter\(s\) for pneumonia_binary: 'round' \(did you mean "
                                          r"'rounds'\?\)"):
        configure("pneumonia_binary", round=3)
    with pytest.raises(ConfigError, match=r"'budjet' \(did you mean 'budget'\?\)"):
        configure("pneumonia_binary", budjet=5)
    with pytest.raises(ConfigError, match=r"'rare_class' \(did you mean 'rare_classes'"):
        configure("retina_longtail", rare_class=[0])
    with pytest.raises(ConfigError, match="imbalance_factor"):  # a long-tail parameter on a binary experiment
        configure("pneumonia_binary", imbalance_factor=10)
    with pytest.raises(ConfigError, match="unknown profile 'fast'.*smoke"):
        configure("pneumonia_binary", profile="fast")
    with pytest.raises(ConfigError, match="unknown experiment"):
        configure("pneumonia_longtail")


@pytest.mark.parametrize("name", of_paper("clinical"))
def test_committed_notebooks_are_the_generated_ones(name):
    """The notebooks come from notebooks/make_notebooks.py: the parameters cell lists exactly the names
    `configure` takes, and no cell was edited by hand."""
    import make_notebooks

    committed = nbformat.read(make_notebooks.HERE / f"{name}.ipynb", as_version=4)
    generated = make_notebooks.experiment_notebook(name)
    assert [c.source for c in committed.cells] == [c.source for c in generated.cells]
    params = next(c for c in committed.cells if "parameters" in c.metadata.get("tags", []))
    names = {line.split("=")[0].strip() for line in params.source.splitlines()}
    assert names == {p.name for p in parameters_of(name)}
    shown = {}
    exec(params.source, {}, shown)  # every value written out: the quick profile's, none left to a hidden default
    assert shown == profile_values(name, "quick")


def test_summary_notebook_is_the_generated_one():
    import make_notebooks

    committed = nbformat.read(make_notebooks.HERE / "summary.ipynb", as_version=4)
    assert [c.source for c in committed.cells] == [c.source for c in make_notebooks.summary_notebook().cells]


def test_label_my_images_is_the_generated_one():
    import make_notebooks

    committed = nbformat.read(make_notebooks.HERE / "label_my_images.ipynb", as_version=4)
    assert [c.source for c in committed.cells] == [c.source for c in make_notebooks.labeling_notebook().cells]


def test_the_recommended_recipe_is_parameters_of_every_clinical_notebook_and_the_labeling_defaults():
    """recommended.yaml is what papermill -f injects: every name a parameter of every CLINICAL notebook, every
    value one configure accepts and records; the labeling notebook's parameters cell starts from the same."""
    import make_notebooks
    import yaml

    recommended = yaml.safe_load((make_notebooks.HERE.parent / "recommended.yaml").read_text())
    for name in of_paper("clinical"):
        config = configure(name, **recommended)
        assert set(recommended) <= set(profile_values(name))
        assert config.train.class_weight == recommended["class_weight"]
        assert config.train.head_only == recommended["head_only"] and config.embedding == recommended["embedding"]
        assert (config.pretrain is None) == (recommended["pretrain"] is None)
    cell = next(c for c in make_notebooks.labeling_notebook().cells if "parameters" in c.metadata.get("tags", []))
    shown = {}
    exec(cell.source, {}, shown)
    assert {name: shown[name] for name in recommended} == recommended


@pytest.fixture
def download_root(tmp_path):
    return str(write_download_sets(tmp_path / "data"))


@pytest.mark.parametrize("name", ["blood_binary", "path_longtail"])
def test_smoke_scenarios_have_the_profile_sizes(name, download_root):
    config = configure(name, profile="smoke", data_root=download_root, verify_data=False)
    scenario = build_scenario(load_data(config), config, seed=0)
    counts = scenario.counts
    if config.setting == "binary":
        assert (counts.loc[~counts.rare, "labeled"] == 20).all() and (counts.loc[counts.rare, "labeled"] == 1).all()
        assert (counts.loc[~counts.rare, "pool"] == 40).all() and (counts.loc[counts.rare, "pool"] == 2).all()
    else:
        assert sorted(counts["labeled"], reverse=True)[0] == 20 and sorted(counts["labeled"])[0] == 1
        assert counts["pool"].max() == 40 and counts.rare.sum() == len(counts) - len(counts) // 2
    assert (counts["exemplars"] == 3).all()


def test_run_experiment_writes_the_layout_and_reads_finished_runs_back(download_root, tmp_path):
    config = configure("blood_binary", profile="smoke", data_root=download_root, verify_data=False,
                       strategies=["random", "flqmi"], seeds=[0, 1], rounds=1, epochs=1,
                       results_dir=str(tmp_path / "results"))
    data = load_data(config)
    records = run_experiment(data, config, progress=False)
    paths = [record_path(tmp_path / "results", "blood_binary", s, k) for k in (0, 1) for s in ("random", "flqmi")]
    assert all(p.exists() for p in paths) and len(records) == 4
    assert [json.loads(p.read_text())["parameters"]["experiment"] for p in paths] == ["blood_binary"] * 4
    written = [p.read_bytes() for p in paths]
    again = run_experiment(data, config, progress=False)
    assert [p.read_bytes() for p in paths] == written
    assert [r["rounds"] for r in again] == [json.loads(w)["rounds"] for w in written]


def test_the_user_chooses_the_long_tail(real_root):
    """A clinician who cares about grade 1 puts it last in `order`: it gets the fewest images and is the only
    target; rare_classes defaults to the tail half of that order."""
    from clinical_utils.data import long_tail_sizes

    order = [0, 2, 3, 4, 1]
    config = configure("retina_longtail", profile="smoke", order=order, rare_classes=[1], data_root=str(real_root))
    data = load_data(config)
    scenario = build_scenario(data, config, seed=0)
    sizes = long_tail_sizes(config.labeled, config.imbalance, 5)
    assert [int(scenario.counts["labeled"].iloc[c]) for c in order] == sizes.tolist()
    assert scenario.rare_classes == (1,)
    default = build_scenario(data, configure("retina_longtail", profile="smoke", order=order,
                                             data_root=str(real_root)), seed=0)
    assert default.rare_classes == (1, 3, 4)  # ranks 2-4 of 5: the tail half of the order
    with pytest.raises(Exception, match="contradict the class sizes"):
        build_scenario(data, configure("retina_longtail", profile="smoke", order=order, rare_classes=[0],
                                       data_root=str(real_root)), seed=0)
    with pytest.raises(ConfigError, match="order"):
        configure("retina_longtail", order=[0, 0, 1])


# ---------------------------------------------------------------- the experiment registry


def test_a_new_parameter_is_one_declaration(monkeypatch):
    """Declared once, a parameter has its default in every profile, its check in configure, and its line and doc
    in the generated parameters cell of every notebook of its paper."""
    import dataclasses

    import make_notebooks
    from clinical_utils.experiments import PAPERS, Parameter
    from clinical_utils.experiments.parameters import whole

    extra = Parameter("warmup_rounds", 0, whole, "a whole number >= 0", "rounds before SMI takes over",
                      profiles={"paper": 2})
    clinical = PAPERS["clinical"]
    monkeypatch.setitem(PAPERS, "clinical", dataclasses.replace(clinical, parameters=(*clinical.parameters, extra)))
    for name in of_paper("clinical"):
        assert profile_values(name)["warmup_rounds"] == 0 and profile_values(name, "paper")["warmup_rounds"] == 2
        assert "warmup_rounds = 0  # rounds before SMI takes over" in make_notebooks._parameters_cell(name).source
    assert configure("pneumonia_binary", warmup_rounds=3).changed == {"warmup_rounds": 0}
    with pytest.raises(ConfigError, match=r"parameter warmup_rounds = -1 is not valid: it must be a whole number"):
        configure("pneumonia_binary", warmup_rounds=-1)
    with pytest.raises(ConfigError, match="unknown parameter.*warmup_rounds"):
        configure("pneumonia_noisy", warmup_rounds=1)  # the other paper's notebooks do not take it


def test_every_profile_of_every_experiment_passes_its_own_checks():
    from clinical_utils.experiments import EXPERIMENTS, PAPERS

    for name, spec in EXPERIMENTS.items():
        for profile in PAPERS[spec.paper].profiles:
            config = configure(name, profile=profile)
            assert config.profile == profile and not config.changed
    for paper in PAPERS.values():
        assert {p.name for p in paper.parameters if not p.doc} <= {"dataset", "batch_size"}  # self-explanatory


def test_the_labeling_notebook_is_configured_and_checked_like_the_experiments():
    settings = configure("label_my_images")
    assert settings.train.logit_adjust == 1.0 and settings.embedding == "gradients_rare" and settings.pretrain is None
    assert settings.train.target_train_accuracy == 0.99 and settings.budget == 10 and not settings.changed
    mine = configure("label_my_images", budget=5, pretrain="simclr", head_only=True)
    assert mine.changed == {"budget": 10, "head_only": False, "pretrain": None} and mine.pretrain.epochs == 10
    for bad, message in (({"budget": 0}, "parameter budget = 0"), ({"strategy": "flqm"}, "parameter strategy"),
                         ({"rare_classes": [1]}, "class names"), ({"size": 32}, "parameter size"),
                         ({"head_only": True}, "unless pretrain is set"),
                         ({"profile": "smoke"}, "unknown profile 'smoke' for label_my_images")):
        with pytest.raises(ConfigError, match=message):
            configure("label_my_images", **bad)
