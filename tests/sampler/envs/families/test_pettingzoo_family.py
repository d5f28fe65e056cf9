"""The PettingZoo Parallel adapter: seats, one-hot and padded observations, action masks, agents that
leave early (inactive until the reset), mismatched spaces, and policy mappings that cannot seat."""

from __future__ import annotations

import sys
import types

import gymnasium as gym
import numpy as np
import pytest

pettingzoo = pytest.importorskip("pettingzoo")

from sampler.config.build import build_config  # noqa: E402
from sampler.envs.contract import EnvContext  # noqa: E402
from sampler.envs.families.registry import make_env  # noqa: E402
from sampler.errors import ConfigError  # noqa: E402


class MaskedDuel(pettingzoo.ParallelEnv):
    """"a" has 3 actions and 3-long observations; "b" 2 actions, 2-long observations and leaves after 2 steps."""

    metadata = {"name": "masked_duel_v0"}

    def __init__(self):
        self.possible_agents = ["a", "b"]
        self.agents = []
        self._obs = {"a": gym.spaces.Dict({"observation": gym.spaces.Box(0, 9, (3,), np.float32),
                                           "action_mask": gym.spaces.MultiBinary(3)}),
                     "b": gym.spaces.Dict({"observation": gym.spaces.Box(0, 9, (2,), np.float32),
                                           "action_mask": gym.spaces.MultiBinary(2)})}
        self._act = {"a": gym.spaces.Discrete(3), "b": gym.spaces.Discrete(2)}

    def observation_space(self, agent):
        return self._obs[agent]

    def action_space(self, agent):
        return self._act[agent]

    def _observe(self):
        return {agent: {"observation": np.full(3 if agent == "a" else 2, self.t + 1, np.float32),
                        "action_mask": np.array([1, 0, 1] if agent == "a" else [0, 1], np.int8)}
                for agent in self.agents}

    def reset(self, seed=None, options=None):
        self.agents, self.t = ["a", "b"], 0
        return self._observe(), {agent: {} for agent in self.agents}

    def step(self, actions):
        self.t += 1
        rewards = {agent: float(actions[agent]) for agent in self.agents}
        terminations = {agent: (agent == "b" and self.t == 2) or self.t == 4 for agent in self.agents}
        truncations = {agent: False for agent in self.agents}
        infos = {agent: {} for agent in self.agents}
        self.agents = [agent for agent in self.agents if not terminations[agent]]
        return self._observe(), rewards, terminations, truncations, infos


@pytest.fixture
def duel_module(monkeypatch):
    module = types.ModuleType("masked_duel")
    module.parallel_env = MaskedDuel
    monkeypatch.setitem(sys.modules, "masked_duel", module)
    return "pettingzoo_masked_duel"


def test_rock_paper_scissors_seats_two_agents_with_one_hot_observations():
    env = make_env(build_config({"env": {"name": "pettingzoo_classic.rps_v2"}}), EnvContext(seed=0))
    assert env.num_agents == 2 and env.action_spec.n == 3 and env.obs_specs["obs"].shape == (4,)
    obs, _ = env.reset()
    assert [o["obs"].tolist() for o in obs] == [[0, 0, 0, 1], [0, 0, 0, 1]]  # "no move yet"
    obs, rewards, *_ = env.step([0, 1])  # rock against paper
    assert rewards == [-1.0, 1.0] and obs[0]["obs"].tolist() == [0, 1, 0, 0]  # player 0 sees paper
    env.close()


def test_different_spaces_are_refused_in_one_line_unless_a_superset_is_asked_for(duel_module):
    with pytest.raises(ConfigError, match="observation spaces differ.*superset_spaces=true"):
        make_env(build_config({"env": {"name": duel_module}}), EnvContext())
    cfg = build_config({"env": {"name": duel_module, "pettingzoo": {"superset_spaces": True}}})
    env = make_env(cfg, EnvContext())
    assert env.obs_specs["obs"].shape == (3,) and env.action_spec.n == 3
    obs, infos = env.reset()
    assert obs[1]["obs"].tolist() == [1, 1, 0]  # padded with zeros
    assert infos[0]["action_mask"].tolist() == [1, 0, 1]
    assert infos[1]["action_mask"].tolist() == [0, 1, 0]  # b's own mask, its missing third action masked


def test_an_agent_that_leaves_early_is_inactive_until_the_reset(duel_module):
    cfg = build_config({"env": {"name": duel_module, "pettingzoo": {"superset_spaces": True}}})
    env = make_env(cfg, EnvContext())
    env.reset()
    steps = [env.step([2, 1]) for _ in range(4)]
    terminated = [s[2] for s in steps]
    active = [[info.get("is_active", True) for info in s[4]] for s in steps]
    rewards = [s[1] for s in steps]
    assert terminated == [[False, False], [False, True], [False, False], [True, False]]
    assert active == [[True, True], [True, True], [True, False], [True, True]]  # b idles at step 3
    assert rewards[2] == [2.0, 0.0]
    # Step 4 ended the episode for everyone: both get the new episode's first observation.
    assert [o["obs"][0] for o in steps[3][0]] == [1.0, 1.0]
    assert steps[3][4][1]["action_mask"].tolist() == [0, 1, 0]


def test_a_missing_module_and_an_unseatable_mapping_get_one_line(tmp_path):
    with pytest.raises(ConfigError, match="cannot import 'nowhere.env_v0'"):
        build_config({"env": {"name": "pettingzoo_nowhere.env_v0"}})
    with pytest.raises(ConfigError, match="unknown policy mapping 'seats'; known: random, seat"):
        build_config({"env": {"name": "pettingzoo_classic.rps_v2"}, "sampler": {"policy_mapping": "seats"}})
    from sampler.experiment.prepare import prepare

    with pytest.raises(ConfigError, match="seats 2 agent.*policy 2 would never play"):
        prepare({"env": {"name": "pettingzoo_classic.rps_v2"},
                 "sampler": {"num_policies": 3, "policy_mapping": "seat"}},
                [], train_dir=str(tmp_path), experiment_default="rps")
    assert not any(tmp_path.iterdir())  # nothing created
