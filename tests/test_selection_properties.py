"""Properties every selection strategy keeps, on inputs hypothesis draws: sizes, magnitudes, orders, bad values."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from clinical_utils.selection import (BASELINES, FUNCTIONS, SelectionError, badge_select, bald_select, coreset_select,
                                      entropy_select, gradient_embedding, least_confidence_select, margin_select,
                                      random_select, smi_select)
from clinical_utils.selection.reference import submodlib_function
from exactness import exact

STRATEGIES = (*BASELINES, *FUNCTIONS)
EMBEDDED = ("badge", "coreset", *FUNCTIONS)  # strategies on embeddings, which a positive rescaling must not move
ORDERED = tuple(s for s in STRATEGIES if s not in ("random", "badge"))  # deterministic: a pool's order is no input


def pick(strategy: str, x: dict, budget: int, kernel: str = "cosine01") -> np.ndarray:
    """`strategy` on the inputs x: features (n, d), probs (n, K), mc (T, n, K), h (n, d) for gradient embeddings,
    query and private (m, d), labeled (l, d); kernel: the SMI functions'."""
    if strategy == "random":
        return random_select(len(x["probs"]), budget, seed=1)
    if strategy in ("entropy", "margin", "least_confidence"):
        return {"entropy": entropy_select, "margin": margin_select,
                "least_confidence": least_confidence_select}[strategy](x["probs"], budget)
    if strategy == "bald":
        return bald_select(x["mc"], budget)
    if strategy == "badge":
        return badge_select(gradient_embedding(x["probs"], x["h"]), budget, seed=1)
    if strategy == "coreset":
        return coreset_select(x["features"], x["labeled"], budget)
    private = x["private"] if strategy in ("flcmi", "logdetcmi") else None
    return smi_select(strategy, x["features"], x["query"], budget, private, kernel=kernel)


@st.composite
def problems(draw):
    """Continuous random inputs (no exact ties but those the objectives make) and a budget up to the pool's size."""
    n, d, k = draw(st.integers(2, 40)), draw(st.integers(1, 6)), draw(st.integers(2, 4))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    logits = rng.normal(size=(n, k)) * draw(st.sampled_from([0.1, 1.0, 5.0]))
    softmax = lambda z: np.exp(z - z.max(-1, keepdims=True)) / np.exp(z - z.max(-1, keepdims=True)).sum(
        -1, keepdims=True)
    x = {"features": rng.normal(size=(n, d)).astype(np.float32), "probs": softmax(logits).astype(np.float32),
         "mc": softmax(logits[None] + rng.normal(size=(4, n, k))).astype(np.float32),
         "h": rng.normal(size=(n, d)).astype(np.float32), "query": rng.normal(size=(3, d)).astype(np.float32),
         "private": rng.normal(size=(2, d)).astype(np.float32),
         "labeled": rng.normal(size=(draw(st.integers(0, 3)), d)).astype(np.float32)}
    return x, draw(st.integers(1, n))


@pytest.mark.parametrize("strategy", STRATEGIES)
@settings(max_examples=40, deadline=None)
@given(problem=problems())
def test_picks_are_unique_in_range_and_as_many_as_asked(strategy, problem):
    x, budget = problem
    picks = pick(strategy, x, budget)
    assert picks.dtype == np.int64 and len(picks) == budget and len(set(picks.tolist())) == budget
    assert 0 <= picks.min() and picks.max() < len(x["probs"])


@pytest.mark.parametrize("strategy", EMBEDDED)
@settings(max_examples=40, deadline=None)
@given(problem=problems(), power=st.integers(-100, 100))
def test_a_rescaling_of_the_embeddings_changes_no_pick(strategy, problem, power):
    """Embeddings of any finite magnitude (2^-100 to 2^100, 1e-30 to 1e30) pick as the originals do: a power of two
    scales exactly, so the picks are the same bit for bit."""
    x, budget = problem
    factor = 2.0 ** power
    big = {**x, **{key: x[key] * factor for key in ("features", "query", "private", "labeled")}}
    big["probs"] = x["probs"]  # badge rescales through e = p - onehot(y): the probabilities stay probabilities
    if strategy == "badge":
        ours = badge_select(gradient_embedding(x["probs"], x["h"]), budget, seed=1)
        grad = gradient_embedding(x["probs"], x["h"])
        theirs = badge_select(type(grad)(grad.e * factor, grad.h), budget, seed=1)
        exact(theirs, ours)
        return
    for kernel in ("cosine01", "rbf") if strategy in FUNCTIONS else ("cosine01",):
        exact(pick(strategy, big, budget, kernel), pick(strategy, x, budget, kernel))


def _value(strategy: str, x: dict, picks: np.ndarray) -> float | list:
    """What a strategy maximises, for picks that tie: the sorted scores, or the SMI objective (submodlib's)."""
    p, mc = x["probs"].astype(np.float64), x["mc"].astype(np.float64)
    entropy = lambda q: -(q * np.log(np.clip(q, 1e-12, None))).sum(-1)
    scores = {"entropy": lambda: entropy(p), "least_confidence": lambda: -p.max(1),
              "margin": lambda: -np.diff(np.sort(p, 1)[:, -2:], axis=1)[:, 0],
              "bald": lambda: entropy(mc.mean(0)) - entropy(mc).mean(0)}
    if strategy in scores:
        return np.sort(scores[strategy]()[picks]).tolist()
    private = torch.tensor(x["private"]) if strategy in ("flcmi", "logdetcmi") else None
    f = submodlib_function(strategy, torch.tensor(x["features"]), torch.tensor(x["query"]), private)
    return f.evaluate(set(picks.tolist()))


@pytest.mark.parametrize("strategy", ORDERED)
@settings(max_examples=40, deadline=None)
@given(problem=problems(), order=st.randoms(use_true_random=False))
def test_a_permuted_pool_gives_the_same_picks_up_to_ties(strategy, problem, order):
    """Reordering the pool reorders nothing but the indices. Where two picks tie (facility location once every
    point is covered), ties go by index, so another of the tied points may come: the objective is then the same."""
    x, budget = problem
    if strategy == "coreset" and not len(x["labeled"]):  # with no labeled set its first pick is a tie of all
        x = {**x, "labeled": x["query"]}
    n = len(x["probs"])
    perm = np.array(order.sample(range(n), n))
    moved = {**x, **{key: x[key][perm] for key in ("features", "probs", "h")}, "mc": x["mc"][:, perm]}
    ours, theirs = pick(strategy, x, budget), perm[pick(strategy, moved, budget)]
    if ours.tolist() == theirs.tolist():
        return
    assert strategy != "coreset", (ours, theirs)  # k-centre has no ties on continuous data
    a, b = _value(strategy, x, ours), _value(strategy, x, theirs)
    assert np.allclose(a, b, rtol=1e-5, atol=1e-6), (ours, theirs, a, b)


@pytest.mark.parametrize("strategy", [s for s in STRATEGIES if s != "random"])  # random reads no values
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_input_is_a_selection_error(strategy, bad):
    rng = np.random.default_rng(0)
    n, d = 20, 4
    probs = rng.dirichlet(np.ones(3), n).astype(np.float32)
    x = {"features": rng.normal(size=(n, d)).astype(np.float32), "probs": probs, "mc": np.stack([probs] * 3),
         "h": rng.normal(size=(n, d)).astype(np.float32), "query": rng.normal(size=(3, d)).astype(np.float32),
         "private": rng.normal(size=(2, d)).astype(np.float32), "labeled": np.zeros((0, d), np.float32)}
    for key in ("features", "probs", "h"):
        x[key][5, 0] = bad
    x["mc"][:, 5, 0] = bad
    with pytest.raises(SelectionError, match="NaN or infinite|finite"):
        pick(strategy, x, 3)


def test_the_largest_float32_inputs_still_pick():
    """A peak at float32's top (3e38) rescales by 2^127, which float32 holds (2^128 would be inf)."""
    x = np.array([[3e38, 1.0], [1.0, 3e38], [-3e38, 0.0], [0.0, 0.0]], np.float32)
    assert sorted(coreset_select(x, x[3:], 3).tolist()) == [0, 1, 2]
    assert len(set(badge_select(x, 3).tolist())) == 3
