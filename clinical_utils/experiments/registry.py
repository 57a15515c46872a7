"""Every experiment of both papers, one notebook each: what defines it, at which scale (profile), and `configure`,
which resolves and checks a notebook's parameters.

A notebook's `parameters` cell shows every value of the quick profile (`profile_values`); another profile's
values are what the batch injects. `configure` checks every value against its parameter's declaration
(`parameters.Parameter`) and rejects unknown names, so a typo fails at once with the list of valid names instead
of running a different experiment.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..active import run as active_run
from ..data import MedMNIST, load_medmnist
from ..params import ConfigError, need, over_profile
from ..refinement import run as refinement_run
from . import clinical, labeling, refinement
from .parameters import PROFILE_ORDER, Parameter


@dataclass(frozen=True)
class Paper:
    """One of the two papers: its parameters (in the order its notebooks show them), profiles, the config its
    checked values build, the run records one seed of one of its experiments leaves, and what the batch checks
    before a kernel runs one of its notebooks."""

    title: str
    parameters: tuple[Parameter, ...]
    profiles: tuple[str, ...]
    build: Callable  # (experiment, setting, values, changed) -> its config; setting: CLINICAL's, else None
    seed_records: Callable | None = None  # (results_dir, config, seed) -> [Path]; None: it keeps no run records
    check_before_run: Callable | None = None  # (data, config) -> None, or a ConfigError naming the fix


PAPERS = {
    "clinical": Paper("Targeted active learning (CLINICAL)", clinical.PARAMETERS, clinical.PROFILES, clinical.build,
                      active_run.seed_records, active_run.check_pool),  # every pool supplies rounds x budget
    "refinement": Paper("Active label refinement", refinement.PARAMETERS, refinement.PROFILES, refinement.build,
                        refinement_run.seed_records),
    "labeling": Paper("Labeling your own images", labeling.PARAMETERS, labeling.PROFILES, labeling.build),
}
PROFILES = tuple(p for p in PROFILE_ORDER if any(p in paper.profiles for paper in PAPERS.values()))


@dataclass(frozen=True)
class Experiment:
    """paper: a key of PAPERS. about: the notebook's opening words. values: what defines it (for every profile);
    profiles: values where a profile's do not fit the set. setting: CLINICAL's "binary" or "longtail". offline:
    its set is among those this project's machines hold (../shared/medmnist)."""

    paper: str
    about: str
    values: dict
    profiles: dict = field(default_factory=dict)
    setting: str | None = None
    offline: bool = False


# BreastMNIST has 546 train images in all; RetinaMNIST's val holds 6 images of grade 4, 1,080 train images.
_BREAST = {"labeled_per_class": 40, "budget": 10}
_RETINA = {"labeled_max": 60, "exemplars_per_class": 5}
EXPERIMENTS = {
    "pneumonia_binary": Experiment(
        "clinical", "Chest X-rays; pneumonia is made rare at 20:1 in the labeled set and the pool, as in the authors' "
        "TRUST demo (their DISTIL tutorial uses 100:1: set `imbalance_ratio = 100`).",
        {"dataset": "pneumoniamnist", "rare_classes": [1], "imbalance_ratio": 20},  # pneumonia
        {"quick": {"seeds": list(range(10))}}, setting="binary", offline=True),
    "breast_binary": Experiment(
        "clinical", "Breast ultrasound; malignant is made rare at 20:1. BreastMNIST has only 546 training images, so "
        "the initial set is 40 / 2 and the budget 10 per round.",
        {"dataset": "breastmnist", "rare_classes": [0], "imbalance_ratio": 20},  # malignant
        {"quick": {**_BREAST, "seeds": list(range(10))}, "paper_cpu": {**_BREAST, "pool_per_class": None},
         "paper": {**_BREAST, "pool_per_class": None}}, setting="binary", offline=True),
    "blood_binary": Experiment(
        "clinical", "Blood-cell microscopy, 8 classes; basophils and monocytes are made rare at 20:1. Needs a "
        "download (about 35 MB).",
        {"dataset": "bloodmnist", "rare_classes": [0, 5], "imbalance_ratio": 20}, setting="binary"),
    "retina_longtail": Experiment(
        "clinical", "Fundus images graded 0-4; class sizes decay by a factor of 10 from the most to the least frequent "
        "grade, and the tail half of the grades are the rare classes.",
        {"dataset": "retinamnist", "imbalance_factor": 10, "balanced_test": False},
        {"quick": _RETINA, "paper_cpu": {**_RETINA, "pool_max": None}, "paper": {**_RETINA, "pool_max": None}},
        setting="longtail", offline=True),
    "path_longtail": Experiment(
        "clinical", "Colorectal histology (NCT-CRC-HE-100K), 9 tissue classes; sizes decay by a factor of 20, the "
        "tail half are rare. Needs a download (about 200 MB).",
        {"dataset": "pathmnist", "imbalance_factor": 20, "balanced_test": False}, setting="longtail"),
    "derma_longtail": Experiment(
        "clinical", "Dermatoscopy (HAM10000), 7 lesion classes; sizes decay by a factor of 20, the tail half are rare. "
        "Needs a download; CC BY-NC 4.0.",
        {"dataset": "dermamnist", "imbalance_factor": 20, "balanced_test": False}, setting="longtail"),
    "organa_longtail": Experiment(
        "clinical", "Abdominal CT slices, 11 organs; sizes decay by a factor of 20, the tail half are rare. Needs a "
        "download (about 40 MB).",
        {"dataset": "organamnist", "imbalance_factor": 20, "balanced_test": False}, setting="longtail"),
    "pneumonia_noisy": Experiment(
        "refinement", "Chest X-rays at their natural imbalance (26% normal: the minority class); 40% of the training "
        "labels are flipped (binary, so above 50% the labels would invert).",
        {"dataset": "pneumoniamnist", "noise_rate": 0.4, "rare_classes": [0]}, offline=True),
    "retina_noisy": Experiment(
        "refinement", "Fundus grades 0-4 at their natural imbalance (grades 3 and 4 are the minority); 60% of the "
        "training labels move to another grade, uniformly.",
        {"dataset": "retinamnist", "noise_rate": 0.6, "rare_classes": [3, 4]},
        {"quick": {"train_size": None}}, offline=True),  # RetinaMNIST has 1,080 train images in all
    "path_noisy": Experiment(
        "refinement", "Colorectal histology (NCT-CRC-HE-100K, one of the paper's two datasets), 80% symmetric noise as "
        "in the authors' example. Needs a download (about 200 MB).",
        {"dataset": "pathmnist", "noise_rate": 0.8}),
    "derma_noisy": Experiment(
        "refinement", "Dermatoscopy (HAM10000, the closest MedMNIST set to the paper's ISIC-2019), heavily "
        "imbalanced, 80% symmetric noise. Needs a download; CC BY-NC 4.0.",
        {"dataset": "dermamnist", "noise_rate": 0.8}),
}
OFFLINE = tuple(name for name, e in EXPERIMENTS.items() if e.offline)
# Notebooks configured here that are not experiments (the batch does not run them).
TOOLS = {"label_my_images": Experiment(
    "labeling", "A folder of unlabeled scans, a few labeled ones (a CSV of `path,label`, class names) and an expert "
    "with an hour: one round of targeted labeling per run of the notebook.", {})}


def of_paper(paper: str, offline: bool = False) -> tuple[str, ...]:
    """The experiments of one paper ("clinical" or "refinement"); offline=True: only those whose set this
    project's machines hold."""
    return tuple(name for name, e in EXPERIMENTS.items() if e.paper == paper and (e.offline or not offline))


def experiment(name: str) -> Experiment:
    """The registered experiment (or other notebook, `TOOLS`) `name`, or a ConfigError listing them."""
    if name not in EXPERIMENTS and name not in TOOLS:
        raise ConfigError(f"unknown experiment {name!r}; the experiments are {sorted(EXPERIMENTS)}, and "
                          f"{sorted(TOOLS)} configures here too")
    return EXPERIMENTS.get(name) or TOOLS[name]


def parameters_of(name: str) -> tuple[Parameter, ...]:
    """The parameters of experiment `name`, in the order its notebook shows them."""
    spec = experiment(name)
    return tuple(p for p in PAPERS[spec.paper].parameters if p.setting in (None, spec.setting))


def profile_values(name: str, profile: str = "quick") -> dict:
    """Every parameter of experiment `name` under `profile`: as its notebook's parameters cell shows them for
    quick, as the batch injects them for another profile."""
    spec = experiment(name)
    profiles = PAPERS[spec.paper].profiles
    if profile not in profiles:
        raise ConfigError(f"unknown profile {profile!r} for {name}; choose one of {list(profiles)}")
    chosen = {**spec.values, **spec.profiles.get(profile, {}), "profile": profile}
    return {p.name: chosen[p.name] if p.name in chosen else p.value(profile) for p in parameters_of(name)}


def configure(name: str, **params):
    """Resolve a notebook's parameters and check every value: a Config (CLINICAL), a NoisyConfig (label
    refinement) or LabelingSettings (label_my_images). A name not given takes the value of `profile` (default
    quick); a given value is taken as it is: None means only what the parameters cell says it means
    (pool_per_class=None: all the pool the split allows; target_train_accuracy=None: a fixed epoch count)."""
    spec = experiment(name)
    base = profile_values(name, params.get("profile", "quick"))
    values, changed = over_profile(base, params, name)
    for parameter in parameters_of(name):
        need(parameter.check(values[parameter.name]), parameter.name, values[parameter.name], parameter.wanted)
    return PAPERS[spec.paper].build(name, spec.setting, values, changed)


def seed_records(results_dir: str | Path, config, seed: int) -> list[Path]:
    """The records one seed of a configured experiment leaves finished."""
    return PAPERS[experiment(config.experiment).paper].seed_records(results_dir, config, seed)


def load_data(config) -> MedMNIST:
    """The MedMNIST set a config names, from its data_root, checked if it says so."""
    return load_medmnist(config.dataset, root=config.data_root, verify=config.verify_data)
