"""The learner's learning rate over a run: constant, decayed linearly to zero, or adapted to each SGD step's KL."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from algos.appo_config import AppoConfig
from algos.tunables import LEARNING_RATE

KL_ADAPTIVE_FACTOR = 1.5  # kl_adaptive divides or multiplies the rate by this


@dataclass
class LearningRateSchedule:
    kind: Literal["constant", "linear_decay", "kl_adaptive"]
    learning_rate: float  # the configured rate: constant's, linear_decay's at frame 0, kl_adaptive's first
    kl_threshold: float  # kl_adaptive's target KL per SGD step
    total_env_frames: int | None  # linear_decay reaches 0 here; unknown, the rate stays constant
    lr: float  # the rate now, carried in checkpoints

    @classmethod
    def from_config(
        cls, cfg: AppoConfig, total_env_frames: int | None, lr: float | None = None
    ) -> LearningRateSchedule:
        """The schedule `cfg` asks for, its rate now `lr` (a carried one) or else cfg.learning_rate."""
        return cls(cfg.lr_schedule, cfg.learning_rate, cfg.lr_schedule_kl_threshold, total_env_frames,
                   cfg.learning_rate if lr is None else lr)

    def lr_for(self, env_frames: int) -> float:
        """The rate of the next batch, trained `env_frames` into the run."""
        if self.kind == "linear_decay" and self.total_env_frames:
            self.lr = self.learning_rate * max(0.0, 1.0 - env_frames / self.total_env_frames)
        elif self.kind != "kl_adaptive":  # kl_adaptive carries its rate over from the last SGD step
            self.lr = self.learning_rate
        return self.lr

    def after_sgd_step(self, kl: float) -> float:
        """The rate of the next SGD step. kl_adaptive steps it down after a KL over twice the threshold and up
        after one under half of it, within learning_rate's bounds; the other kinds keep it."""
        if self.kind == "kl_adaptive":
            low, high = LEARNING_RATE.bounds
            if kl > 2.0 * self.kl_threshold:
                self.lr = max(self.lr / KL_ADAPTIVE_FACTOR, low)
            elif kl < 0.5 * self.kl_threshold:
                self.lr = min(self.lr * KL_ADAPTIVE_FACTOR, high)
        return self.lr

    def state_dict(self) -> dict[str, float]:
        return {"lr": float(self.lr)}

    def load_state_dict(self, state: dict) -> None:
        self.lr = float(state["lr"])
