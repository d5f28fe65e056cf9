"""Named factories for custom encoders, cores and whole actor-critics.

ModelConfig stores only names (so configs stay JSON); the factories live here. Register a
custom model before the config that names it is validated. The built-ins are registered
as "default" by algos.models when it is imported.

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
from typing import Literal

from pydantic import BaseModel
from torch import nn

from algos.spaces import ActionSpec, ObsSpec

# A factory's first argument is the ModelConfig (algos.model_config). That module validates its names here,
# so the registry types it only as a pydantic model rather than import it back.
EncoderFactory = Callable[[BaseModel, dict[str, ObsSpec]], nn.Module]
CoreFactory = Callable[[BaseModel, int], nn.Module]
ActorCriticFactory = Callable[[BaseModel, dict[str, ObsSpec], ActionSpec], nn.Module]
Kind = Literal["encoder", "core", "actor_critic"]
BUILT_IN = "default"  # the name algos.models registers its encoder, core and actor-critic under

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


def check_name(kind: Kind, name: str) -> None:
    """Raise, listing what is registered, unless `name` is a registered `kind` or the built-in.

    The built-in counts before algos.models registers it: a config may be validated where no model is built.
    """
    names = dict.fromkeys([BUILT_IN, *_FACTORIES[kind]])
    if name not in names:
        raise ValueError(f"model.{kind}: unknown {kind} {name!r}; registered: {', '.join(names)}")


def lookup(kind: Kind, name: str) -> Callable[..., nn.Module]:
    """The factory registered as `name`."""
    check_name(kind, name)
    return _FACTORIES[kind][name]

