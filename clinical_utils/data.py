"""MedMNIST loading and seeded class-imbalance scenarios.

Images are uint8 arrays shaped (N, C, H, W), labels int64 shaped (N,). Scenarios are index sets into
the official splits: the initial labeled set and the unlabeled pool come from `train`, the exemplar
set (the source of rare-class queries) from `val`, the test set from `test`.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import medmnist
import numpy as np
import pandas as pd

FLAGS_2D = (
    "pathmnist", "chestmnist", "dermamnist", "octmnist", "pneumoniamnist", "retinamnist",
    "breastmnist", "bloodmnist", "tissuemnist", "organamnist", "organcmnist", "organsmnist",
)
SIZES = (28, 64, 128, 224)
SPLITS = ("train", "val", "test")


class DataError(ValueError):
    """A data request that cannot be met; the message says what to change."""


@dataclass(frozen=True)
class Split:
    images: np.ndarray  # uint8 (N, C, H, W)
    labels: np.ndarray  # int64 (N,)


@dataclass(frozen=True)
class MedMNIST:
    """One MedMNIST dataset: its three official splits and the names of its classes."""

    flag: str
    size: int
    class_names: tuple[str, ...]
    train: Split
    val: Split
    test: Split

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    @property
    def n_channels(self) -> int:
        return self.train.images.shape[1]

    def split(self, name: str) -> Split:
        if name not in SPLITS:
            raise DataError(f"unknown split {name!r}; use one of {SPLITS}")
        return getattr(self, name)


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The folder that holds the .npz files: `root`, else $MEDMNIST_ROOT, else medmnist's default."""
    return Path(root or os.environ.get("MEDMNIST_ROOT") or medmnist.info.DEFAULT_ROOT).expanduser()


def file_name(flag: str, size: int = 28) -> str:
    return f"{flag}.npz" if size == 28 else f"{flag}_{size}.npz"


def _check_flag(flag: str, size: int) -> None:
    if flag not in medmnist.INFO:
        raise DataError(f"unknown MedMNIST flag {flag!r}; the 2-D ones are: {', '.join(FLAGS_2D)}")
    if flag not in FLAGS_2D:
        raise DataError(f"{flag} is a 3-D volume set; this project works on the 2-D flags: {', '.join(FLAGS_2D)}")
    if medmnist.INFO[flag]["task"].startswith("multi-label"):
        raise DataError(
            f"{flag} is multi-label ({len(medmnist.INFO[flag]['label'])} findings per image, any number present); "
            "imbalance scenarios and per-class accuracy need exactly one label per image. "
            "Use a single-label flag such as pneumoniamnist, or build a binary task from one finding yourself."
        )
    if size not in SIZES:
        raise DataError(f"size {size} is not offered by MedMNIST; use one of {SIZES}")


def class_names(flag: str) -> tuple[str, ...]:
    """The class names medmnist gives a flag, in label order."""
    labels = medmnist.INFO[flag]["label"]
    return tuple(labels[str(k)] for k in range(len(labels)))


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def ensure_file(flag: str, size: int = 28, root: str | os.PathLike | None = None, download: bool = True) -> Path:
    """The path of the flag's .npz in `data_root(root)`, downloading it through medmnist if absent and allowed.

    Raises DataError naming the file, the folder and the fix when it is absent and cannot be fetched.
    """
    _check_flag(flag, size)
    folder = data_root(root)
    path = folder / file_name(flag, size)
    if path.exists():
        return path
    problem = f"{path.name} is not in {folder}"
    if not download:
        raise DataError(f"{problem}. Set MEDMNIST_ROOT (or pass root=) to the folder that holds it, "
                        "or pass download=True with network access.")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        getattr(medmnist, medmnist.INFO[flag]["python_class"])(split="train", root=str(folder), size=size,
                                                              download=True)
    except Exception as err:  # medmnist wraps every network failure in a bare RuntimeError
        raise DataError(f"{problem} and downloading it failed ({str(err).strip().splitlines()[0]}). "
                        "Set MEDMNIST_ROOT (or pass root=) to a folder that holds the file, "
                        "or run with network access so medmnist can download it.") from None
    return path


def load_medmnist(flag: str, size: int = 28, root: str | os.PathLike | None = None,
                  download: bool = True, verify: bool = True) -> MedMNIST:
    """Load a 2-D MedMNIST set through the `medmnist` package.

    The file is looked for in `data_root(root)`; if absent and `download` is true, medmnist downloads it.
    `verify` checks the file's MD5 against `medmnist.INFO` (turn it off only for hand-made fixtures).
    Grey images get a channel axis, so every set comes back as uint8 (N, C, H, W).
    """
    path = ensure_file(flag, size, root, download)
    folder = path.parent
    info = medmnist.INFO[flag]
    dataset_class = getattr(medmnist, info["python_class"])
    if verify:
        expected = info["MD5" if size == 28 else f"MD5_{size}"]
        found = _md5(path)
        if found != expected:
            raise DataError(f"{path} is corrupt or incomplete: its MD5 is {found}, medmnist "
                            f"{medmnist.__version__} expects {expected}. Delete it and download it again.")
    splits = {}
    for name in SPLITS:
        ds = dataset_class(split=name, root=str(folder), size=size, download=False)
        images = np.asarray(ds.imgs, dtype=np.uint8)
        images = images[:, None] if images.ndim == 3 else images.transpose(0, 3, 1, 2)
        splits[name] = Split(np.ascontiguousarray(images), np.asarray(ds.labels, dtype=np.int64).reshape(-1))
    return MedMNIST(flag=flag, size=size, class_names=class_names(flag), **splits)


# ----------------------------------------------------------------------------------------------
# Scenarios


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
