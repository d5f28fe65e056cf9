"""Agent -> policy mapping: which policy controls each agent of each episode.

Rollout workers ask `policy_for(worker, env, agent)` at the start of every episode of every agent.
`sampler.policy_mapping` names the mapping:
- "random" (the default): a policy drawn at random for each agent's episode;
- "seat": agent k of every env always plays for policy k mod num_policies (two policies in a
  two-seat game: one per seat);
- any name registered with `register_policy_mapping`, from a module in `run.imports`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from sampler.errors import ConfigError


class PolicyMapping(Protocol):
    def policy_for(self, worker: int, env: int, agent: int) -> int: ...


MappingFactory = Callable[[Any, int], PolicyMapping]  # (ExperimentConfig, seed) -> mapping
_MAPPINGS: dict[str, MappingFactory] = {}


def register_policy_mapping(name: str, factory: MappingFactory) -> None:
    """Make `sampler.policy_mapping: name` build its mapping with `factory(cfg, seed)` in each rollout worker."""
    _MAPPINGS[name] = factory


def mapping_names() -> list[str]:
    return sorted(_MAPPINGS)


class RandomPerEpisode:
    def __init__(self, num_policies: int, seed: int):
        self.num_policies = num_policies
        self.rng = np.random.default_rng(seed)

    def policy_for(self, worker: int, env: int, agent: int) -> int:
        if self.num_policies == 1:
            return 0
        return int(self.rng.integers(self.num_policies))


class BySeat:
    def __init__(self, num_policies: int):
        self.num_policies = num_policies

    def policy_for(self, worker: int, env: int, agent: int) -> int:
        return agent % self.num_policies


register_policy_mapping("random", lambda cfg, seed: RandomPerEpisode(cfg.sampler.num_policies, seed))
register_policy_mapping("seat", lambda cfg, seed: BySeat(cfg.sampler.num_policies))


def make_policy_mapping(cfg, seed: int) -> PolicyMapping:
    return _MAPPINGS[cfg.sampler.policy_mapping](cfg, seed)


def check_seating(cfg, num_agents: int) -> None:
    """Refuse a run in which some policy could never play: more policies than seats under "seat"."""
    policies = cfg.sampler.num_policies
    if cfg.sampler.policy_mapping == "seat" and policies > num_agents:
        idle = f"policy {num_agents}" if policies == num_agents + 1 else f"policies {num_agents}..{policies - 1}"
        raise ConfigError(
            f"sampler.num_policies is {policies} but {cfg.env.name} seats {num_agents} agent(s), and "
            f"policy_mapping 'seat' gives each seat one policy: {idle} would never play; use fewer policies "
            "or policy_mapping 'random'"
        )
