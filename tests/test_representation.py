"""Self-supervised pretraining (SimCLR through lightly), its cache, and the cold-start selection it serves."""
import subprocess
import sys

import numpy as np
import pytest
import torch

from clinical_utils.selection import SelectionError, smi_select, typiclust_select
from clinical_utils.training.representation import PretrainConfig, cache_key, pretrained_backbone, ssl_features
from exactness import exact

TINY = PretrainConfig(epochs=2, batch_size=32)


def _scans(n=64, seed=0):
    """Grey 28-pixel images of two kinds: dark with a bright square (rare, one in eight) or plain noise."""
    rng = np.random.default_rng(seed)
    images = rng.normal(90, 25, (n, 1, 28, 28)).clip(0, 255).astype(np.uint8)
    rare = np.arange(n) % 8 == 0
    images[rare, :, 8:20, 8:20] = 230
    return images, rare


def test_the_cache_key_changes_with_every_input_and_nothing_else():
    images, _ = _scans()
    key = cache_key(images, "small_cnn", TINY, 0)
    assert cache_key(images.copy(), "small_cnn", PretrainConfig(epochs=2, batch_size=32), 0) == key
    changed = images.copy()
    changed[3, 0, 0, 0] ^= 1
    others = [cache_key(changed, "small_cnn", TINY, 0), cache_key(images, "resnet18", TINY, 0),
              cache_key(images, "small_cnn", PretrainConfig(epochs=3, batch_size=32), 0),
              cache_key(images, "small_cnn", TINY, 1), cache_key(images[:-1], "small_cnn", TINY, 0)]
    assert len({key, *others}) == 6


def test_pretraining_is_cached_and_repeats_bit_for_bit(tmp_path):
    """The same key trained in a fresh process gives the same weights; a second call reads the cache."""
    images, _ = _scans()
    state = pretrained_backbone(images, "small_cnn", 0, TINY, tmp_path)
    cached = list(tmp_path.glob("small_cnn-simclr-*.pt"))
    assert len(cached) == 1 and cached[0].name == f"small_cnn-simclr-{cache_key(images, 'small_cnn', TINY, 0)}.pt"
    mtime = cached[0].stat().st_mtime_ns
    again = pretrained_backbone(images, "small_cnn", 0, TINY, tmp_path)
    assert cached[0].stat().st_mtime_ns == mtime  # read, not trained again
    fresh = tmp_path / "fresh"
    code = ("import numpy as np, sys; sys.path.insert(0, 'tests'); from test_representation import _scans, TINY; "
            "from clinical_utils.training.representation import pretrained_backbone; "
            f"pretrained_backbone(_scans()[0], 'small_cnn', 0, TINY, {str(fresh)!r})")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)
    other = torch.load(next(fresh.glob("*.pt")), weights_only=True)
    for name in state:
        exact(state[name].numpy(), again[name].numpy(), name)
        exact(state[name].numpy(), other[name].numpy(), name)
    untrained = pretrained_backbone(images, "small_cnn", 1, TINY)  # no cache: trained, nothing written
    assert any((state[n] != untrained[n]).any() for n in state if state[n].is_floating_point())


def test_pretrained_features_let_the_exemplars_find_the_rare_images():
    """A bright square in one image of eight: queries of that kind pick mostly such images on SimCLR features."""
    images, rare = _scans(256)
    state = pretrained_backbone(images, "small_cnn", 0, PretrainConfig(epochs=5, batch_size=64))
    feats = ssl_features(images, "small_cnn", state)
    assert feats.shape == (256, 128) and feats.dtype == np.float32
    queries, _ = _scans(8, seed=1)
    queries[:, :, 8:20, 8:20] = 230
    picks = smi_select("gcmi", feats, ssl_features(queries, "small_cnn", state), 16)
    assert rare[picks].mean() >= 0.5  # random: 1 in 8


def test_typiclust_takes_the_typical_point_of_each_uncovered_cluster():
    rng = np.random.default_rng(0)
    centres = np.array([[0, 0], [10, 0], [0, 10], [10, 10]], float)
    sizes = [40, 30, 20, 10]
    x = np.concatenate([c + rng.normal(size=(s, 2)) for c, s in zip(centres, sizes)])
    cluster = np.repeat(np.arange(4), sizes)
    picks = typiclust_select(x, 4, seed=0)
    assert len(set(picks.tolist())) == 4 and sorted(cluster[picks].tolist()) == [0, 1, 2, 3]
    assert cluster[picks[0]] == 0  # the largest uncovered cluster first
    # each pick is near its cluster's centre (typical), not an outlier
    assert np.linalg.norm(x[picks] - centres[cluster[picks]], axis=1).max() < 1.0
    labeled = centres[:2] + 0.1  # clusters 0 and 1 already labeled: the first picks go to the others
    assert sorted(cluster[typiclust_select(x, 2, labeled, seed=0)].tolist()) == [2, 3]
    with pytest.raises(SelectionError, match="larger than the pool"):
        typiclust_select(x, 101)


def test_bad_pretraining_input_is_named():
    with pytest.raises(ValueError, match="uint8"):
        pretrained_backbone(np.zeros((4, 1, 28, 28), np.float32))
    with pytest.raises(ValueError, match="unknown model"):
        pretrained_backbone(_scans()[0], "vit")
    with pytest.raises(ValueError, match="method"):
        PretrainConfig(method="byol")


def test_backbone_from_file_reads_checks_and_names_the_fix(tmp_path):
    """A classifier's state dict gives its backbone; torchvision's ResNet-18 (ImageNet's layout) fits resnet18 at
    64 px on 3 channels and is refused at 28 px, where the stem is 3x3; a missing or foreign file is named."""
    import torch
    import torchvision

    from clinical_utils.training.models import build_model
    from clinical_utils.training.representation import backbone_from_file

    source = build_model("small_cnn", 1, 4, seed=3)
    torch.save(source.state_dict(), tmp_path / "cnn.pt")
    state = backbone_from_file(tmp_path / "cnn.pt", "small_cnn", 1)
    assert state.keys() == source.backbone.state_dict().keys()
    for name, tensor in source.backbone.state_dict().items():
        exact(state[name], tensor)
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), tmp_path / "imagenet.pt")
    assert "fc.weight" not in backbone_from_file(tmp_path / "imagenet.pt", "resnet18", 3, 64)
    with pytest.raises(ValueError, match="does not fit resnet18's backbone .*conv1.weight.*3x3 stem"):
        backbone_from_file(tmp_path / "imagenet.pt", "resnet18", 3, 28)
    with pytest.raises(ValueError, match="does not exist"):
        backbone_from_file(tmp_path / "none.pt", "small_cnn", 1)
    (tmp_path / "text.pt").write_text("not weights")
    with pytest.raises(ValueError, match="is not a PyTorch state dict"):
        backbone_from_file(tmp_path / "text.pt", "small_cnn", 1)
