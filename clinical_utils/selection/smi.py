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

Memory is linear in n, except where facility location keeps the fp32 pool kernel: it does when the kernel fits
in `memory_budget` (default: up to n = 16,384) and then keeps every candidate's gain current, lowering it over
the rows each pick changes. Larger pools compute kernel entries in tiles when needed, only for the rows that
can still gain (rows whose contribution has not reached its cap), by lazy greedy: first as bf16 upper bounds
with a rigorous error term (cosine kernels on plain embeddings, n >= about 4,000, where bf16 is fast: CUDA and
AVX512 CPUs, `train.native_bf16`), then in fp32 for the candidate about to be picked. Where the bounds stop
separating the candidates (unclustered data), lazy greedy hands the remaining picks to the kept-gains greedy,
computing kernel rows as it needs them.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch
from tqdm import tqdm

from ..training.train import native_bf16
from .kernels import (KERNELS, Prepared, SelectionError, as_embedding, check_budget, dims, kernel_scale, n_rows,
                      power_of_two_scale, prepare, rows, scaled, self_similarity, similarity)

FUNCTIONS = ("flmi", "flqmi", "gcmi", "logdetmi", "flcmi", "logdetcmi")
CONDITIONAL = ("flcmi", "logdetcmi")
UNCONDITIONAL = tuple(f for f in FUNCTIONS if f not in CONDITIONAL)  # need no private set
BACKENDS = ("native", "submodlib")
FLOAT_MIN = torch.finfo(torch.float32).tiny  # std::numeric_limits<float>::min(), submodlib's start for max_q
BLOCK_BYTES = 1 << 26  # one kernel block in flight: 64 MiB
TILE_BYTES = 1 << 23  # facility location's kernel tiles, 8 MiB in one reused buffer, clamped and summed while still
# in cache (n = 100,000, 2-core EPYC: 2,048 rows against every point in 1.4 s, against 2.1 s as 64 MiB blocks)
TILE_ROWS = 1024  # rows per tile at most (n = 100,000: bf16 bounds of 1,024 candidates at a time cost 0.17 ms
# a candidate, 167 at a time (a 64 MiB block) 0.21-0.25 ms)
TILE_COLUMNS = TILE_BYTES // (4 * TILE_ROWS)  # the width of tiles summed into gains: fixed, so that a candidate's
# float32 gain does not depend on how many candidates are computed with it (lazy greedy and the kept gains agree)
FAST_BOUNDS_MIN_N = 4096
U32 = 2.0 ** -24  # float32's unit roundoff
SUM_ROWS = 8  # kernel rows per float32 sum when a pick lowers the kept gains
SWITCH_RATIO = 2.0  # lazy greedy hands over when a step costs this many times keeping the gains current


def smi_select(function: str, pool, query, budget: int, private=None, *, eta: float = 1.0, nu: float = 1.0,
               lam: float = 1.0, kernel: str = "cosine01", backend: str = "native",
               memory_budget: int = 1 << 30, device: str | torch.device | None = None,
               progress: bool | None = None) -> np.ndarray:
    """Greedily pick `budget` pool points maximising the SMI `function` with the query set.

    pool (n, d), query (|Q|, d), private (|P|, d): float arrays or tensors, or `GradientEmbedding`s.
    eta: query magnification (queryDiversityEta for flqmi); nu: privacy hardness; lam: added to the
    log-det diagonal. memory_budget: bytes FLMI/FLCMI may spend keeping the fp32 pool kernel (4 n^2 bytes; the
    default keeps it up to n = 16,384), the fastest path on every input measured; larger pools bound gains in
    bf16 (cosine kernels on plain embeddings, where bf16 is fast: `train.native_bf16`) or compute kernel tiles
    when needed. device: where the native backend computes (default: the pool tensor's device). progress: a
    tqdm bar over the picks (None: only on a terminal). Returns pool indices (budget,) int64, in pick order.
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
    # only facility location reads pool-pool entries again and again: it alone keeps the kernel or bf16 copies;
    # below a few thousand points the bf16 set-up costs more than it saves (measured crossover: n ~ 4,000), and
    # where bf16 is not fast its products run in generic kernels, slower than the fp32 ones they save
    # (benchmarks/bf16_bounds.py: 5.4-7.0x slower in all on an AVX2-only EPYC)
    repeated = function in ("flmi", "flcmi")
    space = _Space(pool, query, private, kernel, memory_budget if repeated else 0,
                   fast_bounds=repeated and n_rows(pool) >= FAST_BOUNDS_MIN_N and native_bf16(device))
    steps = tqdm(range(budget), desc=function, unit="pick", leave=False,
                 disable=None if progress is None else not progress)
    if repeated:
        picks = _facility_location(space, steps, eta, nu if function == "flcmi" else None)
    elif function == "flqmi":
        picks = _flqmi(space, steps, eta)
    elif function == "gcmi":
        picks = _gcmi(space, budget)
    else:
        picks = _logdet(space, steps, eta, nu if function == "logdetcmi" else None, lam)
    steps.close()
    return np.asarray(picks, dtype=np.int64)


def _check(function, pool, query, private, budget, eta, nu, lam) -> None:
    check_budget(budget, n_rows(pool))
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


class _Rows(NamedTuple):
    """Pool rows gathered for one greedy step: the mask, exact rows, bf16 rows."""
    mask: torch.Tensor
    exact: Prepared
    low: torch.Tensor | None


class _Space:
    """The prepared embeddings and kernel; for facility location also bf16 copies, or the kept pool kernel."""

    def __init__(self, pool, query, private, kernel: str, memory_budget: int, fast_bounds: bool = True):
        self.kernel = kernel
        if kernel == "rbf":
            # one exact rescaling of every set keeps distances finite at any magnitude (the cosine kernels
            # normalise each row instead)
            factor = power_of_two_scale(pool, query, *([] if private is None else [private]))
            pool, query = scaled(pool, factor), scaled(query, factor)
            private = None if private is None else scaled(private, factor)
        self.pool = prepare(pool, kernel, "pool")
        self.n = n_rows(pool)
        self.device = self.pool.sqnorm.device
        self.scale = kernel_scale(self.pool, kernel)
        self.query = prepare(query, kernel, "query")
        self.private = None if private is None else prepare(private, kernel, "private")
        self.dense = self.low = None
        if 4 * self.n * self.n <= memory_budget:
            # keep the pool kernel where it fits: measured faster than bf16 bounds at every n (1.5 s against 2.2 s
            # on clustered data at n = 10,000, 1.6 s against 10 s on unclustered data; bench_selection.py)
            self.dense = torch.empty(self.n, self.n, device=self.device)
            step = max(1, BLOCK_BYTES // (4 * self.n))  # rows a block: gradient embeddings' e products are a
            for lo in range(0, self.n, step):  # temporary of a block's size
                part = self.dense[lo:lo + step]  # written in place; rbf returns a fresh block, copied in
                part.copy_(self.sim(rows(self.pool, slice(lo, lo + step)), self.pool, out=part))
        elif fast_bounds and kernel != "rbf" and torch.is_tensor(self.pool.emb):
            # bf16 copies for cheap upper bounds (cosine kernels on plain embeddings; the picks stay exact).
            # Measured: from n ~ 4,000 up this beats keeping the fp32 pool kernel, in time and in memory.
            x = self.pool.emb
            self.low = x.bfloat16()
            back = self.low.float()
            rounding = x - back
            self.low_err = rounding.norm(dim=1)  # r_i = ||x_i - bf16(x_i)||
            self.low_norm = back.norm(dim=1)  # m_i = ||bf16(x_i)||
            # largest eigenvalues (1% margin) of Y^T Y for Y = X and the rounding errors E: for any rows R and
            # vector a, sum_{i in R} |<a, y_i>| <= sqrt(|R| lam_Y) ||a||, far below |R| ||a|| for real data
            # (fp32 Gram matrices: their rounding, ~1e-6 relative, is far inside the 1% margin). For X~ = X - E,
            # sqrt(lam_X~) <= sqrt(lam_X) + sqrt(lam_E); for |X~| the Frobenius norm bounds it (its term is tiny).
            top = lambda a: 1.01 * float(torch.linalg.eigvalsh((a.T @ a).double()).max().clamp_min(0))
            self.lam_x, self.lam_e = top(x), top(rounding)
            self.root_low = math.sqrt(self.lam_x) + math.sqrt(self.lam_e)
            self.root_abs = 1.01 * float(back.norm())
            self.low_tile = torch.empty((TILE_ROWS + 1) * TILE_COLUMNS, dtype=torch.bfloat16, device=self.device)
        # one reused tile: fresh blocks cost page faults, and a tile is clamped and summed while still in cache
        self.tile = torch.empty((TILE_ROWS + 1) * TILE_COLUMNS, device=self.device)

    def sim(self, a: Prepared, b: Prepared, out: torch.Tensor | None = None) -> torch.Tensor:
        return similarity(a, b, self.kernel, self.scale, out=out)

    def tiles(self, count: int, height: int, fixed: bool):
        """Spans of `count` columns, each with the reused tile (height, stop - start): yields (start, stop, tile).
        fixed: TILE_COLUMNS wide, for float32 sums along the rows that must not depend on the height (gains); else
        as many times TILE_COLUMNS as the buffer allows (2,050 columns instead of 2,048 took the kept gains from 15
        to 19 s at n = 30,000). height: at most TILE_ROWS + 1."""
        width = TILE_COLUMNS * (1 if fixed else max(1, len(self.tile) // (height * TILE_COLUMNS)))
        for start in range(0, count, width):
            stop = min(start + width, count)
            yield start, stop, self.tile[:height * (stop - start)].view(height, stop - start)

    def pool_vs(self, other: Prepared) -> torch.Tensor:
        """(n, len(other)) similarities of the pool with a small set (queries, privates)."""
        return self.sim(self.pool, other)

    def live_rows(self, mask: torch.Tensor) -> _Rows:
        """Gather the pool rows in `mask` once, for all the tiles computed against them this step."""
        exact = rows(self.pool, mask)
        if self.low is None:
            return _Rows(mask, exact, None)
        return _Rows(mask, exact, self.low[mask])

    def block_of(self, idx: torch.Tensor, of: _Rows) -> torch.Tensor:
        """Exact kernel entries (len(idx), rows): pool points idx against the gathered rows; a fresh tensor."""
        return self.sim(rows(self.pool, idx), of.exact)

    @staticmethod
    def approx_products(a: torch.Tensor, b: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """Inner products (len(a), len(b)) of bf16 pool rows (self.low rows), in cosine units, accumulated in fp32,
        written into `out` (bf16)."""
        cuda = torch.backends.cuda.matmul
        reduced = cuda.allow_bf16_reduced_precision_reduction
        try:  # the bound needs fp32 accumulation: cuBLAS may otherwise reduce partial sums in bf16
            cuda.allow_bf16_reduced_precision_reduction = False
            return torch.matmul(a, b.T, out=out)
        finally:
            cuda.allow_bf16_reduced_precision_reduction = reduced

    def approx_error(self, idx: torch.Tensor, count: int) -> torch.Tensor:
        """For each point j in idx (len(idx),) a bound on the sum of the absolute errors of its `approx_products`
        with any `count` pool rows.

        x unit rows, x~ = bf16(x), e = x - x~, r = ||e||, m = ||x~||. The product accumulates in fp32 over d
        terms (error <= gamma_d <|x~_j|, |x~_i|>) and is rounded to bf16 (<= 2^-8 of the value), so per entry
        |<x_j, x_i> - v_ji| <= |<e_j, x_i>| + |<x~_j, e_i>| + 2^-8 |<x~_j, x~_i>| + 2 gamma_d <|x~_j|, |x~_i|>.
        Over rows R, sum_i |<a, y_i>| <= sqrt(|R| lam) ||a|| (Cauchy-Schwarz, then lam the largest eigenvalue
        of Y^T Y over all rows), so the summed error is at most sqrt(|R|) (sqrt(lam_X) r_j + (sqrt(lam_E)
        + 2^-8 sqrt(lam_X~) + 2 gamma_d sqrt(lam_|X~|)) m_j): no pass over the products is needed.
        """
        d = self.low.shape[1]
        gamma = d * 2.0 ** -24 / (1 - d * 2.0 ** -24)
        r, m = self.low_err[idx], self.low_norm[idx]
        per_m = math.sqrt(self.lam_e) + 2.0 ** -8 * self.root_low + 2 * gamma * self.root_abs
        return math.sqrt(count) * (math.sqrt(self.lam_x) * r + per_m * m)


STALE, BOUNDED, EXACT = 0, 1, 2  # what a candidate's bound is this step: stale, a bf16 bound, its exact gain
FIRST_BATCH = {STALE: 64, BOUNDED: 16}  # candidates refreshed at once; doubled up to TILE_ROWS while the step goes on


def _caps_and_floors(space: _Space, eta: float, nu: float | None):
    """Facility location's caps t_i = eta max_q s_iq, starting contributions c_i (0, or FLCMI's floor
    nu max_p s_ip), and the rows that can still gain (c_i < t_i), all (n,)."""
    t = (eta * space.pool_vs(space.query).amax(1)).clamp_min(FLOAT_MIN)
    c = torch.minimum(torch.zeros_like(t), t)
    if nu is not None:
        c = torch.maximum(c, (nu * space.pool_vs(space.private).amax(1)).clamp_min(0))
    return t, c, c < t  # a point whose floor already reaches its cap can never contribute: leave it out


def _kept_gains_greedy(space: _Space, steps, eta: float, nu: float | None, state=None) -> list[int]:
    """FLMI and FLCMI with every candidate's gain kept current instead of bounded: `_lazy_greedy`'s objective
    and picks. Kernel rows come from the kept fp32 pool kernel S (n, n) if there is one, else are computed.

    A pick raises c_i only on the rows R where it beats c_i, and lowers gain j by the sum over R of
    clamp(s_ij, c_i old, c_i new) - c_i old: one pass over those rows of S per pick (about n ln B rows in all
    for B picks on unclustered data), whatever the data. Lazy greedy instead re-evaluates every candidate whose
    stale bound beats the best exact gain: few on clustered data, nearly all at every step on unclustered data.
    The kept gains carry rounding, bounded below, so every candidate that could be the best is evaluated
    afresh, as `_lazy_greedy` evaluates it, and the best of those is picked (equal gains: the larger
    index): the picks are exact greedy's. state: (c, live, picked, picks) of a greedy run to go on with.
    """
    n, kept = space.n, space.dense

    def kernel_tiles(idx: torch.Tensor, columns: torch.Tensor | None, gathered: Prepared, fixed: bool):
        """Kernel entries of pool points idx (at most TILE_ROWS) against pool points `columns` (None: every point),
        tile by tile (`_Space.tiles`): yields (start, stop, tile (len(idx), stop - start)) for columns[start:stop],
        the tile in the reused buffer where it can be. gathered: rows(space.pool, columns), gathered once by the
        caller (unused where the kernel is kept)."""
        count = n if columns is None else len(columns)
        mine = rows(space.pool, idx) if kept is None else None
        for start, stop, out in space.tiles(count, len(idx), fixed):
            if kept is None:
                yield start, stop, space.sim(mine, rows(gathered, slice(start, stop)), out)
            elif columns is None:
                yield start, stop, torch.index_select(kept[:, start:stop], 0, idx, out=out)
            else:
                yield start, stop, kept[idx[:, None], columns[None, start:stop]]

    def fresh_gains(idx: torch.Tensor, live_rows: torch.Tensor, dtype=torch.float32) -> torch.Tensor:
        """Gains (len(idx),) from kernel entries, computed as `_lazy_greedy` computes exact gains (summed in
        `dtype`, tile by tile)."""
        lo, hi = low[live_rows], t[live_rows]
        every = len(live_rows) == n
        columns = None if every else live_rows
        gathered = space.pool if every or kept is not None else rows(space.pool, live_rows)
        out = torch.zeros(len(idx), dtype=torch.float64, device=space.device)  # the tiles' sums, added in float64
        for first in range(0, len(idx), TILE_ROWS):
            at = idx[first:first + TILE_ROWS]
            for start, stop, tile in kernel_tiles(at, columns, gathered, fixed=True):
                a, b = lo[None, start:stop], hi[None, start:stop]
                out[first:first + len(at)] += tile.clamp_(min=a, max=b).sub_(a).sum(1, dtype=dtype)
        return out.to(dtype)

    t, c, live = _caps_and_floors(space, eta, nu)
    picked, picks = torch.zeros(n, dtype=torch.bool, device=space.device), []
    if state is not None:
        c, live, picked, picks = state
    # c on the rows that can still gain, t on the others (whose entries then clamp to zero gain): live = low < t
    low = torch.minimum(c, t)
    everyone = torch.arange(n, device=space.device)
    gain = fresh_gains(everyone, live.nonzero()[:, 0], torch.float64)
    # Rounding: a kept term is one float32 subtraction (relative error <= u) and the first gains are float64 sums;
    # a drop adds float32 sums of at most SUM_ROWS terms (<= (SUM_ROWS + 1) u of their sum) in float64; drops add
    # up to at most the first gain, so every kept gain is within (SUM_ROWS + 2) u max(first gains) of its exact
    # value. A fresh float32 sum over L rows is within (L + 1) u of its value (naive summation's bound).
    drift = (SUM_ROWS + 2) * U32 * float(gain.masked_fill(picked, 0).max())
    for _ in steps:
        live_rows = live.nonzero()[:, 0]
        for fresh_start in (False, True):
            masked = gain.masked_fill(picked, -math.inf)
            top = float(masked.max())
            band = (masked >= top - 2 * (drift + (len(live_rows) + 1) * U32 * abs(top))).nonzero()[:, 0]
            if fresh_start or len(band) <= n // 8 or drift <= (len(live_rows) + 1) * U32 * abs(top):
                break
            # the gains have fallen to the size of their rounding (the last picks): recompute them all, once,
            # over the few rows still live, so the band shrinks back to the real contenders
            gain = fresh_gains(everyone, live_rows, torch.float64)
            drift = (SUM_ROWS + 2) * U32 * float(gain.masked_fill(picked, 0).max())
        fresh = fresh_gains(band, live_rows)
        gain[band] = fresh.double()
        best = int(band[_argmax_last(fresh)])
        picks.append(best)
        picked[best] = True
        column = kept[best] if kept is not None else space.sim(
            rows(space.pool, torch.tensor([best], device=space.device)), space.pool)[0]
        new = torch.maximum(low, torch.minimum(column, t))
        changed = (new > low).nonzero()[:, 0]
        for first in range(0, len(changed), TILE_ROWS):
            at = changed[first:first + TILE_ROWS]
            was, now = low[at, None], new[at, None]
            whole = len(at) - len(at) % SUM_ROWS  # float32 sums of SUM_ROWS rows at most, added in float64
            for start, stop, tile in kernel_tiles(at, None, space.pool, fixed=False):  # sums along columns
                # clamp(was, now) as maximum then minimum: the same numbers, but clamp_ with per-row bounds ran
                # at 2.4 G entries/s against 20 for these two (1,024 x 2,048 tile, 2-core EPYC)
                torch.minimum(torch.maximum(tile, was, out=tile), now, out=tile).sub_(was)
                part = gain[start:stop]  # a view: the gains are lowered in place
                part -= tile[:whole].view(-1, SUM_ROWS, stop - start).sum(1).sum(0, dtype=torch.float64)
                part -= tile[whole:].sum(0)
        low = new
        live = low < t
    return picks


def _facility_location(space: _Space, steps, eta: float, nu: float | None) -> list[int]:
    """FLMI (nu None) and FLCMI: on the kept kernel if there is one, else by lazy greedy."""
    return (_kept_gains_greedy if space.dense is not None else _lazy_greedy)(space, steps, eta, nu)


def _lazy_greedy(space: _Space, steps, eta: float, nu: float | None) -> list[int]:
    """FLMI (nu None) and FLCMI by lazy greedy.

    Both are facility location on the truncated kernel min(s_ij, t_i), t_i = eta max_q s_iq, with a floor
    f_i (0, or nu max_p s_ip for FLCMI): point i contributes c_i - f_i where c_i = max(min(m_i, t_i), f_i)
    and m_i = max(0, max_{j in A} s_ij). So the gain of j is sum_i max(0, min(s_ij, t_i) - c_i).

    Every candidate holds an upper bound on its gain: stale bounds stay valid (gains only fall), bf16
    bounds carry their rounding error; a candidate is picked only once its exact fp32 gain beats every
    other bound, so the picks are those of exact greedy.

    Where bounds stop separating the candidates (unclustered data: gains stay close, so a step re-evaluates
    thousands exactly), keeping every gain current costs less: once a step's kernel entries exceed
    SWITCH_RATIO times what lowering every gain over the rows that step changed would cost, the remaining
    picks go to `_kept_gains_greedy`.
    """
    t, c, live = _caps_and_floors(space, eta, nu)

    half = 0.5 if space.kernel == "cosine01" else 1.0  # cosine01 = (1 + v) / 2: map the caps, not the blocks

    def gains(idx: torch.Tensor, exact: bool) -> torch.Tensor:
        # only the rows that can still gain are computed: they thin out quickly as the picks cover the pool
        lo, hi = c[live], t[live]
        if not exact:
            lo, hi = (lo - (1 - half)) / half, (hi - (1 - half)) / half
        mine = rows(space.pool, idx) if exact else space.low[idx]
        # float32 sums per tile, added in float64: no worse than one float32 sum over the rows, plus one rounding
        total = torch.zeros(len(idx), dtype=torch.float64, device=space.device)
        for start, stop, tile in space.tiles(len(lo), len(idx), fixed=exact):
            a, b = lo[None, start:stop], hi[None, start:stop]
            if exact:
                total += space.sim(mine, rows(of.exact, slice(start, stop)), tile).clamp_(min=a, max=b).sub_(a).sum(1)
            else:
                v = space.approx_products(mine, of.low[start:stop], space.low_tile[:tile.numel()].view(tile.shape))
                # to fp32 first, then clamp in place: clamp with bf16 input and fp32 bounds is five times slower
                total += tile.copy_(v).clamp_(min=a, max=b).sum(1)
        if exact:
            return total.float()
        g = half * (total.float() - lo.sum())
        # + the bf16 products' error and the float32 rounding of the sums
        return g + half * space.approx_error(idx, len(lo)) + 1e-6 * (len(lo) + g.abs())

    fast = space.low is not None
    of = space.live_rows(live)
    everyone = torch.arange(space.n, device=space.device)
    bound = torch.cat([gains(idx, exact=not fast) for idx in everyone.split(TILE_ROWS)])
    state = torch.full((space.n,), BOUNDED if fast else EXACT, dtype=torch.int8, device=bound.device)
    picked = torch.zeros(space.n, dtype=torch.bool, device=bound.device)
    picks, budget = [], len(steps)
    steps = iter(steps)  # the kept-gains greedy may take over the remaining steps
    for _ in steps:
        batch = dict(FIRST_BATCH)
        work, rows_live = 0.0, int(live.sum())  # kernel entries computed this step (a bf16 entry counts half)
        while True:
            masked = bound.masked_fill(picked, -math.inf)
            best = _argmax_last(masked)
            level = int(state[best])
            if level == EXACT:
                break
            # refresh the highest bounds at this level one level up: bf16 for stale ones, fp32 for bf16 ones
            top = masked.masked_fill(state != level, -math.inf).topk(min(batch[level], space.n - len(picks))).indices
            top = torch.unique(torch.cat([top[state[top] == level], torch.tensor([best], device=top.device)]))
            exact = level == BOUNDED or not fast
            bound[top] = gains(top, exact)
            work += len(top) * rows_live * (1.0 if exact else 0.5)
            state[top] = EXACT if exact else BOUNDED
            batch[level] = min(2 * batch[level], TILE_ROWS)
        picks.append(best)
        picked[best] = True
        column = space.block_of(torch.tensor([best], device=bound.device), of)[0]
        raised = torch.minimum(column, t[live])
        changed = int((raised > c[live]).sum())
        c[live] = torch.maximum(c[live], raised)
        live &= c < t
        if work > SWITCH_RATIO * changed * space.n and len(picks) < budget:
            return _kept_gains_greedy(space, steps, eta, nu, (c, live, picked, picks))
        of = space.live_rows(live)
        state.fill_(STALE)
    return picks


def _flqmi(space: _Space, steps, eta: float) -> list[int]:
    """FLQMI by naive greedy over the (n, |Q|) kernel: gain_j = sum_q max(0, s_jq - M_q) + eta max_q s_jq."""
    s = space.pool_vs(space.query)
    modular = eta * s.amax(1).clamp_min(FLOAT_MIN)
    covered = torch.zeros(s.shape[1], dtype=s.dtype, device=s.device)
    picked = torch.zeros(space.n, dtype=torch.bool, device=s.device)
    picks = []
    for _ in steps:
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
        # one row per factor column, so the part in use is one contiguous (size, n) block
        self.coords = torch.zeros(fixed + budget, len(diag), dtype=diag.dtype, device=diag.device)
        self.size = fixed
        if cross is not None:  # condition on a fixed set C: L_CC = block, L_VC = cross
            chol = torch.linalg.cholesky(block)
            self.coords[:fixed] = torch.linalg.solve_triangular(chol, cross.T, upper=False)
            self.r -= (self.coords[:fixed] ** 2).sum(0)

    def add(self, a: int, column: torch.Tensor) -> None:
        """Add pool point a, whose column of L over the pool is `column` (n,)."""
        known = self.coords[:self.size]
        u = (column - known.T @ known[:, a]) / self.r[a].sqrt()
        self.r -= u * u
        self.coords[self.size] = u
        self.size += 1


def _logdet(space: _Space, steps, eta: float, nu: float | None, lam: float) -> list[int]:
    """LogDetMI (nu None) and LogDetCMI by exact greedy: gain_j = log r_j(A u P) - log r_j(A u P u Q)."""
    budget = len(steps)
    f64 = torch.float64
    s_vq = eta * space.pool_vs(space.query).to(f64)
    s_qq = space.sim(space.query, space.query).to(f64)
    diag = self_similarity(space.pool, space.kernel).to(f64) + lam  # 1 + lam but for all-zero rows
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
    every = space.live_rows(torch.ones_like(picked))
    picks = []
    for step in steps:
        if (small.r[~picked] <= 0).any() or (large.r[~picked] <= 0).any():
            raise SelectionError(f"the log-det kernel is not positive definite at step {step} (eta={eta}, "
                                 f"nu={nu}, lam={lam}); lower eta or nu, or raise lam")
        gain = (small.r.log() - large.r.log()).masked_fill_(picked, -math.inf)
        best = _argmax_last(gain)
        picks.append(best)
        picked[best] = True
        column = space.block_of(torch.tensor([best], device=diag.device), every)[0].to(f64)
        column[best] += lam
        small.add(best, column)
        large.add(best, column)
    return picks

