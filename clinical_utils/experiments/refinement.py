"""Active label refinement: its notebook parameters, declared once, and the NoisyConfig they resolve to.

quick shortens the authors' schedule (50 epochs, ramp 10, warm-up 10, window 5) to fit 2 CPU cores; paper is the
authors' settings: 50 epochs, cosine lr 0.01, batch 256, ResNet-18, 9 rounds of 70, fine-tuning 25 epochs.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import medmnist
import pandas as pd

from ..data import set_name
from ..params import ConfigError, check_rare_classes_exist, need, settings_table
from ..refinement.confident import FILTERS, KEEPS_MINIMUM
from ..refinement.coteaching import VOG_KINDS, CoTeachingConfig
from ..refinement.noise import KINDS
from ..refinement.refine import SAMPLERS
from ..refinement.run import KEEPS_ALL, METHODS
from ..selection import UNCONDITIONAL
from ..training.representation import PretrainConfig, backbone_from_file
from ..training.train import TrainConfig
from .parameters import (BATCH_SIZE, DATA_ROOT, DATASET, DEVICE, LR, MODEL, PRECISION, PRETRAIN, PRETRAIN_EPOCHS,
                         RESULTS_DIR, SEEDS, VERIFY_DATA, Parameter, boolean, chosen, distinct_indices, in_range, names,
                         one_of, optional, positive_int, pretraining, profile, text, whole)

PROFILES = ("smoke", "quick", "paper")
POSITIVE = "a positive whole number"

PARAMETERS = (
    profile(PROFILES),
    DATASET,
    Parameter("train_size", 1000, optional(lambda v: whole(v) and v >= 10), "a whole number >= 10, or None for the "
              "whole train split", "training images drawn at the natural class balance (None: the whole train "
              "split)", profiles={"smoke": 200, "paper": None}),
    Parameter("noise", "symmetric", one_of(KINDS[:2]), f"one of {list(KINDS[:2])}", "'symmetric' or 'pair'"),
    Parameter("noise_rate", None, in_range(0, 1), "a number in [0, 1)",
              "share of training labels made wrong, exactly per class"),
    Parameter("rare_classes", None, optional(lambda v: distinct_indices(v) and len(v) > 0),
              "a non-empty list of distinct class indices, or None for the classes below a uniform share",
              "minority classes: SMI's query classes and the reported minority accuracy"),
    Parameter("forget_rate", None, optional(in_range(0, 1)), "None or a number in [0, 1)",
              "Co-teaching's tau (None: the noise rate, as the authors)"),
    Parameter("vog", "head", one_of(VOG_KINDS), f"one of {list(VOG_KINDS)}",
              "'head' (the paper's closed form) or 'input' (original VOG, input-pixel gradients)"),
    Parameter("mix_ratio", 0.2, in_range(0, 1, high_included=True), "a number in [0, 1]",
              "share of the kept samples chosen by lowest VOG"),
    Parameter("class_normalised", False, boolean, "True or False", "z-score VOG within each given label"),
    # cleanlab's own defaults: flag by the estimated noise rates, leave >= 1 sample of each label
    Parameter("cl_folds", 5, lambda v: whole(v) and v >= 2, "a whole number from 2 to train_size",
              "confident learning: folds of the out-of-sample probabilities cleanlab needs"),
    Parameter("cl_filter_by", "prune_by_noise_rate", one_of(FILTERS), f"one of cleanlab's {list(FILTERS)}",
              "cleanlab's find_label_issues filter_by (its default: by the estimated noise rates)"),
    Parameter("cl_min_examples_per_class", 1, whole, "a whole number >= 0",
              "cleanlab flags none of a given label that would leave fewer than this many"),
    Parameter("epochs", 15, positive_int, POSITIVE, "phase-1 epochs (cosine lr)", profiles={"smoke": 4, "paper": 50}),
    BATCH_SIZE.but(default=64, profiles={"paper": 256}),
    LR.but(default=0.02, doc="phase 1 (SGD, momentum 0.9, weight decay 1e-4); fine-tuning uses lr / 10",
           profiles={"paper": 0.01}),
    Parameter("ramp_epochs", 5, positive_int, POSITIVE, "epochs over which the forget rate rises from 0 to tau",
              profiles={"smoke": 2, "paper": 10}),
    Parameter("warmup_epochs", 5, whole, "a whole number >= 0", "epochs before VOG picks start",
              profiles={"smoke": 2, "paper": 10}),
    Parameter("window", 3, lambda v: positive_int(v) and v >= 2, "a whole number, at least 2 (a standard deviation "
              "needs two snapshots)", "epochs of gradient snapshots in VOG's standard deviation",
              profiles={"smoke": 2, "paper": 5}),
    Parameter("phase2_from", "coteaching_vog", one_of(METHODS), f"one of {list(METHODS)}",
              "the phase-1 method whose network and clean set phase 2 starts from"),
    Parameter("samplers", "all", names(SAMPLERS), f"'all' or a list of distinct names from {list(SAMPLERS)}",
              "'all' or a list of phase-2 samplers"),
    Parameter("smi_function", "flqmi", one_of(UNCONDITIONAL), f"one of {list(UNCONDITIONAL)}",
              "the SMI sampler's function"),
    Parameter("budget", 30, positive_int, POSITIVE, "expert labels per round", profiles={"smoke": 8, "paper": 70}),
    Parameter("rounds", 4, positive_int, POSITIVE, "relabeling rounds", profiles={"smoke": 2, "paper": 9}),
    Parameter("finetune_epochs", 2, positive_int, POSITIVE, "fine-tuning epochs per round",
              profiles={"smoke": 1, "paper": 25}),
    Parameter("correct_kept_noise", False, boolean, "True or False",
              "the authors' quirk: also fix, outside the budget, noisy samples phase 1 kept"),
    SEEDS.but(doc="each seed draws its own subset and noise"),
    MODEL,
    PRETRAIN.but(doc="None: phase 1 from random weights; 'simclr': from a backbone pretrained on the training images"),
    PRETRAIN_EPOCHS.but(doc="SimCLR epochs (pretrain only); the backbone is cached in <results_dir>/pretrained/"),
    Parameter("weights", None, optional(text), "None or the path of a local weights file (a PyTorch state dict)",
              "None, or a local state dict of backbone weights that fit `model` at 28 px, to start phase 1 from"),
    PRECISION,
    DEVICE,
    RESULTS_DIR.but(doc="records: <results_dir>/<experiment>/{phase1/<method>,<sampler>}/seed<k>.json (None: kept "
                        "nowhere)"),
    DATA_ROOT,
    VERIFY_DATA,
)


@dataclass(frozen=True)
class NoisyConfig:
    experiment: str
    profile: str
    changed: dict  # the parameters given other values than the profile's: name -> the profile's value
    dataset: str
    train_size: int | None  # None: the whole train split
    noise: str
    noise_rate: float
    rare_classes: list  # the minority classes: the SMI sampler's query classes, and the reported rare accuracy
    coteaching: CoTeachingConfig  # its vog is what coteaching_vog uses
    confident_learning: dict  # folds, filter_by, min_examples_per_class
    train: TrainConfig
    phase2_from: str
    samplers: list
    smi_function: str
    budget: int
    rounds: int
    finetune: TrainConfig
    correct_kept_noise: bool
    seeds: list
    model: str
    pretrain: PretrainConfig | None  # phase 1's networks start from a backbone pretrained without labels
    weights: str | None  # ... or from this local weights file
    device: str
    results_dir: str | None
    data_root: str | None
    verify_data: bool

    def table(self) -> pd.DataFrame:
        """The values, one row each, for display (nested parts as part.name)."""
        return settings_table(asdict(self))

    def title(self) -> str:
        """The set and its noise, e.g. 'PneumoniaMNIST, 40% symmetric label noise'."""
        return f"{set_name(self.dataset)}, {self.noise_rate:.0%} {self.noise} label noise"


def build(experiment: str, setting, p: dict, changed: dict) -> NoisyConfig:
    """The NoisyConfig of checked values `p`, after the checks that read several values at once; a weights
    file is read and fitted to the model now, before any training."""
    rare = p["rare_classes"]
    check_rare_classes_exist(p["dataset"], rare)
    need(p["cl_folds"] <= (p["train_size"] or p["cl_folds"]), "cl_folds", p["cl_folds"],
         "a whole number from 2 to train_size")
    need(p["cl_min_examples_per_class"] == 1 or p["cl_filter_by"] in KEEPS_MINIMUM, "cl_min_examples_per_class",
         p["cl_min_examples_per_class"], f"1 under cl_filter_by {p['cl_filter_by']!r}, which ignores it (it "
         f"applies under {list(KEEPS_MINIMUM)})")
    need(p["phase2_from"] != KEEPS_ALL, "phase2_from", p["phase2_from"],
         "a method that sets samples aside: cross-entropy keeps every sample, so phase 2 would have no pool")
    need(p["weights"] is None or p["pretrain"] is None, "weights", p["weights"],
         "None while pretrain is set: the networks start from one backbone, pretrained here or read from a file")
    if p["weights"] is not None and p["dataset"] in medmnist.INFO:
        try:
            backbone_from_file(p["weights"], p["model"], medmnist.INFO[p["dataset"]]["n_channels"])
        except ValueError as err:
            raise ConfigError(f"weights: {err}") from None
    forget = p["noise_rate"] if p["forget_rate"] is None else p["forget_rate"]
    try:
        coteaching = CoTeachingConfig(forget_rate=forget, ramp_epochs=p["ramp_epochs"], vog=p["vog"],
                                      mix_ratio=p["mix_ratio"], warmup_epochs=p["warmup_epochs"], window=p["window"],
                                      class_normalised=p["class_normalised"])
        phase1 = TrainConfig(epochs=p["epochs"], batch_size=p["batch_size"], lr=p["lr"], schedule="cosine",
                             weight_decay=1e-4, precision=p["precision"])
        finetune = TrainConfig(epochs=p["finetune_epochs"], batch_size=p["batch_size"], lr=p["lr"] / 10,
                               weight_decay=1e-4, precision=p["precision"])
    except (TypeError, ValueError) as err:
        raise ConfigError(f"phase-1 parameters: {err}") from None
    return NoisyConfig(
        experiment=experiment, profile=p["profile"], changed=changed, dataset=p["dataset"],
        train_size=p["train_size"], noise=p["noise"], noise_rate=float(p["noise_rate"]),
        rare_classes=None if rare is None else list(rare), coteaching=coteaching,
        confident_learning={"folds": p["cl_folds"], "filter_by": p["cl_filter_by"],
                            "min_examples_per_class": p["cl_min_examples_per_class"]},
        train=phase1, phase2_from=p["phase2_from"], samplers=chosen(p["samplers"], SAMPLERS),
        smi_function=p["smi_function"], budget=p["budget"], rounds=p["rounds"], finetune=finetune,
        correct_kept_noise=p["correct_kept_noise"], seeds=list(p["seeds"]), model=p["model"],
        pretrain=pretraining(p),
        weights=p["weights"], device=p["device"], results_dir=p["results_dir"], data_root=p["data_root"],
        verify_data=p["verify_data"])
