"""Generals.io through the whole process tree (in `.ci/generals-env`'s environment; skipped elsewhere)."""

from __future__ import annotations

import importlib.util
import json

import pytest

from tests.support import sftui

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("generals") is None,
    reason="generals-bots is not installed here (it conflicts with vizdoom): .ci/generals-env runs these")

SMALL = ["--set", "sampler.num_workers=2", "--set", "sampler.num_envs_per_worker=4", "--set", "appo.batch_size=256",
         "--set", "env.generals.grid_min=6", "--set", "env.generals.grid_max=6", "--set", "env.generals.max_turns=100",
         "--set", "run.seed=0"]


def test_a_learner_trains_against_the_scripted_expander(tmp_path):
    result = sftui("train", "generals_vs_expander", "-e", "gx", "--train-dir", str(tmp_path), *SMALL,
                   "--set", "run.train_for_env_steps=6000", timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    last = json.loads((tmp_path / "gx" / "status.jsonl").read_text().splitlines()[-1])
    (policy,) = last["policies"]
    assert last["state"] == "finished" and policy["version"] > 0 and policy["episodes"] > 0
    assert policy["true_objective"] is not None and -1.0 <= policy["true_objective"] <= 1.0
    assert policy["shaped_return"] is not None  # land, army and cities weighted by the policy's shaping


def test_two_policies_and_a_pool_share_the_two_seats_of_a_duel(tmp_path):
    result = sftui("train", "generals_duel", "-e", "gd", "--train-dir", str(tmp_path), *SMALL,
                   "--set", "sampler.num_policies=2", "--set", "pool.snapshot_every_env_steps=2000",
                   "--set", "pool.seat_probability=0.5", "--set", "run.train_for_env_steps=24000", timeout=240)
    # 24k frames take 8-11 s here: workers look for a changed pool.json every 2 s and seat a member only at an
    # episode's start, so a run of 3 s (8k frames) could end before any worker had seen the first snapshot.
    assert result.returncode == 0, result.stdout + result.stderr
    pool = json.loads((tmp_path / "gd" / "pool" / "pool.json").read_text())
    assert pool["members"] and pool["pool_seats"] > 0
    assert all(pool["games"][p] > 0 for p in ("p0", "p1"))
