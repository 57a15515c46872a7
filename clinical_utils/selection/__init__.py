"""Choosing what to label: SMI functions (CLINICAL) and the usual active-learning baselines.

Every strategy is a pure function of arrays: embeddings or probabilities in, pool indices out, in pick order.
"""
from .baselines import (BASELINES, badge_select, bald_select, coreset_select, entropy_select,
                        least_confidence_select, margin_select, random_select, typiclust_select)
from .embeddings import GradientEmbedding, gradient_embedding, mc_dropout_probs
from .kernels import KERNELS
from .smi import BACKENDS, CONDITIONAL, FUNCTIONS, UNCONDITIONAL, SelectionError, smi_select

__all__ = ["BACKENDS", "BASELINES", "CONDITIONAL", "FUNCTIONS", "KERNELS", "UNCONDITIONAL", "GradientEmbedding",
           "SelectionError", "badge_select",
           "bald_select", "coreset_select", "entropy_select", "gradient_embedding", "least_confidence_select",
           "margin_select", "mc_dropout_probs", "random_select", "smi_select", "typiclust_select"]
