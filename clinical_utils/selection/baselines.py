"""The usual active-learning baselines, each a pure function: arrays in, pool indices (budget,) out.

Uncertainty scores rank the whole pool; equal scores go to the lower index (a stable sort).
"""
from __future__ import annotations

import numpy as np
import torch

from .kernels import (SelectionError, as_embedding, check_budget, inner, n_rows, power_of_two_scale, scaled,
                      sq_norms, take)

TYPICALITY_NEIGHBOURS = 20  # TypiClust's k: typicality is the inverse mean distance to this many neighbours
MIN_CLUSTER = 5  # TypiClust leaves out clusters smaller than this (outliers)


def as_probs(probs, name: str = "probs", ndim: int = 2) -> np.ndarray:
    """probs as float64, checked: `ndim` dimensions, finite, non-negative, rows summing to 1 (a SelectionError
    naming the problem otherwise)."""
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != ndim:
        raise SelectionError(f"{name} must have {ndim} dimensions, got shape {p.shape}")
    if not np.isfinite(p).all() or (p < 0).any():
        raise SelectionError(f"{name} must be finite and non-negative (softmax outputs)")
    total = p.sum(-1)
    if p.size and np.abs(total - 1).max() > 1e-3:
        worst = np.unravel_index(np.abs(total - 1).argmax(), total.shape)
        raise SelectionError(f"{name} rows must sum to 1 (class probabilities, e.g. a softmax); row {worst} sums "
                             f"to {total[worst]:.4g}: pass probabilities, not logits or scores")
    return p


def _top(scores: np.ndarray, budget: int) -> np.ndarray:
    check_budget(budget, len(scores))
    return np.argsort(-scores, kind="stable")[:budget].astype(np.int64)


def _entropy(p: np.ndarray, axis: int = -1) -> np.ndarray:
    return -(p * np.log(np.clip(p, 1e-12, None))).sum(axis)


def random_select(n: int, budget: int, seed: int = 0) -> np.ndarray:
    """`budget` distinct indices of a pool of n, uniformly at random."""
    check_budget(budget, n)
    return np.random.default_rng(seed).choice(n, size=budget, replace=False).astype(np.int64)


def entropy_select(probs, budget: int) -> np.ndarray:
    """Largest predictive entropy; probs (n, K)."""
    return _top(_entropy(as_probs(probs)), budget)


def margin_select(probs, budget: int) -> np.ndarray:
    """Smallest gap between the two most probable classes; probs (n, K)."""
    top2 = np.sort(as_probs(probs), 1)[:, -2:]
    return _top(top2[:, 0] - top2[:, 1], budget)


def least_confidence_select(probs, budget: int) -> np.ndarray:
    """Smallest top-class probability; probs (n, K)."""
    return _top(-as_probs(probs).max(1), budget)


def bald_select(mc_probs, budget: int) -> np.ndarray:
    """Largest mutual information between prediction and weights (BALD) from MC-dropout samples.

    mc_probs (T, n, K), e.g. from `mc_dropout_probs`: H(mean_t p_t) - mean_t H(p_t).
    """
    p = as_probs(mc_probs, "mc_probs", 3)
    return _top(_entropy(p.mean(0)) - _entropy(p).mean(0), budget)


def badge_select(grad_embedding, budget: int, seed: int = 0, device: str | torch.device = "cpu") -> np.ndarray:
    """BADGE: k-means++ seeding on gradient embeddings (Ash et al., ICLR 2020).

    grad_embedding: a `GradientEmbedding` (factored, never expanded) or an (n, D) array. The first centre
    is the point of largest gradient norm, each next one is drawn with probability proportional to its
    squared distance to the nearest centre so far. Memory O(n).
    """
    g = as_embedding(grad_embedding, "grad_embedding", torch.device(device))
    g = scaled(g, power_of_two_scale(g))  # exact: the same picks, and finite distances at any magnitude
    n = n_rows(g)
    check_budget(budget, n)
    sq = sq_norms(g).double()
    gen = torch.Generator().manual_seed(seed)
    picks = [int(sq.argmax())]
    nearest = torch.full((n,), float("inf"), dtype=torch.float64, device=sq.device)
    for _ in range(budget - 1):
        last = picks[-1]
        dist = (sq + sq[last] - 2 * inner(g, take(g, slice(last, last + 1)))[:, 0].double()).clamp_min(0)
        nearest = torch.minimum(nearest, dist)
        nearest[picks] = 0
        total = nearest.sum()
        if total <= 0:  # every point coincides with a centre: take the rest in index order
            rest = np.setdiff1d(np.arange(n), picks)[:budget - len(picks)]
            return np.concatenate([picks, rest]).astype(np.int64)
        picks.append(int(torch.multinomial((nearest / total).float().cpu(), 1, generator=gen)))
    return np.asarray(picks, dtype=np.int64)


def coreset_select(features, labeled_features, budget: int, device: str | torch.device = "cpu",
                   block: int = 4096) -> np.ndarray:
    """Core-set by k-centre greedy (Sener & Savarese, ICLR 2018): repeatedly take the pool point farthest
    from the labeled set and the points taken so far. features (n, d), labeled_features (m, d), m may be 0.
    Distances are computed in blocks of `block` labeled points: memory O(n + block n)."""
    device = torch.device(device)
    x = as_embedding(features, "features", device)
    n = len(x)
    check_budget(budget, n)
    labeled = as_embedding(labeled_features, "labeled_features", device) if len(labeled_features) else x[:0]
    if labeled.shape[1] != x.shape[1]:
        raise SelectionError(f"features have {x.shape[1]} dimensions but labeled_features {labeled.shape[1]}")
    scale = power_of_two_scale(x, labeled)  # exact: the same picks, and finite distances at any magnitude
    x, labeled = x / scale, labeled / scale
    sq = (x * x).sum(1)
    nearest = torch.full((n,), float("inf"), device=device)
    for lo in range(0, len(labeled), block):
        c = labeled[lo:lo + block]
        d = (sq[:, None] + (c * c).sum(1)[None, :] - 2 * x @ c.T).clamp_min_(0)
        nearest = torch.minimum(nearest, d.amin(1))
    picks = []
    for _ in range(budget):
        best = int(nearest.argmax())
        picks.append(best)
        nearest = torch.minimum(nearest, (sq + sq[best] - 2 * x @ x[best]).clamp_min(0))
        nearest[best] = -1  # never again
    return np.asarray(picks, dtype=np.int64)


def typiclust_select(features, budget: int, labeled_features=None, seed: int = 0) -> np.ndarray:
    """TypiClust (Hacohen et al., ICML 2022), the cold-start baseline: k-means (scikit-learn) with |L| + budget
    clusters on label-free features (n, d) (labeled_features (m, d) or None: the labeled points), then, pick by
    pick, the most typical point of the largest cluster with the fewest labeled points. Typicality is the inverse
    mean distance to the point's `TYPICALITY_NEIGHBOURS` nearest neighbours in its cluster; clusters smaller than
    `MIN_CLUSTER` are left out while others remain."""
    from sklearn.cluster import KMeans
    from sklearn.neighbors import NearestNeighbors

    x = as_embedding(features, "features", torch.device("cpu")).double().numpy()
    n = len(x)
    check_budget(budget, n)
    labeled = (np.zeros((0, x.shape[1])) if labeled_features is None or not len(labeled_features)
               else as_embedding(labeled_features, "labeled_features", torch.device("cpu")).double().numpy())
    if labeled.shape[1] != x.shape[1]:
        raise SelectionError(f"features have {x.shape[1]} dimensions but labeled_features {labeled.shape[1]}")
    scale = power_of_two_scale(torch.from_numpy(x), torch.from_numpy(labeled))  # finite squared distances
    x, labeled = x / scale, labeled / scale
    k = min(n, len(labeled) + budget)
    kmeans = KMeans(n_clusters=k, n_init=3, random_state=seed).fit(x)
    cluster = kmeans.labels_
    covered = np.bincount(kmeans.predict(labeled), minlength=k) if len(labeled) else np.zeros(k, int)
    sizes = np.bincount(cluster, minlength=k)
    typicality = np.zeros(n)
    for c in range(k):
        members = np.flatnonzero(cluster == c)
        if len(members) < 2:  # a lone point: no neighbours, typicality 0
            continue
        near = NearestNeighbors(n_neighbors=min(TYPICALITY_NEIGHBOURS, len(members) - 1) + 1).fit(x[members])
        distances = near.kneighbors(x[members])[0][:, 1:]  # the point itself first, at distance 0
        typicality[members] = 1 / (distances.mean(1) + 1e-12)
    picks, taken = [], np.zeros(n, bool)
    for _ in range(budget):
        open_ = np.bincount(cluster[~taken], minlength=k) > 0
        eligible = open_ & (sizes >= MIN_CLUSTER)
        candidates = np.flatnonzero(eligible if eligible.any() else open_)
        c = candidates[np.lexsort((-sizes[candidates], covered[candidates]))[0]]  # fewest labeled, then largest
        members = np.flatnonzero((cluster == c) & ~taken)
        best = int(members[np.argmax(typicality[members])])
        picks.append(best)
        taken[best] = True
        covered[c] += 1
    return np.asarray(picks, dtype=np.int64)
