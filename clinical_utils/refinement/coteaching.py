"""Phase 1 of active label refinement: learning with noisy labels, and which samples it keeps as clean.

- Cross-entropy on the noisy labels: `train` from the engine; it keeps nothing aside (the baseline).
- Co-teaching (Han et al., NeurIPS 2018): two networks; in every mini-batch each keeps its (1 - tau(t)) share of
  smallest-loss samples and its peer trains on them. tau(t) ramps linearly from 0 to tau over `ramp_epochs`
  (the authors' `np.linspace(0, tau, 10)`), then stays.
- Co-teaching + VOG (Khanal et al., MICCAI 2024): after `warmup_epochs`, a `mix_ratio` share of the kept samples
  comes from the lowest Variance-of-Gradients samples not already kept by loss, so that clean minority-class
  samples, whose loss is large, are not all thrown away as noisy.

VOG, as the authors compute it: after every epoch, each sample's gradient of the loss (against its given label y)
with respect to the last layer's row for y, bias included, is (p_y - 1) [1, h(x)] in closed form; VOG is the
standard deviation of that vector over the last `window` epochs, averaged over its d + 1 entries. Options: the
original VOG (Agarwal et al., CVPR 2022: gradients of the class-y logit with respect to the input pixels, channel
mean) and per-class normalisation (z-scores within each given label).
"""
from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from ..training.train import TrainConfig, as_uint8_tensor, epoch_batches, normalise, optimizer, predict, resolve_device

VOG_KINDS = ("head", "input")


@dataclass(frozen=True)
class CoTeachingConfig:
    """forget_rate: tau, the share of each mini-batch treated as noisy once ramped (the noise rate when known).
    vog: None for plain Co-teaching, "head" (the paper's closed form) or "input" (Agarwal et al.)."""

    forget_rate: float
    ramp_epochs: int = 10
    vog: str | None = None
    mix_ratio: float = 0.2
    warmup_epochs: int = 10
    window: int = 5
    class_normalised: bool = False

    def __post_init__(self):
        if not 0 <= self.forget_rate < 1:
            raise ValueError(f"forget_rate must be in [0, 1), got {self.forget_rate}")
        if self.vog is not None and self.vog not in VOG_KINDS:
            raise ValueError(f"vog must be None or one of {VOG_KINDS}, got {self.vog!r}")
        if not 0 <= self.mix_ratio <= 1:
            raise ValueError(f"mix_ratio must be in [0, 1], got {self.mix_ratio}")
        if self.ramp_epochs < 1 or self.window < 2 or self.warmup_epochs < 0:
            raise ValueError("need ramp_epochs >= 1, window >= 2 and warmup_epochs >= 0")


@dataclass
class CoTeachingResult:
    kept: np.ndarray  # (N,) bool: what network 1 kept in its last epoch, the clean set handed to phase 2
    vog: np.ndarray | None  # (N,) network 1's last VOG scores (None without VOG)
    seconds: float
    history: list[dict] = field(default_factory=list)  # per epoch: forget rate, losses, share kept by VOG


def forget_schedule(forget_rate: float, ramp_epochs: int, epochs: int) -> np.ndarray:
    """tau(t) for t = 0..epochs-1: linspace(0, tau, ramp_epochs), then tau."""
    rates = np.full(epochs, forget_rate, dtype=np.float64)
    ramp = np.linspace(0, forget_rate, ramp_epochs)
    rates[:min(epochs, ramp_epochs)] = ramp[:epochs]
    return rates


def head_gradients(probs: np.ndarray, feats: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(N, d + 1): gradient of the cross-entropy at label y with respect to the head's row y, [bias, weights]:
    (p_y - 1) [1, h]."""
    coef = probs[np.arange(len(labels)), labels] - 1.0
    return (coef[:, None] * np.concatenate([np.ones((len(labels), 1), feats.dtype), feats], 1)).astype(np.float32)


def input_gradients(model, images, labels, device, batch_size: int = 512) -> np.ndarray:
    """(N, H * W): gradient of the class-y logit with respect to the input pixels, averaged over channels."""
    model.eval()
    x_all = as_uint8_tensor(images, device)
    y_all = torch.as_tensor(labels, device=device)
    out = []
    for lo in range(0, len(x_all), batch_size):
        x = normalise(x_all[lo:lo + batch_size], False).requires_grad_(True)
        logits = model(x)
        # in eval mode the samples are independent, so one backward of the sum gives every sample's gradient
        (grad,) = torch.autograd.grad(logits.gather(1, y_all[lo:lo + batch_size, None]).sum(), x)
        out.append(grad.mean(1).flatten(1).cpu())
    return torch.cat(out).numpy()


def vog_scores(snapshots, labels: np.ndarray | None = None) -> np.ndarray:
    """(N,) from snapshots (T, N, D): std over T (ddof 0), mean over D; with `labels`, z-scored within each label."""
    stacked = np.stack(list(snapshots))
    scores = stacked.std(0).mean(1)
    if labels is not None:
        for c in np.unique(labels):
            mine = labels == c
            sd = scores[mine].std()
            scores[mine] = (scores[mine] - scores[mine].mean()) / (sd if sd > 0 else 1.0)
    return scores


def select_kept(loss: torch.Tensor, keep: int, vog: torch.Tensor | None = None, mix_ratio: float = 0.0) -> torch.Tensor:
    """Positions into the batch that a network keeps: the `keep` smallest losses, or with VOG
    int((1 - mix_ratio) keep) smallest losses plus, of the rest, the lowest VOG up to `keep`."""
    order = torch.argsort(loss, stable=True)
    if vog is None:
        return order[:keep]
    by_loss = order[:int((1 - mix_ratio) * keep)]
    rest = order[len(by_loss):]
    by_vog = rest[torch.argsort(vog[rest], stable=True)[:keep - len(by_loss)]]
    return torch.cat([by_loss, by_vog])


def co_teaching(model_a: torch.nn.Module, model_b: torch.nn.Module, images, labels, config: CoTeachingConfig,
                train_config: TrainConfig = TrainConfig(), device: str | torch.device = "auto",
                seed: int = 0) -> CoTeachingResult:
    """Train two networks in place on uint8 images (N, C, H, W) and noisy labels (N,) by Co-teaching(+VOG)."""
    if train_config.class_weight is not None:  # the small-loss selection compares unweighted per-sample losses
        raise ValueError("co_teaching trains with plain cross-entropy; class_weight must be None, got "
                         f"{train_config.class_weight!r}")
    device = resolve_device(device)
    x_all = as_uint8_tensor(images, device)
    labels = np.asarray(labels, dtype=np.int64)
    y_all = torch.as_tensor(labels, device=device)
    n = len(labels)
    train_config = train_config.for_device(device)
    bf16 = train_config.precision == "bf16"
    models = (model_a.to(device), model_b.to(device))
    if bf16:
        for m in models:
            m.to(memory_format=torch.channels_last)
    opts, scheds = zip(*(optimizer(m, train_config, n) for m in models))
    rates = forget_schedule(config.forget_rate, config.ramp_epochs, train_config.epochs)
    snapshots = [deque(maxlen=config.window), deque(maxlen=config.window)]
    vog = [None, None]
    gen = torch.Generator().manual_seed(seed)
    kept_a = np.zeros(n, bool)
    history, start = [], time.perf_counter()
    for epoch in range(train_config.epochs):
        use_vog = config.vog is not None and epoch >= config.warmup_epochs and vog[0] is not None
        kept_a[:] = False
        sums = np.zeros(2)
        for m in models:
            m.train()
        for idx, x in epoch_batches(x_all, train_config, gen):
            y = y_all[idx.to(device)]
            keep = int((1 - rates[epoch]) * len(idx))
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                logits = [m(x) for m in models]
            losses = [F.cross_entropy(lg.float(), y, reduction="none") for lg in logits]
            picks = [select_kept(losses[i].detach(), keep,
                                 torch.as_tensor(vog[i][idx.numpy()], device=device) if use_vog else None,
                                 config.mix_ratio) for i in range(2)]
            kept_a[idx[picks[0].cpu()].numpy()] = True
            for i in range(2):  # each network learns from what its peer kept
                loss = losses[i][picks[1 - i]].mean()
                opts[i].zero_grad(set_to_none=True)
                loss.backward()
                opts[i].step()
                if scheds[i] is not None:
                    scheds[i].step()
                sums[i] += float(loss.detach()) * len(idx)
        if config.vog is not None:
            for i, m in enumerate(models):
                if config.vog == "head":
                    probs, feats = predict(m, images, device, features=True)
                    snapshots[i].append(head_gradients(probs, feats, labels))
                else:
                    snapshots[i].append(input_gradients(m, images, labels, device))
                if len(snapshots[i]) == config.window:
                    vog[i] = vog_scores(snapshots[i], labels if config.class_normalised else None)
        history.append({"epoch": epoch, "forget_rate": float(rates[epoch]), "loss_a": sums[0] / n,
                        "loss_b": sums[1] / n, "kept": float(kept_a.mean()), "vog_mixing": bool(use_vog)})
    return CoTeachingResult(kept_a.copy(), None if vog[0] is None else vog[0].copy(),
                            time.perf_counter() - start, history)


def clean_recall(kept, noisy, true, class_names=None) -> pd.DataFrame:
    """Per true class: clean samples (given label correct), how many were kept, recall = kept clean / clean;
    precision = kept clean / kept, over the samples kept whose given label is that class; and, as a detector of
    wrong labels over the samples *given* that label: flagged (not kept), flagged noisy (flagged with a wrong
    label), flag precision = flagged noisy / flagged, flag recall = flagged noisy / noisy; and an 'all' row."""
    kept, noisy, true = (np.asarray(a) for a in (kept, noisy, true))
    k = int(max(true.max(), noisy.max())) + 1
    names = list(class_names) if class_names is not None else [str(c) for c in range(k)]
    clean = noisy == true

    def share(part, whole) -> float:
        return float(part.sum() / whole.sum()) if whole.any() else float("nan")

    def row(name, mine, given) -> dict:  # mine: clean samples of the class; given: samples given its label
        flagged, wrong = given & ~kept, given & ~clean
        return {"class": name, "clean": int(mine.sum()), "kept clean": int((mine & kept).sum()),
                "recall": share(mine & kept, mine), "kept": int((given & kept).sum()),
                "precision": share(given & kept & clean, given & kept), "flagged": int(flagged.sum()),
                "flagged noisy": int((flagged & wrong).sum()), "flag precision": share(flagged & wrong, flagged),
                "flag recall": share(flagged & wrong, wrong)}

    rows = [row(names[c], clean & (true == c), noisy == c) for c in range(k)]
    rows.append(row("all", clean, np.ones_like(clean)))
    return pd.DataFrame(rows).set_index("class")
