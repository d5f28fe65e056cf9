"""APPO loss terms; each is a masked mean so invalid samples (garbage included) never count."""

from __future__ import annotations

import torch
from torch import Tensor

_MIN_RATIO, _MAX_RATIO = 0.05, 20.0


def masked_mean(x: Tensor, valids: Tensor) -> Tensor:
    """Mean of x over valid entries; where() keeps NaN/inf garbage in invalid slots out."""
    valids = valids.bool()
    return torch.where(valids, x, 0.0).sum() / valids.sum().clamp(min=1)


def policy_loss(
    log_prob_new: Tensor, log_prob_old: Tensor, advantages: Tensor, valids: Tensor, clip_ratio: float
) -> Tensor:
    # Hard ratio bounds keep stale (high policy lag) samples from producing huge gradients.
    ratio = torch.exp(log_prob_new - log_prob_old).clamp(_MIN_RATIO, _MAX_RATIO)
    clipped = ratio.clamp(1.0 / (1.0 + clip_ratio), 1.0 + clip_ratio)
    surrogate = torch.min(ratio * advantages, clipped * advantages)
    return -masked_mean(surrogate, valids)


def value_loss(
    values_new: Tensor, values_old: Tensor, targets: Tensor, valids: Tensor, clip_value: float
) -> Tensor:
    clipped = values_old + (values_new - values_old).clamp(-clip_value, clip_value)
    error = torch.max((values_new - targets).pow(2), (clipped - targets).pow(2))
    return masked_mean(error, valids)


def entropy_loss(entropy: Tensor, valids: Tensor) -> Tensor:
    return -masked_mean(entropy, valids)
