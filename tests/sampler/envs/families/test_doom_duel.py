"""doom_duel: two learning agents in one networked game. Eight games at once get eight ports and leave
nothing behind; episodes end for both players together with frags, deaths and a winner; a player that
dies mid-game costs a cut episode, not the run."""

from __future__ import annotations

import os
import signal

import numpy as np
import psutil
import pytest

from sampler.config.build import build_config
from sampler.envs.contract import EnvContext
from sampler.envs.families.doom.bots import COMPONENTS, VARIABLES, reserve_port
from sampler.envs.families.registry import make_env
from tests.support import shm_entries, shm_left_behind

pytest.importorskip("vizdoom")


def duel_cfg(seconds: float):
    return build_config({"env": {"name": "doom_duel", "doom": {"episode_timeout_sec": seconds}}})


def random_actions(env, rng) -> list[list[int]]:
    return [[int(rng.integers(n)) for n in env.action_spec.nvec] for _ in range(env.num_agents)]


def children() -> set[int]:
    return {p.pid for p in psutil.Process().children(recursive=True)}


def test_eight_duels_get_eight_ports_step_together_and_leave_nothing_behind():
    before_shm, before_children = shm_entries(), children()
    cfg = duel_cfg(1.0)  # 35 tics: an episode every 9 steps
    envs = [make_env(cfg, EnvContext(seed=i)) for i in range(8)]
    try:
        assert len({env.port for env in envs}) == 8
        assert len(children() - before_children) == 8 * 4  # two players and their engines per game
        rng = np.random.default_rng(0)
        for env in envs[1:]:
            obs, *_ = env.step(random_actions(env, rng))
            assert len(obs) == 2
        env = envs[0]
        assert env.num_agents == 2 and env.action_spec.kind == "multi_discrete"
        endings = []
        for _ in range(40):
            obs, rewards, terminated, truncated, infos = env.step(random_actions(env, rng))
            assert not any(terminated)
            assert truncated[0] == truncated[1]  # one game: both episodes end on the same tic
            for o, info in zip(obs, infos, strict=True):
                assert o["obs"].shape == (3, 72, 128) and o["obs"].dtype == np.uint8
                assert o["measurements"].shape == (len(VARIABLES),)
                assert set(info["reward_components"]) == set(COMPONENTS)
            if truncated[0]:
                endings.append(infos)
        assert len(endings) >= 3 and env.restarts == 0
        for infos in endings:
            stats = [info["episode_extra_stats"] for info in infos]
            assert [info["true_objective"] for info in infos] == [s["frags"] for s in stats]
            assert stats[0]["win"] + stats[1]["win"] <= 1.0  # a draw has no winner
    finally:
        for env in envs:
            env.close()
    ports = sorted(env.port for env in envs)
    port, fd = reserve_port(range(ports[0], ports[0] + 1))  # closed games give their ports back
    os.close(fd)
    assert port == ports[0]
    psutil.wait_procs([psutil.Process(pid) for pid in children() - before_children], timeout=10)
    assert not (children() - before_children)
    assert not shm_left_behind(before_shm)


def test_a_player_killed_mid_game_costs_a_cut_episode_then_a_new_game():
    env = make_env(duel_cfg(60.0), EnvContext(seed=3))
    rng = np.random.default_rng(1)
    try:
        env.step(random_actions(env, rng))
        old_port = env.port
        os.kill(env.players[1].proc.pid, signal.SIGKILL)
        obs, rewards, terminated, truncated, infos = env.step(random_actions(env, rng))
        assert truncated == [True, True] and rewards == [0.0, 0.0]
        assert all(info["is_active"] is False for info in infos)
        assert env.restarts == 1 and env.port != old_port
        for _ in range(5):
            obs, rewards, terminated, truncated, infos = env.step(random_actions(env, rng))
        assert not any(truncated) and env.restarts == 1
    finally:
        env.close()


def test_unknown_shaping_components_are_named_before_anything_starts():
    from sampler.errors import ConfigError

    with pytest.raises(ConfigError, match=r"unknown component\(s\) \['fragz'\]"):
        build_config({"env": {"name": "doom_duel", "reward_shaping": {"fragz": 1.0}}})
