"""Named factories for custom encoders, cores and whole actor-critics.

ModelConfig stores only names (so configs stay JSON); the factories live here. Register a
custom model before the config that names it is validated. The built-ins are registered
as "default" by algos.models.

Interfaces a factory's module must follow:
- encoder  factory(cfg, obs_specs): forward(normalized obs dict of [N, ...]) -> [N, out_features];
  attribute `out_features`.
- core     factory(cfg, in_features): forward(x [N, F], state [N, S]) -> (y [N, out_features],
  new_state [N, S]); attributes `out_features`, `state_size` (0 for a stateless core).
- actor_critic factory(cfg, obs_specs, action_spec): what ActorCritic offers: act, forward,
  forward_sequences, update_normalizers, normalize_obs, rnn_state_size, returns_normalizer,
  plus the attributes `cfg` (the ModelConfig) and `action_spec` that AppoLearner reads.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

from torch import nn

from algos.spaces import ActionSpec, ObsSpec

if TYPE_CHECKING:
    from algos.models import ModelConfig

EncoderFactory = Callable[["ModelConfig", dict[str, ObsSpec]], nn.Module]
CoreFactory = Callable[["ModelConfig", int], nn.Module]
ActorCriticFactory = Callable[["ModelConfig", dict[str, ObsSpec], ActionSpec], nn.Module]
Kind = Literal["encoder", "core", "actor_critic"]

_FACTORIES: dict[str, dict[str, Callable[..., nn.Module]]] = {"encoder": {}, "core": {}, "actor_critic": {}}


def _register(kind: Kind, name: str, factory: Callable[..., nn.Module]) -> None:
    registered = _FACTORIES[kind]
    # Re-registering the same factory is harmless (a module imported twice); a different
    # one under a taken name would silently change what existing configs build.
    if registered.get(name, factory) is not factory:
        raise ValueError(f"{kind} {name!r} is already registered")
    registered[name] = factory


def register_encoder(name: str, factory: EncoderFactory) -> None:
    _register("encoder", name, factory)


def register_core(name: str, factory: CoreFactory) -> None:
    _register("core", name, factory)


def register_actor_critic(name: str, factory: ActorCriticFactory) -> None:
    _register("actor_critic", name, factory)


def lookup(kind: Kind, name: str) -> Callable[..., nn.Module]:
    """The factory registered as `name`; the error lists what is registered."""
    registered = _FACTORIES[kind]
    if name not in registered:
        raise ValueError(f"model.{kind}: unknown {kind} {name!r}; registered: {', '.join(registered)}")
    return registered[name]


def make_encoder(cfg: ModelConfig, obs_specs: dict[str, ObsSpec]) -> nn.Module:
    return lookup("encoder", cfg.encoder)(cfg, obs_specs)


def make_core(cfg: ModelConfig, in_features: int) -> nn.Module:
    return lookup("core", cfg.core)(cfg, in_features)
