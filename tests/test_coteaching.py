import numpy as np
import pytest
import torch
import torch.nn.functional as F

from clinical_utils.refinement.coteaching import (CoTeachingConfig, clean_recall, co_teaching, forget_schedule, head_gradients,
                                  input_gradients, select_kept, vog_scores)
from clinical_utils.training.models import build_model
from clinical_utils.training.train import TrainConfig, predict


def test_head_gradient_closed_form_equals_autograd():
    model = build_model("small_cnn", 1, 4, seed=0).eval()
    x = torch.randn(6, 1, 28, 28)
    y = torch.tensor([0, 1, 2, 3, 1, 0])
    images = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    xn = images.float() * (2 / 255) - 1
    probs, feats = predict(model, images.numpy(), "cpu", features=True)
    closed = head_gradients(probs, feats, y.numpy())
    for i in range(6):
        model.zero_grad()
        F.cross_entropy(model(xn[i:i + 1]), y[i:i + 1]).backward()
        row = torch.cat([model.head.bias.grad[y[i]].reshape(1), model.head.weight.grad[y[i]]])
        np.testing.assert_allclose(closed[i], row.numpy(), rtol=1e-4, atol=1e-6)


def test_input_gradients_match_autograd_per_sample():
    model = build_model("small_cnn", 3, 3, seed=1).eval()
    images = torch.randint(0, 256, (5, 3, 28, 28), dtype=torch.uint8)
    y = np.array([2, 0, 1, 1, 2])
    got = input_gradients(model, images.numpy(), y, torch.device("cpu"), batch_size=2)
    for i in range(5):
        x = (images[i:i + 1].float() * (2 / 255) - 1).requires_grad_(True)
        model(x)[0, y[i]].backward()
        np.testing.assert_allclose(got[i], x.grad[0].mean(0).flatten().numpy(), rtol=1e-4, atol=1e-7)


def test_vog_is_the_windowed_std_averaged_and_optionally_class_normalised():
    rng = np.random.default_rng(0)
    snaps = [rng.normal(size=(8, 3)) for _ in range(4)]
    expected = np.stack(snaps).std(0).mean(1)
    np.testing.assert_allclose(vog_scores(snaps), expected)
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    normed = vog_scores(snaps, labels)
    for c in (0, 1):
        assert abs(normed[labels == c].mean()) < 1e-9 and normed[labels == c].std() == pytest.approx(1)


def test_forget_schedule_ramps_linearly_then_stays():
    rates = forget_schedule(0.6, ramp_epochs=4, epochs=7)
    np.testing.assert_allclose(rates, [0, 0.2, 0.4, 0.6, 0.6, 0.6, 0.6])
    np.testing.assert_allclose(forget_schedule(0.5, 10, 3), [0, 0.5 / 9, 1 / 9])


def test_select_kept_mixes_small_loss_and_low_vog():
    loss = torch.tensor([0.1, 5.0, 0.2, 4.0, 3.0, 0.3, 6.0, 2.0, 1.0, 7.0])
    vog = torch.tensor([9.0, 0.1, 9.0, 8.0, 0.2, 9.0, 7.0, 9.0, 9.0, 0.05])
    assert sorted(select_kept(loss, 4).tolist()) == [0, 2, 5, 8]
    kept = select_kept(loss, 5, vog, mix_ratio=0.4)  # 3 by loss, then 2 lowest VOG among the rest
    assert kept[:3].tolist() == [0, 2, 5] and sorted(kept[3:].tolist()) == [1, 9]


@pytest.mark.parametrize("vog", [None, "head", "input"])
def test_co_teaching_keeps_one_minus_tau_and_finds_flipped_labels(vog):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 240)
    images = np.clip(60 + 120 * labels[:, None, None, None] + rng.normal(0, 15, (240, 1, 28, 28)), 0, 255)
    images = images.astype(np.uint8)
    noisy = labels.copy()
    flipped = rng.permutation(240)[:48]  # 20% noise
    noisy[flipped] = 1 - noisy[flipped]
    config = CoTeachingConfig(forget_rate=0.2, ramp_epochs=2, vog=vog, warmup_epochs=3, window=2)
    result = co_teaching(build_model("small_cnn", 1, 2, seed=0), build_model("small_cnn", 1, 2, seed=1), images,
                         noisy, config, TrainConfig(epochs=6, batch_size=40, optimizer="adam", lr=3e-3), "cpu", 0)
    assert [h["forget_rate"] for h in result.history][:3] == [0.0, 0.2, 0.2]
    assert result.kept.sum() == 6 * int(0.8 * 40)  # every batch keeps int((1 - tau) B)
    assert [h["vog_mixing"] for h in result.history] == [False] * 3 + [vog is not None] * 3
    recall = clean_recall(result.kept, noisy, labels)
    # plain: the flipped labels are the ones left out; with VOG a fifth of the kept come from the high-loss
    # samples by design, so precision only has to beat the 0.8 of keeping at random
    assert recall.loc["all", "precision"] > (0.95 if vog is None else 0.82)
    assert (result.vog is None) == (vog is None)


def test_co_teaching_refuses_class_weights():
    """Its small-loss selection ranks unweighted per-sample losses: a weighted config would be silently ignored."""
    model = build_model("small_cnn", 1, 2)
    with pytest.raises(ValueError, match="class_weight must be None"):
        co_teaching(model, model, np.zeros((4, 1, 28, 28), np.uint8), np.array([0, 1, 0, 1]),
                    CoTeachingConfig(forget_rate=0.2), TrainConfig(class_weight="balanced"), "cpu")


def test_clean_recall_counts():
    true = np.array([0, 0, 0, 1, 1, 1])
    noisy = np.array([0, 0, 1, 1, 1, 0])
    kept = np.array([True, False, True, True, False, False])
    table = clean_recall(kept, noisy, true, ["a", "b"])
    assert table.loc["a", "clean"] == 2 and table.loc["a", "kept clean"] == 1 and table.loc["a", "recall"] == 0.5
    assert table.loc["b", "kept"] == 2 and table.loc["b", "precision"] == 0.5
    assert table.loc["all", "recall"] == 0.5 and table.loc["all", "precision"] == pytest.approx(2 / 3)
    # the flagged set (not kept) as a detector of wrong labels, over the samples given each label
    assert table.loc["a", ["flagged", "flagged noisy", "flag precision", "flag recall"]].tolist() == [2, 1, 0.5, 1.0]
    assert table.loc["b", ["flagged", "flagged noisy", "flag precision", "flag recall"]].tolist() == [1, 0, 0.0, 0.0]
    assert table.loc["all", "flag precision"] == pytest.approx(1 / 3) and table.loc["all", "flag recall"] == 0.5
