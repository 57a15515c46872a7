"""Running a label-refinement experiment.

Per seed: a seeded training subset gets seeded label noise; phase 1 trains cross-entropy, Co-teaching,
Co-teaching + VOG and confident learning (cleanlab on K-fold out-of-sample probabilities, then a network trained
on what it keeps) on the noisy labels and reports which samples each kept (clean recall, and the flagged set
against the true noise, per class), each network started from random weights or, where asked, from a backbone
pretrained without labels on the training images or read from a local weights file; phase 2 starts
from `phase2_from`'s network 1 and its kept set, and runs every sampler for `rounds` rounds of `budget` expert
labels. Records: results/<experiment>/phase1/<method>/seed<k>.json (+ .pt, network 1's weights, so phase 2 can
resume) and results/<experiment>/<sampler>/seed<k>.json, the same record layout as the CLINICAL runs. config: an
`experiments.refinement.NoisyConfig` (configure's), read here by attribute.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..data import MedMNIST
from ..params import ConfigError
from ..progress import progress_bar
from ..records import (check_parameters, describe_device, file_digest, read_json, record_path, record_paths,
                       results_folder, write_atomic, write_json_atomic)
from ..training.models import build_model
from ..training.representation import backbone_from_file, pretrained_backbone
from ..training.train import classification_metrics, predict, resolve_device, train
from .confident import label_issues, out_of_sample_probs
from .coteaching import CoTeachingConfig, clean_recall, co_teaching
from .noise import add_label_noise, transition_matrix
from .refine import run_label_refinement

METHODS = ("cross_entropy", "coteaching", "coteaching_vog", "confident_learning")
KEEPS_ALL = "cross_entropy"  # the reference without a detector: it keeps every sample, so its clean recall is 1

@dataclass(frozen=True)
class NoisySplit:
    """One seed's data: train positions (N,) into data.train, their true and noisy labels, the minority classes."""

    train: np.ndarray
    true: np.ndarray
    noisy: np.ndarray
    rare_classes: list


def noisy_split(data: MedMNIST, config, seed: int) -> NoisySplit:
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


def seed_records(results_dir: str | Path, config, seed: int) -> list[Path]:
    """The records one seed of the experiment writes: one per phase-1 method (weights beside it), one per sampler."""
    return [*(record_path(results_dir, config.experiment, method, seed, phase1=True) for method in METHODS),
            *(record_path(results_dir, config.experiment, sampler, seed) for sampler in config.samplers)]


def run_phase1(data: MedMNIST, config, split: NoisySplit, method: str, seed: int,
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


def run_noisy_experiment(data: MedMNIST, config, progress: bool | None = None) -> tuple[list, list]:
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
    and flag recall against the true noise), as `coteaching.clean_recall` counts them."""
    rows = []
    for record in phase1:
        for row in record["clean_recall"]:
            rows.append({"method": record["parameters"]["method"], "seed": record["parameters"]["seed"], **row})
    return pd.DataFrame(rows)


def load_phase1_records(results_dir: str | Path, experiment: str) -> list[dict]:
    """Every phase-1 record of an experiment: results_dir/<experiment>/phase1/<method>/seed<k>.json."""
    return [read_json(p) for p in record_paths(results_dir, experiment, phase1=True)]
