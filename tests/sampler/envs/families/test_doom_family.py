"""The doom_* family: spaces, frameskip, episode ends, the init throttle and process cleanup."""

from __future__ import annotations

import multiprocessing as mp
import sys
import time
from types import SimpleNamespace

import numpy as np
import pytest

from sampler.config.build import build_config
from sampler.config.schema import EnvConfig
from sampler.envs.contract import EnvContext
from sampler.envs.families.doom.engine import ButtonActions, button_heads, init_slot
from sampler.envs.families.doom.family import validate_name
from sampler.envs.families.doom.scenarios import SCENARIOS, DoomEnv
from sampler.envs.families.registry import family_for
from sampler.errors import ConfigError, MissingDependencyError

DEADLY_CORRIDOR_BUTTONS = [
    "MOVE_LEFT", "MOVE_RIGHT", "ATTACK", "MOVE_FORWARD", "MOVE_BACKWARD", "TURN_LEFT", "TURN_RIGHT",
]


@pytest.fixture
def vizdoom():
    return pytest.importorskip("vizdoom")


def make_env(name: str = "doom_basic", seed: int | None = 0, **doom_settings) -> DoomEnv:
    """Through the registry, with the family's defaults, as a run builds it."""
    family = family_for(name)
    env_section = {**family.defaults_for(name)["env"], "name": name, "doom": doom_settings}
    cfg = SimpleNamespace(env=EnvConfig.model_validate(env_section))
    family.check(cfg)
    return family.make(cfg, EnvContext(seed=seed))


def random_action(env: DoomEnv, rng: np.random.Generator):
    spec = env.action_spec
    if spec.kind == "discrete":
        return int(rng.integers(spec.n))
    return np.array([rng.integers(n) for n in spec.nvec])


def test_basic_observations_actions_and_frameskip(vizdoom):
    env = make_env("doom_basic")
    try:
        assert env.frameskip == 4
        assert env.action_spec.kind == "discrete" and env.action_spec.n == 4
        assert env.obs_specs["obs"].shape == (3, 72, 128) and env.obs_specs["obs"].dtype == "uint8"
        obs, infos = env.reset()
        assert len(obs) == len(infos) == env.num_agents == 1
        assert obs[0]["obs"].shape == (3, 72, 128) and obs[0]["obs"].dtype == np.uint8
        assert obs[0]["measurements"].dtype == np.float32
        assert obs[0]["measurements"][0] == pytest.approx(0.5)  # AMMO2 50, scaled by 0.01
        before = env.game.get_episode_time()
        env.step([0])
        assert env.game.get_episode_time() - before == 4
    finally:
        env.close()


def test_episode_end_auto_resets_and_reports_objective(vizdoom):
    env = make_env("doom_basic")  # standing still: basic.cfg's 300-tic timeout ends it
    try:
        env.reset()
        steps = 0
        terminated = truncated = [False]
        while not (terminated[0] or truncated[0]) and steps < 100:
            obs, rewards, terminated, truncated, infos = env.step([0])
            steps += 1
        assert steps == 300 // 4
        assert truncated[0] and not terminated[0]
        assert infos[0]["true_objective"] == pytest.approx(-300.0)  # living reward -1 a tic
        assert infos[0]["episode_extra_stats"] == {"ammo2": 50.0}
        # The observation is the first of the next episode.
        assert env.game.get_episode_time() == env.game.get_episode_start_time()
        assert obs[0]["obs"].shape == (3, 72, 128)
        _, _, terminated, truncated, infos = env.step([0])
        assert not (terminated[0] or truncated[0]) and infos[0] == {}
    finally:
        env.close()


def test_time_limit_setting_truncates(vizdoom):
    env = make_env("doom_basic", episode_timeout_sec=1.0)  # 35 tics: the 9th step of 4 tics
    try:
        env.reset()
        dones = [env.step([0])[2:4] for _ in range(9)]
        assert [t[0] or u[0] for t, u in dones] == [False] * 8 + [True]
        assert dones[-1] == ([False], [True])
    finally:
        env.close()


def test_death_terminates_with_kills_as_objective(vizdoom):
    env = make_env("doom_defend_the_center")  # standing still, the monsters get through
    try:
        env.reset()
        for _ in range(2000):
            _, _, terminated, truncated, infos = env.step([0])
            if terminated[0] or truncated[0]:
                break
        assert terminated[0] and not truncated[0]
        assert infos[0]["true_objective"] == 0.0  # kills
    finally:
        env.close()


def test_multi_head_actions(vizdoom):
    heads = button_heads(DEADLY_CORRIDOR_BUTTONS)
    assert [len(h) for h in heads] == [3, 2, 3, 3]  # strafe, attack, forward/back, turn
    actions = ButtonActions(DEADLY_CORRIDOR_BUTTONS, "heads")
    assert actions.buttons([2, 1, 1, 0]) == [0, 1, 1, 1, 0, 0, 0]  # strafe right, attack, forward
    assert actions.buttons([0, 0, 0, 0]) == [0] * 7

    env = make_env("doom_deadly_corridor")
    try:
        assert env.action_spec.kind == "multi_discrete" and env.action_spec.nvec == (3, 2, 3, 3)
        env.reset()
        before = env.game.get_game_variable(vizdoom.GameVariable.POSITION_X)
        for _ in range(5):
            env.step([np.array([0, 0, 1, 0])])  # forward
        assert env.game.get_game_variable(vizdoom.GameVariable.POSITION_X) > before
    finally:
        env.close()


def test_delta_buttons_become_discrete_heads():
    heads = button_heads(["ATTACK", "TURN_LEFT_RIGHT_DELTA", "SELECT_WEAPON1", "SELECT_WEAPON2"])
    assert [len(h) for h in heads] == [2, 11, 3]
    assert heads[1][:, 1].tolist() == list(range(-10, 11, 2))


def test_same_seed_same_episode(vizdoom):
    frames = []
    for _ in range(2):
        env = make_env("doom_basic", seed=7)
        try:
            frames.append(env.reset()[0][0]["obs"])
        finally:
            env.close()
    np.testing.assert_array_equal(frames[0], frames[1])


def test_unknown_scenario_names_the_closest():
    with pytest.raises(ConfigError) as error:
        validate_name("doom_basik")
    message = str(error.value)
    assert message.startswith("env.name: unknown Doom scenario 'basik' (did you mean doom_basic?); scenarios: ")
    assert "doom_deadly_corridor" in message


def test_missing_vizdoom_is_a_dependency_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "vizdoom", None)  # makes `import vizdoom` raise ImportError
    with pytest.raises(MissingDependencyError, match=r"^doom_\* envs need vizdoom: pip install vizdoom$"):
        validate_name("doom_basic")


def test_family_defaults_are_valid_settings():
    cfg = build_config({"env": {"name": "doom_basic"}})
    assert (cfg.env.frameskip, cfg.env.res_h, cfg.env.res_w) == (4, 72, 128)
    assert cfg.model.use_rnn and cfg.appo.recurrence == cfg.appo.rollout == 16 and cfg.appo.reward_scale == 0.01
    assert cfg.env.doom.max_concurrent_inits == 4 and cfg.env.doom.episode_timeout_sec is None


def test_reward_scale_defaults_per_scenario():
    family = family_for("doom_basic")
    assert family.defaults_for("doom_basic")["appo"]["reward_scale"] == 0.01
    assert family.defaults_for("doom_deadly_corridor")["appo"]["reward_scale"] == 0.01
    assert "reward_scale" not in family.defaults_for("doom_defend_the_center")["appo"]


def _hold_slot(folder, limit, inside, peak, lock) -> None:
    with init_slot(limit, folder):
        with lock:
            inside.value += 1
            peak.value = max(peak.value, inside.value)
        time.sleep(0.15)
        with lock:
            inside.value -= 1


def test_init_slots_limit_concurrent_processes(tmp_path):
    ctx = mp.get_context("fork")
    inside, peak, lock = ctx.Value("i", 0), ctx.Value("i", 0), ctx.Lock()
    procs = [ctx.Process(target=_hold_slot, args=(tmp_path, 2, inside, peak, lock)) for _ in range(6)]
    start = time.monotonic()
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=20)
    assert all(proc.exitcode == 0 for proc in procs)
    assert peak.value == 2
    assert time.monotonic() - start >= 3 * 0.15  # six holders, two at a time


def test_close_ends_the_engine_process(vizdoom):
    psutil = pytest.importorskip("psutil")
    me = psutil.Process()
    before = {p.pid for p in me.children(recursive=True)}
    env = make_env("doom_basic")
    engines = [p for p in me.children(recursive=True) if p.pid not in before]
    assert [p.name() for p in engines] == ["vizdoom"]
    env.close()
    gone, alive = psutil.wait_procs(engines, timeout=5)
    assert not alive


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_every_scenario_resets_and_steps(vizdoom, scenario):
    env = make_env(f"doom_{scenario}")
    try:
        rng = np.random.default_rng(0)
        obs, _ = env.reset()
        for _ in range(3):
            obs, rewards, _, _, _ = env.step([random_action(env, rng)])
        assert set(obs[0]) == set(env.obs_specs)
        for key, spec in env.obs_specs.items():
            assert obs[0][key].shape == spec.shape and obs[0][key].dtype == np.dtype(spec.dtype)
        assert isinstance(rewards[0], float)
    finally:
        env.close()
