"""A fast training engine for small images: the whole split lives on the device as one uint8 tensor.

Batches are drawn by index permutation and augmented on tensors (random horizontal flips), so the loop
does no per-image Python work. `class_weight="balanced"` weighs each image's loss by its class's n / (K n_c)
(scikit-learn's rule over the K classes present; a batch's loss is the weighted mean, PyTorch's cross_entropy
weight), which makes a collapsed small model, one calling every image common, much rarer
(benchmarks/initial_collapse.py). `logit_adjust=tau` trains on logits + tau log(prior), the labeled set's class
frequencies (the logit-adjusted loss of Menon et al., ICLR 2021), and predicts with the plain logits: a
long-tail-aware loss whose minimiser is the balanced error's. `head_only=True` trains the linear head alone on a
fixed backbone (a linear probe of pretrained features: `representation`). With precision "bf16" it trains under
bf16 autocast in channels-last layout: "auto" takes it on CUDA and on CPUs with native bf16 (AVX512-BF16 or AMX),
where it trains a small CNN about 2x faster than fp32 (benchmarks/bench_training.py). Everything random comes from
`seed`: on the CPU two runs with the same seed, precision, thread count and oneDNN kernels
(environment.REFERENCE_ISA) give identical weights.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import (accuracy_score, balanced_accuracy_score, confusion_matrix, f1_score,
                             recall_score, roc_auc_score)
from sklearn.utils.class_weight import compute_class_weight
from tqdm import tqdm

OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("constant", "cosine")
PRECISIONS = ("auto", "bf16", "fp32")
CLASS_WEIGHTS = (None, "balanced")
# Options added after the first run records were made, at the value that computes what those records computed:
# a record stores such an option only when it has another value, so the earlier records stay equal to new runs.
ADDED_OPTIONS = {"class_weight": None, "logit_adjust": None, "head_only": False}


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """'auto' picks CUDA, then MPS, then the CPU; an explicit device must be available."""
    if str(device) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' was asked for but torch sees no CUDA GPU; use device='auto' or 'cpu'")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise RuntimeError("device 'mps' was asked for but is not available; use device='auto' or 'cpu'")
    return device


def native_bf16(device: torch.device) -> bool:
    """Whether `device` computes bf16 in fast kernels: CUDA, or a CPU where torch runs bf16 through oneDNN (torch's
    own test: AVX512 and up, native with AVX512-BF16 or AMX, emulated on older AVX512 CPUs; it follows
    ONEDNN_MAX_CPU_ISA). Elsewhere bf16 products fall back to slow generic kernels."""
    if device.type == "cuda":
        return True
    if device.type != "cpu" or not torch.backends.mkldnn.is_available():
        return False
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a torch build without the query: assume no
        return False


@dataclass(frozen=True)
class TrainConfig:
    """How to train. `epochs` is a fixed count, or the cap when `target_train_accuracy` is set
    (the authors' rule: stop once the epoch's running training accuracy reaches it, e.g. 0.99)."""

    epochs: int = 20
    batch_size: int = 128
    optimizer: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "constant"
    target_train_accuracy: float | None = None
    flip: bool = True
    precision: str = "auto"  # "bf16": autocast + channels-last; "fp32"; "auto": bf16 where native_bf16
    class_weight: str | None = None  # None: plain cross-entropy; "balanced": class c weighted n / (K n_c), K present
    logit_adjust: float | None = None  # None: off; tau: train on logits + tau log(class prior) (Menon et al.: 1)
    head_only: bool = False  # train the linear head alone: the backbone (e.g. pretrained) stays as it is

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer {self.optimizer!r} is unknown; use one of {OPTIMIZERS}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule {self.schedule!r} is unknown; use one of {SCHEDULES}")
        if self.epochs < 1 or self.batch_size < 2:
            raise ValueError(f"epochs ({self.epochs}) must be >= 1 and batch_size ({self.batch_size}) >= 2")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if self.target_train_accuracy is not None and not 0 < self.target_train_accuracy <= 1:
            raise ValueError(f"target_train_accuracy must be in (0, 1], got {self.target_train_accuracy}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision {self.precision!r} is unknown; use one of {PRECISIONS}")
        if self.class_weight not in CLASS_WEIGHTS:
            raise ValueError(f"class_weight {self.class_weight!r} is unknown; use one of {CLASS_WEIGHTS}")
        if self.logit_adjust is not None and (isinstance(self.logit_adjust, bool) or not (
                isinstance(self.logit_adjust, (int, float))
                and math.isfinite(self.logit_adjust) and self.logit_adjust > 0)):
            raise ValueError(f"logit_adjust must be None or a number > 0 (tau; 1 is Menon et al.'s), got "
                             f"{self.logit_adjust!r}")
        if not isinstance(self.head_only, bool):
            raise ValueError(f"head_only must be True or False, got {self.head_only!r}")

    def for_device(self, device: torch.device) -> "TrainConfig":
        """This config with "auto" precision resolved for `device`, as records store it."""
        if self.precision != "auto":
            return self
        return replace(self, precision="bf16" if native_bf16(device) else "fp32")

    def as_record(self) -> dict:
        """The values a run record stores: every field, except `ADDED_OPTIONS` left at their original value."""
        return {name: value for name, value in asdict(self).items()
                if name not in ADDED_OPTIONS or value != ADDED_OPTIONS[name]}


def class_weights(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """scikit-learn's "balanced" weights n / (K n_c) (n_classes,) over the classes present in labels (N,); an absent
    class, which no loss term has, gets 1."""
    weights = np.ones(n_classes)
    present = np.unique(labels)
    weights[present] = compute_class_weight("balanced", classes=present, y=labels)
    return weights


def log_prior(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """log of the class frequencies (n_classes,) of labels (N,); an absent class counts as one image, so that its
    logit stays finite."""
    counts = np.maximum(np.bincount(labels, minlength=n_classes), 1)
    return np.log(counts / counts.sum())


@dataclass
class TrainResult:
    epochs: int
    train_accuracy: float  # running accuracy over the last epoch's batches
    seconds: float
    history: list[dict] = field(default_factory=list)  # per epoch: loss, accuracy


def as_uint8_tensor(images, device: torch.device) -> torch.Tensor:
    """images as a uint8 (N, C, H, W) tensor on `device`; anything else is a ValueError saying what it got."""
    images = torch.as_tensor(images)
    if images.dtype != torch.uint8 or images.ndim != 4:
        raise ValueError(f"images must be uint8 (N, C, H, W), got {images.dtype} {tuple(images.shape)}")
    return images.to(device)


def normalise(batch: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """uint8 -> float in [-1, 1], as MedMNIST's Normalize(mean=.5, std=.5)."""
    x = batch.float().mul_(2 / 255).sub_(1)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def optimizer(model: torch.nn.Module, config: TrainConfig, n: int):
    """The optimizer `config` names for `model` (its head alone with `head_only`), and its per-step cosine schedule
    (None for constant) over config.epochs epochs of n images."""
    params = model.head.parameters() if config.head_only else model.parameters()
    if config.optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    else:
        opt = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    total_steps = config.epochs * math.ceil(n / config.batch_size)
    return opt, (torch.optim.lr_scheduler.CosineAnnealingLR(opt, total_steps) if config.schedule == "cosine"
                 else None)


def epoch_batches(x_all: torch.Tensor, config: TrainConfig, gen: torch.Generator,
                  features: torch.Tensor | None = None):
    """One epoch of training batches: (indices (B,) on the CPU, normalised and flipped images on x_all's device).

    The order and the flips come from `gen`, drawn at the start of the epoch, so the stream does not depend on
    the device. A last batch of one image is skipped (BatchNorm cannot train on it; it is drawn again next epoch).
    features: for `head_only`, the fixed backbone's features (2, N, d) of each image as it is [0] and flipped [1];
    the batches are then those features, drawn as the images would be.
    """
    n = len(x_all)
    order = torch.randperm(n, generator=gen)
    flips = torch.rand(n, generator=gen) < 0.5
    channels_last = config.precision == "bf16"
    for lo in range(0, n, config.batch_size):
        idx = order[lo:lo + config.batch_size]
        if len(idx) < 2:
            continue
        idx_dev = idx.to(x_all.device)
        if features is not None:
            yield idx, features[(flips[idx] & config.flip).long().to(x_all.device), idx_dev]
            continue
        x = normalise(x_all[idx_dev], channels_last)
        if config.flip:
            x = torch.where(flips[idx].to(x_all.device)[:, None, None, None], x.flip(3), x)
        yield idx, x


@torch.no_grad()
def fixed_features(model: torch.nn.Module, x_all: torch.Tensor, config: TrainConfig) -> torch.Tensor:
    """The backbone's features (2, N, d) float32 of uint8 images (N, C, H, W), as they are and flipped, in eval
    mode: what a head trained alone (`head_only`) sees, computed once instead of every epoch."""
    bf16 = config.precision == "bf16"
    model.backbone.eval()
    out = []
    for flip in (False, True):
        parts = []
        for lo in range(0, len(x_all), 256):
            x = normalise(x_all[lo:lo + 256], bf16)
            with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
                parts.append(model.features(x.flip(3) if flip else x).float())
        out.append(torch.cat(parts))
    return torch.stack(out)


def train(model: torch.nn.Module, images, labels, config: TrainConfig = TrainConfig(),
          device: str | torch.device = "auto", seed: int = 0, progress: bool | None = None) -> TrainResult:
    """Train `model` (a `models.Classifier`) in place on uint8 images (N, C, H, W) and integer labels (N,).

    progress: True/False, or None for tqdm's rule (shown only on a terminal).
    """
    device = resolve_device(device)
    x_all = as_uint8_tensor(images, device)
    labels = np.asarray(labels)
    y_all = torch.as_tensor(labels, dtype=torch.long).to(device)
    n = len(y_all)
    if n != len(x_all) or n < 2:
        raise ValueError(f"need at least 2 images with one label each; got {len(x_all)} images, {n} labels")
    config = config.for_device(device)
    bf16 = config.precision == "bf16"
    model.to(device)
    if bf16:
        model.to(memory_format=torch.channels_last)
    opt, sched = optimizer(model, config, n)
    weight = None
    if config.class_weight == "balanced":
        weight = torch.as_tensor(class_weights(labels, model.head.out_features), dtype=torch.float32,
                                 device=device)
    offset = None  # logit adjustment: added to the logits in the loss only
    if config.logit_adjust is not None:
        offset = config.logit_adjust * torch.as_tensor(log_prior(labels, model.head.out_features),
                                                       dtype=torch.float32, device=device)
    gen = torch.Generator().manual_seed(seed)  # CPU generator: same stream on every device
    history, start = [], time.perf_counter()
    bar = tqdm(range(config.epochs), desc="train", unit="epoch", disable=None if progress is None else not progress,
               leave=False)
    features = None
    if config.head_only:  # the backbone, its BatchNorm statistics too, stays as it is
        features = fixed_features(model, x_all, config)
    model.train()
    if config.head_only:
        model.backbone.eval()
    for _ in bar:
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        seen = 0
        for idx, x in epoch_batches(x_all, config, gen, features):
            y = y_all[idx.to(device)]
            # a head alone trains in fp32: on its small products autocast costs more than it saves (4x here)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16 and features is None):
                logits = model(x) if features is None else model.head(x)
                loss = F.cross_entropy(logits if offset is None else logits + offset, y, weight=weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
            loss_sum += loss.detach() * len(idx)
            correct += (logits.argmax(1) == y).sum()
            seen += len(idx)
        epoch = {"loss": float(loss_sum) / seen, "accuracy": int(correct) / seen}
        history.append(epoch)
        bar.set_postfix(loss=f"{epoch['loss']:.3f}", acc=f"{epoch['accuracy']:.3f}")
        if config.target_train_accuracy is not None and epoch["accuracy"] >= config.target_train_accuracy:
            break
    bar.close()
    return TrainResult(len(history), history[-1]["accuracy"], time.perf_counter() - start, history)


@torch.inference_mode()
def predict(model: torch.nn.Module, images, device: str | torch.device = "auto", batch_size: int | None = None,
            features: bool = False):
    """Class probabilities (N, K) float32, and with `features=True` also penultimate features (N, d).

    batch_size: None for 128 images on the CPU (ResNet-18 (28) on 1,103 images: 4.8 s against 6.9 s at 1,024 with
    glibc's default malloc settings; with the batch's MALLOC_TUNING as fast as any of 16-256, of which 64 and
    smaller change the outputs' last bits, benchmarks/select_step.py) and 1,024 elsewhere.
    """
    device = resolve_device(device)
    batch_size = batch_size or (128 if device.type == "cpu" else 1024)
    x_all = as_uint8_tensor(images, device)
    cuda = device.type == "cuda"
    model.to(device).eval()
    probs, feats = [], []
    for lo in range(0, len(x_all), batch_size):
        x = normalise(x_all[lo:lo + batch_size], cuda)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
            h = model.features(x)
            logits = model.head(h)
        probs.append(torch.softmax(logits.float(), 1).cpu())
        if features:
            feats.append(h.float().cpu())
    p = torch.cat(probs).numpy()
    return (p, torch.cat(feats).numpy()) if features else p


def classification_metrics(labels, probs) -> dict:
    """Per-class accuracy (recall), accuracy, balanced accuracy, macro-F1, one-vs-rest AUC and the
    confusion matrix, from true labels (N,) and probabilities (N, K). Undefined values are NaN
    (a class absent from `labels` has no accuracy; AUC needs every class present)."""
    labels = np.asarray(labels)
    probs = np.asarray(probs, dtype=np.float64)
    k = probs.shape[1]
    classes = np.arange(k)
    pred = probs.argmax(1)
    present = np.isin(classes, labels)
    per_class = recall_score(labels, pred, labels=classes, average=None, zero_division=0.0)
    per_class = np.where(present, per_class, np.nan)
    probs = probs / probs.sum(1, keepdims=True)
    if present.all():
        auc = roc_auc_score(labels, probs[:, 1]) if k == 2 else roc_auc_score(
            labels, probs, multi_class="ovr", labels=classes)
    else:
        auc = float("nan")
    return {
        "per_class_accuracy": per_class.tolist(),
        "accuracy": float(accuracy_score(labels, pred)),
        "balanced_accuracy": float(balanced_accuracy_score(labels, pred)),
        "macro_f1": float(f1_score(labels, pred, labels=classes, average="macro", zero_division=0.0)),
        "auc": float(auc),
        "confusion_matrix": confusion_matrix(labels, pred, labels=classes).tolist(),
    }


def evaluate(model: torch.nn.Module, images, labels, device: str | torch.device = "auto",
             batch_size: int | None = None) -> dict:
    """`classification_metrics` of the model's predictions on uint8 images (N, C, H, W)."""
    return classification_metrics(labels, predict(model, images, device, batch_size))
