"""The one stable import path for extensions: `from sampler.plugins import ...`.

Env families, vector envs, policy mappings, encoders, cores and whole actor-critics are added by a module
that registers them when it is imported: a module named in `run.imports` (imported by the supervisor and
every worker) or one an installed package lists in the `sftui.plugins` entry-point group. Such a module
imports project code from here only; the modules these names live in may move, these names stay.

- Env families: `register_family(EnvFamily(prefix, description, make, ...))`. `make(cfg, EnvContext)`
  returns a `MultiAgentEnv` (per-agent lists, auto-reset, `Obs` dicts, `ObsSpec`/`ActionSpec`);
  `GymnasiumAgent` brings a single-agent Gymnasium env to that contract, and `obs_specs_of` /
  `action_spec_of` read the specs of Gymnasium spaces. A name or setting the family cannot build is
  refused with `ConfigError`, a missing optional package with `MissingDependencyError`.
- Vector envs (`sampler.batched_sampling`): a family's `make_vector(cfg, EnvContext)` returns a
  `VectorEnv` whose `reset` and `step` return a `VectorStep`, with its `Autoreset` mode.
- Policy mappings: `register_policy_mapping(name, factory)`, `factory(cfg, seed)` returning a
  `PolicyMapping`; chosen with `sampler.policy_mapping`.
- Models: `register_encoder`, `register_core`, `register_actor_critic` (interfaces in algos/registry.py),
  chosen with `model.encoder`, `model.core`, `model.actor_critic`.
"""

from __future__ import annotations

from algos.registry import register_actor_critic, register_core, register_encoder
from algos.spaces import ActionSpec, ObsSpec
from sampler.envs.contract import EnvContext, GymnasiumAgent, MultiAgentEnv, Obs, action_spec_of, obs_specs_of
from sampler.envs.families.registry import EnvFamily, register_family
from sampler.envs.mapping import PolicyMapping, register_policy_mapping
from sampler.envs.vector import Autoreset, VectorEnv, VectorStep
from sampler.errors import ConfigError, MissingDependencyError

__all__ = [
    # env families
    "EnvFamily", "register_family", "EnvContext", "MultiAgentEnv", "Obs", "GymnasiumAgent", "obs_specs_of",
    "action_spec_of",
    # vector envs
    "VectorEnv", "VectorStep", "Autoreset",
    # policy mappings
    "PolicyMapping", "register_policy_mapping",
    # encoders, cores, actor-critics
    "register_encoder", "register_core", "register_actor_critic",
    # observation and action specs
    "ObsSpec", "ActionSpec",
    # errors a plugin raises
    "ConfigError", "MissingDependencyError",
]
