"""Targeted active learning (CLINICAL): its notebook parameters, declared once, and the Config they resolve to.

Profiles: `smoke` (seconds: nbval regression tests), `quick` (the CPU default: small CNN trained until 99%
training accuracy or 30 epochs, 5 rounds, every strategy), `paper_cpu` (the authors' protocol on PneumoniaMNIST
at a CPU's size: ResNet-18, batch 20, 4 rounds, the strategies the authors' pipeline was run with, fp32 as its
reference records), `paper` (the authors' protocol: ResNet-18 retrained each round until 99% training accuracy,
batch 20, 5 seeds, 10 rounds of 20; for a GPU).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import medmnist
import pandas as pd

from ..active.loop import QUERY_MODES, STRATEGIES
from ..data import class_names, set_name
from ..params import ConfigError, check_rare_classes_exist, need, settings_table
from ..selection.inputs import EMBEDDINGS
from ..training.representation import PretrainConfig
from ..training.train import CLASS_WEIGHTS, TrainConfig
from .parameters import (BATCH_SIZE, DATA_ROOT, DATASET, DEVICE, LR, MODEL, PRECISION, PRETRAIN, PRETRAIN_EPOCHS,
                         PROFILE_ORDER, RESULTS_DIR, SEEDS, VERIFY_DATA, Parameter, boolean, chosen, distinct_indices,
                         in_range, names, number, one_of, optional, positive_int, pretraining, profile)

PROFILES = PROFILE_ORDER
AT_LEAST_ONE = "a number >= 1"

PARAMETERS = (
    profile(PROFILES),
    DATASET,
    Parameter("rare_classes", None, optional(distinct_indices),
              "a list of distinct class indices, e.g. [1] (None: the tail half, long-tail only)",
              "the classes targeted and reported as rare (long-tail: None, the tail half of `order`)"),
    Parameter("imbalance_ratio", 20, in_range(1, float("inf")), f"{AT_LEAST_ONE} (common images per rare image)",
              "common : rare images, in the labeled set and in the pool", setting="binary"),
    Parameter("imbalance_factor", 20, in_range(1, float("inf")), f"{AT_LEAST_ONE} (head class size / tail class "
              "size)", "head class size / tail class size, in the labeled set and in the pool", setting="longtail"),
    Parameter("order", None, optional(distinct_indices),
              "None (by train frequency) or a list of every class index once, from head (most images) to tail",
              "classes from head (most images) to tail (None: by train frequency); put a class last to make it the "
              "tail", setting="longtail"),
    Parameter("labeled_per_class", 100, positive_int, "a positive whole number",
              "initial labeled images per common class (rare: this / imbalance_ratio)",
              profiles={"smoke": 20}, setting="binary"),
    Parameter("pool_per_class", None, optional(positive_int), "a positive whole number, or None for all the train "
              "split allows", "unlabeled pool images per common class (None: all that remain)",
              # the authors' sizes (TRUST's 20:1 demo split) in paper_cpu and paper
              profiles={"smoke": 40, "paper_cpu": 1050, "paper": 1050}, setting="binary"),
    Parameter("labeled_max", 100, positive_int, "a positive whole number", "initial labeled images of the head "
              "class", profiles={"smoke": 20}, setting="longtail"),
    Parameter("pool_max", None, optional(positive_int), "a positive whole number, or None for all the train split "
              "allows", "unlabeled pool images of the head class (None: the most every class allows)",
              profiles={"smoke": 40, "paper_cpu": 1000, "paper": 1000}, setting="longtail"),
    Parameter("exemplars_per_class", 10, positive_int, "a positive whole number", "labeled held-out images per "
              "class, from val: the rare ones are the first queries",
              profiles={"smoke": 3, "paper_cpu": 20, "paper": 20}),
    Parameter("balanced_test", True, boolean, "True or False", "subsample the test split to equal class counts"),
    Parameter("budget", 20, positive_int, "a positive whole number", "images labeled per round",
              profiles={"smoke": 4}),
    Parameter("rounds", 5, positive_int, "a positive whole number", "selection rounds after the initial training",
              profiles={"smoke": 2, "paper_cpu": 4, "paper": 10}),
    Parameter("strategies", "all", names(STRATEGIES), f"'all' or a list of distinct names from {list(STRATEGIES)}",
              "'all' or a list: SMI functions and baselines by name",
              profiles={"paper_cpu": ["flmi", "flqmi", "gcmi", "logdetmi", "entropy", "badge", "random"]}),
    SEEDS.but(doc="one run per seed and strategy; each seed also draws its own split"),
    MODEL,
    # quick trains as the authors do, until 99% training accuracy, with a cap of 30 epochs: a fixed 10 epochs left
    # 2 of 10 PneumoniaMNIST initial models predicting no rare image at all (benchmarks/initial_collapse.py)
    Parameter("epochs", 30, positive_int, "a positive whole number", "epochs per round (the cap when "
              "target_train_accuracy is set)", profiles={"smoke": 3, "paper_cpu": 25, "paper": 150}),
    BATCH_SIZE.but(profiles={"paper_cpu": 20, "paper": 20}),
    LR.but(doc="SGD, momentum 0.9, weight decay 5e-4"),
    Parameter("target_train_accuracy", 0.99, optional(lambda v: number(v) and 0 < v <= 1),
              "None or a number in (0, 1]", "stop at this training accuracy, the authors' rule (None: always "
              "`epochs` epochs)", profiles={"smoke": None}),
    PRECISION,
    Parameter("class_weight", None, one_of(CLASS_WEIGHTS), f"one of {list(CLASS_WEIGHTS)}", "None: plain "
              "cross-entropy (the authors'); 'balanced': class c's loss weighted n / (K n_c)"),
    Parameter("logit_adjust", None, optional(lambda v: number(v) and v > 0), "None or a number > 0 (tau; 1 is Menon "
              "et al.'s)", "None: off; tau: train on logits + tau log(class prior), Menon et al.'s loss (1 is "
              "theirs)"),
    PRETRAIN.but(doc="None: from random weights (the authors'); 'simclr': backbone pretrained on labeled + pool, "
                     "no labels"),
    PRETRAIN_EPOCHS.but(doc="SimCLR epochs (pretrain only); the backbone is cached by a key of everything it "
                            "depends on"),
    Parameter("head_only", False, boolean, "True or False", "True: train a linear head on the fixed pretrained "
              "backbone (needs pretrain); False: fine-tune all"),
    Parameter("queries", "all", one_of(QUERY_MODES), f"one of {list(QUERY_MODES)}",
              "'all' rare exemplars as the query set, or only the 'misclassified' ones"),
    Parameter("embedding", "gradients", one_of(EMBEDDINGS), f"one of {list(EMBEDDINGS)}", "what SMI compares: "
              "'gradients' (authors'), 'gradients_rare' (pool at its likeliest rare label) or 'features'"),
    DEVICE,
    RESULTS_DIR.but(doc="run records go to <results_dir>/<experiment>/<strategy>/seed<k>.json (None: kept "
                        "nowhere)"),
    DATA_ROOT,
    VERIFY_DATA,
)


@dataclass(frozen=True)
class Config:
    """Every value one experiment runs with. results_dir None: a fresh temporary folder (nothing kept)."""

    experiment: str
    profile: str
    changed: dict  # the parameters given other values than the profile's: name -> the profile's value
    dataset: str
    setting: str
    rare_classes: list | None
    imbalance: float  # binary: common / rare images; longtail: head / tail class size
    order: list | None  # longtail: the classes from head to tail (None: by train frequency); binary: None
    labeled: int  # binary: per common class; longtail: the head class
    pool: int | None  # likewise; None: all the train split allows
    exemplars_per_class: int
    balanced_test: bool
    budget: int
    rounds: int
    strategies: list
    seeds: list
    model: str
    train: TrainConfig
    pretrain: PretrainConfig | None  # None: every round's network starts from random weights
    queries: str
    embedding: str
    device: str
    results_dir: str | None
    data_root: str | None
    verify_data: bool

    def table(self) -> pd.DataFrame:
        """The values, one row each, for display; changed values are marked with the profile's value."""
        return settings_table(asdict(self))

    def title(self) -> str:
        """The set, the setting and its imbalance, e.g. 'PneumoniaMNIST, binary imbalance 20:1 (pneumonia rare)'."""
        name = set_name(self.dataset)
        if self.setting == "longtail":
            return f"{name}, long-tail imbalance (head / tail {self.imbalance:g})"
        classes = class_names(self.dataset) if self.dataset in medmnist.INFO else None
        rare = " and ".join(classes[c] if classes else str(c) for c in self.rare_classes)
        return f"{name}, binary imbalance {self.imbalance:g}:1 ({rare} rare)"


def training(p: dict) -> tuple[TrainConfig, PretrainConfig | None]:
    """The training and pretraining checked values `p` ask for (epochs, batch_size, lr, target_train_accuracy,
    precision, class_weight, logit_adjust, head_only, pretrain, pretrain_epochs): a CLINICAL notebook's, and the
    labeling notebook's."""
    need(not p["head_only"] or p["pretrain"] is not None, "head_only", p["head_only"],
         "False unless pretrain is set (a linear head on an untrained backbone learns little)")
    try:
        train = TrainConfig(epochs=p["epochs"], batch_size=p["batch_size"], lr=p["lr"],
                            target_train_accuracy=p["target_train_accuracy"], precision=p["precision"],
                            class_weight=p["class_weight"], logit_adjust=p["logit_adjust"], head_only=p["head_only"])
    except (TypeError, ValueError) as err:
        raise ConfigError(f"training parameters: {err}") from None
    return train, pretraining(p)


def build(experiment: str, setting: str, p: dict, changed: dict) -> Config:
    """The Config of checked values `p`, after the checks that read several values at once."""
    rare, order = p["rare_classes"], p.get("order")
    need(rare is not None or setting == "longtail", "rare_classes", rare,
         "a list of class indices: binary imbalance needs the rare classes named")
    k = check_rare_classes_exist(p["dataset"], rare)
    if k is not None:
        need(order is None or sorted(order) == list(range(k)), "order", order,
             f"every class of {p['dataset']} (0..{k - 1}) once, from head to tail")
    train, pretrain = training(p)
    binary = setting == "binary"
    return Config(
        experiment=experiment, profile=p["profile"], changed=changed, dataset=p["dataset"], setting=setting,
        rare_classes=None if rare is None else list(rare),
        imbalance=p["imbalance_ratio"] if binary else p["imbalance_factor"],
        order=None if order is None else list(order),
        labeled=p["labeled_per_class"] if binary else p["labeled_max"],
        pool=p["pool_per_class"] if binary else p["pool_max"],
        exemplars_per_class=p["exemplars_per_class"], balanced_test=p["balanced_test"], budget=p["budget"],
        rounds=p["rounds"], strategies=chosen(p["strategies"], STRATEGIES), seeds=list(p["seeds"]),
        model=p["model"], train=train, pretrain=pretrain,
        queries=p["queries"], embedding=p["embedding"], device=p["device"], results_dir=p["results_dir"],
        data_root=p["data_root"], verify_data=p["verify_data"])
