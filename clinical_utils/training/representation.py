"""A representation learned from the images alone, no labels: SimCLR pretraining of a model's backbone through
lightly (its projection head, NT-Xent loss and SimCLR augmentations), cached so that every strategy and round of a
seed shares one.

    state = pretrained_backbone(images, "small_cnn", seed=0, cache_dir="results/cache")   # backbone weights
    feats = ssl_features(images, "small_cnn", state)                                      # (N, d) float32

A cached result is reused only when everything that made it is equal: the images' bytes, the model, every
setting of `PretrainConfig`, the seed, the device kind and thread count, and the versions of this package, torch,
torchvision, lightly and Pillow (its file name carries their SHA-1). On the CPU two runs with the same key give
the same weights bit for bit.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..records import write_atomic
from .models import MODELS, build_model
from .train import predict, resolve_device

METHODS = ("simclr",)


@dataclass(frozen=True)
class PretrainConfig:
    """SimCLR's settings. Crops keep at least `min_scale` of the image (a 28-pixel scan cropped to 8% loses the
    finding); colour jitter is brightness and contrast only (greyscale scans have no hue)."""
    method: str = "simclr"
    epochs: int = 10  # benchmarks/cold_start.py measured cold-start picks at 10
    batch_size: int = 256
    lr: float = 1e-3  # Adam
    temperature: float = 0.5
    min_scale: float = 0.5
    projection_dim: int = 64

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"pretraining method {self.method!r} is unknown; use one of {METHODS}")
        if not (isinstance(self.epochs, int) and self.epochs >= 1 and isinstance(self.batch_size, int)
                and self.batch_size >= 2):
            raise ValueError(f"epochs ({self.epochs}) must be >= 1 and batch_size ({self.batch_size}) >= 2")
        if not 0 < self.min_scale <= 1:
            raise ValueError(f"min_scale must be in (0, 1], got {self.min_scale}")


def cache_key(images: np.ndarray, model_name: str, config: PretrainConfig, seed: int,
              device: str | torch.device = "cpu") -> str:
    """SHA-1 of everything a pretrained backbone depends on (see the module docstring)."""
    digest = hashlib.sha1(np.ascontiguousarray(images).tobytes())
    digest.update(repr(images.shape).encode())
    made_by = {name: version(name) for name in ("clinical-utils", "torch", "torchvision", "lightly", "pillow")}
    digest.update(json.dumps({"model": model_name, "seed": seed, **asdict(config), **made_by,
                              "device": resolve_device(device).type, "threads": torch.get_num_threads()},
                             sort_keys=True).encode())
    return digest.hexdigest()


def pretrained_backbone(images, model_name: str = "small_cnn", seed: int = 0, config: PretrainConfig = PretrainConfig(),
                        cache_dir: str | Path | None = None, device: str | torch.device = "cpu") -> dict:
    """The backbone state dict of `model_name` pretrained on uint8 images (N, C, H, W) by `config.method`,
    read from `cache_dir` when the same key was trained before (None: no cache), else trained and written there
    atomically."""
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or len(images) < 2:
        raise ValueError(f"images must be uint8 (N, C, H, W) with N >= 2, got {images.dtype} {images.shape}")
    if model_name not in MODELS:
        raise ValueError(f"unknown model {model_name!r}; choose one of {MODELS}")
    path = None
    if cache_dir is not None:
        key = cache_key(images, model_name, config, seed, device)
        path = Path(cache_dir) / f"{model_name}-{config.method}-{key}.pt"
        if path.exists():
            return torch.load(path, map_location="cpu", weights_only=True)
    state = _simclr(images, model_name, seed, config, resolve_device(device))
    if path is not None:
        write_atomic(path, lambda tmp: torch.save(state, tmp))
    return state


def backbone_from_file(path: str | Path, model_name: str, in_channels: int, image_size: int = 28) -> dict:
    """The backbone state dict in a local weights file (e.g. ImageNet weights this machine cannot download),
    checked against `model_name`'s backbone for `in_channels` and `image_size` before anything trains. The file
    holds a backbone's state dict, a whole classifier's ("backbone." keys; its head is dropped) or torchvision's
    ResNet-18 (its fc layer is dropped)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"weights file {path} does not exist: give the path of a state dict saved by "
                         "torch.save(model.state_dict(), path), or weights=None")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch names the problem; the fix is the same whatever it is
        raise ValueError(f"weights file {path} is not a PyTorch state dict ({type(err).__name__}: {err}); save "
                         "one with torch.save(model.state_dict(), path)") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"weights file {path} holds a {type(state).__name__}, not a state dict of tensors; save "
                         "one with torch.save(model.state_dict(), path)")
    if any(k.startswith("backbone.") for k in state):
        state = {k.removeprefix("backbone."): v for k, v in state.items() if k.startswith("backbone.")}
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    backbone = build_model(model_name, in_channels, 2, image_size).backbone
    try:
        backbone.load_state_dict(state)
    except RuntimeError as err:
        detail = " ".join(str(err).split())
        raise ValueError(f"weights file {path} does not fit {model_name}'s backbone ({in_channels} channels, "
                         f"{image_size} px): {detail[:400]}. torchvision's ImageNet ResNet-18 fits resnet18 on 3 "
                         "channels at 64 px or more (28 px uses a 3x3 stem)") from None
    return state


def ssl_features(images, model_name: str, state: dict, device: str | torch.device = "cpu") -> np.ndarray:
    """Penultimate features (N, d) float32 of uint8 images (N, C, H, W) through a pretrained backbone."""
    images = np.asarray(images)
    model = build_model(model_name, images.shape[1], 2, images.shape[2], backbone=state)
    return predict(model, images, device, features=True)[1]


def _views(transform, pictures: list[Image.Image], channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Two augmented views (B, C, H, W) of each picture; grey scans go through as RGB and come back as one channel
    (brightness and contrast keep the three channels equal)."""
    pairs = [transform(p) for p in pictures]
    a, b = (torch.stack([pair[i][:channels] for pair in pairs]) for i in (0, 1))
    return a, b


def _simclr(images: np.ndarray, model_name: str, seed: int, config: PretrainConfig, device: torch.device) -> dict:
    from lightly.loss import NTXentLoss
    from lightly.models.modules import SimCLRProjectionHead
    from lightly.transforms import SimCLRTransform

    n, channels, size = len(images), images.shape[1], images.shape[2]
    transform = SimCLRTransform(input_size=size, cj_prob=0.8, cj_strength=0.5, cj_sat=0.0, cj_hue=0.0,
                                min_scale=config.min_scale, random_gray_scale=0.0, gaussian_blur=0.0,
                                hf_prob=0.5, normalize={"mean": [0.5] * 3, "std": [0.5] * 3})
    pictures = [Image.fromarray(im[0] if channels == 1 else im.transpose(1, 2, 0)).convert("RGB") for im in images]
    with torch.random.fork_rng():  # the crops and jitters draw from torch's generators: seeded here, restored after
        torch.manual_seed(seed)
        model = build_model(model_name, channels, 2, size, seed=seed)
        backbone = model.backbone.to(device).train()
        head = SimCLRProjectionHead(model.feature_dim, model.feature_dim, config.projection_dim).to(device)
        criterion = NTXentLoss(temperature=config.temperature)
        opt = torch.optim.Adam([*backbone.parameters(), *head.parameters()], lr=config.lr)
        gen = torch.Generator().manual_seed(seed)
        for _ in range(config.epochs):
            order = torch.randperm(n, generator=gen).tolist()
            for lo in range(0, n - 1, config.batch_size):
                batch = order[lo:lo + config.batch_size]
                if len(batch) < 2:  # BatchNorm and the loss need two images
                    continue
                a, b = (v.to(device) for v in _views(transform, [pictures[i] for i in batch], channels))
                loss = criterion(head(backbone(a)), head(backbone(b)))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
    return {name: t.detach().cpu().clone() for name, t in backbone.state_dict().items()}
