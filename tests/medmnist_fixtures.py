"""Small learnable files in MedMNIST's .npz format, for the tests and the nbval copies of notebooks whose
data needs a download (written by the tests, never committed)."""
from pathlib import Path

import numpy as np

# flag: (classes, channels) of the sets the download-needing notebooks use
DOWNLOAD_SETS = {"bloodmnist": (8, 3), "pathmnist": (9, 3), "dermamnist": (7, 3), "organamnist": (11, 1)}


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


def write_download_sets(folder: Path) -> Path:
    """Every DOWNLOAD_SETS flag with 70 train, 6 val and 10 test images per class: enough for the smoke profile."""
    folder.mkdir(parents=True, exist_ok=True)
    for seed, (flag, (k, channels)) in enumerate(DOWNLOAD_SETS.items()):
        write_medmnist_npz(folder, flag, k, channels, n=(70 * k, 6 * k, 10 * k), seed=seed)
    return folder
