"""Action distributions built from the flat parameter vector a model outputs.

Hand-rolled instead of `torch.distributions` so masking is cheap, entropy stays
finite when actions are masked, and KL between two instances is one call.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from algos.spaces import ActionSpec

LOG_STD_MIN = -5.0
LOG_STD_MAX = 2.0
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


class CategoricalDist:
    def __init__(self, logits: Tensor, mask: Tensor | None = None) -> None:
        if mask is not None:
            # A finite (not -inf) fill keeps softmax NaN-free even if a row is fully masked.
            logits = logits.masked_fill(~mask.bool(), torch.finfo(logits.dtype).min)
        self.log_probs = torch.log_softmax(logits, dim=-1)
        self.probs = self.log_probs.exp()

    def sample(self) -> Tensor:
        flat = self.probs.reshape(-1, self.probs.shape[-1])
        return torch.multinomial(flat, 1).reshape(self.probs.shape[:-1])

    def mode(self) -> Tensor:
        return self.probs.argmax(dim=-1)

    def log_prob(self, actions: Tensor) -> Tensor:
        return self.log_probs.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)

    def entropy(self) -> Tensor:
        # Masked actions have p == 0 and a huge negative log p; define 0 * log 0 = 0.
        p_log_p = torch.where(self.probs > 0, self.probs * self.log_probs, 0.0)
        return -p_log_p.sum(dim=-1)

    def kl(self, other: CategoricalDist) -> Tensor:
        """KL(self || other)."""
        terms = self.probs * (self.log_probs - other.log_probs)
        return torch.where(self.probs > 0, terms, 0.0).sum(dim=-1)


class DiagGaussianDist:
    def __init__(self, params: Tensor) -> None:
        self.mean, log_std = params.chunk(2, dim=-1)
        self.log_std = log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)
        self.std = self.log_std.exp()

    def sample(self) -> Tensor:
        return self.mean + self.std * torch.randn_like(self.mean)

    def mode(self) -> Tensor:
        return self.mean

    def log_prob(self, actions: Tensor) -> Tensor:
        z = (actions - self.mean) / self.std
        return (-0.5 * z.pow(2) - self.log_std - _HALF_LOG_2PI).sum(dim=-1)

    def entropy(self) -> Tensor:
        return (0.5 + _HALF_LOG_2PI + self.log_std).sum(dim=-1)

    def kl(self, other: DiagGaussianDist) -> Tensor:
        """KL(self || other)."""
        var_ratio = (self.std / other.std).pow(2)
        mean_term = ((self.mean - other.mean) / other.std).pow(2)
        return (other.log_std - self.log_std + 0.5 * (var_ratio + mean_term) - 0.5).sum(dim=-1)


Distribution = CategoricalDist | DiagGaussianDist


def make_distribution(spec: ActionSpec, params: Tensor, mask: Tensor | None = None) -> Distribution:
    """Build the distribution for `spec` from params [..., spec.num_dist_params()]."""
    if spec.kind == "discrete":
        return CategoricalDist(params, mask)
    # Box actions are 1-D for now, so params are (mean, log_std) over the flattened dims.
    return DiagGaussianDist(params)
