"""Seeded class-imbalance scenarios: index sets into the official splits. The initial labeled set and the
unlabeled pool come from `train`, the exemplar set (the source of rare-class queries) from `val`, the test set
from `test`."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .medmnist import DataError, MedMNIST

@dataclass(frozen=True)
class Scenario:
    """Index sets into one MedMNIST set, built by one of the scenario functions below.

    labeled, pool: indices into `train`; exemplars: into `val`; test: into `test`. All sorted, disjoint
    where they share a split. `counts` has one row per class and one column per set.
    """

    kind: str
    rare_classes: tuple[int, ...]
    labeled: np.ndarray
    pool: np.ndarray
    exemplars: np.ndarray
    test: np.ndarray
    counts: pd.DataFrame


def check_scenario(data: MedMNIST, scenario: Scenario) -> None:
    """A scenario's index sets must be sorted, unique and in range, and labeled and pool disjoint (a hand-built
    one too): an unsorted or repeated pool would label an image twice."""
    sizes = {"labeled": len(data.train.labels), "pool": len(data.train.labels),
             "exemplars": len(data.val.labels), "test": len(data.test.labels)}
    for name, n in sizes.items():
        idx = np.asarray(getattr(scenario, name))
        if idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer):
            raise DataError(f"scenario.{name} must be a 1-D integer index array, got {idx.dtype} {idx.shape}")
        if len(idx) and (idx.min() < 0 or idx.max() >= n):
            raise DataError(f"scenario.{name} has indices outside 0..{n - 1}")
        if np.any(np.diff(idx) <= 0):
            raise DataError(f"scenario.{name} must be sorted and without repeats: use np.unique(indices)")
    if len(np.intersect1d(scenario.labeled, scenario.pool)):
        raise DataError("scenario.labeled and scenario.pool share images: an image is either labeled or in the pool")


def _per_class(labels: np.ndarray, n_classes: int) -> np.ndarray:
    return np.bincount(labels, minlength=n_classes)


def _check_classes(classes, n_classes: int, what: str) -> tuple[int, ...]:
    classes = tuple(int(c) for c in classes)
    bad = [c for c in classes if not 0 <= c < n_classes]
    if bad:
        raise DataError(f"{what} {bad} do not exist: this set has classes 0..{n_classes - 1}")
    if len(set(classes)) != len(classes):
        raise DataError(f"{what} {list(classes)} name a class twice")
    return classes


def _draw(rng: np.random.Generator, labels: np.ndarray, available: np.ndarray, wanted: np.ndarray,
          class_names, what: str) -> np.ndarray:
    """Draw wanted[c] indices of class c from `available` (a boolean mask over `labels`), without replacement."""
    picked = []
    for c, n in enumerate(wanted):
        candidates = np.flatnonzero(available & (labels == c))
        if n > len(candidates):
            have = ", ".join(f"{class_names[k]}: {int((available & (labels == k)).sum())}"
                             for k in range(len(class_names)))
            raise DataError(f"the {what} needs {n} images of class {c} ({class_names[c]}) but only "
                            f"{len(candidates)} are available (available per class: {have}). "
                            "Ask for fewer images or a smaller imbalance.")
        picked.append(rng.choice(candidates, size=int(n), replace=False))
    return np.sort(np.concatenate(picked)).astype(np.int64)


def _finish(kind, data: MedMNIST, rare, labeled, pool, exemplars_per_class, balanced_test, rng) -> Scenario:
    k = data.n_classes
    exemplars = _draw(rng, data.val.labels, np.ones(len(data.val.labels), bool),
                      np.full(k, exemplars_per_class), data.class_names, "exemplar set (from val)")
    if balanced_test:  # every class subsampled to the scarcest one's count
        test = _draw(rng, data.test.labels, np.ones(len(data.test.labels), bool),
                     np.full(k, _per_class(data.test.labels, k).min()), data.class_names, "balanced test set")
    else:
        test = np.arange(len(data.test.labels), dtype=np.int64)
    counts = pd.DataFrame(
        {
            "labeled": _per_class(data.train.labels[labeled], k),
            "pool": _per_class(data.train.labels[pool], k),
            "exemplars": _per_class(data.val.labels[exemplars], k),
            "test": _per_class(data.test.labels[test], k),
            "rare": [c in rare for c in range(k)],
        },
        index=pd.Index(list(data.class_names), name="class"),
    )
    return Scenario(kind, tuple(sorted(rare)), labeled, pool, exemplars, test, counts)


def _round_half_up(x):
    # not Python's round(), which rounds halves to even: TRUST's 1050 / 20 is 53, not 52
    return np.floor(np.asarray(x) + 0.5).astype(np.int64)


def _rare_size(n_common: int, ratio: float) -> int:
    return max(1, int(_round_half_up(n_common / ratio)))


def binary_imbalance(data: MedMNIST, rare_classes, ratio: float, labeled_per_class: int,
                     pool_per_class: int | None = None, exemplars_per_class: int = 5,
                     balanced_test: bool = False, seed: int = 0) -> Scenario:
    """Rare classes kept at 1/ratio of the common ones, in the labeled set and in the pool.

    Common classes get `labeled_per_class` labeled images and `pool_per_class` pool images (None: all
    that remain of the scarcest common class); each rare class gets n / ratio rounded half up, at least 1, of each.
    As in TRUST's `classimb` split (e.g. PneumoniaMNIST at 20:1: labeled 100 / 5, pool 1050 / 53).
    """
    k = data.n_classes
    rare = _check_classes(rare_classes, k, "rare_classes")
    if not rare or len(rare) == k:
        raise DataError(f"rare_classes must name at least one and at most {k - 1} of the {k} classes")
    if ratio < 1:
        raise DataError(f"ratio {ratio} must be >= 1 (common images per rare image)")
    rng = np.random.default_rng(seed)
    labels = data.train.labels
    is_rare = np.isin(np.arange(k), rare)
    wanted = np.where(is_rare, _rare_size(labeled_per_class, ratio), labeled_per_class)
    labeled = _draw(rng, labels, np.ones(len(labels), bool), wanted, data.class_names, "labeled set")
    remaining = np.ones(len(labels), bool)
    remaining[labeled] = False
    if pool_per_class is None:
        pool_per_class = int(_per_class(labels[remaining], k)[~is_rare].min())
    wanted = np.where(is_rare, _rare_size(pool_per_class, ratio), pool_per_class)
    pool = _draw(rng, labels, remaining, wanted, data.class_names, "unlabeled pool")
    return _finish("binary", data, rare, labeled, pool, exemplars_per_class, balanced_test, rng)


def long_tail_sizes(n_max: int, imbalance_factor: float, n_classes: int) -> np.ndarray:
    """n_r = n_max * IF^(-r / (C - 1)) for rank r = 0 (head) .. C-1 (tail), rounded half up, at least 1."""
    ranks = np.arange(n_classes)
    return np.maximum(1, _round_half_up(n_max * imbalance_factor ** (-ranks / (n_classes - 1))))


def long_tail(data: MedMNIST, imbalance_factor: float, labeled_max: int, pool_max: int | None = None,
              order=None, rare_classes=None, exemplars_per_class: int = 5, balanced_test: bool = False,
              seed: int = 0) -> Scenario:
    """Class sizes decay exponentially from head to tail, in the labeled set and in the pool.

    `order` lists the classes from head (rank 0) to tail; default: by train frequency, most frequent
    first, ties by class index: to make one class the tail, put it last. `pool_max` None takes the largest head
    size every class can satisfy. `rare_classes` default: the tail half of `order` (ranks >= C // 2); given, they
    must be no larger than any other class (a DataError says how to order them otherwise).
    """
    k = data.n_classes
    if imbalance_factor < 1:
        raise DataError(f"imbalance_factor {imbalance_factor} must be >= 1 (head size / tail size)")
    labels = data.train.labels
    freq = _per_class(labels, k)
    if order is None:
        order = sorted(range(k), key=lambda c: (-freq[c], c))
    order = _check_classes(order, k, "order")
    if sorted(order) != list(range(k)):
        raise DataError(f"order {list(order)} must list every class 0..{k - 1} exactly once")
    rank = np.empty(k, np.int64)
    rank[list(order)] = np.arange(k)
    rare = _check_classes(order[k // 2:] if rare_classes is None else rare_classes, k, "rare_classes")
    sizes = long_tail_sizes(labeled_max, imbalance_factor, k)[rank]
    common = [c for c in range(k) if c not in rare]
    if rare and common and sizes[list(rare)].max() > sizes[common].min():
        big = max(rare, key=lambda c: sizes[c])
        small = min(common, key=lambda c: sizes[c])
        raise DataError(f"rare_classes {list(rare)} contradict the class sizes: rare class {big} "
                        f"({data.class_names[big]}) gets {sizes[big]} labeled images, more than class {small} "
                        f"({data.class_names[small]}, {sizes[small]}), which is not rare. Put the rare classes "
                        f"at the tail with order= (head first, e.g. {[c for c in order if c not in rare] + list(rare)})"
                        " or leave rare_classes=None for the tail half of the order.")
    rng = np.random.default_rng(seed)
    labeled = _draw(rng, labels, np.ones(len(labels), bool), sizes, data.class_names, "labeled set")
    remaining = np.ones(len(labels), bool)
    remaining[labeled] = False
    if pool_max is None:
        decay = imbalance_factor ** (-rank / (k - 1))
        pool_max = int(np.floor((_per_class(labels[remaining], k) / decay).min()))
    pool = _draw(rng, labels, remaining, long_tail_sizes(pool_max, imbalance_factor, k)[rank],
                 data.class_names, "unlabeled pool")
    return _finish("longtail", data, rare, labeled, pool, exemplars_per_class, balanced_test, rng)


def natural(data: MedMNIST, labeled_size: int, pool_size: int | None = None, rare_classes=None,
            exemplars_per_class: int = 5, balanced_test: bool = False, seed: int = 0) -> Scenario:
    """The dataset's own class balance: a uniform random labeled set, the pool from the rest.

    `rare_classes` default: classes below half the uniform share (1 / 2C) of the train split.
    """
    k = data.n_classes
    labels = data.train.labels
    n = len(labels)
    pool_size = n - labeled_size if pool_size is None else pool_size
    if labeled_size < 1 or pool_size < 1 or labeled_size + pool_size > n:
        raise DataError(f"labeled_size {labeled_size} + pool_size {pool_size} must be positive and fit in "
                        f"the {n} train images")
    if rare_classes is None:
        rare_classes = np.flatnonzero(_per_class(labels, k) / n < 0.5 / k)
    rare = _check_classes(rare_classes, k, "rare_classes")
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    labeled = np.sort(order[:labeled_size])
    pool = np.sort(order[labeled_size:labeled_size + pool_size])
    return _finish("natural", data, rare, labeled, pool, exemplars_per_class, balanced_test, rng)
