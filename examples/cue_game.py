"""A two-seat PettingZoo Parallel env in which each seat must learn its own rule.

Each step both players see the same cue (one of 4, one-hot). The "leader" scores 1 for playing the
cue; the "follower" scores 1 for playing what the leader played on the previous step (it sees that
too). An episode is 10 steps, so each seat's best return is 10 (random play: 2.5), and the
follower can only reach it once the leader is consistent. Train it with one policy per seat:

    sftui train pettingzoo_examples.cue_game --set sampler.num_policies=2 --set sampler.policy_mapping=seat
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from pettingzoo import ParallelEnv

CUES = 4
LENGTH = 10


class CueGame(ParallelEnv):
    metadata = {"name": "cue_game_v0", "render_modes": []}

    def __init__(self, render_mode: str | None = None):
        self.possible_agents = ["leader", "follower"]
        self.agents: list[str] = []
        self.render_mode = render_mode
        self._rng = np.random.default_rng()
        self._space = gym.spaces.Box(0.0, 1.0, (2 * CUES,), np.float32)
        self._actions = gym.spaces.Discrete(CUES)

    def observation_space(self, agent: str) -> gym.Space:
        return self._space

    def action_space(self, agent: str) -> gym.Space:
        return self._actions

    def _observe(self) -> dict[str, np.ndarray]:
        obs = np.zeros(2 * CUES, np.float32)
        obs[self._cue] = 1.0
        obs[CUES + self._last_lead] = 1.0
        return {agent: obs.copy() for agent in self.agents}

    def reset(self, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self.agents = list(self.possible_agents)
        self._t = 0
        self._cue = int(self._rng.integers(CUES))
        self._last_lead = int(self._rng.integers(CUES))
        return self._observe(), {agent: {} for agent in self.agents}

    def step(self, actions: dict[str, int]):
        lead, follow = int(actions["leader"]), int(actions["follower"])
        rewards = {"leader": float(lead == self._cue), "follower": float(follow == self._last_lead)}
        self._t += 1
        self._last_lead = lead
        self._cue = int(self._rng.integers(CUES))
        done = self._t >= LENGTH
        obs = self._observe()
        truncations = {agent: done for agent in self.agents}
        terminations = {agent: False for agent in self.agents}
        infos = {agent: {} for agent in self.agents}
        if done:
            self.agents = []
        return obs, rewards, terminations, truncations, infos


def parallel_env(render_mode: str | None = None) -> CueGame:
    return CueGame(render_mode=render_mode)
