import pytest
import torch

from clinical_utils.training.models import build_model


@pytest.mark.parametrize("name, channels, size, dim", [
    ("resnet18", 3, 28, 512), ("resnet18", 1, 64, 512), ("small_cnn", 1, 28, 128), ("small_cnn", 3, 64, 128),
])
def test_models_give_logits_and_penultimate_features(name, channels, size, dim):
    model = build_model(name, channels, n_classes=5, image_size=size).eval()
    x = torch.randn(4, channels, size, size)
    h = model.features(x)
    assert h.shape == (4, dim) and model.feature_dim == dim
    torch.testing.assert_close(model(x), model.head(h))
    assert model(x).shape == (4, 5)


def test_resnet18_28_has_the_medmnist_stem():
    net = build_model("resnet18", 1, 2, image_size=28).backbone
    assert net.conv1.kernel_size == (3, 3) and net.conv1.stride == (1, 1)
    assert isinstance(net.maxpool, torch.nn.Identity)
    big = build_model("resnet18", 1, 2, image_size=224).backbone
    assert big.conv1.kernel_size == (7, 7) and isinstance(big.maxpool, torch.nn.MaxPool2d)


def test_same_seed_same_weights_and_global_rng_untouched():
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = build_model("small_cnn", 1, 2, seed=7)
    after = torch.rand(1)
    assert torch.equal(before, after)  # building a model does not consume the caller's random stream
    b = build_model("small_cnn", 1, 2, seed=7)
    c = build_model("small_cnn", 1, 2, seed=8)
    for p, q, r in zip(a.parameters(), b.parameters(), c.parameters()):
        assert torch.equal(p, q)
    assert not torch.equal(a.head.weight, c.head.weight)


def test_unknown_model_is_rejected():
    with pytest.raises(ValueError, match="unknown model 'vgg'"):
        build_model("vgg", 1, 2)
