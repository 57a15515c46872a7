"""Fixtures: small files in MedMNIST's .npz format, written by the tests, and the offline real data."""
import os
from pathlib import Path

import numpy as np
import pytest


def write_medmnist_npz(folder: Path, flag: str, n_classes: int, channels: int, size: int = 28,
                       n=(60, 30, 30), seed: int = 0) -> Path:
    """A learnable fake set: class c has mean brightness rising with c, plus noise.

    Written exactly as MedMNIST stores it: {split}_images uint8 (N, H, W) or (N, H, W, 3),
    {split}_labels uint8 (N, 1); labels cycle through the classes, then are shuffled.
    """
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, count in zip(("train", "val", "test"), n):
        labels = rng.permutation(np.arange(count) % n_classes)
        shape = (count, size, size) + ((3,) if channels == 3 else ())
        base = (40 + 180 * labels / max(1, n_classes - 1)).reshape((-1,) + (1,) * (len(shape) - 1))
        images = np.clip(base + rng.normal(0, 20, shape), 0, 255).astype(np.uint8)
        arrays[f"{split}_images"] = images
        arrays[f"{split}_labels"] = labels.astype(np.uint8)[:, None]
    path = folder / (f"{flag}.npz" if size == 28 else f"{flag}_{size}.npz")
    np.savez_compressed(path, **arrays)
    return path


@pytest.fixture
def fixture_root(tmp_path):
    """A folder with an RGB multi-class set (bloodmnist, 8 classes) and a grey binary one (pneumoniamnist)."""
    write_medmnist_npz(tmp_path, "bloodmnist", n_classes=8, channels=3, n=(400, 80, 80))
    write_medmnist_npz(tmp_path, "pneumoniamnist", n_classes=2, channels=1, n=(300, 60, 60), seed=1)
    return tmp_path


@pytest.fixture
def real_root():
    """The official offline files; skipped only where MEDMNIST_ROOT is not set (CI sets it)."""
    root = os.environ.get("MEDMNIST_ROOT")
    if not root:
        pytest.skip("MEDMNIST_ROOT is not set; point it at a folder with the official MedMNIST files")
    return Path(root)
