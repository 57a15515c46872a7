import numpy as np
import pytest
import torch

from clinical_utils import data as D
from clinical_utils.training.models import build_model
from clinical_utils.training.train import (TrainConfig, as_uint8_tensor, class_weights, classification_metrics, epoch_batches,
                                  evaluate, fixed_features, log_prior, native_bf16, predict, resolve_device, train)
from exactness import close, exact


@pytest.fixture
def blood(fixture_root):
    return D.load_medmnist("bloodmnist", root=fixture_root, verify=False)


def test_training_learns_the_fixture(blood):
    model = build_model("small_cnn", 3, 8)
    result = train(model, blood.train.images, blood.train.labels,
                   TrainConfig(epochs=8, batch_size=32, optimizer="adam", lr=3e-3), device="cpu")
    assert result.epochs == 8 and len(result.history) == 8
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    metrics = evaluate(model, blood.test.images, blood.test.labels, device="cpu")
    assert metrics["accuracy"] > 0.5  # chance is 1/8


def test_resnet18_trains_and_evaluates_on_cpu(blood):
    model = build_model("resnet18", 3, 8)
    before = model.head.weight.detach().clone()
    result = train(model, blood.train.images[:64], blood.train.labels[:64], TrainConfig(epochs=1, batch_size=32),
                   device="cpu")
    assert result.epochs == 1 and np.isfinite(result.history[0]["loss"])
    assert not torch.equal(before, model.head.weight)
    metrics = evaluate(model, blood.test.images, blood.test.labels, device="cpu")
    assert len(metrics["per_class_accuracy"]) == 8 and np.array(metrics["confusion_matrix"]).sum() == 80


def test_same_seed_gives_identical_weights_and_metrics_on_cpu(blood):
    def run(seed):
        model = build_model("small_cnn", 3, 8, seed=seed)
        train(model, blood.train.images, blood.train.labels, TrainConfig(epochs=2, batch_size=50), "cpu", seed=seed)
        return model, evaluate(model, blood.test.images, blood.test.labels, "cpu")

    (a, ma), (b, mb), (c, _) = run(0), run(0), run(1)
    for p, q in zip(a.state_dict().values(), b.state_dict().values()):
        assert torch.equal(p, q)
    assert ma == mb
    assert not torch.equal(a.head.weight, c.head.weight)


def test_precision_auto_is_bf16_where_the_device_computes_it_natively():
    cpu = "bf16" if native_bf16(torch.device("cpu")) else "fp32"
    assert TrainConfig().for_device(torch.device("cpu")).precision == cpu
    assert TrainConfig().for_device(torch.device("cuda")).precision == "bf16"
    assert TrainConfig().for_device(torch.device("mps")).precision == "fp32"
    assert TrainConfig(precision="fp32").for_device(torch.device("cuda")).precision == "fp32"  # explicit stays


def test_bf16_training_repeats_exactly_and_is_not_the_fp32_path(blood):
    """bf16 (autocast, channels-last) on the CPU: the same seed gives the same weights, and they are not fp32's,
    so the precision parameter really changes the arithmetic."""
    def run(precision):
        model = build_model("small_cnn", 3, 8)
        result = train(model, blood.train.images, blood.train.labels,
                       TrainConfig(epochs=3, batch_size=50, precision=precision), "cpu")
        return model.head.weight.detach(), result

    (a, fit), (b, _), (c, _) = run("bf16"), run("bf16"), run("fp32")
    assert torch.equal(a, b) and not torch.equal(a, c) and a.dtype == torch.float32
    assert fit.history[-1]["loss"] < fit.history[0]["loss"]


def test_stops_at_target_training_accuracy(blood):
    model = build_model("small_cnn", 3, 8)
    config = TrainConfig(epochs=30, batch_size=32, optimizer="adam", lr=3e-3, target_train_accuracy=0.9)
    result = train(model, blood.train.images, blood.train.labels, config, "cpu")
    assert result.epochs < 30 and result.train_accuracy >= 0.9
    assert all(e["accuracy"] < 0.9 for e in result.history[:-1])


def test_predict_returns_probabilities_and_features(blood):
    model = build_model("small_cnn", 3, 8)
    probs, feats = predict(model, blood.val.images, "cpu", batch_size=32, features=True)
    assert probs.shape == (80, 8) and feats.shape == (80, 128)
    np.testing.assert_allclose(probs.sum(1), 1, rtol=1e-5)
    np.testing.assert_allclose(predict(model, blood.val.images, "cpu", batch_size=7), probs, rtol=1e-5, atol=1e-6)


def test_metrics_on_a_known_example():
    labels = np.array([0, 0, 0, 1, 1, 2])
    probs = np.array([[.8, .1, .1], [.6, .3, .1], [.2, .7, .1], [.1, .8, .1], [.5, .4, .1], [.1, .1, .8]])
    m = classification_metrics(labels, probs)
    assert m["per_class_accuracy"] == pytest.approx([2 / 3, 1 / 2, 1.0])
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["balanced_accuracy"] == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)
    assert m["confusion_matrix"] == [[2, 1, 0], [1, 1, 0], [0, 0, 1]]
    f1 = [2 * (2 / 3) * (2 / 3) / (4 / 3), 0.5, 1.0]  # precision = recall per class here
    assert m["macro_f1"] == pytest.approx(np.mean(f1))
    assert 0.5 < m["auc"] <= 1


def test_binary_auc_and_absent_classes():
    labels = np.array([0, 0, 1, 1])
    probs = np.array([[.9, .1], [.4, .6], [.3, .7], [.2, .8]])
    assert classification_metrics(labels, probs)["auc"] == pytest.approx(1.0)
    m = classification_metrics(np.array([0, 0, 1]), np.array([[.9, .05, .05], [.2, .7, .1], [.1, .8, .1]]))
    assert np.isnan(m["auc"]) and np.isnan(m["per_class_accuracy"][2])
    assert m["per_class_accuracy"][:2] == [0.5, 1.0]


@pytest.mark.parametrize("kwargs, fragment", [
    ({"optimizer": "lbfgs"}, "optimizer 'lbfgs'"),
    ({"schedule": "step"}, "schedule 'step'"),
    ({"epochs": 0}, "epochs"),
    ({"lr": 0}, "lr"),
    ({"target_train_accuracy": 1.5}, "target_train_accuracy"),
    ({"precision": "fp16"}, "precision 'fp16'"),
    ({"class_weight": "inverse"}, "class_weight 'inverse'"),
])
def test_bad_config_is_rejected(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        TrainConfig(**kwargs)


def test_bad_images_are_rejected():
    model = build_model("small_cnn", 1, 2)
    with pytest.raises(ValueError, match="uint8"):
        train(model, np.zeros((4, 1, 28, 28), np.float32), np.zeros(4, int), device="cpu")


def test_device_resolution():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in {"cuda", "mps", "cpu"}
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no CUDA"):
            resolve_device("cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_training_path(blood):
    """bf16 autocast and channels-last on CUDA learn the fixture (brightness by class) as the CPU does."""
    config = TrainConfig(epochs=20, batch_size=32, optimizer="adam", lr=3e-3)
    model = build_model("small_cnn", 3, 8)
    result = train(model, blood.train.images, blood.train.labels, config, "cuda")
    assert result.epochs == 20 and next(model.parameters()).device.type == "cuda"
    assert evaluate(model, blood.test.images, blood.test.labels, "cuda")["accuracy"] >= 0.6  # chance: 0.125


def test_predictions_repeat_bit_for_bit_and_agree_across_batch_sizes():
    """predict repeats bit for bit at one batch size (the same kernels on the same shapes: every CPU). Another batch
    size runs other kernels, which add in another order on some CPUs (here batches of 1 and 2 images; on an AMX
    Xeon the default 128 against one batch of 300): within rounding on every CPU."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (300, 3, 28, 28), dtype=np.uint8)
    model = build_model("small_cnn", 3, 4, seed=0)
    train(model, images[:100], rng.integers(0, 4, 100), TrainConfig(epochs=1), "cpu")
    default = predict(model, images, "cpu", features=True)
    for ours, again in zip(default, predict(model, images, "cpu", features=True)):
        exact(ours, again)
    for batch_size in (1, 2, 300):
        for ours, other in zip(default, predict(model, images, "cpu", batch_size, True)):
            close(ours, other, rtol=1e-5, atol=1e-6)


def test_balanced_class_weights_are_scikit_learns_and_absent_classes_get_one():
    labels = np.array([0] * 40 + [2] * 2)
    np.testing.assert_allclose(class_weights(labels, 4), [42 / (2 * 40), 1.0, 42 / (2 * 2), 1.0])


def test_balanced_class_weights_make_the_model_predict_the_rare_class(blood):
    """40 common images against 2 rare ones: plain cross-entropy calls (almost) everything common; weighting the
    rare class by n / (K n_c) makes the same model, seed and batches predict it for more test images."""
    common, rare = np.flatnonzero(blood.train.labels == 1)[:40], np.flatnonzero(blood.train.labels == 0)[:2]
    idx = np.sort(np.concatenate([common, rare]))
    images, labels = blood.train.images[idx], (blood.train.labels[idx] == 0).astype(np.int64)
    predict_rare = {}
    for weight in (None, "balanced"):
        model = build_model("small_cnn", 3, 2, seed=0)
        train(model, images, labels, TrainConfig(epochs=10, batch_size=14, class_weight=weight), "cpu", seed=0)
        predict_rare[weight] = int((predict(model, blood.train.images, "cpu").argmax(1) == 1).sum())
    assert predict_rare["balanced"] > 2 * max(predict_rare[None], 1)


def test_logit_adjustment_makes_the_model_predict_the_rare_class_and_is_recorded_only_when_set(blood):
    """Menon et al.'s loss on 40 common images against 2 rare ones: training on logits + log(prior) moves the
    plain logits towards the rare class, as the balanced loss does."""
    common, rare = np.flatnonzero(blood.train.labels == 1)[:40], np.flatnonzero(blood.train.labels == 0)[:2]
    idx = np.sort(np.concatenate([common, rare]))
    images, labels = blood.train.images[idx], (blood.train.labels[idx] == 0).astype(np.int64)
    predict_rare = {}
    for tau in (None, 1.0):
        model = build_model("small_cnn", 3, 2, seed=0)
        train(model, images, labels, TrainConfig(epochs=10, batch_size=14, logit_adjust=tau), "cpu", seed=0)
        predict_rare[tau] = int((predict(model, blood.train.images, "cpu").argmax(1) == 1).sum())
    assert predict_rare[1.0] > 2 * max(predict_rare[None], 1)
    assert "logit_adjust" not in TrainConfig().as_record() and TrainConfig(logit_adjust=1.0).as_record()[
        "logit_adjust"] == 1.0
    np.testing.assert_allclose(log_prior(np.array([0, 0, 0, 1]), 3), np.log([3 / 5, 1 / 5, 1 / 5]))
    for bad in (0, -1.0, float("nan"), "1", True):
        with pytest.raises(ValueError, match="logit_adjust must be"):
            TrainConfig(logit_adjust=bad)


def test_head_only_trains_the_head_alone_and_keeps_the_backbone_and_its_statistics(blood):
    """A linear probe: every backbone tensor (weights and BatchNorm statistics) is bit for bit as it was, the head
    moved, and the option is recorded only when set."""
    model = build_model("small_cnn", 3, 8, seed=0)
    before = {name: t.clone() for name, t in model.state_dict().items()}
    result = train(model, blood.train.images, blood.train.labels,
                   TrainConfig(epochs=3, batch_size=32, head_only=True), "cpu", seed=0)
    after = model.state_dict()
    for name in before:
        if name.startswith("backbone."):
            exact(after[name], before[name])
        else:
            assert not torch.equal(after[name], before[name]), name
    assert result.epochs == 3
    assert "head_only" not in TrainConfig().as_record() and TrainConfig(head_only=True).as_record()["head_only"]
    with pytest.raises(ValueError, match="head_only must be True or False"):
        TrainConfig(head_only=1)


@pytest.mark.parametrize("flip", [True, False])
def test_head_only_batches_are_the_features_of_the_image_batches(blood, flip):
    """The head alone sees, batch for batch, the backbone's features of the images (flipped where they would be)
    that full training would see: features computed once stand in for the images, nothing else changes."""
    model = build_model("small_cnn", 3, 8, seed=0).eval()
    config = TrainConfig(batch_size=16, precision="fp32", flip=flip, head_only=True)
    x_all = as_uint8_tensor(blood.train.images[:70], torch.device("cpu"))
    features = fixed_features(model, x_all, config)
    pairs = list(zip(epoch_batches(x_all, config, torch.Generator().manual_seed(3), features),
                     epoch_batches(x_all, config, torch.Generator().manual_seed(3))))
    assert len(pairs) == 5  # 4 x 16 + 6
    with torch.no_grad():
        for (idx, batch), (same_idx, images) in pairs:
            exact(idx, same_idx)
            close(batch, model.features(images))
