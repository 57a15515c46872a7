"""Submodular mutual information (SMI) selection: submodlib's objectives, greedy picks, linear memory.

Notation: V the pool (n points), Q the query set, P the private set, A the picked set; s the kernel.
Every objective is submodlib's (submodlib-py 0.0.3, the C++ it runs), parameter names in brackets:

  flmi      FacilityLocationMutualInformation [magnificationEta = eta]
            f(A) = sum_{i in V} min(max_{j in A} s_ij, eta max_q s_iq)
  flqmi     FacilityLocationVariantMutualInformation, "FL2MI" [queryDiversityEta = eta]
            f(A) = sum_{q in Q} max_{j in A} s_jq + eta sum_{j in A} max_q s_jq
  gcmi      GraphCutMutualInformation: f(A) = sum_{j in A} sum_q s_jq (modular: the top-B points)
  logdetmi  LogDeterminantMutualInformation [lambdaVal = lam, magnificationEta = eta]
            f(A) = logdet L_A + logdet L_Q - logdet L_{A u Q},
            L = [[S_VV, eta S_VQ], [eta S_QV, S_QQ]] + lam I
  flcmi     FacilityLocationConditionalMutualInformation [magnificationEta = eta, privacyHardness = nu]
            f(A) = sum_{i in V} max(min(max_{j in A} s_ij, eta max_q s_iq) - nu max_p s_ip, 0)
  logdetcmi LogDeterminantConditionalMutualInformation [lambdaVal = lam, eta, nu]
            f(A) = logdet L_{A u P} + logdet L_{Q u P} - logdet L_{A u Q u P} - logdet L_P,
            L = [[S_VV, eta S_VQ, nu S_VP], [eta S_QV, S_QQ, S_QP], [nu S_PV, S_PQ, S_PP]] + lam I
Maxima over A start at 0 (submodlib's memoisation), and maxima over Q at the smallest positive float.

Picks follow submodlib's NaiveGreedy: each step takes the largest marginal gain; equal gains go to the
larger pool index (NaiveGreedy scans its candidates from the last index down and keeps the first
strictly larger gain). The facility-location objectives use lazy greedy, which for a submodular
function picks exactly what naive greedy picks; LogDetMI/CMI are not submodular, so every gain is
recomputed every step, in O(n (d + |Q| + |P| + |A|)) with incremental Cholesky factors.

Memory is linear in n: no n x n matrix exists unless it fits in `memory_budget` (then it is computed
once and kept); otherwise kernel columns are computed in blocks when needed and cached up to the budget.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from .kernels import KERNELS, Prepared, SelectionError, as_embedding, dims, n_rows, prepare, rows, similarity

FUNCTIONS = ("flmi", "flqmi", "gcmi", "logdetmi", "flcmi", "logdetcmi")
CONDITIONAL = ("flcmi", "logdetcmi")
BACKENDS = ("native", "submodlib")
FLOAT_MIN = torch.finfo(torch.float32).tiny  # std::numeric_limits<float>::min(), submodlib's start for max_q
BLOCK_BYTES = 1 << 26  # one kernel block in flight: 64 MiB


def smi_select(function: str, pool, query, budget: int, private=None, *, eta: float = 1.0, nu: float = 1.0,
               lam: float = 1.0, kernel: str = "cosine01", backend: str = "native",
               memory_budget: int = 1 << 30, device: str | torch.device | None = None) -> np.ndarray:
    """Greedily pick `budget` pool points maximising the SMI `function` with the query set.

    pool (n, d), query (|Q|, d), private (|P|, d): float arrays or tensors, or `GradientEmbedding`s.
    eta: query magnification (queryDiversityEta for flqmi); nu: privacy hardness; lam: added to the
    log-det diagonal. memory_budget: bytes the native backend may keep of the kernel. device: where the
    native backend computes (default: the pool tensor's device). Returns pool indices (budget,) int64,
    in pick order.
    """
    if function not in FUNCTIONS:
        raise SelectionError(f"unknown SMI function {function!r}; choose one of {FUNCTIONS}")
    if kernel not in KERNELS:
        raise SelectionError(f"unknown kernel {kernel!r}; choose one of {KERNELS}")
    if backend not in BACKENDS:
        raise SelectionError(f"unknown backend {backend!r}; choose one of {BACKENDS}")
    if device is None:
        device = pool.e.device if hasattr(pool, "e") else (pool.device if torch.is_tensor(pool) else "cpu")
    device = torch.device(device)
    pool = as_embedding(pool, "pool", device)
    query = as_embedding(query, "query", device)
    if private is not None:
        private = as_embedding(private, "private", device)
    _check(function, pool, query, private, budget, eta, nu, lam)
    if backend == "submodlib":
        from .reference import submodlib_select
        return submodlib_select(function, pool, query, budget, private, eta=eta, nu=nu, lam=lam, kernel=kernel)
    space = _Space(pool, query, private, kernel, memory_budget)
    if function in ("flmi", "flcmi"):
        picks = _facility_location(space, budget, eta, nu if function == "flcmi" else None)
    elif function == "flqmi":
        picks = _flqmi(space, budget, eta)
    elif function == "gcmi":
        picks = _gcmi(space, budget)
    else:
        picks = _logdet(space, budget, eta, nu if function == "logdetcmi" else None, lam)
    return np.asarray(picks, dtype=np.int64)


def _check(function, pool, query, private, budget, eta, nu, lam) -> None:
    n = n_rows(pool)
    if isinstance(budget, bool) or not isinstance(budget, (int, np.integer)) or budget < 1:
        raise SelectionError(f"budget must be a positive integer, got {budget!r}")
    if budget > n:
        raise SelectionError(f"budget {budget} is larger than the pool ({n} points); lower the budget")
    if n_rows(query) == 0:
        raise SelectionError("the query set is empty: SMI needs at least one rare-class exemplar as a query")
    if type(pool) is not type(query) or dims(pool) != dims(query):
        raise SelectionError(f"pool and query embeddings differ in kind or dimension: {dims(pool)} vs {dims(query)}")
    if function in CONDITIONAL:
        if private is None or n_rows(private) == 0:
            raise SelectionError(f"{function} is conditioned on a private set: pass private= with at least one row")
        if type(private) is not type(pool) or dims(private) != dims(pool):
            raise SelectionError(f"private embeddings differ from the pool's: {dims(private)} vs {dims(pool)}")
    elif private is not None:
        raise SelectionError(f"{function} takes no private set; use flcmi or logdetcmi to condition on one")
    for name, value in (("eta", eta), ("nu", nu)):
        if not (math.isfinite(value) and value >= 0):
            raise SelectionError(f"{name} must be a finite number >= 0, got {value}")
    if function in ("logdetmi", "logdetcmi") and not (math.isfinite(lam) and lam > 0):
        raise SelectionError(f"lam must be > 0 (it keeps the log-det kernel positive definite), got {lam}")


def _argmax_last(values: torch.Tensor) -> int:
    """Index of the maximum; equal maxima go to the largest index, as in submodlib's greedy."""
    return int((values == values.max()).nonzero()[-1, 0])


class _Space:
    """The prepared embeddings, the kernel, and the pool-pool columns held within the memory budget."""

    def __init__(self, pool, query, private, kernel: str, memory_budget: int):
        self.kernel = kernel
        self.pool = prepare(pool, kernel, "pool")
        self.n = n_rows(pool)
        # rbf bandwidth: the pool's mean squared norm, so the kernel does not depend on the embeddings' scale
        self.scale = float(self.pool.sqnorm.mean().clamp_min(1e-12)) if kernel == "rbf" else 1.0
        self.query = prepare(query, kernel, "query")
        self.private = None if private is None else prepare(private, kernel, "private")
        self.column_bytes = 4 * self.n
        self.max_cached = max(0, memory_budget // self.column_bytes)
        self.block = max(1, BLOCK_BYTES // self.column_bytes)
        self.dense = None
        self.cache: dict[int, torch.Tensor] = {}
        if self.max_cached >= self.n:  # the whole pool kernel fits in the budget: compute it once
            self.dense = torch.cat([self.sim(self.pool, rows(self.pool, slice(lo, lo + self.block)))
                                    for lo in range(0, self.n, self.block)], 1)

    def sim(self, a: Prepared, b: Prepared) -> torch.Tensor:
        return similarity(a, b, self.kernel, self.scale)

    def pool_vs(self, other: Prepared) -> torch.Tensor:
        """(n, len(other)) similarities of the pool with a small set (queries, privates)."""
        return self.sim(self.pool, other)

    def columns(self, idx: torch.Tensor, remember: bool = True) -> torch.Tensor:
        """Pool-pool kernel columns (n, len(idx)); computed ones are cached (oldest out first) if `remember`."""
        if self.dense is not None:
            return self.dense[:, idx]
        keys = idx.tolist()
        hits = {k: self.cache[k] for k in keys if k in self.cache}
        missing = [k for k in keys if k not in hits]
        if not missing:
            return torch.stack([hits[k] for k in keys], 1)
        fresh = self.sim(self.pool, rows(self.pool, torch.tensor(missing, device=idx.device)))
        got = dict(zip(missing, fresh.unbind(1)))
        if remember and self.max_cached:
            for k, column in got.items():
                if len(self.cache) >= self.max_cached:
                    self.cache.pop(next(iter(self.cache)))
                self.cache[k] = column.clone()  # a view would keep the whole block alive
        if not hits:
            return fresh
        got.update(hits)
        return torch.stack([got[k] for k in keys], 1)

    def all_blocks(self):
        """Pool indices in blocks small enough to hold (n, block) kernel columns."""
        for lo in range(0, self.n, self.block):
            yield torch.arange(lo, min(lo + self.block, self.n), device=self.pool.sqnorm.device)


def _facility_location(space: _Space, budget: int, eta: float, nu: float | None) -> list[int]:
    """FLMI (nu None) and FLCMI by lazy greedy.

    Both are facility location on the truncated kernel min(s_ij, t_i), t_i = eta max_q s_iq, with a floor
    f_i (0, or nu max_p s_ip for FLCMI): point i contributes c_i - f_i where c_i = max(min(m_i, t_i), f_i)
    and m_i = max(0, max_{j in A} s_ij). So the gain of j is sum_i max(0, min(s_ij, t_i) - c_i).
    """
    t = (eta * space.pool_vs(space.query).amax(1)).clamp_min(FLOAT_MIN)
    c = torch.minimum(torch.zeros_like(t), t)
    if nu is not None:
        c = torch.maximum(c, (nu * space.pool_vs(space.private).amax(1)).clamp_min(0))
    live = c < t  # a point whose floor already reaches its cap can never contribute: leave it out

    def gains(idx: torch.Tensor, remember: bool = True) -> torch.Tensor:
        s, lo, hi = space.columns(idx, remember), c[:, None], t[:, None]
        if not live.all():
            s, lo, hi = s[live], lo[live], hi[live]
        return torch.clamp(s, min=lo, max=hi).sub_(lo).sum(0)  # out of place: s may be the cache's

    bound = torch.cat([gains(idx, remember=False) for idx in space.all_blocks()])
    fresh = torch.ones(space.n, dtype=torch.bool, device=bound.device)
    picked = torch.zeros_like(fresh)
    picks = []
    for _ in range(budget):
        batch = 16
        while True:
            masked = bound.masked_fill(picked, -math.inf)
            best = _argmax_last(masked)
            if fresh[best]:
                break
            # refresh the stale candidates with the highest bounds; a bound never rises (submodularity)
            top = masked.topk(min(batch, space.n - len(picks))).indices
            top = torch.unique(torch.cat([top, torch.tensor([best], device=top.device)]))
            bound[top] = gains(top)
            fresh[top] = True
            batch = min(2 * batch, space.block)
        picks.append(best)
        picked[best] = True
        column = space.columns(torch.tensor([best], device=bound.device))[:, 0]
        c = torch.maximum(c, torch.minimum(column, t))
        live &= c < t
        fresh[:] = False
    return picks


def _flqmi(space: _Space, budget: int, eta: float) -> list[int]:
    """FLQMI by naive greedy over the (n, |Q|) kernel: gain_j = sum_q max(0, s_jq - M_q) + eta max_q s_jq."""
    s = space.pool_vs(space.query)
    modular = eta * s.amax(1).clamp_min(FLOAT_MIN)
    covered = torch.zeros(s.shape[1], dtype=s.dtype, device=s.device)
    picked = torch.zeros(space.n, dtype=torch.bool, device=s.device)
    picks = []
    for _ in range(budget):
        gain = (s - covered).clamp_min_(0).sum(1) + modular
        best = _argmax_last(gain.masked_fill_(picked, -math.inf))
        picks.append(best)
        picked[best] = True
        covered = torch.maximum(covered, s[best])
    return picks


def _gcmi(space: _Space, budget: int) -> list[int]:
    """GCMI is modular: the points with the largest query-similarity sums, larger index first on ties."""
    gain = space.pool_vs(space.query).sum(1).cpu().numpy()
    order = np.lexsort((-np.arange(space.n), -gain))  # by gain, then index, both descending
    return order[:budget].tolist()


class _Cholesky:
    """Incremental Cholesky of L restricted to C u A, seen from every pool point.

    Holds, for each pool point j, r_j = L_jj - L_jX L_X^-1 L_Xj (the gain of j is log r_j) and the
    coordinates of L_Xj in the factor's basis, so adding a point costs one kernel column and O(n |X|).
    """

    def __init__(self, diag: torch.Tensor, budget: int, cross: torch.Tensor | None = None,
                 block: torch.Tensor | None = None):
        fixed = 0 if cross is None else cross.shape[1]
        self.r = diag.clone()
        self.coords = torch.zeros(len(diag), fixed + budget, dtype=diag.dtype, device=diag.device)
        self.size = fixed
        if cross is not None:  # condition on a fixed set C: L_CC = block, L_VC = cross
            chol = torch.linalg.cholesky(block)
            self.coords[:, :fixed] = torch.linalg.solve_triangular(chol, cross.T, upper=False).T
            self.r -= (self.coords[:, :fixed] ** 2).sum(1)

    def add(self, a: int, column: torch.Tensor) -> None:
        """Add pool point a, whose column of L over the pool is `column` (n,)."""
        known = self.coords[:, :self.size]
        u = (column - known @ known[a]) / self.r[a].sqrt()
        self.r -= u * u
        self.coords[:, self.size] = u
        self.size += 1


def _logdet(space: _Space, budget: int, eta: float, nu: float | None, lam: float) -> list[int]:
    """LogDetMI (nu None) and LogDetCMI by exact greedy: gain_j = log r_j(A u P) - log r_j(A u P u Q)."""
    f64 = torch.float64
    s_vq = eta * space.pool_vs(space.query).to(f64)
    s_qq = space.sim(space.query, space.query).to(f64)
    # s_jj = 1 for every kernel offered (unit rows for the cosines, zero distance for rbf)
    diag = torch.full((space.n,), 1.0 + lam, dtype=f64, device=s_vq.device)
    if nu is None:
        small = _Cholesky(diag, budget)
        large = _Cholesky(diag, budget, s_vq, s_qq + lam * torch.eye(len(s_qq), dtype=f64, device=s_qq.device))
    else:
        s_vp = nu * space.pool_vs(space.private).to(f64)
        s_pp = space.sim(space.private, space.private).to(f64)
        s_qp = space.sim(space.query, space.private).to(f64)
        eye_p = lam * torch.eye(len(s_pp), dtype=f64, device=s_pp.device)
        eye_q = lam * torch.eye(len(s_qq), dtype=f64, device=s_qq.device)
        block = torch.cat([torch.cat([s_pp + eye_p, s_qp.T], 1), torch.cat([s_qp, s_qq + eye_q], 1)], 0)
        small = _Cholesky(diag, budget, s_vp, s_pp + eye_p)
        large = _Cholesky(diag, budget, torch.cat([s_vp, s_vq], 1), block)
    picked = torch.zeros(space.n, dtype=torch.bool, device=diag.device)
    picks = []
    for step in range(budget):
        if (small.r[~picked] <= 0).any() or (large.r[~picked] <= 0).any():
            raise SelectionError(f"the log-det kernel is not positive definite at step {step} (eta={eta}, "
                                 f"nu={nu}, lam={lam}); lower eta or nu, or raise lam")
        gain = (small.r.log() - large.r.log()).masked_fill_(picked, -math.inf)
        best = _argmax_last(gain)
        picks.append(best)
        picked[best] = True
        column = space.columns(torch.tensor([best], device=diag.device))[:, 0].to(f64)
        column[best] += lam
        small.add(best, column)
        large.add(best, column)
    return picks

