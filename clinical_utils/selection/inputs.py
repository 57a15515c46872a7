"""What a strategy reads about one selection step, computed from the picking model on first read (`PoolInputs`),
and the embeddings the SMI functions compare (`EMBEDDINGS`)."""
from __future__ import annotations

from functools import cached_property

import numpy as np

from ..training.train import predict
from .embeddings import gradient_embedding, mc_dropout_probs

# What PoolInputs computes from a model and unlabeled images: the active-learning loop offers these; label
# refinement adds the pool's given labels.
OFFERS = ("probs", "features", "mc_probs", "labeled_features", "pool_embedding", "query_embedding",
          "private_embedding", "smi_params")
# What the SMI functions compare. "gradients": the authors' gradient embeddings, pool images at their predicted
# label. When the model predicts no pool image rare, e = p - onehot(common) points away from every rare query's
# e, so the images most like the queries score lowest (see the README). "gradients_rare": pool images at their
# most probable rare class (the gradient the image would give if it were rare), which keeps the feature
# similarity's order. "features": the penultimate features alone.
EMBEDDINGS = ("gradients", "gradients_rare", "features")


def _smi_embedding(probs, feats, embedding: str, labels=None, rare_classes=()):
    """The embedding `embedding` names, for points with true `labels` (None: pool points, label unknown)."""
    if embedding == "features":
        return feats
    if labels is None and embedding == "gradients_rare":
        rare = np.asarray(rare_classes)
        labels = rare[probs[:, rare].argmax(1)]
    return gradient_embedding(probs, feats, labels=labels)


class PoolInputs:
    """What a strategy may read about one selection step (`selection.registry` names them), each computed from
    the picking model on first read, so a strategy costs only what it uses.

    pool_images (n, C, H, W) uint8, or probs (n, K) and feats (n, d) already computed on them; labeled_images
    (m, C, H, W) and labeled_labels (m,): what is labeled (coreset covers it; the conditional SMI functions
    condition on its common-class images). query_images / query_labels: the rare exemplars the SMI functions
    target. given_labels (n,): the pool's given labels (label refinement), None where unknown."""

    def __init__(self, model, device, *, pool_images=None, probs=None, feats=None, labeled_images=None,
                 labeled_labels=None, rare_classes=(), query_images=None, query_labels=None, seed: int = 0,
                 smi_params: dict | None = None, embedding: str = "gradients", smi_function: str | None = None,
                 given_labels=None):
        self.model, self.device, self.seed, self.embedding = model, device, seed, embedding
        self.pool_images, self.labeled_images, self.labeled_labels = pool_images, labeled_images, labeled_labels
        self.rare_classes, self.query_images, self.query_labels = rare_classes, query_images, query_labels
        self.smi_params, self.smi_function, self.given_labels = dict(smi_params or {}), smi_function, given_labels
        self.n = len(pool_images) if probs is None else len(probs)
        if probs is not None:
            self.__dict__.update(probs=probs, features=feats)

    @cached_property
    def _outputs(self) -> tuple[np.ndarray, np.ndarray]:
        return predict(self.model, self.pool_images, self.device, features=True)

    @cached_property
    def probs(self) -> np.ndarray:
        return self._outputs[0]

    @cached_property
    def features(self) -> np.ndarray:
        return self._outputs[1]

    @cached_property
    def mc_probs(self) -> np.ndarray:  # MC dropout on the features through the model's head
        head = self.model.head
        return mc_dropout_probs(self.features, head.weight.detach().cpu(), head.bias.detach().cpu(), seed=self.seed)

    @cached_property
    def labeled_features(self) -> np.ndarray:
        return predict(self.model, self.labeled_images, self.device, features=True)[1]

    @cached_property
    def pool_embedding(self):
        return _smi_embedding(self.probs, self.features, self.embedding, rare_classes=self.rare_classes)

    @cached_property
    def query_embedding(self):
        q_probs, q_feats = predict(self.model, self.query_images, self.device, features=True)
        return _smi_embedding(q_probs, q_feats, self.embedding, labels=self.query_labels)

    @cached_property
    def private_embedding(self):  # what is already covered: the labeled common images
        common = ~np.isin(self.labeled_labels, self.rare_classes)
        p_probs, p_feats = predict(self.model, self.labeled_images[common], self.device, features=True)
        return _smi_embedding(p_probs, p_feats, self.embedding, labels=self.labeled_labels[common])
