"""The images behind the numbers: examples per class, a round's picks, the labels an expert corrected."""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ..data import MedMNIST
from .style import in_hue_order


def _show(ax, image: np.ndarray) -> None:
    """One uint8 (C, H, W) image on an axis, without ticks."""
    ax.imshow(image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0), cmap="gray", vmin=0, vmax=255)
    ax.set_xticks([])
    ax.set_yticks([])


def class_examples(data: MedMNIST, indices: np.ndarray, per_class: int = 8, seed: int = 0) -> plt.Figure:
    """A grid of train images, one row per class: `per_class` drawn from `indices` (e.g. labeled + pool)."""
    rng = np.random.default_rng(seed)
    labels = data.train.labels[indices]
    fig, axes = plt.subplots(data.n_classes, per_class, figsize=(1.1 * per_class + 1.5, 1.15 * data.n_classes),
                             squeeze=False)
    for c in range(data.n_classes):
        mine = indices[labels == c]
        shown = rng.choice(mine, size=min(per_class, len(mine)), replace=False) if len(mine) else []
        for j, ax in enumerate(axes[c]):
            if j < len(shown):
                _show(ax, data.train.images[shown[j]])
            else:
                ax.axis("off")
        axes[c][0].set_ylabel(data.class_names[c][:18], rotation=0, ha="right", va="center", fontsize="small")
    fig.tight_layout()
    return fig


def picked_images(data: MedMNIST, records: list[dict], round_: int = 1, seed: int | None = None,
                  columns: int = 20) -> plt.Figure:
    """What each strategy picked in one round (one row per strategy, first `columns` picks in pick order);
    rare-class images are framed in red."""
    chosen = [r for r in records if seed is None or r["parameters"]["seed"] == seed]
    seed = chosen[0]["parameters"]["seed"]
    chosen = [r for r in chosen if r["parameters"]["seed"] == seed and len(r["rounds"]) > round_]
    order = in_hue_order(pd.DataFrame({"strategy": [r["parameters"]["strategy"] for r in chosen]}))
    chosen.sort(key=lambda r: order.index(r["parameters"]["strategy"]))
    columns = min(columns, max(len(r["rounds"][round_]["selected"]) for r in chosen))
    fig, axes = plt.subplots(len(chosen), columns, figsize=(0.62 * columns + 1.6, 0.7 * len(chosen) + 0.4),
                             squeeze=False)
    for row, record in zip(axes, chosen):
        picks = record["rounds"][round_]["selected"][:columns]
        rare = record["rare_classes"]
        n_rare = sum(int(data.train.labels[i]) in rare for i in record["rounds"][round_]["selected"])
        for j, ax in enumerate(row):
            if j >= len(picks):
                ax.axis("off")
                continue
            _show(ax, data.train.images[picks[j]])
            if int(data.train.labels[picks[j]]) in rare:
                for side in ax.spines.values():
                    side.set(color="red", linewidth=2.5)
        row[0].set_ylabel(f"{record['parameters']['strategy']}\n{n_rare} rare", rotation=0, ha="right",
                          va="center", fontsize="small")
    fig.suptitle(f"round {round_} picks, seed {seed} (red: rare class)", fontsize="medium")
    fig.tight_layout()
    return fig


def corrected_images(data: MedMNIST, train: np.ndarray, noisy: np.ndarray, record: dict, count: int = 16
                     ) -> plt.Figure:
    """Images a refinement run relabeled whose given label was wrong: titled 'given → true'.
    train: the run's positions into data.train; noisy: the given labels."""
    picks = [i for r in record["rounds"] for i in r["selected"]]
    wrong = [i for i in picks if noisy[i] != data.train.labels[train[i]]][:count]
    cols = min(8, max(1, len(wrong)))
    rows = max(1, math.ceil(len(wrong) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 2.1 * rows), squeeze=False, layout="constrained")
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, wrong):
        _show(ax, data.train.images[train[i]])
        ax.axis("on")
        ax.set_title(f"{data.class_names[noisy[i]][:10]} →\n{data.class_names[data.train.labels[train[i]]][:10]}",
                     fontsize="x-small", linespacing=1.1)
    fig.suptitle(f"{record['parameters']['strategy']}: corrected labels (given → true), seed "
                 f"{record['parameters']['seed']}", fontsize="medium")
    return fig
