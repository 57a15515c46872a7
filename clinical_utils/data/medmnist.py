"""MedMNIST loading: the official .npz files, checked, as uint8 images (N, C, H, W) and int64 labels (N,)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import medmnist
import numpy as np

from ..records import file_digest

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


def set_name(flag: str) -> str:
    """How medmnist names a flag's set ('PneumoniaMNIST'); the flag itself for a set it does not know."""
    return medmnist.INFO[flag]["python_class"] if flag in medmnist.INFO else flag


def class_names(flag: str) -> tuple[str, ...]:
    """The class names medmnist gives a flag, in label order; a bare number (RetinaMNIST's diabetic-retinopathy
    grades, '0'..'4') is named as the grade it is ('grade 0')."""
    labels = medmnist.INFO[flag]["label"]
    names = (labels[str(k)] for k in range(len(labels)))
    return tuple(f"grade {name}" if name.isdigit() else name for name in names)


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
        found = file_digest(path, "md5")
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
