"""Labeling your own images (label_my_images.ipynb): its notebook parameters, declared once like the papers', and
the LabelingSettings they resolve to. The training recipe's defaults are the recommended one (recommended.yaml,
chosen by benchmarks/sweep.py): logit-adjusted loss, pool images compared at their likeliest rare label.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..active.loop import STRATEGIES
from ..data import SIZES
from ..training.representation import PretrainConfig
from ..training.train import TrainConfig
from . import clinical
from .parameters import BATCH_SIZE, MODEL, PRECISION, Parameter, one_of, optional, positive_int, text

PROFILES = ("quick",)
_CLINICAL = {p.name: p for p in clinical.PARAMETERS}
RECIPE = {"pretrain": None, "pretrain_epochs": 10, "head_only": False, "epochs": 30, "lr": 0.01, "class_weight": None,
          "logit_adjust": 1.0, "embedding": "gradients_rare"}  # recommended.yaml's values (tested)
A_PATH = "a path (str)"

PARAMETERS = (
    Parameter("folder", "../demo/pneumonia", text, A_PATH,
              "a folder (subfolders allowed) of PNG, JPEG, TIFF or DICOM files; the demo's is written when missing"),
    Parameter("labels", "../demo/pneumonia/labels.csv", optional(text), f"{A_PATH} or None",
              "path,label[,split] of the images labeled so far (class names)"),
    Parameter("rare_classes", ["pneumonia"], lambda v: isinstance(v, (list, tuple)) and len(v) > 0
              and all(isinstance(c, str) for c in v), "a non-empty list of class names, e.g. ['pneumonia']",
              "the classes to find, by name"),
    Parameter("strategy", "flqmi", one_of(STRATEGIES), f"one of {list(STRATEGIES)}",
              "an SMI function (flmi, flqmi, gcmi, logdetmi, flcmi, logdetcmi) or a baseline (random, entropy, ...)"),
    Parameter("budget", 10, positive_int, "a positive whole number", "images to label per round"),
    MODEL,
    Parameter("size", 28, one_of(SIZES), f"one of {list(SIZES)}",
              "images are resized to size x size pixels: 28, 64, 128 or 224"),
    BATCH_SIZE.but(default=20, doc="images per training step"),
    PRECISION,
    # the recipe: CLINICAL's declarations, at the recommended values
    *(_CLINICAL[name].but(default=value, profiles={}) for name, value in RECIPE.items()),
    Parameter("annotator", None, optional(text), "a name (str) or None", "your name in the log (None: the login name)"),
    Parameter("state_dir", None, optional(text), f"{A_PATH} or None",
              "where the log and the labels CSV live (None: <folder>/.labeling)"),
    Parameter("answer_key", None, optional(text), f"{A_PATH} or None",
              "demo only: a CSV of path,label that answers in the expert's place; None: you label in the grid"),
)


@dataclass(frozen=True)
class LabelingSettings:
    """What one round of labeling runs with: the checked values, and the training and pretraining they ask for."""

    changed: dict  # the parameters given other values than the defaults: name -> the default
    folder: str
    labels: str | None
    rare_classes: list
    strategy: str
    budget: int
    model: str
    size: int
    embedding: str
    train: TrainConfig  # trained until 99% training accuracy, `epochs` at most
    pretrain: PretrainConfig | None
    annotator: str | None
    state_dir: str | None
    answer_key: str | None


def build(experiment: str, setting, p: dict, changed: dict) -> LabelingSettings:
    """The LabelingSettings of checked values `p` (experiment and setting: the registry's, unused here)."""
    train, pretrain = clinical.training({**p, "target_train_accuracy": 0.99})  # the authors' stopping rule
    return LabelingSettings(
        changed=changed, folder=p["folder"], labels=p["labels"], rare_classes=list(p["rare_classes"]),
        strategy=p["strategy"], budget=p["budget"], model=p["model"], size=p["size"], embedding=p["embedding"],
        train=train, pretrain=pretrain, annotator=p["annotator"], state_dir=p["state_dir"],
        answer_key=p["answer_key"])
