"""Seeded label noise on training labels; the true labels stay for evaluation and for the simulated expert.

Every model is a class-transition matrix T (K, K): a label of class c becomes class j with probability T[c, j].
The realised noise is exact, not sampled: of the n_c images of class c, round(n_c * T[c, j]) are moved to each
j != c (largest remainders decide the rounding), the images chosen at random. So a 0.8 symmetric rate gives
0.8 on every class up to one image, and the table `noise_report` shows what was realised.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

KINDS = ("symmetric", "pair", "matrix")


class NoiseError(ValueError):
    """A noise model that cannot be realised; the message says what to change."""


def transition_matrix(n_classes: int, kind: str, rate: float | None = None, matrix=None,
                      pairs: dict | None = None) -> np.ndarray:
    """T (K, K), rows summing to 1.

    symmetric: with probability `rate` a label moves to a uniformly chosen *different* class.
    pair: with probability `rate` it moves to one fixed other class, `pairs[c]` (default c + 1 mod K).
    matrix: `matrix` as given (K, K), non-negative, rows summing to 1.
    """
    k = n_classes
    if kind not in KINDS:
        raise NoiseError(f"unknown noise kind {kind!r}; choose one of {KINDS}")
    if k < 2:
        raise NoiseError("label noise needs at least 2 classes")
    if kind == "matrix":
        if matrix is None:
            raise NoiseError("kind='matrix' needs matrix=, a (K, K) row-stochastic array")
        t = np.asarray(matrix, dtype=np.float64)
        if t.shape != (k, k) or (t < 0).any() or not np.allclose(t.sum(1), 1, atol=1e-6):
            raise NoiseError(f"matrix must be ({k}, {k}), non-negative, with rows summing to 1; got shape "
                             f"{t.shape}, row sums {np.round(t.sum(1), 4).tolist() if t.ndim == 2 else '-'}")
        return t
    if rate is None or not 0 <= rate < 1:
        raise NoiseError(f"rate must be in [0, 1) for {kind} noise, got {rate!r}: at 1 no label stays true")
    t = np.zeros((k, k))
    if kind == "symmetric":
        t[:] = rate / (k - 1)
    else:
        pairs = {c: (c + 1) % k for c in range(k)} if pairs is None else pairs
        if sorted(pairs) != list(range(k)) or any(not 0 <= j < k or j == c for c, j in pairs.items()):
            raise NoiseError(f"pairs must map every class 0..{k - 1} to another class, got {pairs}")
        for c, j in pairs.items():
            t[c, j] = rate
    np.fill_diagonal(t, 1 - rate)
    return t


def _exact_counts(n: int, probs: np.ndarray) -> np.ndarray:
    """Integers summing to n, closest to n * probs (largest remainders)."""
    raw = n * probs
    counts = np.floor(raw).astype(np.int64)
    order = np.argsort(-(raw - counts), kind="stable")
    counts[order[:n - counts.sum()]] += 1
    return counts


def add_label_noise(labels, transition: np.ndarray, seed: int = 0) -> np.ndarray:
    """Noisy labels (N,) int64 from true labels (N,) through transition T (K, K), realised exactly per class."""
    labels = np.asarray(labels, dtype=np.int64)
    k = len(transition)
    if labels.size and (labels.min() < 0 or labels.max() >= k):
        raise NoiseError(f"labels must lie in 0..{k - 1} for a {k}-class transition matrix")
    rng = np.random.default_rng(seed)
    noisy = labels.copy()
    for c in range(k):
        members = rng.permutation(np.flatnonzero(labels == c))
        counts = _exact_counts(len(members), transition[c])
        noisy[members] = np.repeat(np.arange(k), counts)
    return noisy


def noise_report(true, noisy, class_names=None) -> pd.DataFrame:
    """Per class of the true label: images, labels changed, realised noise rate; and the share of each
    noisy label that is wrong ('wrong among given'); a final 'all' row."""
    true, noisy = np.asarray(true), np.asarray(noisy)
    k = int(max(true.max(), noisy.max())) + 1
    names = list(class_names) if class_names is not None else [str(c) for c in range(k)]
    rows = []
    for c in range(k):
        mine, given = true == c, noisy == c
        rows.append({"class": names[c], "images": int(mine.sum()), "noisy": int((mine & (noisy != c)).sum()),
                     "noise rate": float((noisy[mine] != c).mean()) if mine.any() else float("nan"),
                     "given this label": int(given.sum()),
                     "wrong among given": float((true[given] != c).mean()) if given.any() else float("nan")})
    rows.append({"class": "all", "images": len(true), "noisy": int((true != noisy).sum()),
                 "noise rate": float((true != noisy).mean()), "given this label": len(true),
                 "wrong among given": float((true != noisy).mean())})
    return pd.DataFrame(rows).set_index("class")
