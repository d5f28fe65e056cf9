"""envpool_*: names, settings and both EnvPool modes (where EnvPool is installed: `.ci/run` installs it after
the default run; the default test environment leaves it out)."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

from sampler.config.build import build_config
from sampler.envs.contract import EnvContext
from sampler.errors import ConfigError
from tests.support import sftui

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("envpool") is None,
    reason="EnvPool is not installed here: pip install -c constraints.txt -e '.[envpool]' (.ci/run does)")


def test_names_and_settings_are_checked_with_close_matches():
    with pytest.raises(ConfigError, match="EnvPool has no task 'Pong-v4'; close matches: envpool_Pong-v5"):
        build_config({"env": {"name": "envpool_Pong-v4"}})
    with pytest.raises(ConfigError, match="did you mean envpool_doom_basic"):
        build_config({"env": {"name": "envpool_doom_basik"}})
    with pytest.raises(ConfigError, match="batch_size \\(80\\) is above env.envpool.num_envs \\(64\\)"):
        build_config({"env": {"name": "envpool_Pong-v5", "envpool": {"batch_size": 80}}})
    with pytest.raises(ConfigError, match="envpool_\\* envs are vector envs"):
        build_config({"env": {"name": "envpool_Pong-v5"}, "sampler": {"batched_sampling": False}})
    cfg = build_config({"env": {"name": "envpool_Pong-v5"}})
    assert cfg.sampler.batched_sampling and cfg.env.frameskip == 4
    # MuJoCo's frame skip is physics steps per action, EnvPool's own: frames are counted one per step
    assert build_config({"env": {"name": "envpool_HalfCheetah-v4"}}).env.frameskip == 1
    with pytest.raises(ConfigError, match="HalfCheetah-v4 keeps its own frame skip"):
        build_config({"env": {"name": "envpool_HalfCheetah-v4", "frameskip": 4}})


def test_mujoco_steps_with_continuous_actions_and_its_own_frame_skip():
    from sampler.envs.families.envpool_family import make_vector

    cfg = build_config({"env": {"name": "envpool_HalfCheetah-v4", "envpool": {"num_envs": 2}}})
    env = make_vector(cfg, EnvContext(seed=1))
    try:
        assert env.action_spec.kind == "box" and env.action_spec.shape == (6,)
        assert env.env.spec.config.frame_skip == 5  # the task's default, untouched
        env.reset()
        step = env.step(np.random.default_rng(0).uniform(-1, 1, (2, 6)).astype(np.float32))
        assert step.obs["obs"].shape == (2, 17) and np.isfinite(step.rewards).all()
    finally:
        env.close()


@pytest.mark.parametrize("batch_size", [0, 2])
def test_sync_and_async_modes_answer_for_the_envs_they_say(batch_size):
    from sampler.envs.families.envpool_family import make_vector

    cfg = build_config({"env": {"name": "envpool_Pong-v5", "envpool": {"num_envs": 4, "batch_size": batch_size}}})
    env = make_vector(cfg, EnvContext(seed=1))
    try:
        assert env.obs_specs["obs"].shape == (4, 84, 84) and env.autoreset == "next_step"
        assert env.is_async == (batch_size == 2)
        first = env.reset()
        ids = np.arange(4) if first.env_ids is None else first.env_ids
        assert first.obs["obs"].shape == (len(ids), 4, 84, 84) and first.obs["obs"].dtype == np.uint8
        seen = set(ids.tolist())
        for _ in range(100):  # async: EnvPool answers in its own order, so every env shows up only in time
            step = env.step(np.zeros(len(ids), np.int64), ids)
            ids = np.arange(4) if step.env_ids is None else step.env_ids
            assert len(ids) == (4 if batch_size == 0 else 2) and len(set(ids.tolist())) == len(ids)
            seen |= set(ids.tolist())
            if seen == {0, 1, 2, 3}:
                break
        assert seen == {0, 1, 2, 3}
    finally:
        env.close()


def test_pong_trains_batched_through_the_process_tree_in_async_mode(tmp_path):
    result = sftui("train", "envpool_Pong-v5", "-e", "pong", "--train-dir", str(tmp_path),
                   "--set", "env.envpool.num_envs=8", "--set", "env.envpool.batch_size=4",
                   "--set", "appo.rollout=32", "--set", "appo.batch_size=128", "--set", "appo.num_epochs=1",
                   "--set", "appo.num_batches_per_epoch=1", "--set", "run.train_for_env_steps=4000", timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    last = json.loads((tmp_path / "pong" / "status.jsonl").read_text().splitlines()[-1])
    (policy,) = last["policies"]
    assert last["state"] == "finished" and policy["version"] > 0
    assert policy["env_frames"] % 4 == 0  # EnvPool's frame skip counts

    # the checkpoint plays one EnvPool env: each episode a whole game of Pong (21 points to one side)
    enjoy = sftui("enjoy", "pong", "--train-dir", str(tmp_path), "--episodes", "2", "--no-render", timeout=180)
    assert enjoy.returncode == 0, enjoy.stdout + enjoy.stderr
    episodes = [line.split() for line in enjoy.stdout.splitlines() if line.startswith("episode ")]
    assert len(episodes) == 2
    for words in episodes:  # "episode 1: return -20.00, length 946 steps (3784 frames)"
        points, steps = float(words[3].rstrip(",")), int(words[5])
        assert -21 <= points <= -10 and steps > 500
