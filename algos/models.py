"""Feed-forward actor-critic over (possibly dict) vector observations."""

from __future__ import annotations

import math
from typing import Annotated, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator
from torch import Tensor, nn

from algos.distributions import make_distribution
from algos.normalize import RunningMeanStd
from algos.spaces import ActionSpec, ObsSpec

_NONLINEARITIES: dict[str, type[nn.Module]] = {"elu": nn.ELU, "relu": nn.ReLU, "tanh": nn.Tanh}


class ModelConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    encoder_mlp_layers: list[Annotated[int, Field(ge=1)]] = Field(
        [512, 512],
        description="Hidden layer sizes of the observation encoder MLP "
        "(an empty list puts the heads directly on the observations).",
    )
    nonlinearity: Literal["elu", "relu", "tanh"] = Field(
        "elu", description="Activation function between encoder layers."
    )
    use_rnn: bool = Field(False, description="Add a recurrent core after the encoder (not available yet).")
    normalize_input: bool = Field(
        True,
        description="Normalize non-uint8 observations with running mean/std statistics.",
    )
    policy_init_gain: float = Field(
        0.01,
        gt=0,
        description="Orthogonal init gain of the policy head; small values start "
        "close to a uniform / zero-mean policy.",
    )

    @field_validator("use_rnn")
    @classmethod
    def _rnn_not_available(cls, value: bool) -> bool:
        if value:
            raise ValueError("recurrent cores (GRU/LSTM) are not available yet; set model.use_rnn to false")
        return value


def _is_normalized(spec: ObsSpec) -> bool:
    # uint8 is treated as already bounded (pixels, flags); bools carry no scale.
    return np.dtype(spec.dtype) not in (np.dtype("uint8"), np.dtype("bool"))


def _module_name(key: str) -> str:
    # ModuleDict rejects names with dots or that shadow attributes ("values", "type", ...).
    if key and "." not in key and not hasattr(nn.ModuleDict(), key):
        return key
    return "obs_key_" + key.replace(".", "_")


def _orthogonal_linear(in_features: int, out_features: int, gain: float) -> nn.Linear:
    layer = nn.Linear(in_features, out_features)
    nn.init.orthogonal_(layer.weight, gain=gain)
    nn.init.zeros_(layer.bias)
    return layer


class ActorCritic(nn.Module):
    """Shared MLP encoder with a policy head and a value head.

    The value head predicts returns in the space of `returns_normalizer`; the
    learner decides whether that normalizer is actually applied.
    """

    def __init__(self, cfg: ModelConfig, obs_specs: dict[str, ObsSpec], action_spec: ActionSpec) -> None:
        super().__init__()
        self.cfg = cfg
        self.obs_specs = dict(obs_specs)
        self.action_spec = action_spec

        self._normalizer_names = {
            key: _module_name(key)
            for key, spec in self.obs_specs.items()
            if cfg.normalize_input and _is_normalized(spec)
        }
        self.obs_normalizers = nn.ModuleDict(
            {name: RunningMeanStd(self.obs_specs[key].shape) for key, name in self._normalizer_names.items()}
        )
        self.returns_normalizer = RunningMeanStd(())

        layers: list[nn.Module] = []
        width = sum(math.prod(spec.shape) for spec in self.obs_specs.values())
        for hidden in cfg.encoder_mlp_layers:
            layers += [_orthogonal_linear(width, hidden, math.sqrt(2)), _NONLINEARITIES[cfg.nonlinearity]()]
            width = hidden
        self.encoder = nn.Sequential(*layers)

        if action_spec.kind == "discrete":
            policy_out = action_spec.n
        else:
            policy_out = math.prod(action_spec.shape)
            # State-independent exploration noise, as in most continuous-control PPO setups.
            self.log_std = nn.Parameter(torch.zeros(policy_out))
        self.policy_head = _orthogonal_linear(width, policy_out, cfg.policy_init_gain)
        self.value_head = _orthogonal_linear(width, 1, 1.0)

    def normalize_obs(self, obs: dict[str, Tensor]) -> dict[str, Tensor]:
        out = {}
        for key in self.obs_specs:
            name = self._normalizer_names.get(key)
            out[key] = self.obs_normalizers[name].normalize(obs[key]) if name else obs[key].float()
        return out

    def update_normalizers(self, obs: dict[str, Tensor]) -> None:
        """Update observation statistics from raw obs of shape [N, *shape] per key."""
        for key, name in self._normalizer_names.items():
            self.obs_normalizers[name].update(obs[key])

    def forward(self, obs: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """Raw obs [N, ...] per key -> (dist_params [N, P], values [N])."""
        normalized = self.normalize_obs(obs)
        features = torch.cat([normalized[key].flatten(1) for key in self.obs_specs], dim=1)
        hidden = self.encoder(features)
        params = self.policy_head(hidden)
        if self.action_spec.kind == "box":
            params = torch.cat([params, self.log_std.expand_as(params)], dim=-1)
        return params, self.value_head(hidden).squeeze(-1)

    @torch.no_grad()
    def act(
        self,
        obs: dict[str, Tensor],
        action_mask: Tensor | None = None,
        deterministic: bool = False,
    ) -> dict[str, Tensor]:
        params, values = self(obs)
        dist = make_distribution(self.action_spec, params, action_mask)
        actions = dist.mode() if deterministic else dist.sample()
        return {
            "actions": actions,
            "log_probs": dist.log_prob(actions),
            "values": values,
            "dist_params": params,
        }
