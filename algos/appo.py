"""APPO's update step: one batch of trajectory slices in, a round of clipped-PPO minibatch SGD on the model out.

Read top to bottom like a single-file PPO: TrainBatch, then AppoLearner.train, then the helpers in the order
it calls them: advantage and value targets (GAE, or V-trace against the current policy), the model's forward
pass, and the SGD step with every loss term in one place; last, what the run changes from outside
(hyperparameters, checkpoints). Machine facts (bf16 or not) and the run's length come in as arguments; the
learning rate follows algos.lr_schedule.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from itertools import pairwise

import torch
from torch import Tensor, nn

from algos.appo_config import AppoConfig
from algos.distributions import make_distribution, symmetric_kl_to_uniform
from algos.losses import entropy_loss, masked_mean, policy_loss, value_loss
from algos.lr_schedule import LearningRateSchedule
from algos.returns import gae
from algos.spaces import ActionSpec
from algos.vtrace import vtrace

_SGD_STAT_KEYS = ("loss", "policy_loss", "value_loss", "entropy_loss", "entropy", "kl", "grad_norm", "clip_fraction")


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
    # The obs stored after a step that ended an episode is that episode's last one (an env with next-step
    # autoreset), not the next episode's first: a time-out's bootstrap then uses its real value.
    last_obs_follows_done: bool = False

    def to(self, device: torch.device) -> TrainBatch:
        moved = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, dict):
                moved[f.name] = {k: v.to(device) for k, v in value.items()}
            elif isinstance(value, Tensor):
                moved[f.name] = value.to(device)
            else:
                moved[f.name] = value
        return TrainBatch(**moved)


def _check_exploration_loss(cfg: AppoConfig, action_spec: ActionSpec) -> None:
    if cfg.exploration_loss == "symmetric_kl" and action_spec.kind == "box":
        raise ValueError(
            "appo.exploration_loss 'symmetric_kl' needs a discrete or multi_discrete action space, "
            "but this environment has box actions; use 'entropy'"
        )


class AppoLearner:
    """The model, its Adam optimizer and learning-rate schedule, and the policy version its updates count.

    bf16: run the model's forward and backward passes under bfloat16 autocast (appo.precision, resolved by the
    caller for this machine). total_env_frames: this policy's share of the run, where linear_decay ends.
    """

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
        self.bf16 = bf16
        self.lr_schedule = LearningRateSchedule.from_config(cfg, total_env_frames)
        self.version = 0
        self.optimizer = torch.optim.Adam(
            self.model.parameters(),
            lr=self.lr_schedule.lr,
            betas=(cfg.adam_beta1, cfg.adam_beta2),
            eps=cfg.adam_eps,
        )

    def train(self, batch: TrainBatch, env_frames: int = 0) -> dict[str, float]:
        """Run num_epochs passes of minibatch SGD over one batch, `env_frames` into the run, and return stats."""
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

        self._set_lr(self.lr_schedule.lr_for(env_frames))

        # Contiguous runs of whole chunks; with chunk_len 1 whole trajectories stay together
        # whenever batch_size is a multiple of rollout.
        edges = [num_chunks * i // cfg.num_batches_per_epoch for i in range(cfg.num_batches_per_epoch + 1)]
        minibatches = [(slice(a * chunk_len, b * chunk_len), slice(a, b)) for a, b in pairwise(edges)]
        if not cfg.with_vtrace:
            advantages, _, targets = (flat(x) for x in self._targets(batch))

        totals: dict[str, float] = {}
        num_steps = skipped = 0
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
                if step_stats is None:
                    skipped += 1
                    continue
                for key, value in step_stats.items():
                    totals[key] = totals.get(key, 0.0) + value
                num_steps += 1

        if num_steps > 0:
            self.version += 1
        stats = {key: totals.get(key, 0.0) / max(num_steps, 1) for key in self._stat_keys()}
        valid_adv = advantages[valids]
        stats.update(
            lr=float(self.lr_schedule.lr),
            adv_mean=float(valid_adv.mean()) if valid_adv.numel() else 0.0,
            adv_std=float(valid_adv.std(unbiased=False)) if valid_adv.numel() else 0.0,
            value_mean=value_mean,
            valid_fraction=float(valids.float().mean()),
            num_sgd_steps=float(num_steps),
            nonfinite_sgd_steps=float(skipped),  # skipped: their loss or gradients held NaN or an infinity
        )
        return stats

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

    def _set_lr(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr

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

    def _bootstrap_values(self, batch: TrainBatch) -> Tensor:
        """Current-model values [B] of the obs after the last step, from the state stored before it."""
        steps = batch.rewards.shape[1]
        states = None if batch.rnn_states is None else batch.rnn_states[:, steps]
        with self._autocast():
            _, values = self.model({k: v[:, steps] for k, v in batch.obs.items()}, states)
        return values.float()

    def _rewards(self, batch: TrainBatch) -> Tensor:
        cfg = self.cfg
        rewards = (batch.rewards.float() * cfg.reward_scale).clamp(-cfg.reward_clip, cfg.reward_clip)
        if cfg.value_bootstrap:
            rewards = rewards + cfg.gamma * self._cut_off_values(batch) * batch.time_outs.float()
        return rewards

    def _cut_off_values(self, batch: TrainBatch) -> Tensor:
        """[B, T] V(s_{t+1}) of the state each step led to, where a time-out cut the episode, in reward scale.

        With next-step autoreset the obs after a time-out is the episode's last one: its value is the acting-time
        value of the next step (the reset step, left out of the loss), or for the last step the bootstrap value.
        Otherwise that obs belongs to the next episode and the last one is not stored, so V(s_t) stands in.
        """
        values = self._return_scale(batch.values)
        if not batch.last_obs_follows_done:
            return values
        last = self._return_scale(self._bootstrap_values(batch))
        return torch.cat([values[:, 1:], last[:, None]], dim=1)

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

    def _autocast(self) -> torch.autocast:
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16)

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
    ) -> dict[str, float] | None:
        """One minibatch: forward, loss, backward, clip and step; then the schedule's rate for the next step.
        None where the gradients are not finite: the step is skipped and the weights stay as they were."""
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

        # The loss, every term in one place: the clipped policy surrogate, the clipped value error, the
        # exploration term appo.exploration_loss picks, and the optional KL penalty on top of the clip.
        pg_loss = policy_loss(log_probs, old_log_probs, advantages, valids, cfg.ppo_clip_ratio)
        v_loss = value_loss(values, old_values, targets, valids, cfg.ppo_clip_value)
        ent_loss = entropy_loss(entropy, valids)
        symmetric_kl = cfg.exploration_loss == "symmetric_kl"
        exploration = masked_mean(symmetric_kl_to_uniform(dist), valids) if symmetric_kl else ent_loss
        kl = masked_mean(old_dist.kl(dist), valids)
        loss = pg_loss + cfg.value_loss_coeff * v_loss + cfg.exploration_loss_coeff * exploration
        if cfg.kl_loss_coeff > 0:  # switched off, the penalty stays out of the backward pass
            loss = loss + cfg.kl_loss_coeff * kl

        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        # An infinite max norm measures the norm without clipping.
        max_norm = cfg.max_grad_norm if cfg.max_grad_norm > 0 else float("inf")
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
        if not torch.isfinite(grad_norm):  # a NaN or an infinity in the loss or its gradients: no step at all
            self.optimizer.zero_grad(set_to_none=True)
            return None
        self.optimizer.step()
        kl_value = kl.item()
        self._set_lr(self.lr_schedule.after_sgd_step(kl_value))

        with torch.no_grad():
            ratio = torch.exp(log_probs - old_log_probs)
            outside = (ratio < 1.0 / (1.0 + cfg.ppo_clip_ratio)) | (ratio > 1.0 + cfg.ppo_clip_ratio)
            clip_fraction = float(masked_mean(outside.float(), valids))
        stats = {
            "loss": loss.item(),
            "policy_loss": pg_loss.item(),
            "value_loss": v_loss.item(),
            "entropy_loss": ent_loss.item(),
            "entropy": masked_mean(entropy.detach(), valids).item(),
            "kl": kl_value,
            "grad_norm": float(grad_norm),
            "clip_fraction": clip_fraction,
        }
        if symmetric_kl:
            stats["exploration_loss"] = exploration.item()
        if cfg.kl_loss_coeff > 0:
            stats["kl_loss"] = kl_value
        return stats

    def _stat_keys(self) -> list[str]:
        keys = list(_SGD_STAT_KEYS)
        if self.cfg.exploration_loss == "symmetric_kl":
            keys.append("exploration_loss")
        if self.cfg.kl_loss_coeff > 0:
            keys.append("kl_loss")
        return keys

    def set_hyperparameters(self, **kwargs: object) -> None:
        """Change config fields while training; unknown names or bad values raise. The rate the schedule
        carries is kept unless learning_rate itself changes."""
        cfg = AppoConfig.model_validate({**self.cfg.model_dump(), **kwargs})
        _check_exploration_loss(cfg, self.model.action_spec)
        self.cfg = cfg
        carried = None if "learning_rate" in kwargs else self.lr_schedule.lr
        self.lr_schedule = LearningRateSchedule.from_config(cfg, self.lr_schedule.total_env_frames, carried)
        for group in self.optimizer.param_groups:
            group["betas"] = (cfg.adam_beta1, cfg.adam_beta2)
            group["eps"] = cfg.adam_eps
        self._set_lr(self.lr_schedule.lr)

    def state_dict(self) -> dict:
        """What a checkpoint holds: {"model", "optimizer", "lr", "version"}."""
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            **self.lr_schedule.state_dict(),
            "version": int(self.version),
        }

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.lr_schedule.load_state_dict(state)
        self.version = int(state["version"])
        self._set_lr(self.lr_schedule.lr)
