"""Agent -> policy mapping: which policy controls each agent of each episode.

Rollout workers ask `policy_for(worker, env, agent)` at the start of every episode of every agent.
The default draws a policy at random; `make_policy_mapping` is the one place that picks the mapping.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np


class PolicyMapping(Protocol):
    def policy_for(self, worker: int, env: int, agent: int) -> int: ...


class RandomPerEpisode:
    def __init__(self, num_policies: int, seed: int):
        self.num_policies = num_policies
        self.rng = np.random.default_rng(seed)

    def policy_for(self, worker: int, env: int, agent: int) -> int:
        if self.num_policies == 1:
            return 0
        return int(self.rng.integers(self.num_policies))


def make_policy_mapping(cfg, seed: int) -> PolicyMapping:
    return RandomPerEpisode(cfg.sampler.num_policies, seed)
