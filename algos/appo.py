"""Asynchronous PPO (APPO) learner: targets (GAE or V-trace), minibatch SGD, lr schedules."""

from __future__ import annotations

from dataclasses import dataclass, fields
from itertools import pairwise

import torch
from torch import Tensor, nn

from algos.appo_config import AppoConfig
from algos.distributions import make_distribution, symmetric_kl_to_uniform
from algos.losses import entropy_loss, masked_mean, policy_loss, value_loss
from algos.returns import gae
from algos.spaces import ActionSpec
from algos.tunables import LEARNING_RATE
from algos.vtrace import vtrace

_KL_LR_FACTOR = 1.5
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


@dataclass
class TrainBatch:
    """B trajectory slices of T = rollout steps each."""

    obs: dict[str, Tensor]  # [B, T+1, *shape] raw; index T follows the last step
    actions: Tensor  # [B, T] int64, [B, T, heads] int64 or [B, T, *act_shape] float
    log_probs: Tensor  # [B, T] at acting time
    values: Tensor  # [B, T] acting-time values, normalized-returns space
    dist_params: Tensor  # [B, T, P] at acting time
    rewards: Tensor  # [B, T] raw env rewards
    dones: Tensor  # [B, T] episode ended after this step
    time_outs: Tensor  # [B, T] episode ended by truncation
    valids: Tensor  # [B, T] bool
    action_masks: Tensor | None = None  # [B, T, P] bool (discrete kinds)
    rnn_states: Tensor | None = None  # [B, T+1, S] recurrent state before each obs; needed by recurrent models

    def to(self, device: torch.device) -> TrainBatch:
        moved = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, dict):
                moved[f.name] = {k: v.to(device) for k, v in value.items()}
            else:
                moved[f.name] = None if value is None else value.to(device)
        return TrainBatch(**moved)


def _check_exploration_loss(cfg: AppoConfig, action_spec: ActionSpec) -> None:
    if cfg.exploration_loss == "symmetric_kl" and action_spec.kind == "box":
        raise ValueError(
            "appo.exploration_loss 'symmetric_kl' needs a discrete or multi_discrete action space, "
            "but this environment has box actions; use 'entropy'"
        )


class AppoLearner:
    def __init__(
        self,
        model: nn.Module,
        cfg: AppoConfig,
        device: torch.device,
        total_env_frames: int | None = None,
        bf16: bool = False,
    ) -> None:
        _check_exploration_loss(cfg, model.action_spec)
        self.model = model.to(device)
        self.cfg = cfg
        self.device = device
        # appo.precision resolved by the caller, which knows whether this machine computes bf16 natively.
        self.bf16 = bf16
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
        cfg = AppoConfig.model_validate({**self.cfg.model_dump(), **kwargs})
        _check_exploration_loss(cfg, self.model.action_spec)
        self.cfg = cfg
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
            self.lr = max(self.lr / _KL_LR_FACTOR, LEARNING_RATE.bounds[0])
        elif kl < 0.5 * threshold:
            self.lr = min(self.lr * _KL_LR_FACTOR, LEARNING_RATE.bounds[1])
        self._apply_lr()

    def _chunk_len(self, batch: TrainBatch) -> int:
        """Steps per training chunk: cfg.recurrence for recurrent models, else single samples."""
        if self.model.rnn_state_size == 0:
            return 1
        steps = batch.rewards.shape[1]
        if batch.rnn_states is None:
            raise ValueError("the model is recurrent but the TrainBatch has no rnn_states")
        if steps % self.cfg.recurrence != 0:
            raise ValueError(f"appo.recurrence ({self.cfg.recurrence}) must divide the batch's rollout ({steps})")
        return self.cfg.recurrence

    def _return_scale(self, values: Tensor) -> Tensor:
        values = values.float()
        return self.model.returns_normalizer.denormalize(values) if self.cfg.normalize_returns else values

    def _rewards(self, batch: TrainBatch) -> Tensor:
        cfg = self.cfg
        rewards = (batch.rewards.float() * cfg.reward_scale).clamp(-cfg.reward_clip, cfg.reward_clip)
        if cfg.value_bootstrap:
            # The post-truncation obs is not stored, so V(s_t) stands in for V(s_{t+1}).
            rewards = rewards + cfg.gamma * self._return_scale(batch.values) * batch.time_outs.float()
        return rewards

    def _bootstrap_values(self, batch: TrainBatch) -> Tensor:
        """Current-model values [B] of the obs after the last step, from the state stored before it."""
        steps = batch.rewards.shape[1]
        states = None if batch.rnn_states is None else batch.rnn_states[:, steps]
        with self._autocast():
            _, values = self.model({k: v[:, steps] for k, v in batch.obs.items()}, states)
        return values.float()

    def _autocast(self) -> torch.autocast:
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16)

    def _forward(self, obs: dict[str, Tensor], initial_states: Tensor | None, dones: Tensor) -> tuple[Tensor, Tensor]:
        """Flat obs [N, ...] holding whole chunks -> (params [N, P], values [N]), fp32 whatever the precision.

        Recurrent models replay each chunk from its stored initial state (initial_states [chunks, S]).
        """
        with self._autocast():
            if initial_states is None:
                params, values = self.model(obs)
            else:
                num_chunks = initial_states.shape[0]
                chunked = {k: v.reshape(num_chunks, -1, *v.shape[1:]) for k, v in obs.items()}
                params, values = self.model.forward_sequences(chunked, initial_states, dones.reshape(num_chunks, -1))
                params, values = params.flatten(0, 1), values.flatten(0, 1)
        return params.float(), values.float()

    @torch.no_grad()
    def _targets(self, batch: TrainBatch) -> tuple[Tensor, Tensor, Tensor]:
        """GAE advantages and returns in reward scale, value targets in value-head space; all [B, T]."""
        cfg, model = self.cfg, self.model
        values = self._return_scale(batch.values)
        next_values = self._return_scale(self._bootstrap_values(batch))
        advantages, returns = gae(
            self._rewards(batch), values, next_values, batch.dones, batch.valids, cfg.gamma, cfg.gae_lambda
        )
        targets = returns
        if cfg.normalize_returns:
            model.returns_normalizer.update(returns[batch.valids])
            targets = model.returns_normalizer.normalize(returns)
        return advantages, returns, targets

    @torch.no_grad()
    def _vtrace_targets(
        self,
        batch: TrainBatch,
        obs: dict[str, Tensor],
        initial_states: Tensor | None,
        minibatches: list[tuple[slice, slice]],
    ) -> tuple[Tensor, Tensor]:
        """V-trace (pg_advantages, vs) [B, T] under the current model; vs doubles as the value target."""
        cfg, model = self.cfg, self.model
        num_traj, steps = batch.rewards.shape
        dones = batch.dones.reshape(-1)
        # Evaluated minibatch by minibatch so peak memory stays that of one SGD step.
        params, values = [], []
        for samples, chunks in minibatches:
            states = None if initial_states is None else initial_states[chunks]
            mb_params, mb_values = self._forward({k: v[samples] for k, v in obs.items()}, states, dones[samples])
            params.append(mb_params)
            values.append(mb_values)
        params = torch.cat(params).reshape(num_traj, steps, -1)
        masks = None if batch.action_masks is None else batch.action_masks[:, :steps]
        log_probs = make_distribution(model.action_spec, params, masks).log_prob(batch.actions)
        vs, advantages = vtrace(
            log_rhos=log_probs - batch.log_probs.float(),
            discounts=cfg.gamma * (1.0 - batch.dones.float()),
            rewards=self._rewards(batch),
            values=torch.cat(values).reshape(num_traj, steps),
            bootstrap_value=self._bootstrap_values(batch),
            rho_bar=cfg.vtrace_rho,
            c_bar=cfg.vtrace_c,
            valids=batch.valids,
        )
        return advantages, vs

    def train(self, batch: TrainBatch, env_frames: int = 0) -> dict[str, float]:
        """Run num_epochs passes of minibatch SGD over one batch and return stats."""
        cfg, model = self.cfg, self.model
        batch = batch.to(self.device)
        batch.valids = batch.valids.bool()
        num_traj, steps = batch.rewards.shape
        num_samples = num_traj * steps
        chunk_len = self._chunk_len(batch)
        num_chunks = num_samples // chunk_len

        def flat(x: Tensor) -> Tensor:
            return x[:, :steps].reshape(num_samples, *x.shape[2:])

        obs = {k: flat(v) for k, v in batch.obs.items()}
        valids = flat(batch.valids)
        keys = getattr(model, "normalized_keys", obs.keys())  # a custom model may not say: give it every key
        model.update_normalizers({k: v[valids] for k, v in obs.items() if k in keys})
        # Measured before _targets moves the returns normalizer.
        value_mean = masked_mean(self._return_scale(batch.values), batch.valids).item()

        initial_states = None  # feed-forward: every sample stands alone
        if model.rnn_state_size > 0:
            initial_states = batch.rnn_states[:, :steps:chunk_len].reshape(num_chunks, -1)
        actions, old_log_probs = flat(batch.actions), flat(batch.log_probs)
        old_values, old_params, dones = flat(batch.values).float(), flat(batch.dist_params), flat(batch.dones)
        masks = None if batch.action_masks is None else flat(batch.action_masks)

        self.lr = self._scheduled_lr(env_frames)
        self._apply_lr()

        # Contiguous runs of whole chunks; with chunk_len 1 whole trajectories stay together
        # whenever batch_size is a multiple of rollout.
        edges = [num_chunks * i // cfg.num_batches_per_epoch for i in range(cfg.num_batches_per_epoch + 1)]
        minibatches = [(slice(a * chunk_len, b * chunk_len), slice(a, b)) for a, b in pairwise(edges)]
        if not cfg.with_vtrace:
            advantages, _, targets = (flat(x) for x in self._targets(batch))

        totals: dict[str, float] = {}
        num_steps = 0
        for _ in range(cfg.num_epochs):
            if cfg.with_vtrace:
                # Recomputed each epoch: the importance weights depend on the current policy.
                advantages, targets = (flat(x) for x in self._vtrace_targets(batch, obs, initial_states, minibatches))
            for idx, chunks in minibatches:
                mb_valids = valids[idx]
                if not mb_valids.any():
                    continue
                step_stats = self._sgd_step(
                    obs={k: v[idx] for k, v in obs.items()},
                    initial_states=None if initial_states is None else initial_states[chunks],
                    dones=dones[idx],
                    actions=actions[idx],
                    old_log_probs=old_log_probs[idx],
                    old_values=old_values[idx],
                    old_params=old_params[idx],
                    masks=None if masks is None else masks[idx],
                    advantages=advantages[idx],
                    targets=targets[idx],
                    valids=mb_valids,
                )
                for key, value in step_stats.items():
                    totals[key] = totals.get(key, 0.0) + value
                num_steps += 1

        if num_steps > 0:
            self.version += 1
        stats = {key: totals.get(key, 0.0) / max(num_steps, 1) for key in self._stat_keys()}
        valid_adv = advantages[valids]
        stats.update(
            lr=float(self.lr),
            adv_mean=float(valid_adv.mean()) if valid_adv.numel() else 0.0,
            adv_std=float(valid_adv.std(unbiased=False)) if valid_adv.numel() else 0.0,
            value_mean=value_mean,
            valid_fraction=float(valids.float().mean()),
            num_sgd_steps=float(num_steps),
        )
        return stats

    def _stat_keys(self) -> list[str]:
        keys = list(_SGD_STAT_KEYS)
        if self.cfg.exploration_loss == "symmetric_kl":
            keys.append("exploration_loss")
        if self.cfg.kl_loss_coeff > 0:
            keys.append("kl_loss")
        return keys

    def _sgd_step(
        self,
        obs: dict[str, Tensor],
        initial_states: Tensor | None,
        dones: Tensor,
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
        params, values = self._forward(obs, initial_states, dones)
        dist = make_distribution(model.action_spec, params, masks)
        old_dist = make_distribution(model.action_spec, old_params, masks)
        log_probs = dist.log_prob(actions)
        entropy = dist.entropy()

        if cfg.normalize_advantage:
            mean = masked_mean(advantages, valids)
            std = masked_mean((advantages - mean).pow(2), valids).sqrt().clamp(min=1e-7)
            advantages = (advantages - mean) / std

        pol = policy_loss(log_probs, old_log_probs, advantages, valids, cfg.ppo_clip_ratio)
        val = value_loss(values, old_values, targets, valids, cfg.ppo_clip_value)
        ent = entropy_loss(entropy, valids)
        kl = masked_mean(old_dist.kl(dist), valids)
        extra: dict[str, Tensor] = {}
        if cfg.exploration_loss == "symmetric_kl":
            extra["exploration_loss"] = masked_mean(symmetric_kl_to_uniform(dist), valids)
        exploration = extra.get("exploration_loss", ent)
        loss = pol + cfg.value_loss_coeff * val + cfg.exploration_loss_coeff * exploration
        if cfg.kl_loss_coeff > 0:
            extra["kl_loss"] = kl
            loss = loss + cfg.kl_loss_coeff * kl

        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        # An infinite max norm measures the norm without clipping.
        max_norm = cfg.max_grad_norm if cfg.max_grad_norm > 0 else float("inf")
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
        self.optimizer.step()

        with torch.no_grad():
            ratio = torch.exp(log_probs - old_log_probs)
            outside = (ratio < 1.0 / (1.0 + cfg.ppo_clip_ratio)) | (ratio > 1.0 + cfg.ppo_clip_ratio)
            clip_fraction = float(masked_mean(outside.float(), valids))
        if cfg.lr_schedule == "kl_adaptive":
            self._adapt_lr_to_kl(kl.item())

        return {
            "loss": loss.item(),
            "policy_loss": pol.item(),
            "value_loss": val.item(),
            "entropy_loss": ent.item(),
            "entropy": masked_mean(entropy.detach(), valids).item(),
            "kl": kl.item(),
            "grad_norm": float(grad_norm),
            "clip_fraction": clip_fraction,
            **{key: value.item() for key, value in extra.items()},
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
