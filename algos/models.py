"""Actor-critic: per-key encoders, an optional recurrent core, policy and value heads."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn

from algos import registry
from algos.cores import default_core
from algos.distributions import make_distribution
from algos.encoders import DictEncoder, is_image, module_name, orthogonal_linear
from algos.model_config import ModelConfig
from algos.normalize import RunningMeanStd
from algos.spaces import ActionSpec, ObsSpec


def _is_normalized(cfg: ModelConfig, spec: ObsSpec) -> bool:
    if is_image(spec):
        return cfg.normalize_images
    # Other uint8 (flags, counts) is treated as already bounded; bools carry no scale.
    return cfg.normalize_input and np.dtype(spec.dtype) not in (np.dtype("uint8"), np.dtype("bool"))


def _as_float(spec: ObsSpec, x: Tensor) -> Tensor:
    # Pixels reach every encoder in 0..1, normalized or not.
    return x.to(torch.float32, copy=True).mul_(1.0 / 255.0) if is_image(spec) else x.float()


class ActorCritic(nn.Module):
    """Encoder -> core -> policy head and value head, built through the registry.

    The value head predicts returns in the space of `returns_normalizer`; the
    learner decides whether that normalizer is actually applied.
    """

    def __init__(self, cfg: ModelConfig, obs_specs: dict[str, ObsSpec], action_spec: ActionSpec) -> None:
        super().__init__()
        self.cfg = cfg
        self.obs_specs = dict(obs_specs)
        self.action_spec = action_spec

        self._normalizer_names = {
            key: module_name(key)
            for key, spec in self.obs_specs.items()
            if _is_normalized(cfg, spec)
        }
        self.obs_normalizers = nn.ModuleDict(
            {name: RunningMeanStd(self.obs_specs[key].shape) for key, name in self._normalizer_names.items()}
        )
        self.returns_normalizer = RunningMeanStd(())

        self.encoder = registry.lookup("encoder", cfg.encoder)(cfg, self.obs_specs)
        self.core = registry.lookup("core", cfg.core)(cfg, self.encoder.out_features)

        if action_spec.kind == "box":
            policy_out = math.prod(action_spec.shape)
            # State-independent exploration noise, as in most continuous-control PPO setups.
            self.log_std = nn.Parameter(torch.zeros(policy_out))
        else:
            policy_out = action_spec.num_dist_params()
        self.policy_head = orthogonal_linear(self.core.out_features, policy_out, cfg.policy_init_gain)
        self.value_head = orthogonal_linear(self.core.out_features, 1, 1.0)

    @property
    def normalized_keys(self) -> frozenset[str]:
        """Observation keys with running statistics (what update_normalizers reads)."""
        return frozenset(self._normalizer_names)

    @property
    def rnn_state_size(self) -> int:
        """Floats of recurrent state per agent; 0 for a feed-forward model."""
        return self.core.state_size

    def normalize_obs(self, obs: dict[str, Tensor]) -> dict[str, Tensor]:
        """Raw obs -> float encoder input: pixels in 0..1, normalized keys centred and scaled."""
        out = {}
        for key, spec in self.obs_specs.items():
            x = _as_float(spec, obs[key])
            name = self._normalizer_names.get(key)
            out[key] = self.obs_normalizers[name].normalize(x) if name else x
        return out

    def update_normalizers(self, obs: dict[str, Tensor]) -> None:
        """Update observation statistics from raw obs of shape [N, *shape] per key."""
        for key, name in self._normalizer_names.items():
            self.obs_normalizers[name].update(_as_float(self.obs_specs[key], obs[key]))

    def _encode(self, obs: dict[str, Tensor]) -> Tensor:
        return self.encoder(self.normalize_obs(obs))

    def _heads(self, hidden: Tensor) -> tuple[Tensor, Tensor]:
        params = self.policy_head(hidden)
        if self.action_spec.kind == "box":
            params = torch.cat([params, self.log_std.expand_as(params)], dim=-1)
        return params, self.value_head(hidden).squeeze(-1)

    def _step(self, obs: dict[str, Tensor], rnn_states: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
        """One step for a flat batch -> (dist_params [N, P], values [N], new_states [N, S])."""
        features = self._encode(obs)
        if rnn_states is None or self.rnn_state_size == 0:
            # No stored state means the start of an episode; a stateless core gets an empty one.
            rnn_states = features.new_zeros(features.shape[0], self.rnn_state_size)
        hidden, new_states = self.core(features, rnn_states)
        return *self._heads(hidden), new_states

    def forward(self, obs: dict[str, Tensor], rnn_states: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Raw obs [N, ...] per key, states [N, S] before them -> (dist_params [N, P], values [N])."""
        params, values, _ = self._step(obs, rnn_states)
        return params, values

    def forward_sequences(
        self, obs: dict[str, Tensor], initial_states: Tensor, dones: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Obs [B, T, ...], states [B, S] before obs[:, 0], dones [B, T] -> (params [B, T, P], values [B, T]).

        The state is zeroed after each step whose episode ended, exactly as the sampler does
        between episodes, so this matches calling act() step by step.
        """
        num_seq, steps = dones.shape
        flat_obs = {key: value.flatten(0, 1) for key, value in obs.items()}
        # The encoder has no memory, so all B*T observations go through it in one batch.
        features = self._encode(flat_obs)
        if self.rnn_state_size == 0:
            hidden, _ = self.core(features, features.new_zeros(features.shape[0], 0))
        else:
            features = features.reshape(num_seq, steps, -1)
            keep = 1.0 - dones.float().unsqueeze(-1)
            state = initial_states
            outputs = []
            for t in range(steps):
                out, state = self.core(features[:, t], state)
                outputs.append(out)
                state = state * keep[:, t]
            hidden = torch.stack(outputs, dim=1).flatten(0, 1)
        params, values = self._heads(hidden)
        return params.reshape(num_seq, steps, -1), values.reshape(num_seq, steps)

    @torch.no_grad()
    def act(
        self,
        obs: dict[str, Tensor],
        rnn_states: Tensor | None = None,
        action_mask: Tensor | None = None,
        deterministic: bool = False,
    ) -> dict[str, Tensor]:
        """Sample actions for obs [N, ...]; with a recurrent core also return the state after them."""
        params, values, new_states = self._step(obs, rnn_states)
        dist = make_distribution(self.action_spec, params, action_mask)
        actions = dist.mode() if deterministic else dist.sample()
        out = {
            "actions": actions,
            "log_probs": dist.log_prob(actions),
            "values": values,
            "dist_params": params,
        }
        if self.rnn_state_size > 0:
            out["rnn_states"] = new_states
        return out


def make_actor_critic(cfg: ModelConfig, obs_specs: dict[str, ObsSpec], action_spec: ActionSpec) -> nn.Module:
    """Build the actor-critic registered as cfg.actor_critic (ActorCritic for "default")."""
    return registry.lookup("actor_critic", cfg.actor_critic)(cfg, obs_specs, action_spec)


registry.register_encoder(registry.BUILT_IN, DictEncoder)
registry.register_core(registry.BUILT_IN, default_core)
registry.register_actor_critic(registry.BUILT_IN, ActorCritic)
