"""Which equalities a test may assert, and on which CPUs each holds. Tests assert equality only through these.

exact               bit for bit on every CPU: integers, exact arithmetic, or floats that the same kernels computed on
                    the same shapes twice (a repeat, a progress bar on or off).
close               floats that different kernels computed (another batch size, a kept kernel against tiles, factored
                    against dense embeddings): within rounding on every CPU; bit for bit on some CPU kinds only,
                    because MKL and oneDNN choose their code paths by shape and CPU (a 1-row GEMM adds in another
                    order than a 128-row one here, a 128-row one than a 300-row one on an AMX Xeon).
picks_clear_of_ties picks that different kernels computed, on data whose best gain leads the next by far more than
                    the kernels' rounding at every step (clustered points, few picks): the same on every CPU.
greedy_within_rounding
                    facility-location picks where gains tie within rounding (saturated rows, two-class gradient
                    embeddings): which of the tied points a path takes depends on the last bits of its kernel entries,
                    so on some CPUs two paths part there (README: Reproducibility). What holds on every CPU: every
                    pick's exact (float64) gain is within the rounding bound of the best gain at its step.
The nbval references and the committed records are a third kind: exact on the CPU kinds the README lists.
"""
import numpy as np
import torch

U32 = 2.0 ** -24  # float32's unit roundoff
SUM_COLUMNS = 2048  # the most entries the selection adds in one float32 sum (smi.TILE_COLUMNS by default)


def exact(actual, expected, err_msg: str = "") -> None:
    """Bit for bit, on every CPU: see the module's docstring for what qualifies."""
    np.testing.assert_array_equal(actual, expected, err_msg=err_msg)


def close(actual, expected, rtol: float = 1e-5, atol: float = 1e-6, err_msg: str = "") -> None:
    """Within rounding, on every CPU: results of different kernels or shapes (bit for bit on some CPUs only)."""
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, err_msg=err_msg)


def picks_clear_of_ties(actual, expected, err_msg: str = "") -> None:
    """The same picks through different kernels, where the caller's data keep every step's gains apart."""
    np.testing.assert_array_equal(actual, expected, err_msg=err_msg)


def _dense64(x) -> torch.Tensor:
    """Rows as float64 (n, D), gradient embeddings expanded, normalised to unit length (all-zero rows stay 0)."""
    x = x.dense() if hasattr(x, "dense") else torch.as_tensor(x)
    x = x.double()
    norm = x.norm(dim=1, keepdim=True)
    return torch.where(norm > 0, x / norm.clamp_min(1e-300), x)


def greedy_within_rounding(picks, pool, query, private=None, eta: float = 1.0, nu: float = 1.0) -> None:
    """Assert that FLMI (private None) or FLCMI `picks` on the cosine01 kernel are greedy up to rounding: at every
    step the pick's float64 gain is within r_pick + r_best of the best float64 gain. A candidate's rounding
    r = 2 E m + (min(m, SUM_COLUMNS) + 1) u g: E bounds a float32 kernel entry's error (4 times the largest this
    CPU makes on this problem's kernel: a path on other shapes adds in another order), m counts the rows its gain
    sums over, or may in float32, and the second term is a float32 sum over at most SUM_COLUMNS entries (the
    selection adds its tiles' sums in float64) of gain g. Two paths that both pass part only at a tie within
    rounding: up to their first difference they share every state, so both picks there are near the best."""
    p, q = _dense64(pool), _dense64(query)
    s = (1 + p @ p.T) / 2
    t = (eta * ((1 + p @ q.T) / 2).amax(1)).clamp_min(torch.finfo(torch.float32).tiny)
    c = torch.zeros_like(t)
    if private is not None:
        c = torch.maximum(c, (nu * ((1 + p @ _dense64(private).T) / 2).amax(1)).clamp_min(0))
    c = torch.minimum(c, t)
    error = 4 * float(((1 + p.float() @ p.float().T) / 2 - s).abs().max())
    picked = torch.zeros(len(s), dtype=torch.bool)
    live = c < t
    # rows at their cap gain nothing in float64, but a float32 path may see up to 2 E left on those a candidate
    # comes within 2 E of: counted once, as rows die
    dead_rows = (s[~live] > t[~live, None] - 2 * error).sum(0)
    for step, j in enumerate(np.asarray(picks).tolist()):
        terms = torch.minimum(s[live], t[live, None]) - c[live, None]
        gain = terms.clamp_min(0).sum(0)
        rows = (terms > -2 * error).sum(0) + dead_rows
        rounding = 2 * error * rows + (rows.clamp_max(SUM_COLUMNS) + 1) * U32 * gain
        gain[picked] = -np.inf
        best = int(gain.argmax())
        assert not picked[j] and gain[j] >= gain[best] - rounding[j] - rounding[best], (
            f"pick {step} ({j}) gains {float(gain[j])}, the best ({best}) {float(gain[best])}, rounding "
            f"{float(rounding[j] + rounding[best])}")
        picked[j] = True
        c = torch.maximum(c, torch.minimum(s[:, j], t))
        died = live & (c >= t)
        dead_rows += (s[died] > t[died, None] - 2 * error).sum(0)
        live &= ~died
