"""Confident learning through cleanlab: out-of-sample probabilities, the flags, and cleanlab's rankings."""
import numpy as np
import pytest
from cleanlab.multiannotator import get_active_learning_scores
from cleanlab.rank import get_label_quality_scores

from clinical_utils.refinement.confident import label_issues, out_of_sample_probs
from clinical_utils.selection.label_quality import activelab_order, label_quality_order, loss_order
from clinical_utils.training.models import build_model
from clinical_utils.training.train import TrainConfig, predict, train

from exactness import exact


def _noisy_probs(n=400, k=3, wrong=0.2, seed=0):
    """Given labels with `wrong` of them flipped, and probabilities that know the true labels (0.8 on it)."""
    rng = np.random.default_rng(seed)
    true = rng.integers(0, k, n)
    given = true.copy()
    flipped = rng.random(n) < wrong
    given[flipped] = (true[flipped] + rng.integers(1, k, flipped.sum())) % k
    probs = np.full((n, k), 0.2 / (k - 1), np.float32)
    probs[np.arange(n), true] = 0.8
    return given, probs, flipped


def test_label_issues_flags_the_wrong_labels():
    given, probs, flipped = _noisy_probs()
    flags = label_issues(given, probs)
    assert (flags & flipped).sum() / flags.sum() > 0.95 and (flags & flipped).sum() / flipped.sum() > 0.95
    with pytest.raises(ValueError, match="cl_filter_by 'nope' is not one of cleanlab's"):
        label_issues(given, probs, filter_by="nope")
    with pytest.raises(ValueError, match="cleanlab ignores min_examples_per_class under filter_by 'confident_learning'"):
        label_issues(given, probs, filter_by="confident_learning", min_examples_per_class=3)


def test_a_class_with_very_few_samples_keeps_min_examples_per_class():
    """Four samples given class 2, every one of them called class 0 by the model: cleanlab flags them all
    unless min_examples_per_class keeps some."""
    given, probs, _ = _noisy_probs(wrong=0.0)
    given[given == 2] = 0
    given[:4] = 2
    probs[:4] = [0.9, 0.05, 0.05]
    assert label_issues(given, probs, min_examples_per_class=0)[:4].sum() >= 3
    for keep in (1, 3, 4):  # at least that many of the class stay unflagged
        assert (~label_issues(given, probs, min_examples_per_class=keep)[:4]).sum() >= keep


def test_rankings_are_cleanlabs_scores_lowest_first():
    given, probs, flipped = _noisy_probs(n=60, seed=1)
    order = label_quality_order(given, probs)
    scores = get_label_quality_scores(given, probs)
    assert sorted(order.tolist()) == list(range(60)) and (np.diff(scores[order]) >= 0).all()
    assert flipped[order[:flipped.sum()]].all()  # the wrong labels score lowest
    scores, _ = get_active_learning_scores(given[:, None], probs)
    assert (np.diff(scores[activelab_order(given, probs)]) >= 0).all()
    # with one annotator ActiveLab's score is a rescaled label-quality score: the same order, said in the docs
    exact(activelab_order(given, probs), label_quality_order(given, probs))
    # and self-confidence falls as the cross-entropy rises: the loss sampler's order, where no two tie
    distinct = np.random.default_rng(2).dirichlet(np.ones(3), 60).astype(np.float32)
    exact(label_quality_order(given, distinct), loss_order(given, distinct))


def test_out_of_sample_probabilities_come_from_networks_that_never_saw_the_sample(monkeypatch):
    """Every sample's probabilities come from exactly one fold's network, and that network never trained on it
    (the images carry their index, so the spies below can tell which ones each network saw)."""
    from clinical_utils.refinement import confident

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (50, 1, 28, 28), dtype=np.uint8)
    images[:, 0, 0, 0] = np.arange(50)
    labels = np.r_[np.zeros(40, int), np.ones(10, int)]
    trained, predicted = {}, {}

    def spy_train(model, x, y, *args):  # keyed by the model itself, which stays alive (an id could be reused)
        trained[model] = set(x[:, 0, 0, 0].tolist())
        return train(model, x, y, *args)

    def spy_predict(model, x, device):
        predicted.setdefault(model, []).extend(x[:, 0, 0, 0].tolist())
        return predict(model, x, device)

    monkeypatch.setattr(confident, "train", spy_train)
    monkeypatch.setattr(confident, "predict", spy_predict)
    config = TrainConfig(epochs=2, batch_size=16, precision="fp32")
    probs = out_of_sample_probs(lambda fold: build_model("small_cnn", 1, 2, seed=fold), images, labels, 2, config,
                                5, "cpu", seed=0)
    assert probs.shape == (50, 2) and np.allclose(probs.sum(1), 1, atol=1e-5)
    assert sorted(i for seen in predicted.values() for i in seen) == list(range(50))
    assert len(trained) == 5 and all(not trained[m] & set(seen) for m, seen in predicted.items())
    monkeypatch.undo()
    again = out_of_sample_probs(lambda fold: build_model("small_cnn", 1, 2, seed=fold), images, labels, 2, config,
                                5, "cpu", seed=0)
    exact(again, probs)  # seeded folds and networks
    with pytest.raises(ValueError, match="cl_folds must be between 2"):
        out_of_sample_probs(None, images, labels, 2, config, 1, "cpu", 0)
