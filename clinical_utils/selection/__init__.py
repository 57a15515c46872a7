"""Choosing what to label: SMI functions (CLINICAL), the usual active-learning baselines and label refinement's
rankings of given labels, every one registered in `registry.STRATEGIES`.

Every strategy is a pure function of arrays: embeddings or probabilities in, pool indices out, in pick order.
"""
from .baselines import (badge_select, bald_select, coreset_select, entropy_select,
                        least_confidence_select, margin_select, random_select, typiclust_select)
from .embeddings import GradientEmbedding, gradient_embedding, mc_dropout_probs
from .kernels import KERNELS
from .registry import INPUTS, STRATEGIES, Strategy, available, pick
from .smi import BACKENDS, CONDITIONAL, FUNCTIONS, UNCONDITIONAL, SelectionError, smi_select

__all__ = ["BACKENDS", "CONDITIONAL", "FUNCTIONS", "INPUTS", "KERNELS", "STRATEGIES", "UNCONDITIONAL",
           "GradientEmbedding", "SelectionError", "Strategy", "available", "badge_select", "bald_select",
           "coreset_select", "entropy_select", "gradient_embedding", "least_confidence_select", "margin_select",
           "mc_dropout_probs", "pick", "random_select", "smi_select", "typiclust_select"]
