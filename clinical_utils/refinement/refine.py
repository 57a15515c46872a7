"""Phase 2 of active label refinement: an expert relabels, round by round, samples that phase 1 set aside.

Start: the phase-1 network and its training set, the samples it kept as clean with their given (noisy) labels.
Each round the sampler picks `budget` samples from the pool (those not kept and not yet relabeled), the simulated
expert gives their true labels, they join the training set, the network is fine-tuned on it, and everything is
evaluated. Samplers (`selection.registry`): the active-learning baselines, `loss` (largest loss against the given
label), cleanlab's rankings of the given labels (`label_quality`: lowest label-quality score first; `activelab`:
ActiveLab's score with the given label as the one annotator), and `smi`: SMI selection with the minority classes'
clean samples (kept with a minority label, or relabeled into one) as the query set, CLINICAL's idea applied to
relabeling.

The authors' code also quietly sets to their true labels, outside the budget, the samples phase 1 wrongly kept
as clean; that is off here and on only with `correct_kept_noise=True` (then the budget is no longer the whole
cost of the labels).
"""
from __future__ import annotations

import os
import time

import numpy as np
import torch

from ..records import RunRecord
from ..selection import FUNCTIONS, UNCONDITIONAL
from ..selection.inputs import OFFERS, PoolInputs
from ..selection.registry import available, pick
from ..training.train import TrainConfig, classification_metrics, predict, resolve_device, train

# Every strategy the loop runs, and those that read the given labels; one SMI function, named by smi_function,
# runs as the sampler `smi` (the six functions as samplers of their own would multiply every batch by six).
SAMPLERS = tuple(s for s in available((*OFFERS, "given_labels", "smi_function")) if s not in FUNCTIONS)


def _select(sampler: str, model, images, labels, pool, training, rare_classes, budget, seed, device,
            smi_function) -> np.ndarray:
    """Positions into `pool` (budget,), in pick order; images/labels are the whole training split as given. The
    rankings of given labels (`loss`, `label_quality`, `activelab`) read the current network's probabilities (out
    of sample after confident learning, whose network never trained on the pool; in sample after Co-teaching,
    whose networks trained on every sample while the forget rate rose); `smi` runs `smi_function` with the
    minority classes' training samples as queries."""
    queries = training[np.isin(labels[training], rare_classes)]
    return pick(sampler, PoolInputs(model, device, pool_images=images[pool], labeled_images=images[training],
                                    labeled_labels=labels[training], rare_classes=rare_classes,
                                    query_images=images[queries], query_labels=labels[queries], seed=seed,
                                    smi_function=smi_function, given_labels=labels[pool]), budget, seed)


def run_label_refinement(model: torch.nn.Module, images, noisy_labels, true_labels, kept, test_images, test_labels,
                         sampler: str, *, rounds: int, budget: int, finetune: TrainConfig, rare_classes,
                         seed: int = 0, device: str = "auto", smi_function: str = "flqmi",
                         correct_kept_noise: bool = False, record_path: str | os.PathLike | None = None,
                         parameters: dict | None = None) -> dict:
    """Relabel and fine-tune `model` (changed in place) for `rounds` rounds; returns the run record.

    images uint8 (N, C, H, W), noisy_labels / true_labels (N,), kept (N,) bool from phase 1. Per round the record
    holds per-class and overall test metrics, the training set's size per given label, the picks, how many labels
    were corrected so far, and the remaining noise rate: the share of all N labels still wrong (the pool's
    included, so it falls by exactly corrected / N per round; what was trained on is `labeled_per_class`).
    A record at `record_path` is continued: finished rounds are replayed (their picks, their fine-tuning), not
    re-selected.
    `parameters`: extra entries for the record's parameters (experiment, phase-1 method, ...).
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; choose one of {SAMPLERS}")
    if sampler == "smi" and smi_function not in UNCONDITIONAL:
        raise ValueError(f"smi_function must be one of {UNCONDITIONAL}, got {smi_function!r}")
    noisy_labels, true_labels = np.asarray(noisy_labels, np.int64), np.asarray(true_labels, np.int64)
    kept = np.asarray(kept, bool)
    if rounds * budget > int((~kept).sum()):
        raise ValueError(f"{rounds} rounds of {budget} need {rounds * budget} samples set aside by phase 1, "
                         f"but it set aside {int((~kept).sum())}; lower rounds or budget")
    device = resolve_device(device)
    k = int(max(true_labels.max(), noisy_labels.max(), test_labels.max())) + 1
    params = {**(parameters or {}), "strategy": sampler, "rounds": rounds, "budget": budget, "seed": seed,
              "finetune": finetune.for_device(device).as_record(), "smi_function": smi_function,
              "correct_kept_noise": correct_kept_noise, "kept": int(kept.sum()), "n": len(kept)}
    record = RunRecord(record_path, params, rare_classes, device)
    if record.finished:
        return record.data
    done = len(record.rounds)  # rounds replayed, not re-selected or re-evaluated
    labels = noisy_labels.copy()
    if correct_kept_noise:
        labels[kept] = true_labels[kept]
    relabeled = np.zeros(len(labels), bool)
    for round_ in range(rounds + 1):
        rseed = 1000 * seed + round_
        selected, select_seconds, fit_seconds = np.zeros(0, np.int64), 0.0, 0.0
        if round_ > 0:
            pool = np.flatnonzero(~kept & ~relabeled)
            start = time.perf_counter()
            if round_ < done:
                selected = np.asarray(record.rounds[round_]["selected"], np.int64)
            else:
                selected = pool[_select(sampler, model, images, labels, pool, np.flatnonzero(kept | relabeled),
                                        rare_classes, budget, rseed, device, smi_function)]
            select_seconds = time.perf_counter() - start
            labels[selected] = true_labels[selected]  # the expert's answer
            relabeled[selected] = True
        training = np.flatnonzero(kept | relabeled)
        if round_ > 0:
            fit_seconds = train(model, images[training], labels[training], finetune, device, rseed, False).seconds
        if round_ < done:
            continue
        metrics = classification_metrics(test_labels, predict(model, test_images, device))
        per_class = metrics["per_class_accuracy"]
        record.append({
            "round": round_,
            "labeled_per_class": np.bincount(labels[training], minlength=k).tolist(),
            "selected_per_class": np.bincount(true_labels[selected], minlength=k).tolist(),
            "selected": selected.tolist(),
            "relabeled": int(relabeled.sum()),
            "corrected": int((relabeled & (noisy_labels != true_labels)).sum()),
            "remaining_noise": float((labels != true_labels).mean()),
            **metrics,
            "rare_class_accuracy": float(np.nanmean([per_class[c] for c in rare_classes])),
            "train_seconds": fit_seconds, "train_epochs": finetune.epochs if round_ else 0,
            "select_seconds": select_seconds,
        })
    return record.finish()
