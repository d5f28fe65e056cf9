"""Generalized advantage estimation over [B, T] trajectory slices."""

from __future__ import annotations

import torch
from torch import Tensor


def gae(
    rewards: Tensor,
    values: Tensor,
    next_value: Tensor,
    dones: Tensor,
    valids: Tensor,
    gamma: float,
    lam: float,
) -> tuple[Tensor, Tensor]:
    """Compute GAE(gamma, lambda) advantages and returns.

    Shapes: rewards, values, dones, valids are [B, T]; next_value is [B], the value of
    the observation that follows step T-1.

    dones[:, t] = 1 means the episode ended after step t: step t does not bootstrap
    from t+1 and its advantage does not flow into anything after it.

    Invalid steps (valids[:, t] = 0) get advantage 0 and cut the recursion: their
    advantage is not propagated to step t-1. They still supply their stored value
    as the bootstrap value of step t-1, exactly as a valid step would.

    Returns (advantages, returns) with returns = advantages + values.
    """
    rewards = rewards.float()
    values = values.float()
    not_done = 1.0 - dones.float()
    valid = valids.bool()

    advantages = torch.zeros_like(rewards)
    next_values = next_value.float()
    next_advantage = torch.zeros_like(next_values)
    for t in reversed(range(rewards.shape[1])):
        delta = rewards[:, t] + gamma * next_values * not_done[:, t] - values[:, t]
        next_advantage = delta + gamma * lam * not_done[:, t] * next_advantage
        # where() rather than a multiply so NaN garbage in invalid slots cannot leak backwards.
        next_advantage = torch.where(valid[:, t], next_advantage, 0.0)
        advantages[:, t] = next_advantage
        next_values = values[:, t]
    return advantages, advantages + values
