"""The targeted active-learning loop, as the CLINICAL authors run it (DISTIL's SMI strategy, TRUST's splits).

Round 0 trains on the scenario's labeled set. Each later round: embed the pool and the query set (the
labeled rare-class exemplars, all or only those the model misclassifies), pick `budget` pool images with the
strategy, reveal their labels, add them to the labeled set (and the rare ones to the exemplars, so the query
set grows), retrain from scratch, evaluate. After every round the run record is written atomically; a rerun
continues from the last finished round and, since every round retrains from its own seed, gives exactly the
record an uninterrupted run gives.
"""
from __future__ import annotations

import os
import time
from dataclasses import asdict

import numpy as np

from ..data import MedMNIST, Scenario, check_scenario
from ..records import RunRecord, fingerprint
from ..selection import FUNCTIONS
from ..selection.inputs import EMBEDDINGS, OFFERS, PoolInputs
from ..selection.registry import available, pick
from ..training.models import build_model
from ..training.representation import PretrainConfig, pretrained_backbone
from ..training.train import TrainConfig, classification_metrics, predict, resolve_device, train

# What a selection step of the loop can compute (`selection.inputs.OFFERS`), hence the strategies it runs: every
# one but those that read given labels (the pool's labels are unknown here) or run an SMI function named elsewhere.
STRATEGIES = available(OFFERS)
QUERY_MODES = ("all", "misclassified")


def round_seed(seed: int, round_: int) -> int:
    """The seed of one round's model and training: rounds and seeds never share a stream."""
    return 1000 * seed + round_


def select(strategy: str, model, probs: np.ndarray, feats: np.ndarray, labeled_images: np.ndarray,
           labeled_labels: np.ndarray, rare_classes, query_images: np.ndarray, query_labels: np.ndarray, budget: int,
           seed: int, device, smi_params: dict | None = None, embedding: str = "gradients") -> np.ndarray:
    """Positions into the pool (budget,), in pick order, by any strategy of `STRATEGIES`; probs (n, K) and feats
    (n, d): the model's outputs on the n pool images; the rest as `PoolInputs` says."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; choose one of {STRATEGIES}")
    return pick(strategy, PoolInputs(model, device, probs=probs, feats=feats, labeled_images=labeled_images,
                                     labeled_labels=labeled_labels, rare_classes=rare_classes,
                                     query_images=query_images, query_labels=query_labels, seed=seed,
                                     smi_params=smi_params, embedding=embedding), budget, seed)


def run_active_learning(data: MedMNIST, scenario: Scenario, strategy: str, *, rounds: int, budget: int,
                        model_name: str = "small_cnn", train_config: TrainConfig = TrainConfig(), seed: int = 0,
                        device: str = "auto", record_path: str | os.PathLike | None = None, queries: str = "all",
                        smi_params: dict | None = None, progress: bool | None = None,
                        experiment: str | None = None, embedding: str = "gradients",
                        initial_models: dict | None = None, pretrain: PretrainConfig | None = None,
                        pretrain_cache: str | os.PathLike | None = None) -> dict:
    """Run (or finish) one active-learning run; returns its record (fields: docs/api.md, "The active-learning loop").

    strategy: one of `STRATEGIES` (`selection.registry`): an SMI function (the query set as above; the
    conditional ones take the labeled common-class images as the private set) or a baseline. queries: "all" rare
    exemplars, or only those the model "misclassified" (all of them when it misclassifies none). smi_params:
    keyword arguments for `smi_select` (eta, nu, lam, kernel). experiment: a name stored with the parameters.
    embedding: what the SMI functions compare (`EMBEDDINGS`). initial_models: a dict shared by the runs of one
    seed: round 0 (the same for every strategy) is trained once and its weights kept there. pretrain: every
    round's model starts from a backbone pretrained without labels on the labeled and pool images
    (`representation.pretrained_backbone`, this seed, cached in `pretrain_cache`); with the train config's
    `head_only` that backbone stays fixed and each round trains a linear head on it.
    A finished record at `record_path` is returned as it is. The labeled set is kept sorted, so equal picks give
    equal training sets, batches and models whatever order they were picked in.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; choose one of {STRATEGIES}")
    check_scenario(data, scenario)
    if queries not in QUERY_MODES:
        raise ValueError(f"queries must be one of {QUERY_MODES}, got {queries!r}")
    if embedding not in EMBEDDINGS:
        raise ValueError(f"embedding must be one of {EMBEDDINGS}, got {embedding!r}")
    if rounds < 0 or budget < 1:
        raise ValueError(f"need rounds >= 0 and budget >= 1; got rounds={rounds}, budget={budget}")
    if rounds * budget > len(scenario.pool):
        raise ValueError(f"{rounds} rounds of {budget} need {rounds * budget} pool images but the pool has "
                         f"{len(scenario.pool)}; lower rounds or budget")
    if not scenario.rare_classes and strategy in FUNCTIONS:
        raise ValueError("SMI strategies need rare classes to query for; this scenario has none")
    smi_params = dict(smi_params or {})
    device = resolve_device(device)
    train_config = train_config.for_device(device)  # records store the precision that ran, not "auto"
    k = data.n_classes
    parameters = {"experiment": experiment, "dataset": data.flag, "size": data.size, "scenario": scenario.kind,
                  "strategy": strategy, "rounds": rounds, "budget": budget, "model": model_name,
                  "train": train_config.as_record(),
                  "seed": seed, "queries": queries, "embedding": embedding, "smi_params": smi_params,
                  "initial_labeled": int(len(scenario.labeled)), "pool": int(len(scenario.pool)),
                  "scenario_sha1": fingerprint(scenario.labeled, scenario.pool, scenario.exemplars, scenario.test)}
    if pretrain is not None:  # stored only when set, so records made before the option stay equal to new runs
        parameters["pretrain"] = asdict(pretrain)
    record = RunRecord(record_path, parameters, scenario.rare_classes, device)
    if record.finished:
        return record.data
    labeled = np.array(scenario.labeled)
    in_pool = np.ones(len(scenario.pool), bool)
    picked_rare = []  # train indices of rare images found so far: they join the query set

    def reveal(chosen: np.ndarray) -> None:
        """The oracle labels the chosen train images: they leave the pool, rare ones join the queries."""
        nonlocal labeled
        labeled = np.sort(np.concatenate([labeled, chosen]))  # canonical: pick order must not change training
        in_pool[np.searchsorted(scenario.pool, chosen)] = False
        picked_rare.extend(i for i in chosen.tolist() if data.train.labels[i] in scenario.rare_classes)
        picked_rare.sort()

    for done in record.rounds[1:]:  # replay what earlier runs picked
        reveal(np.asarray(done["selected"], dtype=np.int64))
    rare_exemplars = scenario.exemplars[np.isin(data.val.labels[scenario.exemplars], scenario.rare_classes)]
    test_images, test_labels = data.test.images[scenario.test], data.test.labels[scenario.test]

    backbone = None
    if pretrain is not None:  # the labeled and pool images, no labels: one backbone for every round and strategy
        unlabeled = data.train.images[np.concatenate([scenario.labeled, scenario.pool])]
        backbone = pretrained_backbone(unlabeled, model_name, seed, pretrain, pretrain_cache, device)

    def fresh_model(model_seed: int):
        """A new model for one round: its head from `model_seed`, its backbone pretrained where asked."""
        return build_model(model_name, data.n_channels, k, data.size, seed=model_seed, backbone=backbone)

    picker = None  # the model that picks: the previous round's
    for round_ in range(len(record.rounds), rounds + 1):
        rseed = round_seed(seed, round_)
        selected = np.zeros(0, dtype=np.int64)
        select_seconds, pool_predicted_rare = 0.0, None
        if round_ > 0:
            if picker is None:  # resumed: records hold no weights, so retrain the previous round's model
                picker = fresh_model(rseed - 1)
                train(picker, data.train.images[labeled], data.train.labels[labeled], train_config, device,
                      rseed - 1, progress)
            pool = scenario.pool[in_pool]
            query_images = np.concatenate([data.val.images[rare_exemplars], data.train.images[picked_rare]])
            query_labels = np.concatenate([data.val.labels[rare_exemplars], data.train.labels[picked_rare]])
            if queries == "misclassified" and strategy in FUNCTIONS:
                wrong = predict(picker, query_images, device).argmax(1) != query_labels
                if wrong.any():
                    query_images, query_labels = query_images[wrong], query_labels[wrong]
            start = time.perf_counter()
            probs, feats = predict(picker, data.train.images[pool], device, features=True)
            # the failure mode to watch: a picking model that predicts no pool image rare
            pool_predicted_rare = int(np.isin(probs.argmax(1), scenario.rare_classes).sum())
            positions = select(strategy, picker, probs, feats, data.train.images[labeled], data.train.labels[labeled],
                               scenario.rare_classes, query_images, query_labels, budget, rseed, device, smi_params,
                               embedding)
            select_seconds = time.perf_counter() - start
            selected = pool[positions]
            reveal(selected)
        model = fresh_model(rseed)
        shared = initial_models is not None and round_ == 0
        key = (parameters["scenario_sha1"], model_name, str(train_config), str(pretrain), seed, str(device))
        if shared and key in initial_models:
            state, fit = initial_models[key]
            model.load_state_dict(state)
        else:
            fit = train(model, data.train.images[labeled], data.train.labels[labeled], train_config, device, rseed,
                        progress)
            if shared:
                initial_models[key] = ({n: t.detach().clone() for n, t in model.state_dict().items()}, fit)
        metrics = classification_metrics(test_labels, predict(model, test_images, device))
        per_class = metrics["per_class_accuracy"]
        record.append({
            "round": round_,
            "labeled_per_class": np.bincount(data.train.labels[labeled], minlength=k).tolist(),
            "selected_per_class": np.bincount(data.train.labels[selected], minlength=k).tolist(),
            "selected": selected.tolist(),
            **metrics,
            "rare_class_accuracy": float(np.nanmean([per_class[c] for c in scenario.rare_classes]))
            if scenario.rare_classes else float("nan"),
            "train_seconds": fit.seconds, "train_epochs": fit.epochs, "train_accuracy": fit.train_accuracy,
            # pool images the model that picked this round's images predicted rare
            "select_seconds": select_seconds, "pool_predicted_rare": pool_predicted_rare,
        })
        picker = model
    return record.finish()
