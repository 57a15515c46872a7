"""A notebook parameter, declared once: its name, its default per profile, the check its value must pass and
the one-line doc its notebook's parameters cell shows beside it (`Parameter`); the checks and the parameters
both papers share. Each paper lists its own in `clinical` and `refinement`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Callable

from ..params import DEVICES, is_int, valid_device
from ..training.models import MODELS
from ..training.representation import METHODS as PRETRAINING, PretrainConfig
from ..training.train import PRECISIONS


@dataclass(frozen=True)
class Parameter:
    """One notebook parameter. default: its value in the quick profile; profiles: another profile's value where
    it differs (smoke, paper_cpu, paper). check(value) -> bool, and `wanted` says what passes (the error names
    it). doc: the comment beside it in the parameters cell ("" for none). setting: CLINICAL's "binary" or
    "longtail" where it belongs to one setting only."""

    name: str
    default: Any
    check: Callable[[Any], bool]
    wanted: str
    doc: str = ""
    profiles: dict = field(default_factory=dict)
    setting: str | None = None

    def value(self, profile: str):
        """The default under `profile`."""
        return self.profiles.get(profile, self.default)

    def but(self, **changes) -> "Parameter":
        """This parameter with other fields (a paper whose default or doc differs)."""
        return replace(self, **changes)


# ---- checks: value -> bool

def one_of(options) -> Callable[[Any], bool]:
    return lambda value: value in options


def optional(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda value: value is None or check(value)


def boolean(value) -> bool:
    return isinstance(value, bool)


def text(value) -> bool:
    return isinstance(value, str)


def positive_int(value) -> bool:
    return is_int(value) and value >= 1


def whole(value) -> bool:
    return is_int(value) and value >= 0


def number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def in_range(low: float, high: float, high_included: bool = False) -> Callable[[Any], bool]:
    return lambda value: number(value) and low <= value and (value <= high if high_included else value < high)


def distinct_indices(value) -> bool:
    """A list of distinct whole numbers >= 0 (class indices, seeds)."""
    return isinstance(value, (list, tuple)) and all(whole(c) for c in value) and len(set(value)) == len(value)


def names(allowed) -> Callable[[Any], bool]:
    """'all', or a non-empty list of distinct names from `allowed`."""
    return lambda value: value == "all" or (isinstance(value, (list, tuple)) and len(value) > 0
                                            and set(value) <= set(allowed) and len(set(value)) == len(value))


def chosen(value, allowed) -> list:
    """The names a checked `names` value stands for, as a list."""
    return list(allowed) if value == "all" else list(value)


PROFILE_ORDER = ("smoke", "quick", "paper_cpu", "paper")  # every profile, smallest first


def profile(profiles) -> Parameter:
    """The profile parameter of a paper that has `profiles`."""
    others = "|".join(p for p in PROFILE_ORDER if p in profiles and p != "quick")
    doc = (f"the values below are quick's; python -m clinical_utils.batch --profile {others} sets every value of "
           "that profile")
    return Parameter("profile", "quick", one_of(profiles), f"one of {list(profiles)}", doc)


# ---- the parameters both papers take, with the same meaning and defaults

DATASET = Parameter("dataset", None, text, "a MedMNIST flag such as 'pneumoniamnist'")
SEEDS = Parameter("seeds", [0, 1, 2, 3, 4], lambda v: distinct_indices(v) and len(v) > 0,
                  "a non-empty list of distinct whole numbers >= 0", profiles={"smoke": [0], "paper_cpu": [0, 1, 2]})
MODEL = Parameter("model", "small_cnn", one_of(MODELS), f"one of {list(MODELS)}", "'small_cnn' or 'resnet18'",
                  profiles={"paper_cpu": "resnet18", "paper": "resnet18"})
PRECISION = Parameter("precision", "auto", one_of(PRECISIONS), f"one of {list(PRECISIONS)}",
                      "'bf16' (autocast, channels-last), 'fp32', or 'auto': bf16 on CUDA and CPUs with native bf16",
                      # fp32: nbval references that hold on CPUs with and without native bf16; paper_cpu: as its
                      # reference records
                      profiles={"smoke": "fp32", "paper_cpu": "fp32"})
BATCH_SIZE = Parameter("batch_size", 32, lambda v: positive_int(v) and v >= 2, "a whole number, at least 2")
LR = Parameter("lr", 0.01, lambda v: number(v) and v > 0, "a number > 0")
PRETRAIN = Parameter("pretrain", None, optional(one_of(PRETRAINING)), f"None or one of {list(PRETRAINING)}")
PRETRAIN_EPOCHS = Parameter("pretrain_epochs", PretrainConfig.epochs, positive_int, "a positive whole number")
DEVICE = Parameter("device", "auto", valid_device, f"one of {list(DEVICES)} or 'cuda:N'",
                   "'auto', 'cpu', 'cuda' or 'mps'")
FOLDER = "a folder path (str) or None"
RESULTS_DIR = Parameter("results_dir", "../results/runs/quick", optional(text), FOLDER,  # relative to notebooks/
                        profiles={"smoke": None, "paper_cpu": "../results/runs/paper_cpu",
                                  "paper": "../results/runs/paper"})
DATA_ROOT = Parameter("data_root", None, optional(text), FOLDER,
                      "folder with the MedMNIST .npz files (None: $MEDMNIST_ROOT, else medmnist's default)")
VERIFY_DATA = Parameter("verify_data", True, boolean, "True or False",
                        "check each file's MD5 against medmnist (False only for hand-made fixtures)")


def pretraining(values: dict) -> PretrainConfig | None:
    """The pretraining checked `pretrain` and `pretrain_epochs` values ask for (None: none)."""
    return None if values["pretrain"] is None else PretrainConfig(values["pretrain"], epochs=values["pretrain_epochs"])
