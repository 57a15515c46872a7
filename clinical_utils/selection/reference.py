"""The same selection through submodlib (the authors' library), for cross-checks.

Dense kernels are built with this package's kernel functions, so both backends optimise the same
objective on the same numbers; submodlib then runs its NaiveGreedy with the progress bar off.
Memory is O(n^2) here, as submodlib needs: use it for n up to a few thousand.
"""
from __future__ import annotations

import numpy as np

from .kernels import kernel_scale, prepare, similarity

CLASSES = {
    "flmi": "FacilityLocationMutualInformationFunction",
    "flqmi": "FacilityLocationVariantMutualInformationFunction",
    "gcmi": "GraphCutMutualInformationFunction",
    "logdetmi": "LogDeterminantMutualInformationFunction",
    "flcmi": "FacilityLocationConditionalMutualInformationFunction",
    "logdetcmi": "LogDeterminantConditionalMutualInformationFunction",
}


def submodlib_function(function: str, pool, query, private=None, *, eta=1.0, nu=1.0, lam=1.0, kernel="cosine01"):
    """The submodlib set-function object for `function` on dense kernels (embeddings already validated)."""
    import submodlib

    v, q = prepare(pool, kernel, "pool"), prepare(query, kernel, "query")
    scale = kernel_scale(v, kernel)

    def k(a, b):
        return similarity(a, b, kernel, scale).cpu().numpy().astype(np.float32)

    n, n_q = len(v.sqnorm), len(q.sqnorm)
    cls = getattr(submodlib, CLASSES[function])
    if function == "flmi":
        return cls(n=n, num_queries=n_q, data_sijs=k(v, v), query_sijs=k(v, q), magnificationEta=eta)
    if function == "flqmi":
        return cls(n=n, num_queries=n_q, query_sijs=k(v, q), queryDiversityEta=eta)
    if function == "gcmi":
        return cls(n=n, num_queries=n_q, query_sijs=k(v, q))
    if function == "logdetmi":
        return cls(n=n, num_queries=n_q, lambdaVal=lam, data_sijs=k(v, v), query_sijs=k(v, q),
                   query_query_sijs=k(q, q), magnificationEta=eta)
    p = prepare(private, kernel, "private")
    if function == "flcmi":
        return cls(n=n, num_queries=n_q, num_privates=len(p.sqnorm), data_sijs=k(v, v), query_sijs=k(v, q),
                   private_sijs=k(v, p), magnificationEta=eta, privacyHardness=nu)
    return cls(n=n, num_queries=n_q, num_privates=len(p.sqnorm), lambdaVal=lam, data_sijs=k(v, v),
               query_sijs=k(v, q), query_query_sijs=k(q, q), private_sijs=k(v, p), private_private_sijs=k(p, p),
               query_private_sijs=k(q, p), magnificationEta=eta, privacyHardness=nu)


def submodlib_select(function: str, pool, query, budget: int, private=None, *, eta=1.0, nu=1.0, lam=1.0,
                     kernel="cosine01", optimizer: str = "NaiveGreedy") -> np.ndarray:
    """Pool indices (budget,) in pick order, from submodlib's `maximize`."""
    obj = submodlib_function(function, pool, query, private, eta=eta, nu=nu, lam=lam, kernel=kernel)
    picks = obj.maximize(budget=budget, optimizer=optimizer, stopIfZeroGain=False, stopIfNegativeGain=False,
                         verbose=False, show_progress=False)
    return np.array([i for i, _ in picks], dtype=np.int64)
