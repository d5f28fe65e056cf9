"""Action distributions built from the flat parameter vector a model outputs.

Hand-rolled instead of `torch.distributions` so masking is cheap, entropy stays
finite when actions are masked, and KL between two instances is one call.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from algos.spaces import ActionSpec

LOG_STD_MIN = -5.0
LOG_STD_MAX = 2.0
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)
_SYMMETRIC_KL_MAX = 30.0


class CategoricalDist:
    def __init__(self, logits: Tensor, mask: Tensor | None = None) -> None:
        if mask is None:
            self.allowed = torch.ones_like(logits, dtype=torch.bool)
        else:
            # A fully masked row carries no information (an env bug or padding); treating it as
            # unmasked keeps every quantity finite instead of inventing a preference.
            mask = mask.bool()
            self.allowed = mask | ~mask.any(dim=-1, keepdim=True)
            # A finite (not -inf) fill keeps softmax and its gradients NaN-free.
            logits = logits.masked_fill(~self.allowed, torch.finfo(logits.dtype).min)
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

    def symmetric_kl_to_uniform(self) -> Tensor:
        """KL(p || u) + KL(u || p) with u uniform over the allowed actions.

        The log k terms of the two KLs cancel: sum_a p log p - mean_a log p over allowed a.
        """
        num_allowed = self.allowed.sum(dim=-1)
        p_log_p = torch.where(self.probs > 0, self.probs * self.log_probs, 0.0).sum(dim=-1)
        mean_log_p = torch.where(self.allowed, self.log_probs, 0.0).sum(dim=-1) / num_allowed
        # KL(u || p) is unbounded as p -> 0; the cap keeps one near-deterministic state from
        # dominating the loss (its gradient is then 0, like a clipped PPO term).
        return (p_log_p - mean_log_p).clamp(max=_SYMMETRIC_KL_MAX)


class MultiCategoricalDist:
    """Independent categorical heads; logits and masks are the per-head blocks concatenated."""

    def __init__(self, logits: Tensor, nvec: Sequence[int], mask: Tensor | None = None) -> None:
        sizes = list(nvec)
        head_logits = logits.split(sizes, dim=-1)
        head_masks = [None] * len(sizes) if mask is None else mask.split(sizes, dim=-1)
        self.heads = [CategoricalDist(lg, m) for lg, m in zip(head_logits, head_masks, strict=True)]

    def sample(self) -> Tensor:
        return torch.stack([head.sample() for head in self.heads], dim=-1)

    def mode(self) -> Tensor:
        return torch.stack([head.mode() for head in self.heads], dim=-1)

    def log_prob(self, actions: Tensor) -> Tensor:
        """actions [..., H] -> joint log-prob [...]."""
        return sum(head.log_prob(actions[..., i]) for i, head in enumerate(self.heads))

    def entropy(self) -> Tensor:
        return sum(head.entropy() for head in self.heads)

    def kl(self, other: MultiCategoricalDist) -> Tensor:
        """KL(self || other); independent heads make it the sum of per-head KLs."""
        return sum(head.kl(o) for head, o in zip(self.heads, other.heads, strict=True))

    def symmetric_kl_to_uniform(self) -> Tensor:
        return sum(head.symmetric_kl_to_uniform() for head in self.heads)


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


Distribution = CategoricalDist | MultiCategoricalDist | DiagGaussianDist


def make_distribution(spec: ActionSpec, params: Tensor, mask: Tensor | None = None) -> Distribution:
    """Build the distribution for `spec` from params [..., spec.num_dist_params()]."""
    if spec.kind == "discrete":
        return CategoricalDist(params, mask)
    if spec.kind == "multi_discrete":
        return MultiCategoricalDist(params, spec.nvec, mask)
    # Box actions are 1-D for now, so params are (mean, log_std) over the flattened dims.
    return DiagGaussianDist(params)


def symmetric_kl_to_uniform(dist: Distribution) -> Tensor:
    """KL(p || u) + KL(u || p) per sample [...] (summed over heads), capped at 30 per head.

    u is uniform over the allowed actions. Only categorical-type distributions have a
    uniform reference; a Gaussian has none, which AppoLearner rejects up front.
    """
    if isinstance(dist, DiagGaussianDist):
        raise ValueError("symmetric_kl_to_uniform needs a discrete or multi_discrete action space, got box")
    return dist.symmetric_kl_to_uniform()
