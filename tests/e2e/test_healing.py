"""Healing paths through the whole process tree: weights that turn non-finite are rolled back and never saved."""

from __future__ import annotations

import os

import torch

from sampler.experiment import checkpoints
from sampler.faults import VARIABLE
from tests.support import SMALL, sftui, summary


def test_non_finite_weights_are_rolled_back_and_training_goes_on(tmp_path):
    result = sftui("train", "gym_CartPole-v1", "-e", "nan", "--train-dir", str(tmp_path), *SMALL,
                   "--set", "run.train_for_env_steps=30000", "--set", "run.save_every_sec=1",
                   env={**os.environ, VARIABLE: "learner_nan=4"})
    assert result.returncode == 0, result.stdout + result.stderr
    log = (tmp_path / "nan" / "log.txt").read_text()
    assert "non-finite weights after an update; rolled back to the state of" in log, log
    saved = checkpoints.list_checkpoints(tmp_path / "nan", 0)
    assert saved
    for path in saved:
        model = checkpoints.load(path)["learner"]["model"]
        assert all(bool(torch.isfinite(t).all()) for t in model.values() if t.is_floating_point())
    assert checkpoints.load(saved[-1])["env_frames"] >= 30000


def test_an_env_that_raises_now_and_then_is_rebuilt_alone_and_training_goes_on(tmp_path):
    result = sftui("train", "gym_FlakyCartPole-v1", "-e", "flaky", "--train-dir", str(tmp_path), *SMALL,
                   "--set", "run.imports=[\"tests.faulty_envs\"]", "--set", "run.train_for_env_steps=60000")
    assert result.returncode == 0, result.stdout + result.stderr
    final = summary(tmp_path / "flaky")
    assert final["state"] == "finished" and final["env_frames"] >= 60000
    rollouts = [w for w in final["workers"] if w["kind"] == "rollout"]
    assert sum(w["env_restarts"] for w in rollouts) > 100  # about 1 in 100 of 60k steps
    assert all(w["restarts"] == 0 for w in rollouts)  # no worker died for it
    log = (tmp_path / "flaky" / "log.txt").read_text()
    assert "env rebuilt after it raised" in log and "RuntimeError: injected env failure" in log
    assert final["policies"][0]["episode_return"] > 30  # it learns: cut episodes are not counted as finished


def test_an_env_that_keeps_failing_fails_its_worker_with_its_own_error(tmp_path):
    result = sftui("train", "gym_BrokenCartPole-v1", "-e", "broken", "--train-dir", str(tmp_path), *SMALL,
                   "--set", "run.imports=[\"tests.faulty_envs\"]", "--set", "run.train_for_env_steps=60000",
                   "--set", "run.max_worker_restarts=1")
    assert result.returncode == 1
    final = summary(tmp_path / "broken")
    assert final["state"] == "failed"
    assert "failed 5 times in a row" in final["error"] and "RuntimeError: injected env failure" in final["error"]
