"""Similarity kernels between embedding sets, computed block by block.

Kernels ("kernel" argument of the selection functions):
  cosine01  (1 + cos(a, b)) / 2, in [0, 1]: DISTIL's convention since Feb 2023 (the default);
  cosine    cos(a, b), in [-1, 1]: DISTIL's earlier convention;
  rbf       exp(-||a - b||^2 / s) with s the mean squared norm of the pool.
An embedding set is an (n, d) float array or tensor, or a factored `GradientEmbedding`.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch

from .embeddings import GradientEmbedding

KERNELS = ("cosine01", "cosine", "rbf")
MAX_FEATURE_SQNORM = 1e30  # |h|^2 of a gradient embedding's features: K (1 + |h|^2) stays far inside float32


class SelectionError(ValueError):
    """A selection request that cannot be carried out; the message says what to change."""


class Prepared(NamedTuple):
    """An embedding set ready for a kernel: unit-norm (or all-zero) rows for the cosine kernels; squared norms (n,)."""
    emb: torch.Tensor | GradientEmbedding
    sqnorm: torch.Tensor


def check_budget(budget, n: int) -> None:
    """A pick count must be a positive integer no larger than the pool."""
    if isinstance(budget, bool) or not isinstance(budget, (int, np.integer)) or budget < 1:
        raise SelectionError(f"budget must be a positive integer, got {budget!r}")
    if budget > n:
        raise SelectionError(f"budget {budget} is larger than the pool ({n} points); lower the budget")


def kernel_scale(pool: Prepared, kernel: str) -> float:
    """The rbf bandwidth s: the pool's mean squared norm, so the kernel ignores the embeddings' scale."""
    return float(pool.sqnorm.mean().clamp_min(1e-12)) if kernel == "rbf" else 1.0


def as_embedding(x, name: str, device: torch.device) -> torch.Tensor | GradientEmbedding:
    """Validate one embedding set and move it to `device` as float32."""
    if isinstance(x, GradientEmbedding):
        e, h = (as_embedding(part, f"{name}.{field}", device) for part, field in ((x.e, "e"), (x.h, "h")))
        if len(e) != len(h):
            raise SelectionError(f"{name}: e has {len(e)} rows but h has {len(h)}")
        largest = float((h.double() ** 2).sum(1).max()) if len(h) else 0.0
        if largest > MAX_FEATURE_SQNORM:  # g's norm is |e| sqrt(1 + |h|^2): no rescaling of e can keep it finite
            raise SelectionError(f"{name}: penultimate features as large as |h| = {math.sqrt(largest):.3g}, so "
                                 "1 + |h|^2 overflows float32 in the gradient embedding; check the model (such "
                                 "features are not a trained network's), or divide the features by a constant "
                                 "before building the gradient embedding")
        return GradientEmbedding(e, h)
    t = x if torch.is_tensor(x) else torch.as_tensor(np.asarray(x))
    if t.ndim != 2:
        raise SelectionError(f"{name} must be a 2-D (n, d) array of embeddings, got shape {tuple(t.shape)}")
    if not (t.is_floating_point() or t.dtype in (torch.int32, torch.int64)):
        raise SelectionError(f"{name} must hold numbers, got dtype {t.dtype}")
    t = t.to(device=device, dtype=torch.float32)
    bad = ~torch.isfinite(t).all(1)
    if bad.any():
        rows = bad.nonzero()[:5, 0].tolist()
        raise SelectionError(f"{name} has NaN or infinite values in {int(bad.sum())} rows (first: {rows}); "
                             "fix the model or drop those points before selecting")
    return t


def power_of_two_scale(*sets) -> float:
    """2^k with the largest |entry| of the sets (of a gradient embedding: its e, in which g is linear) in
    [2^k, 2^(k+1)), or 1 for all-zero sets. Dividing by it is exact, so ordinary inputs give the same bits as
    unscaled, and the squared norms and distances of inputs of any finite magnitude (1e20, 3e38) stay finite."""
    peaks = [float(part.abs().max()) for part in (x.e if isinstance(x, GradientEmbedding) else x for x in sets)
             if part.numel()]
    peak = max(peaks, default=0.0)
    return math.ldexp(1.0, math.frexp(peak)[1] - 1) if peak > 0 else 1.0  # 2^127 at most: finite in float32


def scaled(x, factor: float):
    """An embedding set divided by `factor` (a gradient embedding through its e part)."""
    return GradientEmbedding(x.e / factor, x.h) if isinstance(x, GradientEmbedding) else x / factor


def n_rows(x) -> int:
    return len(x.e) if isinstance(x, GradientEmbedding) else len(x)


def dims(x) -> tuple[int, ...]:
    return (x.e.shape[1], x.h.shape[1]) if isinstance(x, GradientEmbedding) else (x.shape[1],)


def inner(a, b, *, out: torch.Tensor | None = None) -> torch.Tensor:
    """Inner products (len(a), len(b)) of two embedding sets of the same kind, written into `out` if given."""
    if isinstance(a, GradientEmbedding):  # in place: the e products are the one (len(a), len(b)) temporary
        return torch.matmul(a.h, b.h.T, out=out).add_(1).mul_(a.e @ b.e.T)
    return torch.matmul(a, b.T, out=out)


def sq_norms(a) -> torch.Tensor:
    if isinstance(a, GradientEmbedding):
        return (a.e * a.e).sum(1) * (1 + (a.h * a.h).sum(1))
    return (a * a).sum(1)


def take(x, idx):
    """Rows idx of an embedding set, of either kind."""
    return GradientEmbedding(x.e[idx], x.h[idx]) if isinstance(x, GradientEmbedding) else x[idx]


def rows(p: Prepared, idx) -> Prepared:
    return Prepared(take(p.emb, idx), p.sqnorm[idx])


def prepare(x, kernel: str, name: str) -> Prepared:
    """Normalise rows for the cosine kernels.

    An all-zero row (a gradient embedding of an image predicted with probability exactly 1: e = p - onehot(y) = 0)
    has no direction. It stays zero: its cosine with every point, itself included, is 0 (cosine01: 0.5), so it is
    neither like nor unlike anything. The kernel stays positive semi-definite (a Gram matrix of unit and zero
    rows), every objective stays defined, and both backends see the same numbers.
    """
    if kernel == "rbf":
        return Prepared(x, sq_norms(x))
    # divide by each row's largest entry first, so that tiny (1e-30) or huge (1e30) rows keep their direction
    # instead of underflowing to zero or overflowing to inf in the squared norm (for gradient embeddings: the e
    # part; h enters as 1 + |h|^2 and is left as it is)
    part = x.e if isinstance(x, GradientEmbedding) else x
    peak = part.abs().amax(1, keepdim=True)
    part = part / torch.where(peak > 0, peak, torch.ones_like(peak))
    x = GradientEmbedding(part, x.h) if isinstance(x, GradientEmbedding) else part
    sq = sq_norms(x)
    nonzero = sq > 0
    scale = torch.where(nonzero, sq.clamp_min(1e-30).rsqrt(), torch.zeros_like(sq))
    if isinstance(x, GradientEmbedding):  # g is linear in e, so scaling e scales g
        x = GradientEmbedding(x.e * scale[:, None], x.h)
    else:
        x = x * scale[:, None]
    return Prepared(x, nonzero.to(sq.dtype))


def self_similarity(p: Prepared, kernel: str) -> torch.Tensor:
    """s_jj (n,): 1 for unit rows and for rbf; an all-zero row's 0 (cosine) or 0.5 (cosine01)."""
    if kernel == "rbf":
        return torch.ones_like(p.sqnorm)
    return (1 + p.sqnorm) / 2 if kernel == "cosine01" else p.sqnorm.clone()


def similarity(a: Prepared, b: Prepared, kernel: str, scale: float = 1.0, *,
               out: torch.Tensor | None = None) -> torch.Tensor:
    """Kernel block (len(a), len(b)); `scale` is the rbf bandwidth s. The cosine kernels write it into `out` if
    given (a reused buffer stays in cache); rbf always returns a fresh tensor."""
    g = inner(a.emb, b.emb, out=out if kernel != "rbf" else None)
    if kernel == "cosine01":
        return g.add_(1).mul_(0.5)
    if kernel == "cosine":
        return g
    return (a.sqnorm[:, None] + b.sqnorm[None, :] - 2 * g).clamp_min_(0).div_(-scale).exp_()
