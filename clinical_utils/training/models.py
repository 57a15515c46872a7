"""Classifiers: a feature extractor followed by one linear layer.

Every model maps float images (N, C, H, W) to logits (N, K) and exposes `features(x)` -> (N, d), the
penultimate activations that the linear `head` reads (d = 512 for ResNet-18, 128 for the small CNN).
Selection strategies use both: gradient embeddings are built from features, probabilities and the head.
"""
from __future__ import annotations

import torch
from torch import nn
from torchvision.models import resnet18

MODELS = ("resnet18", "small_cnn")


class Classifier(nn.Module):
    def __init__(self, backbone: nn.Module, feature_dim: int, n_classes: int):
        super().__init__()
        self.backbone = backbone
        self.feature_dim = feature_dim
        self.head = nn.Linear(feature_dim, n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


def _resnet18_backbone(in_channels: int, image_size: int) -> nn.Module:
    net = resnet18(weights=None)
    if image_size <= 32:
        # MedMNIST's ResNet-18 (28): a 3x3 stride-1 stem and no max-pool, so 28 px keeps enough resolution.
        net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
    else:
        net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    net.fc = nn.Identity()
    return net


def _small_cnn_backbone(in_channels: int) -> nn.Module:
    def block(c_in, c_out):
        return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]

    return nn.Sequential(
        *block(in_channels, 32), nn.MaxPool2d(2),
        *block(32, 64), nn.MaxPool2d(2),
        *block(64, 128), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
    )


def build_model(name: str, in_channels: int, n_classes: int, image_size: int = 28, seed: int = 0,
                backbone: dict | None = None) -> Classifier:
    """A freshly initialised classifier; the same seed gives the same weights, without touching global RNG state.
    backbone: a state dict (pretrained, or read from a file) that replaces the backbone's fresh weights."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {MODELS}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if name == "resnet18":
            model = Classifier(_resnet18_backbone(in_channels, image_size), 512, n_classes)
        else:
            model = Classifier(_small_cnn_backbone(in_channels), 128, n_classes)
    if backbone is not None:
        model.backbone.load_state_dict(backbone)
    return model
