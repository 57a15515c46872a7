"""Confident learning as label refinement's phase-1 detector, through cleanlab's public API (Northcutt et al.,
JAIR 2021).

cleanlab needs predicted probabilities *out of sample*, so each training sample's come from a network trained on
the other folds (K-fold cross-validation, stratified by the given label); `cleanlab.filter.find_label_issues` then
flags the samples whose given label it believes wrong. Its rankings for phase 2 are selection strategies
(`selection.label_quality`).
"""
from __future__ import annotations

import warnings

import numpy as np
from cleanlab.filter import find_label_issues
from sklearn.model_selection import StratifiedKFold

from ..training.train import TrainConfig, predict, train

FILTERS = ("prune_by_noise_rate", "prune_by_class", "both", "confident_learning", "predicted_neq_given",
           "low_normalized_margin", "low_self_confidence")  # cleanlab's filter_by values
KEEPS_MINIMUM = FILTERS[:3]  # the filters that honour min_examples_per_class (cleanlab ignores it in the others)


def out_of_sample_probs(make_model, images, labels, n_classes: int, config: TrainConfig, folds: int,
                        device, seed: int) -> np.ndarray:
    """Predicted probabilities (N, n_classes) float32 of uint8 images (N, C, H, W), each from a network trained
    on the other folds' labels (N,). make_model(fold) -> a fresh network. A class with fewer samples than
    `folds` is left out of some training folds (scikit-learn says so), and its probabilities there come from
    networks that never saw it: exactly the minority case `min_examples_per_class` guards in `label_issues`."""
    labels = np.asarray(labels)
    if not 2 <= folds <= len(labels):
        raise ValueError(f"cl_folds must be between 2 and the {len(labels)} training samples, got {folds}")
    probs = np.zeros((len(labels), n_classes), np.float32)
    with warnings.catch_warnings():  # the few-members warning, said in the docstring and the record's counts
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        splits = list(StratifiedKFold(folds, shuffle=True, random_state=seed).split(labels, labels))
    for fold, (fit, held_out) in enumerate(splits):
        model = make_model(fold)
        train(model, images[fit], labels[fit], config, device, seed + fold, False)
        probs[held_out] = predict(model, images[held_out], device)
    return probs


def label_issues(labels, probs: np.ndarray, filter_by: str = "prune_by_noise_rate",
                 min_examples_per_class: int = 1) -> np.ndarray:
    """(N,) bool: the samples cleanlab flags as mislabeled, given labels (N,) and out-of-sample probabilities
    (N, K). min_examples_per_class: cleanlab leaves at least this many samples of each given label unflagged
    (under the KEEPS_MINIMUM filters; a value other than its default 1 is refused under the others)."""
    if filter_by not in FILTERS:
        raise ValueError(f"cl_filter_by {filter_by!r} is not one of cleanlab's {list(FILTERS)}")
    if min_examples_per_class != 1 and filter_by not in KEEPS_MINIMUM:
        raise ValueError(f"cleanlab ignores min_examples_per_class under filter_by {filter_by!r}: keep it at 1, or "
                         f"use one of {list(KEEPS_MINIMUM)}")
    # n_jobs=1: no worker processes forked from a torch process (a pool buys nothing for a few classes)
    return find_label_issues(np.asarray(labels), probs, filter_by=filter_by,
                             min_examples_per_class=min_examples_per_class, n_jobs=1)
