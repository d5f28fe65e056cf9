"""Asynchronous PPO (APPO) configuration, losses and learner."""

from __future__ import annotations

from dataclasses import dataclass, fields
from itertools import pairwise
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import Tensor

from algos.distributions import make_distribution
from algos.models import ActorCritic
from algos.returns import gae

_MIN_RATIO, _MAX_RATIO = 0.05, 20.0
_KL_LR_MIN, _KL_LR_MAX, _KL_LR_FACTOR = 1e-6, 1e-2, 1.5
_SGD_STAT_KEYS = (
    "loss",
    "policy_loss",
    "value_loss",
    "entropy_loss",
    "entropy",
    "kl",
    "grad_norm",
    "clip_fraction",
)


class AppoConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rollout: int = Field(32, ge=2, description="Env steps per trajectory slice sent to the learner.")
    recurrence: int = Field(1, ge=1, description="Backprop-through-time length; feed-forward models use 1.")
    batch_size: int = Field(1024, ge=2, description="Samples (env steps) per SGD minibatch.")
    num_batches_per_epoch: int = Field(
        1,
        ge=1,
        description="Minibatches per training batch; the learner waits for "
        "batch_size * num_batches_per_epoch samples.",
    )
    num_epochs: int = Field(1, ge=1, description="Passes over each training batch.")
    learning_rate: float = Field(1e-4, gt=0, description="Adam learning rate.")
    lr_schedule: Literal["constant", "linear_decay", "kl_adaptive"] = Field(
        "constant",
        description="constant; linear_decay to 0 over the run's env frames; "
        "kl_adaptive: scale the lr by 1.5 to keep the KL near lr_schedule_kl_threshold.",
    )
    lr_schedule_kl_threshold: float = Field(
        0.008, gt=0, description="Target KL per SGD step for the kl_adaptive schedule."
    )
    gamma: float = Field(0.99, ge=0, le=1, description="Discount factor.")
    gae_lambda: float = Field(0.95, ge=0, le=1, description="GAE lambda (bias/variance trade-off).")
    ppo_clip_ratio: float = Field(
        0.1, gt=0, description="PPO clip epsilon; ratios are clipped to [1/(1+eps), 1+eps]."
    )
    ppo_clip_value: float = Field(
        1.0, gt=0, description="Max change of the value prediction from its acting-time value."
    )
    value_loss_coeff: float = Field(0.5, ge=0, description="Weight of the value loss.")
    exploration_loss_coeff: float = Field(0.003, ge=0, description="Weight of the entropy bonus.")
    max_grad_norm: float = Field(4.0, ge=0, description="Gradient norm clip; 0 disables clipping.")
    adam_eps: float = Field(1e-6, gt=0, description="Adam epsilon.")
    adam_beta1: float = Field(0.9, ge=0, lt=1, description="Adam beta1.")
    adam_beta2: float = Field(0.999, ge=0, lt=1, description="Adam beta2.")
    normalize_advantage: bool = Field(True, description="Standardize advantages within each minibatch.")
    normalize_returns: bool = Field(True, description="Train the value head on running-normalized returns.")
    reward_scale: float = Field(1.0, gt=0, description="Multiply env rewards by this factor.")
    reward_clip: float = Field(
        1000.0, gt=0, description="Clip scaled rewards to [-reward_clip, reward_clip]."
    )
    value_bootstrap: bool = Field(
        False,
        description="On time-outs add gamma * V(s_t) to the reward, so truncation "
        "is not treated as a real episode end.",
    )

    @model_validator(mode="after")
    def _batch_holds_whole_rollouts(self) -> AppoConfig:
        if self.batch_size % self.rollout != 0:
            raise ValueError(f"batch_size ({self.batch_size}) must be divisible by rollout ({self.rollout})")
        return self


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


@dataclass
class TrainBatch:
    """B trajectory slices of T = rollout steps each."""

    obs: dict[str, Tensor]  # [B, T+1, *shape] raw; index T follows the last step
    actions: Tensor  # [B, T] int64 or [B, T, *act_shape] float
    log_probs: Tensor  # [B, T] at acting time
    values: Tensor  # [B, T] acting-time values, normalized-returns space
    dist_params: Tensor  # [B, T, P] at acting time
    rewards: Tensor  # [B, T] raw env rewards
    dones: Tensor  # [B, T] episode ended after this step
    time_outs: Tensor  # [B, T] episode ended by truncation
    valids: Tensor  # [B, T] bool
    action_masks: Tensor | None = None  # [B, T, n] bool

    def to(self, device: torch.device) -> TrainBatch:
        moved = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, dict):
                moved[f.name] = {k: v.to(device) for k, v in value.items()}
            else:
                moved[f.name] = None if value is None else value.to(device)
        return TrainBatch(**moved)


class AppoLearner:
    def __init__(
        self,
        model: ActorCritic,
        cfg: AppoConfig,
        device: torch.device,
        total_env_frames: int | None = None,
    ) -> None:
        self.model = model.to(device)
        self.cfg = cfg
        self.device = device
        self.total_env_frames = total_env_frames
        self.lr = cfg.learning_rate
        self.version = 0
        self.optimizer = torch.optim.Adam(
            self.model.parameters(),
            lr=self.lr,
            betas=(cfg.adam_beta1, cfg.adam_beta2),
            eps=cfg.adam_eps,
        )

    def set_hyperparameters(self, **kwargs: object) -> None:
        """Change config fields while training; unknown names or bad values raise."""
        self.cfg = AppoConfig.model_validate({**self.cfg.model_dump(), **kwargs})
        if "learning_rate" in kwargs:
            self.lr = self.cfg.learning_rate
        for group in self.optimizer.param_groups:
            group["betas"] = (self.cfg.adam_beta1, self.cfg.adam_beta2)
            group["eps"] = self.cfg.adam_eps
        self._apply_lr()

    def _apply_lr(self) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr

    def _scheduled_lr(self, env_frames: int) -> float:
        cfg = self.cfg
        if cfg.lr_schedule == "linear_decay" and self.total_env_frames:
            return cfg.learning_rate * max(0.0, 1.0 - env_frames / self.total_env_frames)
        if cfg.lr_schedule == "kl_adaptive":
            return self.lr
        return cfg.learning_rate

    def _adapt_lr_to_kl(self, kl: float) -> None:
        threshold = self.cfg.lr_schedule_kl_threshold
        if kl > 2.0 * threshold:
            self.lr = max(self.lr / _KL_LR_FACTOR, _KL_LR_MIN)
        elif kl < 0.5 * threshold:
            self.lr = min(self.lr * _KL_LR_FACTOR, _KL_LR_MAX)
        self._apply_lr()

    @torch.no_grad()
    def _targets(self, batch: TrainBatch) -> tuple[Tensor, Tensor, Tensor]:
        """Advantages and returns in reward scale, value targets in value-head space; all [B, T]."""
        cfg, model = self.cfg, self.model
        steps = batch.rewards.shape[1]
        _, next_values = model({k: v[:, steps] for k, v in batch.obs.items()})
        values = batch.values.float()
        if cfg.normalize_returns:
            values = model.returns_normalizer.denormalize(values)
            next_values = model.returns_normalizer.denormalize(next_values)

        rewards = (batch.rewards.float() * cfg.reward_scale).clamp(-cfg.reward_clip, cfg.reward_clip)
        if cfg.value_bootstrap:
            # The post-truncation obs is not stored, so V(s_t) stands in for V(s_{t+1}).
            rewards = rewards + cfg.gamma * values * batch.time_outs.float()

        advantages, returns = gae(
            rewards, values, next_values, batch.dones, batch.valids, cfg.gamma, cfg.gae_lambda
        )
        targets = returns
        if cfg.normalize_returns:
            model.returns_normalizer.update(returns[batch.valids])
            targets = model.returns_normalizer.normalize(returns)
        return advantages, returns, targets

    def train(self, batch: TrainBatch, env_frames: int = 0) -> dict[str, float]:
        """Run num_epochs passes of minibatch SGD over one batch and return stats."""
        cfg, model = self.cfg, self.model
        batch = batch.to(self.device)
        batch.valids = batch.valids.bool()
        num_traj, steps = batch.rewards.shape
        num_samples = num_traj * steps

        def flat(x: Tensor) -> Tensor:
            return x[:, :steps].reshape(num_samples, *x.shape[2:])

        obs = {k: flat(v) for k, v in batch.obs.items()}
        valids = flat(batch.valids)
        if model.cfg.normalize_input:
            model.update_normalizers({k: v[valids] for k, v in obs.items()})

        advantages, returns, targets = (flat(x) for x in self._targets(batch))
        actions, old_log_probs = flat(batch.actions), flat(batch.log_probs)
        old_values, old_params = flat(batch.values).float(), flat(batch.dist_params)
        masks = None if batch.action_masks is None else flat(batch.action_masks)

        self.lr = self._scheduled_lr(env_frames)
        self._apply_lr()

        totals: dict[str, float] = {}
        num_steps = 0
        # Contiguous slices keep whole trajectories together when batch_size is a multiple of rollout.
        edges = [num_samples * i // cfg.num_batches_per_epoch for i in range(cfg.num_batches_per_epoch + 1)]
        minibatches = [slice(start, end) for start, end in pairwise(edges)]
        for _ in range(cfg.num_epochs):
            for idx in minibatches:
                mb_valids = valids[idx]
                if not mb_valids.any():
                    continue
                mb_masks = None if masks is None else masks[idx]
                step_stats = self._sgd_step(
                    obs={k: v[idx] for k, v in obs.items()},
                    actions=actions[idx],
                    old_log_probs=old_log_probs[idx],
                    old_values=old_values[idx],
                    old_params=old_params[idx],
                    masks=mb_masks,
                    advantages=advantages[idx],
                    targets=targets[idx],
                    valids=mb_valids,
                )
                for key, value in step_stats.items():
                    totals[key] = totals.get(key, 0.0) + value
                num_steps += 1

        if num_steps > 0:
            self.version += 1
        stats = {key: totals.get(key, 0.0) / max(num_steps, 1) for key in _SGD_STAT_KEYS}
        valid_adv = advantages[valids]
        stats.update(
            lr=float(self.lr),
            adv_mean=float(valid_adv.mean()) if valid_adv.numel() else 0.0,
            adv_std=float(valid_adv.std(unbiased=False)) if valid_adv.numel() else 0.0,
            # Reported in return scale: returns - advantages are the acting-time values.
            value_mean=masked_mean(returns - advantages, valids).item(),
            valid_fraction=float(valids.float().mean()),
            num_sgd_steps=float(num_steps),
        )
        return stats

    def _sgd_step(
        self,
        obs: dict[str, Tensor],
        actions: Tensor,
        old_log_probs: Tensor,
        old_values: Tensor,
        old_params: Tensor,
        masks: Tensor | None,
        advantages: Tensor,
        targets: Tensor,
        valids: Tensor,
    ) -> dict[str, float]:
        cfg, model = self.cfg, self.model
        params, values = model(obs)
        dist = make_distribution(model.action_spec, params, masks)
        log_probs = dist.log_prob(actions)
        entropy = dist.entropy()

        if cfg.normalize_advantage:
            mean = masked_mean(advantages, valids)
            std = masked_mean((advantages - mean).pow(2), valids).sqrt().clamp(min=1e-7)
            advantages = (advantages - mean) / std

        pol = policy_loss(log_probs, old_log_probs, advantages, valids, cfg.ppo_clip_ratio)
        val = value_loss(values, old_values, targets, valids, cfg.ppo_clip_value)
        ent = entropy_loss(entropy, valids)
        loss = pol + cfg.value_loss_coeff * val + cfg.exploration_loss_coeff * ent

        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        # An infinite max norm measures the norm without clipping.
        max_norm = cfg.max_grad_norm if cfg.max_grad_norm > 0 else float("inf")
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
        self.optimizer.step()

        with torch.no_grad():
            old_dist = make_distribution(model.action_spec, old_params, masks)
            kl = float(masked_mean(old_dist.kl(dist), valids))
            ratio = torch.exp(log_probs - old_log_probs)
            outside = (ratio < 1.0 / (1.0 + cfg.ppo_clip_ratio)) | (ratio > 1.0 + cfg.ppo_clip_ratio)
            clip_fraction = float(masked_mean(outside.float(), valids))
        if cfg.lr_schedule == "kl_adaptive":
            self._adapt_lr_to_kl(kl)

        return {
            "loss": loss.item(),
            "policy_loss": pol.item(),
            "value_loss": val.item(),
            "entropy_loss": ent.item(),
            "entropy": masked_mean(entropy.detach(), valids).item(),
            "kl": kl,
            "grad_norm": float(grad_norm),
            "clip_fraction": clip_fraction,
        }

    def state_dict(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "lr": float(self.lr),
            "version": int(self.version),
        }

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.lr = float(state["lr"])
        self.version = int(state["version"])
        self._apply_lr()
