"""V-trace off-policy targets (Espeholt et al., 2018, IMPALA) over [B, T] trajectory slices."""

from __future__ import annotations

import torch
from torch import Tensor


def vtrace(
    log_rhos: Tensor,
    discounts: Tensor,
    rewards: Tensor,
    values: Tensor,
    bootstrap_value: Tensor,
    rho_bar: float,
    c_bar: float,
    valids: Tensor,
) -> tuple[Tensor, Tensor]:
    """V-trace value targets and policy-gradient advantages.

    Shapes: all [B, T] except bootstrap_value [B], the value of the observation after step T-1.
    log_rhos = log pi(a_t|x_t) - log mu(a_t|x_t) (target minus behaviour policy); discounts are
    gamma * (1 - done_t), so an episode end stops bootstrapping and the correction trace.

    With rho_t = min(rho_bar, e^log_rho_t), c_t = min(c_bar, e^log_rho_t), V_T = bootstrap_value:
        vs_t - V_t = rho_t * (r_t + discount_t * V_{t+1} - V_t) + discount_t * c_t * (vs_{t+1} - V_{t+1})
        pg_advantage_t = rho_t * (r_t + discount_t * vs_{t+1} - V_t),   vs_T = V_T

    Invalid steps follow GAE's rule (algos.returns.gae): their advantage is 0 and vs_t = V_t, so
    nothing propagates through them to step t-1, which still bootstraps from their value V_t.

    Returns (vs, pg_advantages).
    """
    values = values.float()
    discounts = discounts.float()
    rewards = rewards.float()
    valid = valids.bool()
    ratios = log_rhos.float().exp()
    rhos = ratios.clamp(max=rho_bar)
    cs = ratios.clamp(max=c_bar)

    vs_minus_v = torch.zeros_like(values)
    pg_advantages = torch.zeros_like(values)
    next_value = bootstrap_value.float()
    next_vs = next_value
    next_correction = torch.zeros_like(next_value)
    for t in reversed(range(values.shape[1])):
        delta = rhos[:, t] * (rewards[:, t] + discounts[:, t] * next_value - values[:, t])
        correction = delta + discounts[:, t] * cs[:, t] * next_correction
        advantage = rhos[:, t] * (rewards[:, t] + discounts[:, t] * next_vs - values[:, t])
        # where() rather than a multiply so NaN garbage in invalid slots cannot leak backwards.
        next_correction = torch.where(valid[:, t], correction, 0.0)
        vs_minus_v[:, t] = next_correction
        pg_advantages[:, t] = torch.where(valid[:, t], advantage, 0.0)
        next_value = values[:, t]
        next_vs = values[:, t] + next_correction
    return values + vs_minus_v, pg_advantages
