"""The atari_* family (wrappers checked on a scripted fake emulator, spaces on real ROMs) and AreaResize."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import gymnasium as gym
import numpy as np
import pytest

from sampler.config.build import build_config
from sampler.config.schema import EnvConfig
from sampler.envs.contract import EnvContext
from sampler.envs.families import atari
from sampler.envs.families.atari import AtariEnv, AtariSettings
from sampler.envs.families.imaging import AreaResize, area_weights
from sampler.envs.families.registry import family_for
from sampler.errors import ConfigError, MissingDependencyError


@pytest.fixture
def ale_py():
    return pytest.importorskip("ale_py")


def make_env(name: str = "atari_pong", **atari_settings) -> AtariEnv:
    family = family_for(name)
    env_section = {**family.defaults_for(name)["env"], "name": name, "atari": atari_settings}
    cfg = SimpleNamespace(env=EnvConfig.model_validate(env_section))
    family.check(cfg)
    return family.make(cfg, EnvContext(seed=0))


class FakeAle(gym.Env):
    """A scripted stand-in for a frameskip-1 ALE env.

    Frame n of a game lights row band n % 7 (30 rows each), so which frames were pooled can be read off
    the image. Lives drop at the frames in `lose_life_at`; the game is over when they run out.
    """

    observation_space = gym.spaces.Box(0, 255, (210, 160), np.uint8)

    def __init__(self, meanings=("NOOP", "RIGHT", "LEFT"), lives: int = 3, lose_life_at=()):
        self.action_space = gym.spaces.Discrete(len(meanings))
        self.meanings = list(meanings)
        self.start_lives = lives
        self.lose_life_at = set(lose_life_at)
        self.presses: list[int] = []
        self.resets = 0

    def get_action_meanings(self) -> list[str]:
        return self.meanings

    def frame(self, n: int) -> np.ndarray:
        img = np.zeros((210, 160), np.uint8)
        img[30 * (n % 7) : 30 * (n % 7 + 1)] = 200
        return img

    def reset(self, seed=None, options=None):
        self.n, self.lives = 0, self.start_lives
        self.resets += 1
        return self.frame(0), {"lives": self.lives}

    def step(self, action):
        self.n += 1
        self.presses.append(int(action))
        if self.n in self.lose_life_at:
            self.lives -= 1
        return self.frame(self.n), 1.0, self.lives == 0, False, {"lives": self.lives}


def test_max_pool_over_the_last_two_frames_of_each_skip():
    fake = FakeAle()
    env = AtariEnv(fake, AtariSettings(noop_max=0), frameskip=4)
    obs, _ = env.reset()
    assert obs[0]["obs"].shape == (4, 84, 84) and obs[0]["obs"].dtype == np.uint8
    np.testing.assert_array_equal(obs[0]["obs"][0], env._resize.resize(fake.frame(0)))  # stack filled at reset
    obs, rewards, _, _, _ = env.step([0])
    assert rewards == [4.0]
    expected = env._resize.resize(np.maximum(fake.frame(3), fake.frame(4)))
    np.testing.assert_array_equal(obs[0]["obs"][-1], expected)
    assert not np.array_equal(expected, env._resize.resize(fake.frame(4)))
    assert obs[0]["obs"][-1][12:24].max() == 0  # band 1 (frame 1) was skipped, not pooled
    np.testing.assert_array_equal(obs[0]["obs"][-2], env._resize.resize(fake.frame(0)))  # the stack shifts


def test_new_game_presses_noops_then_fire():
    fake = FakeAle(meanings=("NOOP", "FIRE", "RIGHT", "LEFT"))
    env = AtariEnv(fake, AtariSettings(noop_max=30), frameskip=4, seed=1)
    env.reset()
    *noops, fire = fake.presses
    assert 1 <= len(noops) <= 30 and set(noops) == {0} and fire == 1

    fake = FakeAle()  # no FIRE in this game: no-ops only
    AtariEnv(fake, AtariSettings(noop_max=3), frameskip=4, seed=1).reset()
    assert 1 <= len(fake.presses) <= 3 and set(fake.presses) == {0}


def test_episodic_life_ends_trajectories_but_not_the_game():
    fake = FakeAle(meanings=("NOOP", "FIRE"), lives=2, lose_life_at={5, 14})
    env = AtariEnv(fake, AtariSettings(noop_max=0, episodic_life=True), frameskip=4)
    env.reset()  # presses FIRE: frame 1

    _, rewards, terminated, truncated, infos = env.step([0])  # frames 2-5, a life lost at 5
    assert (terminated, truncated, infos) == ([True], [False], [{"episode_continues": True}])
    assert fake.resets == 1 and fake.presses == [1, 0, 0, 0, 0, 1]  # relaunched with FIRE, same game
    assert rewards == [5.0]  # the FIRE frame's point counts for this step

    _, _, terminated, truncated, infos = env.step([0])  # frames 7-10
    assert (terminated, truncated, infos) == ([False], [False], [{}])

    _, _, terminated, truncated, infos = env.step([0])  # frames 11-14, the last life lost: game over
    assert (terminated, truncated, infos) == ([True], [False], [{}])
    assert fake.resets == 2


def test_without_episodic_life_a_lost_life_does_not_end_anything():
    fake = FakeAle(lives=2, lose_life_at={2})
    env = AtariEnv(fake, AtariSettings(noop_max=0), frameskip=4)
    env.reset()
    _, _, terminated, truncated, infos = env.step([0])
    assert not terminated[0] and not truncated[0] and infos[0] == {}


def test_pong_spaces_and_steps(ale_py):
    env = make_env("atari_pong")
    try:
        assert env.frameskip == 4
        assert env.action_spec.kind == "discrete" and env.action_spec.n == 6
        assert env.obs_specs["obs"].shape == (4, 84, 84) and env.obs_specs["obs"].dtype == "uint8"
        obs, _ = env.reset()
        for _ in range(5):
            obs, rewards, terminated, truncated, infos = env.step([2])
        assert obs[0]["obs"].shape == (4, 84, 84) and obs[0]["obs"].dtype == np.uint8
        assert isinstance(rewards[0], float)
    finally:
        env.close()


def test_frame_limit_truncates(ale_py):
    env = make_env("atari_pong", max_episode_frames=100, noop_max=0)
    try:
        env.reset()  # Pong has FIRE: 1 frame, so the 25th step reaches frame 100
        dones = [env.step([0])[2:4] for _ in range(25)]
        assert [t[0] or u[0] for t, u in dones] == [False] * 24 + [True]
        assert dones[-1] == ([False], [True])
    finally:
        env.close()


def test_unknown_game_names_the_closest(ale_py):
    with pytest.raises(ConfigError, match=r"unknown Atari game 'pongg' \(did you mean atari_pong\?\)"):
        atari.validate_name("atari_pongg")
    with pytest.raises(ConfigError, match="no single-player mode"):
        atari.validate_name("atari_combat")
    atari.validate_name("atari_space_invaders")


def test_family_defaults_are_valid_settings(ale_py):
    cfg = build_config({"env": {"name": "atari_breakout"}})
    assert cfg.env.frameskip == 4 and cfg.appo.reward_clip == 1.0 and not cfg.model.use_rnn
    assert cfg.env.atari == AtariSettings()


def test_missing_ale_py_is_a_dependency_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "ale_py", None)
    atari.gym_ids.cache_clear()
    try:
        with pytest.raises(MissingDependencyError, match=r"^atari_\* envs need ale-py: pip install ale-py$"):
            atari.validate_name("atari_pong")
    finally:
        atari.gym_ids.cache_clear()


# ---- AreaResize -----------------------------------------------------------------------------------


def block_average(img: np.ndarray, fy: int, fx: int) -> np.ndarray:
    *lead, h, w = img.shape
    blocks = img.reshape(*lead, h // fy, fy, w // fx, fx).astype(np.float64)
    return np.floor(blocks.mean(axis=(-3, -1)) + 0.5).astype(np.uint8)


@pytest.mark.parametrize(
    ("shape", "factors"), [((120, 160), (2, 2)), ((3, 120, 160), (3, 5)), ((4, 84, 84), (4, 2)), ((210, 160), (1, 1))]
)
def test_area_resize_matches_block_average(shape, factors):
    img = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    fy, fx = factors
    resize = AreaResize(shape[-2], shape[-1], shape[-2] // fy, shape[-1] // fx)
    np.testing.assert_array_equal(resize.resize(img), block_average(img, fy, fx))


@pytest.mark.parametrize(("shape", "out"), [((3, 120, 160), (72, 128)), ((210, 160), (84, 84)), ((7, 11), (3, 5))])
def test_area_resize_uneven_sizes(shape, out):
    img = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    resized = AreaResize(shape[-2], shape[-1], *out).resize(img)
    assert resized.shape == (*shape[:-2], *out) and resized.dtype == np.uint8
    dense = area_weights(shape[-2], out[0]) @ img.astype(np.float32) @ area_weights(shape[-1], out[1]).T
    assert np.abs(resized.astype(np.int16) - np.rint(dense)).max() <= 1  # ties may round either way
    flat = np.full(shape, 77, np.uint8)
    np.testing.assert_array_equal(AreaResize(shape[-2], shape[-1], *out).resize(flat), 77)


def test_area_weights_rows_sum_to_one():
    weights = area_weights(210, 84)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(weights.sum(axis=0), 84 / 210, rtol=1e-6)  # every input pixel counts equally
