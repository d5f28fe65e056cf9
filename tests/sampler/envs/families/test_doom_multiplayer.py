"""Doom against bots: one port per game with no clashes, the reward components and the frag objective,
a clear line when no port is free, and nothing left behind."""

from __future__ import annotations

import os

import numpy as np
import pytest

from sampler.config.build import build_config
from sampler.envs.contract import EnvContext
from sampler.envs.families.doom.bots import COMPONENTS, VARIABLES, reserve_port
from sampler.envs.families.registry import make_env
from sampler.errors import ConfigError
from tests.support import shm_entries, shm_left_behind

pytest.importorskip("vizdoom")


def test_eight_games_get_eight_ports_and_leave_nothing_behind():
    before = shm_entries()
    cfg = build_config({"env": {"name": "doom_duel_bots", "doom": {"episode_timeout_sec": 3}}})
    envs = [make_env(cfg, EnvContext(seed=i)) for i in range(8)]
    try:
        assert len({env.port for env in envs}) == 8
        env = envs[0]
        rng = np.random.default_rng(0)
        ended = None
        for _ in range(200):  # 3 s of game time is 105 tics, 27 steps at frameskip 4
            action = [int(rng.integers(n)) for n in env.action_spec.nvec]
            obs, rewards, terminated, truncated, infos = env.step([action])
            assert set(infos[0]["reward_components"]) == set(COMPONENTS)
            assert obs[0]["obs"].shape == (3, 72, 128) and obs[0]["measurements"].shape == (len(VARIABLES),)
            if truncated[0]:
                ended = infos[0]
                break
        assert ended is not None and "true_objective" in ended and "frags" in ended["episode_extra_stats"]
    finally:
        for env in envs:
            env.close()
    ports = [env.port for env in envs]
    port, fd = reserve_port(range(ports[0], ports[0] + 1))  # closed games give their ports back
    os.close(fd)
    assert port == ports[0]
    assert not shm_left_behind(before)


def test_no_free_port_is_one_clear_line():
    port, fd = reserve_port()
    try:
        with pytest.raises(ConfigError, match=f"no free loopback UDP port in {port}..{port}"):
            reserve_port(range(port, port + 1))
    finally:
        os.close(fd)


def test_unknown_shaping_components_are_named_before_anything_starts():
    with pytest.raises(ConfigError, match=r"unknown component\(s\) \['fragz'\]"):
        build_config({"env": {"name": "doom_duel_bots", "reward_shaping": {"fragz": 1.0}}})
