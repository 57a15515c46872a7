"""What selection works on: features, probabilities, and gradient embeddings kept in factored form.

A gradient embedding (BADGE; DISTIL's gradType="bias_linear") of a point with probabilities p (K,),
label y and penultimate features h (d,) is the loss gradient with respect to the last layer's bias and
weights: g = [e, e (x) h] with e = p - onehot(y), a vector of K (d + 1) numbers. Because
<g_i, g_j> = <e_i, e_j> (1 + <h_i, h_j>), every kernel over gradient embeddings is computed from e and h
alone: the K (d + 1)-dimensional vectors are never built unless `dense()` is asked for.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch


class GradientEmbedding(NamedTuple):
    e: torch.Tensor  # (n, K) p - onehot(y)
    h: torch.Tensor  # (n, d) penultimate features

    def __len__(self) -> int:
        return len(self.e)

    def dense(self) -> torch.Tensor:
        """The explicit (n, K (d + 1)) gradients: bias part first, then the weight rows class by class."""
        n = len(self.e)
        return torch.cat([self.e, (self.e[:, :, None] * self.h[:, None, :]).reshape(n, -1)], 1)


def gradient_embedding(probs, features, labels=None) -> GradientEmbedding:
    """Factored gradient embeddings from probabilities (n, K) and features (n, d).

    labels: the true labels (n,) (query points), or None for the predicted ones (pool points).
    """
    p = torch.as_tensor(probs, dtype=torch.float32)
    h = torch.as_tensor(features, dtype=torch.float32)
    if p.ndim != 2 or h.ndim != 2 or len(p) != len(h):
        raise ValueError(f"probs (n, K) and features (n, d) must have the same n; got {tuple(p.shape)} "
                         f"and {tuple(h.shape)}")
    y = p.argmax(1) if labels is None else torch.as_tensor(np.asarray(labels), dtype=torch.long)
    if len(y) != len(p):
        raise ValueError(f"labels has {len(y)} entries for {len(p)} points")
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= p.shape[1]):
        raise ValueError(f"labels must be class indices 0..{p.shape[1] - 1} (probs has {p.shape[1]} columns); "
                         f"got values from {int(y.min())} to {int(y.max())}")
    e = p.clone()
    e[torch.arange(len(p)), y] -= 1
    return GradientEmbedding(e, h.to(p.device))


def mc_dropout_probs(features, weight, bias, n_samples: int = 20, p: float = 0.5, seed: int = 0) -> np.ndarray:
    """Monte-Carlo dropout on the penultimate features: (n_samples, n, K) probabilities.

    features (n, d); weight (K, d) and bias (K,) of the linear head. Dropout is applied to h before the
    head, with inverted scaling, as `nn.Dropout(p)` in train mode would; the features are computed once.
    """
    h = torch.as_tensor(np.asarray(features), dtype=torch.float32)
    w = torch.as_tensor(np.asarray(weight), dtype=torch.float32)
    b = torch.as_tensor(np.asarray(bias), dtype=torch.float32)
    if not 0 <= p < 1 or n_samples < 1:
        raise ValueError(f"need 0 <= p < 1 and n_samples >= 1; got p={p}, n_samples={n_samples}")
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n_samples):
        keep = (torch.rand(h.shape, generator=gen) >= p).float() / (1 - p)
        out.append(torch.softmax((h * keep) @ w.T + b, 1))
    return torch.stack(out).numpy()
