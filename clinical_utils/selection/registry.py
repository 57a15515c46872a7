"""Every selection strategy in one place: its name, family, what it reads, its picking function and its style.

A strategy picks `budget` pool positions, in pick order, from `inputs`: any object with `n`, the pool's size,
and the attributes its `needs` names (the loop's `PoolInputs` computes each on first read):

    probs              (n, K) the picking model's class probabilities on the pool
    features           (n, d) its penultimate features on the pool
    mc_probs           (T, n, K) MC-dropout probabilities through its head
    labeled_features   (m, d) its features of the labeled images
    pool_embedding     what the SMI functions compare, for the pool ...
    query_embedding    ... the query set (the rare exemplars)
    private_embedding  ... and the private set (the labeled common images; conditional functions only)
    smi_params         dict of `smi_select` keyword arguments
    smi_function       the SMI function the `smi` sampler runs
    given_labels       (n,) the pool's given, possibly wrong, labels (label refinement)

Adding a strategy is one picking function and one line in `STRATEGIES`; `available` tells each caller which
strategies it can run, from the inputs it offers.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .baselines import (badge_select, bald_select, coreset_select, entropy_select, least_confidence_select,
                        margin_select, random_select)
from .embeddings import gradient_embedding
from .label_quality import activelab_order, label_quality_order, loss_order
from .kernels import check_budget
from .smi import CONDITIONAL, FUNCTIONS, SelectionError, smi_select

FAMILIES = ("smi", "random", "uncertainty", "diversity", "label_quality")
INPUTS = ("probs", "features", "mc_probs", "labeled_features", "pool_embedding", "query_embedding",
          "private_embedding", "smi_params", "smi_function", "given_labels")


@dataclass(frozen=True)
class Strategy:
    family: str  # one of FAMILIES
    needs: tuple[str, ...]  # attributes of `inputs` it reads, of INPUTS
    pick: Callable  # (inputs, budget, seed) -> pool positions (budget,) int64, in pick order
    colour: str  # its colour in every figure (report.PALETTE)
    marker: str  # its matplotlib marker, for readers who do not tell colours apart

    def __post_init__(self):
        unknown = set(self.needs) - set(INPUTS)
        if self.family not in FAMILIES or unknown:
            raise ValueError(f"family {self.family!r} must be one of {FAMILIES}; needs {sorted(unknown)} unknown")


def _smi(function: str, inputs, budget: int) -> np.ndarray:
    private = inputs.private_embedding if function in CONDITIONAL else None
    return smi_select(function, inputs.pool_embedding, inputs.query_embedding, budget, private, **inputs.smi_params)


def _ranked(order: Callable) -> Callable:
    """A label-refinement ranking of (given labels, probabilities) as a strategy: its first `budget`."""
    return lambda x, budget, seed: order(x.given_labels, x.probs)[:budget]


_SMI_NEEDS = ("pool_embedding", "query_embedding", "smi_params")
# Colours: the SMI functions in the Okabe-Ito hues, solid; baselines muted and dashed, any two that can share a
# figure at least 19 CIEDE2000 units apart (tested); random a dark grey reference; the SMI sampler (label
# refinement's method of interest) a strong red.
_SMI_STYLE = {"flmi": ("#0072B2", "o"), "flqmi": ("#56B4E9", "s"), "gcmi": ("#009E73", "^"),
              "logdetmi": ("#D55E00", "D"), "flcmi": ("#CC79A7", "v"), "logdetcmi": ("#E69F00", "P")}
STRATEGIES: dict[str, Strategy] = {
    **{f: Strategy("smi", _SMI_NEEDS + (("private_embedding",) if f in CONDITIONAL else ()),
                   lambda x, budget, seed, f=f: _smi(f, x, budget), *_SMI_STYLE[f]) for f in FUNCTIONS},
    "random": Strategy("random", (), lambda x, budget, seed: random_select(x.n, budget, seed), "#4D4D4D", "X"),
    "entropy": Strategy("uncertainty", ("probs",), lambda x, budget, seed: entropy_select(x.probs, budget),
                        "#6B8E23", "<"),
    "margin": Strategy("uncertainty", ("probs",), lambda x, budget, seed: margin_select(x.probs, budget),
                       "#9C9EDE", ">"),
    "least_confidence": Strategy("uncertainty", ("probs",),
                                 lambda x, budget, seed: least_confidence_select(x.probs, budget), "#843C39", "h"),
    "bald": Strategy("uncertainty", ("mc_probs",), lambda x, budget, seed: bald_select(x.mc_probs, budget),
                     "#7F3C8D", "p"),
    "badge": Strategy("diversity", ("probs", "features"),
                      lambda x, budget, seed: badge_select(gradient_embedding(x.probs, x.features), budget, seed),
                      "#8C6D31", "d"),
    "coreset": Strategy("diversity", ("features", "labeled_features"),
                        lambda x, budget, seed: coreset_select(x.features, x.labeled_features, budget),
                        "#BCBD22", "H"),
    "loss": Strategy("label_quality", ("probs", "given_labels"), _ranked(loss_order), "#009988", "8"),
    "label_quality": Strategy("label_quality", ("probs", "given_labels"), _ranked(label_quality_order), "#FF7F00",
                              "D"),
    "activelab": Strategy("label_quality", ("probs", "given_labels"), _ranked(activelab_order), "#E7298A", "P"),
    "smi": Strategy("smi", (*_SMI_NEEDS, "smi_function", "private_embedding"),
                    lambda x, budget, seed: _smi(x.smi_function, x, budget), "#E41A1C", "*"),
}


def available(offered) -> tuple[str, ...]:
    """The strategies whose needs are all among `offered` (names of INPUTS), in registry order."""
    return tuple(name for name, s in STRATEGIES.items() if set(s.needs) <= set(offered))


def pick(name: str, inputs, budget: int, seed: int = 0) -> np.ndarray:
    """Pool positions (budget,) int64 that strategy `name` picks from `inputs`, in pick order."""
    if name not in STRATEGIES:
        raise SelectionError(f"unknown strategy {name!r}; choose one of {list(STRATEGIES)}")
    check_budget(budget, inputs.n)
    return np.asarray(STRATEGIES[name].pick(inputs, budget, seed), dtype=np.int64)
