"""An offline stand-in for your own images: PneumoniaMNIST scans written as PNG files, a few of them labeled.

    python -m clinical_utils.labeling.demo demo/pneumonia     # needs pneumoniamnist.npz (MEDMNIST_ROOT), no network

Writes FOLDER/images/*.png (the unlabeled pool: mostly normal, about 5% pneumonia, as a clinic's backlog might
be), FOLDER/labels.csv (path,label,split: a small labeled train set and a balanced validation set) and, beside
the folder, FOLDER_answers.csv (path,label for the pool: the demo's stand-in for the expert, never read by the
labeling code). The folder is generated data: it is not committed.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from ..data import load_medmnist
from ..records import write_atomic, write_csv_atomic

CLASSES = ("normal", "pneumonia")


def answers_path(folder) -> Path:
    folder = Path(folder)
    return folder.with_name(folder.name + "_answers.csv")


def write_pneumonia_folder(folder, pool_normal: int = 380, pool_pneumonia: int = 20, train_normal: int = 40,
                           train_pneumonia: int = 4, val_per_class: int = 20, root=None, seed: int = 0) -> Path:
    """Write the demo folder (see the module docstring); returns it. Same arguments, same files."""
    data = load_medmnist("pneumoniamnist", root=root)
    rng = np.random.default_rng(seed)
    by_class = [rng.permutation(np.flatnonzero(data.train.labels == c)) for c in (0, 1)]
    train = [by_class[0][:train_normal], by_class[1][:train_pneumonia]]
    pool = [by_class[0][train_normal:train_normal + pool_normal],
            by_class[1][train_pneumonia:train_pneumonia + pool_pneumonia]]
    val = [rng.permutation(np.flatnonzero(data.val.labels == c))[:val_per_class] for c in (0, 1)]
    folder = Path(folder)
    rows, answers = [], []

    def save(image: np.ndarray, name: str) -> str:
        rel = f"images/{name}.png"
        write_atomic(folder / rel, lambda tmp: Image.fromarray(image[0]).save(tmp, format="PNG"))
        return rel

    shuffled = rng.permutation(np.concatenate(pool))  # file names must not give the class away
    labels_of = dict(zip(np.concatenate(pool).tolist(), [0] * len(pool[0]) + [1] * len(pool[1])))
    for n, i in enumerate(shuffled):
        answers.append((save(data.train.images[i], f"scan_{n:04d}"), CLASSES[labels_of[int(i)]]))
    for c in (0, 1):
        rows += [(save(data.train.images[i], f"labeled_train_{CLASSES[c]}_{i}"), CLASSES[c], "train")
                 for i in train[c]]
        rows += [(save(data.val.images[i], f"labeled_val_{CLASSES[c]}_{i}"), CLASSES[c], "val") for i in val[c]]
    write_csv_atomic(folder / "labels.csv", ["path", "label", "split"], rows)
    write_csv_atomic(answers_path(folder), ["path", "label"], answers)
    return folder


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m clinical_utils.labeling.demo", description=__doc__.split("\n")[0])
    parser.add_argument("folder", help="where to write the images and labels.csv, e.g. demo/pneumonia")
    args = parser.parse_args()
    print(f"wrote {write_pneumonia_folder(args.folder)}")
