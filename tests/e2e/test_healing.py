"""Healing paths through the whole process tree: weights that turn non-finite are rolled back and never saved."""

from __future__ import annotations

import os

import torch

from sampler.experiment import checkpoints
from sampler.faults import VARIABLE
from tests.support import SMALL, sftui


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
