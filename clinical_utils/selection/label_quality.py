"""Rankings of given (possibly wrong) labels, for label refinement: which samples an expert should relabel first.

Each takes the given labels (n,) and the current network's probabilities (n, K) and returns positions, the least
likely correct first, ties by position. `label_quality_order` and `activelab_order` are cleanlab's (Northcutt et
al., JAIR 2021; ActiveLab, Goh and Mueller 2023), through its public API.
"""
from __future__ import annotations

import numpy as np

from .baselines import as_probs
from .kernels import SelectionError


def _given(labels, probs) -> np.ndarray:
    """The given labels as an array, checked against probs (n, K) (checked too; the rankings read them in their
    own dtype, whose arithmetic decides the ties)."""
    p, labels = as_probs(probs), np.asarray(labels)
    if labels.shape != (len(p),) or not np.issubdtype(labels.dtype, np.integer) or not (
            (labels >= 0) & (labels < p.shape[1])).all():
        raise SelectionError(f"given labels must be {len(p)} class indices in [0, {p.shape[1]}) like the "
                             f"probabilities' rows, got {labels.dtype} of shape {labels.shape}")
    return labels


def loss_order(labels, probs: np.ndarray) -> np.ndarray:
    """Positions (n,) by the cross-entropy of the given label, largest first."""
    labels, probs = _given(labels, probs), np.asarray(probs)
    loss = -np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-12, None))
    return np.argsort(-loss, kind="stable")


def label_quality_order(labels, probs: np.ndarray) -> np.ndarray:
    """Positions (n,) from the least to the most likely correct given label: cleanlab's label-quality score
    (self-confidence, the predicted probability of the given label), lowest first. Self-confidence falls as the
    cross-entropy rises, so the order is `loss_order`'s wherever no two probabilities tie."""
    from cleanlab.rank import get_label_quality_scores  # here: importing cleanlab costs a second

    return np.argsort(get_label_quality_scores(_given(labels, probs), np.asarray(probs)), kind="stable")


def activelab_order(labels, probs: np.ndarray) -> np.ndarray:
    """Positions (n,) in ActiveLab's order for one more label, with the given label as the one annotator; lowest
    first. With one annotator cleanlab 2.9 scores (2 self-confidence + 1/K) / 3, so the order is
    `label_quality_order`'s exactly (tested): ActiveLab adds over it only with several annotators."""
    from cleanlab.multiannotator import get_active_learning_scores

    scores, _ = get_active_learning_scores(_given(labels, probs)[:, None], np.asarray(probs))
    return np.argsort(scores, kind="stable")
