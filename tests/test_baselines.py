import numpy as np
import pytest
import torch

from clinical_utils.selection import (SelectionError, badge_select, bald_select, coreset_select, entropy_select,
                                      gradient_embedding, least_confidence_select, margin_select,
                                      mc_dropout_probs, random_select)
from clinical_utils.training.models import build_model
from exactness import exact, picks_clear_of_ties

PROBS = np.array([[0.98, 0.01, 0.01], [0.34, 0.33, 0.33], [0.5, 0.5, 0.0], [0.6, 0.3, 0.1], [0.9, 0.05, 0.05]])


def test_uncertainty_baselines_rank_as_defined():
    assert entropy_select(PROBS, 2).tolist() == [1, 3]
    assert margin_select(PROBS, 2).tolist() == [2, 1]
    assert least_confidence_select(PROBS, 3).tolist() == [1, 2, 3]


def test_bald_prefers_disagreement_over_agreed_uncertainty():
    agreed = np.tile([[0.5, 0.5]], (4, 1))          # every sample unsure: no disagreement
    disagree = np.array([[1, 0], [0, 1], [1, 0], [0, 1]], float)  # each sample sure, samples disagree
    confident = np.tile([[0.99, 0.01]], (4, 1))
    mc = np.stack([agreed, disagree, confident], 1)  # (T=4, n=3, K=2)
    assert bald_select(mc, 1).tolist() == [1]
    assert entropy_select(mc.mean(0), 2).tolist() == [0, 1]  # entropy cannot tell the two apart


def test_random_is_seeded_and_distinct():
    a, b = random_select(100, 30, seed=3), random_select(100, 30, seed=3)
    assert a.tolist() == b.tolist() and len(set(a.tolist())) == 30
    assert random_select(100, 30, seed=4).tolist() != a.tolist()


def test_coreset_takes_the_farthest_points():
    x = np.array([[0, 0], [1, 0], [10, 0], [0, 5], [10, 1]], np.float32)
    assert coreset_select(x, x[:1], 3).tolist() == [4, 3, 1]
    assert coreset_select(x, np.zeros((0, 2)), 2)[1] == 4  # no labeled set: start anywhere, then farthest
    with pytest.raises(SelectionError, match="dimensions"):
        coreset_select(x, np.zeros((3, 4)), 2)


def test_badge_on_factored_and_dense_gradients_agree():
    rng = np.random.default_rng(0)
    emb = gradient_embedding(rng.dirichlet(np.ones(4), 200), rng.normal(size=(200, 8)))
    a = badge_select(emb, 20, seed=1)
    picks_clear_of_ties(a, badge_select(emb.dense(), 20, seed=1))
    assert len(set(a.tolist())) == 20
    assert a[0] == int(torch.argmax((emb.dense() ** 2).sum(1)))  # first centre: largest gradient norm
    assert badge_select(emb, 20, seed=2).tolist() != a.tolist()


def test_gradient_embedding_equals_autograd_of_the_last_layer():
    model = build_model("small_cnn", 1, 3).eval()
    x = torch.randn(6, 1, 28, 28)
    h = model.features(x).detach()
    probs = torch.softmax(model.head(h), 1).detach()
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    emb = gradient_embedding(probs, h, labels).dense()
    for i in range(6):
        model.zero_grad()
        torch.nn.functional.cross_entropy(model.head(h[i:i + 1]), labels[i:i + 1]).backward()
        expected = torch.cat([model.head.bias.grad, model.head.weight.grad.reshape(-1)])
        torch.testing.assert_close(emb[i], expected, rtol=1e-5, atol=1e-6)
    # pool points use the predicted label
    pred = gradient_embedding(probs, h)
    torch.testing.assert_close(pred.e, probs - torch.nn.functional.one_hot(probs.argmax(1), 3).float())


def test_factored_inner_products_equal_dense_ones():
    rng = np.random.default_rng(1)
    emb = gradient_embedding(rng.dirichlet(np.ones(3), 10), rng.normal(size=(10, 5)))
    dense = emb.dense()
    torch.testing.assert_close((emb.e @ emb.e.T) * (1 + emb.h @ emb.h.T), dense @ dense.T, rtol=1e-5, atol=1e-5)


def test_mc_dropout_probs_shape_seed_and_spread():
    rng = np.random.default_rng(0)
    h, w, b = rng.normal(size=(7, 16)), rng.normal(size=(3, 16)), np.zeros(3)
    mc = mc_dropout_probs(h, w, b, n_samples=5, p=0.5, seed=1)
    assert mc.shape == (5, 7, 3)
    np.testing.assert_allclose(mc.sum(2), 1, rtol=1e-5)
    exact(mc, mc_dropout_probs(h, w, b, n_samples=5, p=0.5, seed=1))
    assert mc.std(0).max() > 0.01  # the samples differ
    np.testing.assert_allclose(mc_dropout_probs(h, w, b, 2, p=0.0)[0], mc_dropout_probs(h, w, b, 2, p=0.0)[1])


@pytest.mark.parametrize("call, fragment", [
    (lambda: entropy_select(PROBS, 6), "larger than the pool"),
    (lambda: margin_select(PROBS, 0), "positive integer"),
    (lambda: entropy_select(PROBS[0], 1), "2 dimensions"),
    (lambda: least_confidence_select(np.full((3, 2), np.nan), 1), "finite"),
    (lambda: bald_select(PROBS, 1), "3 dimensions"),
])
def test_baselines_reject_bad_input(call, fragment):
    with pytest.raises(SelectionError, match=fragment):
        call()


def test_probabilities_must_be_probabilities():
    logits = np.random.default_rng(0).normal(size=(20, 3))
    with pytest.raises(SelectionError, match="rows must sum to 1 .*not logits"):
        entropy_select(np.abs(logits), 5)
    probs = np.full((4, 3), 1 / 3)
    with pytest.raises(ValueError, match=r"class indices 0..2"):
        gradient_embedding(probs, np.ones((4, 2)), labels=[0, 1, 2, 3])
