import numpy as np
import pytest

from clinical_utils.refinement.noise import NoiseError, add_label_noise, noise_report, transition_matrix


@pytest.mark.parametrize("rate", [0.0, 0.2, 0.8])
def test_symmetric_noise_is_realised_exactly_per_class_and_never_keeps_the_label_when_flipping(rate):
    labels = np.repeat(np.arange(5), [500, 200, 120, 60, 20])
    noisy = add_label_noise(labels, transition_matrix(5, "symmetric", rate), seed=3)
    report = noise_report(labels, noisy)
    for c, n in enumerate([500, 200, 120, 60, 20]):
        assert abs(report.loc[str(c), "noisy"] - rate * n) <= 1  # exact up to rounding
    flipped = noisy != labels
    moved_to = np.bincount(noisy[flipped & (labels == 0)], minlength=5)
    assert moved_to[0] == 0 and (rate == 0 or moved_to[1:].min() >= rate * 500 / 4 - 1)  # uniform over the others
    assert report.loc["all", "noise rate"] == pytest.approx(flipped.mean())


def test_pair_noise_moves_to_the_named_class_and_matrix_noise_follows_its_rows():
    labels = np.repeat(np.arange(3), 100)
    noisy = add_label_noise(labels, transition_matrix(3, "pair", 0.3, pairs={0: 2, 1: 0, 2: 1}), seed=0)
    assert set(noisy[(labels == 0) & (noisy != 0)]) == {2} and ((labels == 1) & (noisy == 0)).sum() == 30
    t = np.array([[0.5, 0.5, 0.0], [0.0, 1.0, 0.0], [0.1, 0.2, 0.7]])
    noisy = add_label_noise(labels, transition_matrix(3, "matrix", matrix=t), seed=1)
    assert np.bincount(noisy[labels == 2], minlength=3).tolist() == [10, 20, 70]
    assert (noisy[labels == 1] == 1).all()


def test_noise_is_seeded():
    labels = np.repeat(np.arange(4), 50)
    t = transition_matrix(4, "symmetric", 0.5)
    assert (add_label_noise(labels, t, seed=7) == add_label_noise(labels, t, seed=7)).all()
    assert (add_label_noise(labels, t, seed=7) != add_label_noise(labels, t, seed=8)).any()


@pytest.mark.parametrize("kwargs, message", [
    ({"kind": "symmetric", "rate": 1.0}, "rate must be in"), ({"kind": "symmetric", "rate": -0.1}, "rate"),
    ({"kind": "uniform", "rate": 0.2}, "unknown noise kind"), ({"kind": "matrix"}, "needs matrix"),
    ({"kind": "matrix", "matrix": [[0.5, 0.4], [0, 1]]}, "rows summing to 1"),
    ({"kind": "pair", "rate": 0.2, "pairs": {0: 0, 1: 0}}, "another class")])
def test_unrealisable_noise_is_an_error(kwargs, message):
    with pytest.raises(NoiseError, match=message):
        transition_matrix(2, **kwargs)
