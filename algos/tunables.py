"""The hyperparameters a live run may change, and the bounds automatic tuning keeps them within.

`sftui set` and a policy's hparams.json take exactly these names (AppoConfig validates the values). Those with
bounds are also tuned automatically: PBT mutates them within the bounds, and the kl_adaptive schedule keeps
the learning rate within its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Tunable:
    """One live-tunable hyperparameter: its name, and how automatic tuning may move it."""

    name: str  # the AppoConfig field
    bounds: tuple[float, float] | None = None  # (low, high) automatic tuning keeps to; None: only set by hand
    mutates_as: Literal["value", "horizon"] = "value"  # horizon: PBT scales 1 / (1 - value), not the value

    @property
    def pbt_mutable(self) -> bool:
        return self.bounds is not None


LEARNING_RATE = Tunable("learning_rate", (1e-6, 1e-2))
GAMMA = Tunable("gamma", (0.9, 0.9999), mutates_as="horizon")  # PBT mutates it only with pbt_optimize_gamma

TUNABLES: tuple[Tunable, ...] = (
    LEARNING_RATE,
    GAMMA,
    Tunable("gae_lambda"),
    Tunable("ppo_clip_ratio", (0.01, 0.5)),
    Tunable("ppo_clip_value", (0.01, 5.0)),
    Tunable("value_loss_coeff", (0.01, 5.0)),
    Tunable("exploration_loss_coeff", (0.0, 0.1)),
    Tunable("max_grad_norm", (0.1, 100.0)),
    Tunable("reward_scale"),
)
NAMES: tuple[str, ...] = tuple(t.name for t in TUNABLES)
