"""Properties every selection strategy keeps, on inputs hypothesis draws: sizes, magnitudes, orders, bad values."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from clinical_utils.selection import (FUNCTIONS, STRATEGIES, SelectionError, badge_select, coreset_select,
                                      gradient_embedding, pick)
from clinical_utils.selection.reference import submodlib_function
from exactness import exact

EMBEDDED = ("badge", "coreset", *FUNCTIONS, "smi")  # strategies on embeddings, which a positive rescaling must not move
ORDERED = tuple(s for s in STRATEGIES if s not in ("random", "badge"))  # deterministic: a pool's order is no input


def choose(strategy: str, x: dict, budget: int, kernel: str = "cosine01") -> np.ndarray:
    """Any registered strategy, through the registry, on the inputs x: features (n, d) (also what the SMI
    functions compare), probs (n, K), mc (T, n, K), given (n,) labels, query and private (m, d), labeled (l, d);
    kernel: the SMI functions'; the `smi` sampler runs flqmi."""
    inputs = SimpleNamespace(n=len(x["probs"]), probs=x["probs"], features=x["features"], mc_probs=x["mc"],
                             labeled_features=x["labeled"], pool_embedding=x["features"], query_embedding=x["query"],
                             private_embedding=x["private"], smi_params={"kernel": kernel}, smi_function="flqmi",
                             given_labels=x["given"])
    return pick(strategy, inputs, budget, seed=1)


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
         "labeled": rng.normal(size=(draw(st.integers(0, 3)), d)).astype(np.float32),
         "given": rng.integers(0, k, n)}
    return x, draw(st.integers(1, n))


@pytest.mark.parametrize("strategy", STRATEGIES)
@settings(max_examples=40, deadline=None)
@given(problem=problems())
def test_picks_are_unique_in_range_and_as_many_as_asked(strategy, problem):
    x, budget = problem
    picks = choose(strategy, x, budget)
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
    for kernel in ("cosine01", "rbf") if strategy in (*FUNCTIONS, "smi") else ("cosine01",):
        exact(choose(strategy, big, budget, kernel), choose(strategy, x, budget, kernel))


def _value(strategy: str, x: dict, picks: np.ndarray) -> float | list:
    """What a strategy maximises, for picks that tie: the sorted scores, or the SMI objective (submodlib's)."""
    p, mc = x["probs"].astype(np.float64), x["mc"].astype(np.float64)
    entropy = lambda q: -(q * np.log(np.clip(q, 1e-12, None))).sum(-1)
    scores = {"entropy": lambda: entropy(p), "least_confidence": lambda: -p.max(1),
              "margin": lambda: -np.diff(np.sort(p, 1)[:, -2:], axis=1)[:, 0],
              "bald": lambda: entropy(mc.mean(0)) - entropy(mc).mean(0)}
    for ranking in ("loss", "label_quality", "activelab"):  # the given label's probability, lowest first
        scores[ranking] = lambda: -p[np.arange(len(p)), x["given"]]
    if strategy in scores:
        return np.sort(scores[strategy]()[picks]).tolist()
    strategy = "flqmi" if strategy == "smi" else strategy
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
    moved = {**x, **{key: x[key][perm] for key in ("features", "probs", "h", "given")}, "mc": x["mc"][:, perm]}
    ours, theirs = choose(strategy, x, budget), perm[choose(strategy, moved, budget)]
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
         "private": rng.normal(size=(2, d)).astype(np.float32), "labeled": np.zeros((0, d), np.float32),
         "given": rng.integers(0, 3, n)}
    for key in ("features", "probs", "h"):
        x[key][5, 0] = bad
    x["mc"][:, 5, 0] = bad
    with pytest.raises(SelectionError, match="NaN or infinite|finite"):
        choose(strategy, x, 3)


def test_the_largest_float32_inputs_still_pick():
    """A peak at float32's top (3e38) rescales by 2^127, which float32 holds (2^128 would be inf)."""
    x = np.array([[3e38, 1.0], [1.0, 3e38], [-3e38, 0.0], [0.0, 0.0]], np.float32)
    assert sorted(coreset_select(x, x[3:], 3).tolist()) == [0, 1, 2]
    assert len(set(badge_select(x, 3).tolist())) == 3
