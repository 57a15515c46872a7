"""The active-label-refinement experiments: what each *_noisy notebook runs, at which scale, and running it.

Per seed: a seeded training subset gets seeded label noise; phase 1 trains cross-entropy, Co-teaching,
Co-teaching + VOG and confident learning (cleanlab on K-fold out-of-sample probabilities, then a network trained
on what it keeps) on the noisy labels and reports which samples each kept (clean recall, and the flagged set
against the true noise, per class), each network started from random weights or, where asked, from a backbone
pretrained without labels on the training images or read from a local weights file; phase 2 starts
from `phase2_from`'s network 1 and its kept set, and runs every sampler for `rounds` rounds of `budget` expert
labels. Records: results/<experiment>/phase1/<method>/seed<k>.json (+ .pt, network 1's weights, so phase 2 can
resume) and results/<experiment>/<sampler>/seed<k>.json, the same record layout as the CLINICAL runs.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import medmnist
import numpy as np
import pandas as pd
import torch

from .confident import FILTERS, KEEPS_MINIMUM, label_issues, out_of_sample_probs
from .data import MedMNIST, set_name
from .experiments import progress_bar
from .params import (DEVICES, ConfigError, check_rare_classes_exist, is_int, names_from, need, over_profile,
                     seeds_from, settings_table, valid_device)
from .records import (check_parameters, describe_device, file_digest, read_json, record_path, record_paths,
                      results_folder, write_atomic, write_json_atomic)
from .models import MODELS, build_model
from .noise import KINDS, add_label_noise, transition_matrix
from .noisy import CoTeachingConfig, VOG_KINDS, clean_recall, co_teaching
from .refine import SAMPLERS, run_label_refinement
from .representation import PretrainConfig, backbone_from_file, pretrain_from, pretrained_backbone
from .selection import UNCONDITIONAL
from .train import TrainConfig, classification_metrics, predict, resolve_device, train

METHODS = ("cross_entropy", "coteaching", "coteaching_vog", "confident_learning")
KEEPS_ALL = "cross_entropy"  # the reference without a detector: it keeps every sample, so its clean recall is 1

NOISY_EXPERIMENTS = {
    "pneumonia_noisy": {"dataset": "pneumoniamnist", "noise_rate": 0.4, "rare_classes": [0]},  # normal: 26%
    "retina_noisy": {"dataset": "retinamnist", "noise_rate": 0.6, "rare_classes": [3, 4]},
    "path_noisy": {"dataset": "pathmnist", "noise_rate": 0.8, "rare_classes": None},
    "derma_noisy": {"dataset": "dermamnist", "noise_rate": 0.8, "rare_classes": None},
}
NOISY_OFFLINE = ("pneumonia_noisy", "retina_noisy")

# quick shortens the authors' schedule (50 epochs, ramp 10, warm-up 10, window 5) to fit 2 CPU cores
_QUICK = {"train_size": 1000, "epochs": 15, "batch_size": 64, "lr": 0.02, "ramp_epochs": 5, "warmup_epochs": 5,
          "window": 3, "budget": 30, "rounds": 4, "finetune_epochs": 2, "seeds": [0, 1, 2, 3, 4], "model": "small_cnn",
          "precision": "auto", "samplers": "all", "results_dir": "../results/runs/quick"}
NOISY_PROFILES = {
    "smoke": {**_QUICK, "train_size": 200, "epochs": 4, "ramp_epochs": 2, "warmup_epochs": 2, "window": 2,
              "budget": 8, "rounds": 2, "finetune_epochs": 1, "seeds": [0], "results_dir": None,
              "precision": "fp32"},  # fp32: nbval references that hold on CPUs with and without native bf16
    "quick": _QUICK,
    # the authors' settings: 50 epochs, cosine lr 0.01, batch 256, ResNet-18; 9 rounds of 70; fine-tune 25 epochs
    "paper": {**_QUICK, "train_size": None, "epochs": 50, "batch_size": 256, "lr": 0.01, "ramp_epochs": 10,
              "warmup_epochs": 10, "window": 5, "budget": 70,
              "rounds": 9, "finetune_epochs": 25, "seeds": [0, 1, 2, 3, 4], "model": "resnet18",
              "results_dir": "../results/runs/paper"},
}
NOISY_EXPERIMENT_PROFILE = {("retina_noisy", "quick"): {"train_size": None}}  # RetinaMNIST has 1,080 in all
# Values no profile changes.
NOISY_DEFAULTS = {"noise": "symmetric", "vog": "head", "mix_ratio": 0.2, "class_normalised": False,
                  # cleanlab's own defaults: flag by the estimated noise rates, leave >= 1 sample of each label
                  "cl_folds": 5, "cl_filter_by": "prune_by_noise_rate", "cl_min_examples_per_class": 1,
                  "pretrain": None, "pretrain_epochs": PretrainConfig.epochs, "weights": None,
                  "phase2_from": "coteaching_vog", "smi_function": "flqmi", "correct_kept_noise": False,
                  "device": "auto", "data_root": None, "verify_data": True}
NOISY_PARAMETERS = ("profile", "dataset", "train_size", "noise", "noise_rate", "rare_classes", "forget_rate",
                    "vog", "mix_ratio", "class_normalised", "cl_folds", "cl_filter_by", "cl_min_examples_per_class",
                    "epochs", "batch_size", "lr", "ramp_epochs", "warmup_epochs", "window", "phase2_from",
                    "samplers", "smi_function", "budget", "rounds", "finetune_epochs", "correct_kept_noise", "seeds",
                    "model", "pretrain", "pretrain_epochs", "weights", "precision", "device", "results_dir",
                    "data_root", "verify_data")


@dataclass(frozen=True)
class NoisyConfig:
    experiment: str
    profile: str
    changed: dict  # the parameters given other values than the profile's: name -> the profile's value
    dataset: str
    train_size: int | None  # None: the whole train split
    noise: str
    noise_rate: float
    rare_classes: list  # the minority classes: the SMI sampler's query classes, and the reported rare accuracy
    coteaching: CoTeachingConfig  # its vog is what coteaching_vog uses
    confident_learning: dict  # folds, filter_by, min_examples_per_class
    train: TrainConfig
    phase2_from: str
    samplers: list
    smi_function: str
    budget: int
    rounds: int
    finetune: TrainConfig
    correct_kept_noise: bool
    seeds: list
    model: str
    pretrain: PretrainConfig | None  # phase 1's networks start from a backbone pretrained without labels
    weights: str | None  # ... or from this local weights file
    device: str
    results_dir: str | None
    data_root: str | None
    verify_data: bool

    def table(self) -> pd.DataFrame:
        """The values, one row each, for display (nested parts as part.name)."""
        return settings_table(asdict(self))

    def title(self) -> str:
        """The set and its noise, e.g. 'PneumoniaMNIST, 40% symmetric label noise'."""
        return f"{set_name(self.dataset)}, {self.noise_rate:.0%} {self.noise} label noise"


def noisy_profile_values(experiment: str, profile: str = "quick") -> dict:
    """Every parameter of a *_noisy experiment under `profile`, as its notebook's parameters cell shows quick's."""
    if experiment not in NOISY_EXPERIMENTS:
        raise ConfigError(f"unknown experiment {experiment!r}; the label-noise experiments are "
                          f"{sorted(NOISY_EXPERIMENTS)}")
    if profile not in NOISY_PROFILES:
        raise ConfigError(f"unknown profile {profile!r}; choose one of {list(NOISY_PROFILES)}")
    values = {**NOISY_PROFILES[profile], **NOISY_EXPERIMENT_PROFILE.get((experiment, profile), {}),
              **NOISY_EXPERIMENTS[experiment], **NOISY_DEFAULTS, "profile": profile}
    return {name: values.get(name) for name in NOISY_PARAMETERS}


def configure_noisy(experiment: str, **params) -> NoisyConfig:
    """Resolve a *_noisy notebook's parameters and check every value. A name not given takes the value of
    `profile` (default quick); a given value is taken as it is, None meaning only what its comment says."""
    p, changed = over_profile(noisy_profile_values(experiment, params.get("profile", "quick")), params, experiment)
    need(isinstance(p["dataset"], str), "dataset", p["dataset"], "a MedMNIST flag such as 'pneumoniamnist'")
    need(p["train_size"] is None or (is_int(p["train_size"]) and p["train_size"] >= 10), "train_size",
          p["train_size"], "a whole number >= 10, or None for the whole train split")
    need(p["noise"] in KINDS[:2], "noise", p["noise"], f"one of {list(KINDS[:2])}")
    need(isinstance(p["noise_rate"], (int, float)) and 0 <= p["noise_rate"] < 1, "noise_rate", p["noise_rate"],
          "a number in [0, 1)")
    forget = p["noise_rate"] if p["forget_rate"] is None else p["forget_rate"]
    rare = p["rare_classes"]
    need(rare is None or (isinstance(rare, (list, tuple)) and rare and all(is_int(c) and c >= 0 for c in rare)),
          "rare_classes", rare, "a non-empty list of class indices, or None for the classes below a uniform share")
    check_rare_classes_exist(p["dataset"], rare)
    for name in ("epochs", "batch_size", "ramp_epochs", "window", "budget", "rounds", "finetune_epochs"):
        need(is_int(p[name]) and p[name] >= 1, name, p[name], "a positive whole number")
    need(is_int(p["warmup_epochs"]) and p["warmup_epochs"] >= 0, "warmup_epochs", p["warmup_epochs"],
          "a whole number >= 0")
    need(p["window"] >= 2, "window", p["window"], "at least 2 (a standard deviation needs two snapshots)")
    need(p["vog"] in VOG_KINDS, "vog", p["vog"], f"one of {list(VOG_KINDS)}")
    need(is_int(p["cl_folds"]) and 2 <= p["cl_folds"] <= (p["train_size"] or p["cl_folds"]), "cl_folds",
         p["cl_folds"], "a whole number from 2 to train_size")
    need(p["cl_filter_by"] in FILTERS, "cl_filter_by", p["cl_filter_by"], f"one of cleanlab's {list(FILTERS)}")
    need(is_int(p["cl_min_examples_per_class"]) and p["cl_min_examples_per_class"] >= 0,
         "cl_min_examples_per_class", p["cl_min_examples_per_class"], "a whole number >= 0")
    need(p["cl_min_examples_per_class"] == 1 or p["cl_filter_by"] in KEEPS_MINIMUM, "cl_min_examples_per_class",
         p["cl_min_examples_per_class"], f"1 under cl_filter_by {p['cl_filter_by']!r}, which ignores it (it "
         f"applies under {list(KEEPS_MINIMUM)})")
    pretrain = pretrain_from(p)
    need(p["weights"] is None or isinstance(p["weights"], str), "weights", p["weights"],
         "None or the path of a local weights file (a PyTorch state dict)")
    need(p["weights"] is None or p["pretrain"] is None, "weights", p["weights"],
         "None while pretrain is set: the networks start from one backbone, pretrained here or read from a file")
    need(p["phase2_from"] in METHODS, "phase2_from", p["phase2_from"], f"one of {list(METHODS)}")
    need(p["phase2_from"] != KEEPS_ALL, "phase2_from", p["phase2_from"],
          "a method that sets samples aside: cross-entropy keeps every sample, so phase 2 would have no pool")
    samplers = names_from("samplers", p["samplers"], SAMPLERS)
    need(p["smi_function"] in UNCONDITIONAL, "smi_function", p["smi_function"], f"one of {list(UNCONDITIONAL)}")
    seeds = seeds_from(p["seeds"])
    need(p["model"] in MODELS, "model", p["model"], f"one of {list(MODELS)}")
    if p["weights"] is not None and p["dataset"] in medmnist.INFO:  # read and fitted now, before any training
        try:
            backbone_from_file(p["weights"], p["model"], medmnist.INFO[p["dataset"]]["n_channels"])
        except ValueError as err:
            raise ConfigError(f"weights: {err}") from None
    for name in ("class_normalised", "correct_kept_noise", "verify_data"):
        need(isinstance(p[name], bool), name, p[name], "True or False")
    need(valid_device(p["device"]), "device", p["device"], f"one of {list(DEVICES)} or 'cuda:N'")
    for name in ("results_dir", "data_root"):
        need(p[name] is None or isinstance(p[name], str), name, p[name], "a folder path (str) or None")
    try:
        coteaching = CoTeachingConfig(forget, p["ramp_epochs"], p["vog"], p["mix_ratio"], p["warmup_epochs"],
                                      p["window"], p["class_normalised"])
        phase1 = TrainConfig(epochs=p["epochs"], batch_size=p["batch_size"], lr=p["lr"], schedule="cosine",
                             weight_decay=1e-4, precision=p["precision"])
        finetune = TrainConfig(epochs=p["finetune_epochs"], batch_size=p["batch_size"], lr=p["lr"] / 10,
                               weight_decay=1e-4, precision=p["precision"])
    except (TypeError, ValueError) as err:
        raise ConfigError(f"phase-1 parameters: {err}") from None
    return NoisyConfig(
        experiment=experiment, profile=p["profile"], changed=changed, dataset=p["dataset"],
        train_size=p["train_size"], noise=p["noise"], noise_rate=float(p["noise_rate"]),
        rare_classes=None if rare is None else list(rare), coteaching=coteaching,
        confident_learning={"folds": p["cl_folds"], "filter_by": p["cl_filter_by"],
                            "min_examples_per_class": p["cl_min_examples_per_class"]},
        train=phase1, phase2_from=p["phase2_from"], samplers=samplers, smi_function=p["smi_function"],
        budget=p["budget"], rounds=p["rounds"], finetune=finetune, correct_kept_noise=p["correct_kept_noise"],
        seeds=seeds, model=p["model"],
        pretrain=pretrain, weights=p["weights"], device=p["device"], results_dir=p["results_dir"], data_root=p["data_root"],
        verify_data=p["verify_data"])


@dataclass(frozen=True)
class NoisySplit:
    """One seed's data: train positions (N,) into data.train, their true and noisy labels, the minority classes."""

    train: np.ndarray
    true: np.ndarray
    noisy: np.ndarray
    rare_classes: list


def noisy_split(data: MedMNIST, config: NoisyConfig, seed: int) -> NoisySplit:
    """A seeded subset of the train split at its natural class balance, with seeded noise on its labels."""
    rng = np.random.default_rng(seed)
    n = len(data.train.labels)
    size = n if config.train_size is None else config.train_size
    if size > n:
        raise ConfigError(f"train_size {size} is larger than the {n} images of {data.flag}'s train split")
    train = np.sort(rng.permutation(n)[:size])
    true = data.train.labels[train]
    t = transition_matrix(data.n_classes, config.noise, config.noise_rate)
    noisy = add_label_noise(true, t, seed=seed)
    rare = config.rare_classes
    if rare is None:  # from the labels as given: the true ones are what nobody has
        share = np.bincount(noisy, minlength=data.n_classes) / size
        rare = np.flatnonzero(share < 1 / data.n_classes).tolist()
    bad = [c for c in rare if c >= data.n_classes]
    if bad:
        raise ConfigError(f"rare_classes {bad} do not exist: {data.flag} has classes 0..{data.n_classes - 1}")
    return NoisySplit(train, true, noisy, list(rare))


def seed_records(results_dir: str | Path, config: NoisyConfig, seed: int) -> list[Path]:
    """The records one seed of the experiment writes: one per phase-1 method (weights beside it), one per sampler."""
    return [*(record_path(results_dir, config.experiment, method, seed, phase1=True) for method in METHODS),
            *(record_path(results_dir, config.experiment, sampler, seed) for sampler in config.samplers)]


def run_phase1(data: MedMNIST, config: NoisyConfig, split: NoisySplit, method: str, seed: int,
               results_dir: Path) -> tuple[torch.nn.Module, dict]:
    """One LNL method on one seed: network 1 and its record (kept positions, clean recall, test metrics).

    A finished record and its weights are read back instead of retrained; a record made with other parameters
    is a StaleRecordError naming them."""
    path = record_path(results_dir, config.experiment, method, seed, phase1=True)
    weights = path.with_suffix(".pt")  # network 1's, beside its record
    params = {"experiment": config.experiment, "method": method, "seed": seed, "dataset": data.flag,
              "train_size": len(split.train), "noise": config.noise, "noise_rate": config.noise_rate,
              "model": config.model, "train": config.train.for_device(resolve_device(config.device)).as_record(),
              "coteaching": asdict(config.coteaching)}
    # stored only where they apply, so records made before these options stay equal to new runs
    if method == "confident_learning":
        params["confident_learning"] = config.confident_learning
    if config.pretrain is not None:
        params["pretrain"] = asdict(config.pretrain)
    if config.weights is not None:
        params["weights"] = {"file": Path(config.weights).name, "sha1": file_digest(config.weights)}
    images = data.train.images[split.train]
    if path.exists():
        record = read_json(path)
        check_parameters(path, record["parameters"], params)
        if weights.exists():  # the weights are not committed: without them phase 1 is trained again
            model = build_model(config.model, data.n_channels, data.n_classes, data.size)
            model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
            # recounted from what it kept: records made before the flag columns gain them
            record["clean_recall"] = (clean_recall(np.isin(np.arange(len(split.train)), record["kept"]),
                                                   split.noisy, split.true, data.class_names)
                                      .reset_index().to_dict("records"))
            return model, record
    backbone = None
    if config.pretrain is not None:  # the training images, no labels: one backbone per seed for every method
        backbone = pretrained_backbone(images, config.model, seed, config.pretrain, results_dir / "pretrained",
                                       config.device)
    elif config.weights is not None:
        backbone = backbone_from_file(config.weights, config.model, data.n_channels, data.size)

    def network(model_seed: int) -> torch.nn.Module:
        """A fresh network: its head (and, without a backbone given, all of it) from `model_seed`."""
        return build_model(config.model, data.n_channels, data.n_classes, data.size, model_seed, backbone)

    model = network(seed)
    if method == KEEPS_ALL:
        fit = train(model, images, split.noisy, config.train, config.device, seed, False)
        kept, history, seconds = np.ones(len(split.train), bool), fit.history, fit.seconds
    elif method == "confident_learning":  # cleanlab's flags on out-of-sample probabilities, then train on the rest
        cl = config.confident_learning
        probs = out_of_sample_probs(lambda fold: network(seed + 20_000 + fold), images, split.noisy,
                                    data.n_classes, config.train, cl["folds"], config.device, seed)
        kept = ~label_issues(split.noisy, probs, cl["filter_by"], cl["min_examples_per_class"])
        fit = train(model, images[kept], split.noisy[kept], config.train, config.device, seed, False)
        history, seconds = fit.history, fit.seconds
    else:
        peer = network(seed + 10_000)
        ct = config.coteaching if method == "coteaching_vog" else CoTeachingConfig(
            **{**asdict(config.coteaching), "vog": None})
        result = co_teaching(model, peer, images, split.noisy, ct, config.train, config.device, seed)
        kept, history, seconds = result.kept, result.history, result.seconds
    metrics = classification_metrics(data.test.labels, predict(model, data.test.images, config.device))
    record = {"parameters": params, "threads": torch.get_num_threads(), "device": describe_device(
              resolve_device(config.device)), "rare_classes": split.rare_classes,
              "kept": np.flatnonzero(kept).tolist(),
              "clean_recall": clean_recall(kept, split.noisy, split.true, data.class_names).reset_index()
              .to_dict("records"), "test": metrics, "seconds": seconds, "history": history}
    write_atomic(weights, lambda tmp: torch.save(model.state_dict(), tmp))
    write_json_atomic(path, record)  # last: a record only exists with its weights beside it
    return model, record


def run_noisy_experiment(data: MedMNIST, config: NoisyConfig, progress: bool | None = None) -> tuple[list, list]:
    """Phase 1 (every method) and phase 2 (every sampler) for every seed: (phase-1 records, phase-2 records)."""
    with results_folder(config.results_dir) as results_dir:  # None: a temporary folder, removed afterwards
        steps = [(seed, what) for seed in config.seeds for what in [*METHODS, *config.samplers]]
        phase1, phase2, splits, models = [], [], {}, {}
        for seed, what in progress_bar(steps, config.experiment, progress):
            if seed not in splits:
                splits[seed] = noisy_split(data, config, seed)
            split = splits[seed]
            if what in METHODS:
                model, record = run_phase1(data, config, split, what, seed, results_dir)
                phase1.append(record)
                if what == config.phase2_from:
                    models[seed] = (model.state_dict(), np.isin(np.arange(len(split.train)), record["kept"]),
                                    record["parameters"])
                continue
            state, kept, upstream = models[seed]
            model = build_model(config.model, data.n_channels, data.n_classes, data.size)
            model.load_state_dict(state)
            phase2.append(run_label_refinement(
                model, data.train.images[split.train], split.noisy, split.true, kept, data.test.images,
                data.test.labels, what, rounds=config.rounds, budget=config.budget, finetune=config.finetune,
                rare_classes=split.rare_classes, seed=seed, device=config.device, smi_function=config.smi_function,
                correct_kept_noise=config.correct_kept_noise,
                record_path=record_path(results_dir, config.experiment, what, seed),
                # everything phase 1 was run with (method, model, training, Co-teaching, VOG, ...): a phase-2 record is
                # reused only on the phase 1 that produced it
                parameters={"experiment": config.experiment, "dataset": data.flag, "phase1": upstream,
                            "noise": config.noise, "noise_rate": config.noise_rate, "train_size": len(split.train)}))
        return phase1, phase2


def recall_frame(phase1: list[dict]) -> pd.DataFrame:
    """One row per (method, seed, class): what phase 1 kept (clean recall, precision) and set aside (flag precision
    and flag recall against the true noise), as `noisy.clean_recall` counts them."""
    rows = []
    for record in phase1:
        for row in record["clean_recall"]:
            rows.append({"method": record["parameters"]["method"], "seed": record["parameters"]["seed"], **row})
    return pd.DataFrame(rows)


def load_phase1_records(results_dir: str | Path, experiment: str) -> list[dict]:
    """Every phase-1 record of an experiment: results_dir/<experiment>/phase1/<method>/seed<k>.json."""
    return [read_json(p) for p in record_paths(results_dir, experiment, phase1=True)]
