"""The CLINICAL experiments: what each notebook runs, at which scale (profile), and running it.

A notebook's `parameters` cell shows every value of the quick profile (`profile_values`); another profile's
values are what the batch injects. `configure` checks every value and rejects unknown names (`params`), so a
typo fails at once with the list of valid names instead of running a different experiment.

Profiles: `smoke` (seconds: nbval regression tests), `quick` (the CPU default: small CNN trained until 99%
training accuracy or 30 epochs, 10 seeds for pneumonia_binary and breast_binary and 5 for the others, 5 rounds,
every strategy),
`paper_cpu` (the authors' protocol on PneumoniaMNIST at a CPU's size: see PROFILES), `paper` (the authors'
protocol: ResNet-18 retrained each round until 99% training accuracy, batch 20, 5 seeds, 10 rounds of 20; for a
GPU).
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import medmnist
import pandas as pd
from tqdm.auto import tqdm

from .data import MedMNIST, Scenario, binary_imbalance, class_names, load_medmnist, long_tail, set_name
from .loop import EMBEDDINGS, QUERY_MODES, STRATEGIES, run_active_learning
from .models import MODELS
from .params import (DEVICES, ConfigError, check_rare_classes_exist, is_int, names_from, need, over_profile,
                     seeds_from, settings_table, valid_device)
from .records import record_path, results_folder
from .representation import PretrainConfig, pretrain_from
from .train import CLASS_WEIGHTS, TrainConfig

# What defines each experiment. Sizes, budget, rounds, seeds and training come from the profile.
EXPERIMENTS = {
    "pneumonia_binary": {"dataset": "pneumoniamnist", "setting": "binary", "rare_classes": [1],  # pneumonia
                         "imbalance_ratio": 20},
    "breast_binary": {"dataset": "breastmnist", "setting": "binary", "rare_classes": [0],  # malignant
                      "imbalance_ratio": 20},
    "blood_binary": {"dataset": "bloodmnist", "setting": "binary", "rare_classes": [0, 5],  # basophil, monocyte
                     "imbalance_ratio": 20},
    "retina_longtail": {"dataset": "retinamnist", "setting": "longtail", "rare_classes": None,  # tail half
                        "imbalance_factor": 10},
    "path_longtail": {"dataset": "pathmnist", "setting": "longtail", "rare_classes": None, "imbalance_factor": 20},
    "derma_longtail": {"dataset": "dermamnist", "setting": "longtail", "rare_classes": None, "imbalance_factor": 20},
    "organa_longtail": {"dataset": "organamnist", "setting": "longtail", "rare_classes": None,
                        "imbalance_factor": 20},
}
OFFLINE = ("pneumonia_binary", "breast_binary", "retina_longtail")  # the sets this project's machines hold

# quick trains as the authors do, until 99% training accuracy, with a cap of 30 epochs: a fixed 10 epochs left 2
# of 10 PneumoniaMNIST initial models predicting no rare image at all (benchmarks/initial_collapse.py)
_COMMON = {"rounds": 5, "budget": 20, "seeds": [0, 1, 2, 3, 4], "strategies": "all",
           "model": "small_cnn", "epochs": 30, "batch_size": 32, "lr": 0.01, "target_train_accuracy": 0.99,
           "precision": "auto", "exemplars_per_class": 10,
           "labeled_per_class": 100, "pool_per_class": None, "labeled_max": 100, "pool_max": None,
           "results_dir": "../results/runs/quick"}  # relative to notebooks/, where the kernels run
PROFILES = {
    # smoke is fp32 so that its nbval references hold on CPUs with and without native bf16
    "smoke": {**_COMMON, "results_dir": None, "rounds": 2, "budget": 4, "seeds": [0], "epochs": 3,
              "target_train_accuracy": None, "precision": "fp32",
              "exemplars_per_class": 3, "labeled_per_class": 20, "pool_per_class": 40, "labeled_max": 20,
              "pool_max": 40},
    "quick": _COMMON,
    # TRUST's and DISTIL's rare-class demos: batch 20, lr 0.01, retrain until 99% training accuracy.
    "paper": {**_COMMON, "results_dir": "../results/runs/paper", "rounds": 10, "seeds": [0, 1, 2, 3, 4],
              "model": "resnet18", "epochs": 150, "batch_size": 20, "target_train_accuracy": 0.99,
              "exemplars_per_class": 20, "pool_per_class": 1050, "pool_max": 1000},
    # The authors' protocol at a size 2 CPU cores finish, for pneumonia_binary: TRUST's 20:1 demo split (labeled
    # 100 / 5, pool 1050 / 53, 20 exemplars per class from val, balanced test), ResNet-18 (28), batch 20, SGD lr
    # 0.01, retrained from scratch each round until 99% training accuracy, at most 25 epochs; 4 rounds of 20;
    # the strategies the authors' pipeline was run with for comparison (README); fp32 as its reference records.
    "paper_cpu": {**_COMMON, "results_dir": "../results/runs/paper_cpu", "rounds": 4, "seeds": [0, 1, 2],
                  "precision": "fp32",
                  "strategies": ["flmi", "flqmi", "gcmi", "logdetmi", "entropy", "badge", "random"],
                  "model": "resnet18", "epochs": 25, "batch_size": 20, "target_train_accuracy": 0.99,
                  "exemplars_per_class": 20, "pool_per_class": 1050, "pool_max": 1000},
}
# Where a profile's value does not fit a set: BreastMNIST has 546 train images in all.
EXPERIMENT_PROFILE = {
    ("pneumonia_binary", "quick"): {"seeds": list(range(10))},
    ("breast_binary", "quick"): {"labeled_per_class": 40, "budget": 10, "seeds": list(range(10))},
    ("breast_binary", "paper"): {"labeled_per_class": 40, "pool_per_class": None, "budget": 10},
    ("breast_binary", "paper_cpu"): {"labeled_per_class": 40, "pool_per_class": None, "budget": 10},
    ("retina_longtail", "quick"): {"labeled_max": 60, "exemplars_per_class": 5},  # val has 6 of class 4
    ("retina_longtail", "paper"): {"labeled_max": 60, "pool_max": None, "exemplars_per_class": 5},
    ("retina_longtail", "paper_cpu"): {"labeled_max": 60, "pool_max": None, "exemplars_per_class": 5},
}
# Values no profile changes (balanced_test: True for binary imbalance, False for long-tail).
DEFAULTS = {"queries": "all", "embedding": "gradients", "order": None, "class_weight": None, "logit_adjust": None,
            "pretrain": None, "pretrain_epochs": PretrainConfig.epochs, "head_only": False, "device": "auto",
            "data_root": None, "verify_data": True}
SETTING_PARAMETERS = {"binary": ("imbalance_ratio", "labeled_per_class", "pool_per_class"),
                      "longtail": ("imbalance_factor", "order", "labeled_max", "pool_max")}
PARAMETERS = ("profile", "dataset", "rare_classes", "exemplars_per_class", "balanced_test", "budget", "rounds",
              "strategies", "seeds", "model", "epochs", "batch_size", "lr", "target_train_accuracy", "precision",
              "class_weight", "logit_adjust", "pretrain", "pretrain_epochs", "head_only", "queries", "embedding",
              "device", "results_dir", "data_root", "verify_data")
@dataclass(frozen=True)
class Config:
    """Every value one experiment runs with. results_dir None: a fresh temporary folder (nothing kept)."""

    experiment: str
    profile: str
    changed: dict  # the parameters given other values than the profile's: name -> the profile's value
    dataset: str
    setting: str
    rare_classes: list | None
    imbalance: float  # binary: common / rare images; longtail: head / tail class size
    order: list | None  # longtail: the classes from head to tail (None: by train frequency); binary: None
    labeled: int  # binary: per common class; longtail: the head class
    pool: int | None  # likewise; None: all the train split allows
    exemplars_per_class: int
    balanced_test: bool
    budget: int
    rounds: int
    strategies: list
    seeds: list
    model: str
    train: TrainConfig
    pretrain: PretrainConfig | None  # None: every round's network starts from random weights
    queries: str
    embedding: str
    device: str
    results_dir: str | None
    data_root: str | None
    verify_data: bool

    def table(self) -> pd.DataFrame:
        """The values, one row each, for display; changed values are marked with the profile's value."""
        return settings_table(asdict(self))

    def title(self) -> str:
        """The set, the setting and its imbalance, e.g. 'PneumoniaMNIST, binary imbalance 20:1 (pneumonia rare)'."""
        name = set_name(self.dataset)
        if self.setting == "longtail":
            return f"{name}, long-tail imbalance (head / tail {self.imbalance:g})"
        classes = class_names(self.dataset) if self.dataset in medmnist.INFO else None
        rare = " and ".join(classes[c] if classes else str(c) for c in self.rare_classes)
        return f"{name}, binary imbalance {self.imbalance:g}:1 ({rare} rare)"


def profile_values(experiment: str, profile: str = "quick") -> dict:
    """Every parameter of `experiment` under `profile`, as its notebook's parameters cell shows them for quick."""
    if experiment not in EXPERIMENTS:
        raise ConfigError(f"unknown experiment {experiment!r}; the experiments are {sorted(EXPERIMENTS)}")
    if profile not in PROFILES:
        raise ConfigError(f"unknown profile {profile!r}; choose one of {list(PROFILES)}")
    spec = EXPERIMENTS[experiment]
    values = {**PROFILES[profile], **EXPERIMENT_PROFILE.get((experiment, profile), {}),
              **{k: v for k, v in spec.items() if k != "setting"}, "balanced_test": spec["setting"] == "binary",
              **DEFAULTS, "profile": profile}
    return {name: values.get(name) for name in PARAMETERS + SETTING_PARAMETERS[spec["setting"]]}


def configure(experiment: str, **params) -> Config:
    """Resolve a notebook's parameters and check every value. A name not given takes the value of `profile`
    (default quick); a given value is taken as it is: None means only what the parameters cell says it means
    (pool_per_class=None: all the pool the split allows; target_train_accuracy=None: a fixed epoch count)."""
    p, changed = over_profile(profile_values(experiment, params.get("profile", "quick")), params, experiment)
    spec = EXPERIMENTS[experiment]

    need(isinstance(p["dataset"], str), "dataset", p["dataset"], "a MedMNIST flag such as 'pneumoniamnist'")
    rare = p["rare_classes"]
    need(rare is None or (isinstance(rare, (list, tuple)) and all(is_int(c) and c >= 0 for c in rare)),
          "rare_classes", rare, "a list of class indices, e.g. [1] (None: the tail half, long-tail only)")
    need(rare is not None or spec["setting"] == "longtail", "rare_classes", rare,
          "a list of class indices: binary imbalance needs the rare classes named")
    for name in ("budget", "rounds", "epochs", "batch_size", "exemplars_per_class"):
        need(is_int(p[name]) and p[name] >= 1, name, p[name], "a positive whole number")
    need(p["batch_size"] >= 2, "batch_size", p["batch_size"], "at least 2")
    if spec["setting"] == "binary":
        imbalance, labeled, pool = p["imbalance_ratio"], p["labeled_per_class"], p["pool_per_class"]
        need(isinstance(imbalance, (int, float)) and imbalance >= 1, "imbalance_ratio", imbalance,
              "a number >= 1 (common images per rare image)")
        names = ("labeled_per_class", "pool_per_class")
    else:
        imbalance, labeled, pool = p["imbalance_factor"], p["labeled_max"], p["pool_max"]
        need(isinstance(imbalance, (int, float)) and imbalance >= 1, "imbalance_factor", imbalance,
              "a number >= 1 (head class size / tail class size)")
        names = ("labeled_max", "pool_max")
    need(is_int(labeled) and labeled >= 1, names[0], labeled, "a positive whole number")
    need(pool is None or (is_int(pool) and pool >= 1), names[1], pool,
          "a positive whole number, or None for all the train split allows")
    order = p.get("order")
    need(order is None or (isinstance(order, (list, tuple)) and all(is_int(c) and c >= 0 for c in order)
                            and len(set(order)) == len(order)), "order", order,
          "None (by train frequency) or a list of every class index once, from head (most images) to tail")
    k = check_rare_classes_exist(p["dataset"], rare)
    if k is not None:
        need(order is None or sorted(order) == list(range(k)), "order", order,
              f"every class of {p['dataset']} (0..{k - 1}) once, from head to tail")
    strategies = names_from("strategies", p["strategies"], STRATEGIES)
    seeds = seeds_from(p["seeds"])
    need(p["model"] in MODELS, "model", p["model"], f"one of {list(MODELS)}")
    need(p["queries"] in QUERY_MODES, "queries", p["queries"], f"one of {list(QUERY_MODES)}")
    need(p["embedding"] in EMBEDDINGS, "embedding", p["embedding"], f"one of {list(EMBEDDINGS)}")
    need(p["class_weight"] in CLASS_WEIGHTS, "class_weight", p["class_weight"], f"one of {list(CLASS_WEIGHTS)}")
    pretrain = pretrain_from(p)
    need(isinstance(p["head_only"], bool), "head_only", p["head_only"], "True or False")
    need(not p["head_only"] or p["pretrain"] is not None, "head_only", p["head_only"],
         "False unless pretrain is set (a linear head on an untrained backbone learns little)")
    need(valid_device(p["device"]), "device", p["device"], f"one of {list(DEVICES)} or 'cuda:N'")
    for name in ("balanced_test", "verify_data"):
        need(isinstance(p[name], bool), name, p[name], "True or False")
    for name in ("results_dir", "data_root"):
        need(p[name] is None or isinstance(p[name], str), name, p[name], "a folder path (str) or None")
    try:
        train = TrainConfig(epochs=p["epochs"], batch_size=p["batch_size"], lr=p["lr"],
                            target_train_accuracy=p["target_train_accuracy"], precision=p["precision"],
                            class_weight=p["class_weight"], logit_adjust=p["logit_adjust"],
                            head_only=p["head_only"])
    except (TypeError, ValueError) as err:
        raise ConfigError(f"training parameters: {err}") from None
    return Config(experiment, p["profile"], changed, p["dataset"], spec["setting"],
                  None if rare is None else list(rare),
                  imbalance, None if order is None else list(order), labeled, pool, p["exemplars_per_class"],
                  p["balanced_test"], p["budget"], p["rounds"], strategies, seeds, p["model"], train, pretrain,
                  p["queries"], p["embedding"], p["device"], p["results_dir"], p["data_root"], p["verify_data"])


def load_data(config) -> MedMNIST:
    """The MedMNIST set a Config or a NoisyConfig names, from its data_root, checked if it says so."""
    return load_medmnist(config.dataset, root=config.data_root, verify=config.verify_data)


def build_scenario(data: MedMNIST, config: Config, seed: int) -> Scenario:
    """The seeded split for one seed: each seed draws its own labeled set, pool and exemplars."""
    if config.setting == "binary":
        return binary_imbalance(data, config.rare_classes, config.imbalance, config.labeled, config.pool,
                                config.exemplars_per_class, config.balanced_test, seed)
    return long_tail(data, config.imbalance, config.labeled, config.pool, order=config.order,
                     rare_classes=config.rare_classes,
                     exemplars_per_class=config.exemplars_per_class, balanced_test=config.balanced_test, seed=seed)


def seed_records(results_dir: str | Path, config: Config, seed: int) -> list[Path]:
    """The records one seed of the experiment writes: one per strategy."""
    return [record_path(results_dir, config.experiment, strategy, seed) for strategy in config.strategies]


def progress_bar(items, desc: str, show: bool | None):
    """tqdm.auto over `items` (one widget line in Jupyter, one line on a terminal). show=None: shown unless
    $TQDM_DISABLE is set, as the batch sets it, so that saved notebooks carry no progress output (read here:
    tqdm's notebook bar ignores the variable and was saved as '0/130')."""
    hidden = os.environ.get("TQDM_DISABLE", "") not in ("", "0") if show is None else not show
    return tqdm(items, desc=desc, unit="run", disable=hidden)


def check_pool(data: MedMNIST, config: Config) -> dict[int, Scenario]:
    """Every seed's scenario, once each pool is known to hold `rounds` x `budget` images (else a ConfigError
    naming the numbers and what to change): before any model trains."""
    scenarios = {seed: build_scenario(data, config, seed) for seed in config.seeds}
    for seed, scenario in scenarios.items():
        if config.rounds * config.budget > len(scenario.pool):
            raise ConfigError(f"{config.experiment}: {config.rounds} rounds of budget {config.budget} pick "
                              f"{config.rounds * config.budget} images, but seed {seed}'s pool holds "
                              f"{len(scenario.pool)}; lower budget or rounds, or raise pool_per_class (pool_max)")
    return scenarios


def run_experiment(data: MedMNIST, config: Config, progress: bool | None = None) -> list[dict]:
    """Every (seed, strategy) run of the experiment; finished records are read back, not re-run.

    Records go to results_dir/<experiment>/<strategy>/seed<k>.json, written after every round.
    """
    scenarios = check_pool(data, config)
    with results_folder(config.results_dir) as results_dir:  # None: a temporary folder, removed afterwards
        runs = [(seed, strategy) for seed in config.seeds for strategy in config.strategies]
        records, initial_models, previous = [], {}, None
        for seed, strategy in progress_bar(runs, config.experiment, progress):
            if seed != previous:
                initial_models.clear()  # round 0 is shared within a seed only: keep one model's weights
                previous = seed
            records.append(run_active_learning(
                data, scenarios[seed], strategy, rounds=config.rounds, budget=config.budget, model_name=config.model,
                train_config=config.train, seed=seed, device=config.device, queries=config.queries, progress=False,
                experiment=config.experiment, embedding=config.embedding, initial_models=initial_models,
                pretrain=config.pretrain, pretrain_cache=Path(results_dir) / "pretrained",
                record_path=record_path(results_dir, config.experiment, strategy, seed)))
        return records
