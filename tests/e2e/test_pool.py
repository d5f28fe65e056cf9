"""The self-play opponent pool in real runs: snapshots, seating at the configured rate, Elo ratings, resume,
explicit checkpoints, and the inputs it refuses."""

from __future__ import annotations

import json

import pytest
import torch

from algos.spaces import obs_specs_to_dict
from sampler.config.build import build_config
from sampler.envs.contract import EnvContext
from sampler.envs.families.registry import make_env
from sampler.errors import ConfigError
from sampler.experiment import checkpoints
from sampler.experiment.prepare import prepare
from sampler.run.workers.learner import valid_steps
from tests.support import cli, sftui

pytest.importorskip("pettingzoo")

RPS = "pettingzoo_classic.rps_v2"  # two seats, a few steps an episode: many games a second
# Not more envs for more frames a second: the newest snapshot, 12,000 frames before the end, must still be seated
# and rated, and rollout workers look for new members every 2 s (pool.REFRESH_SEC); at twice the frame rate
# (64 envs) it sometimes was not.
SMALL = ["--set", "sampler.num_workers=2", "--set", "sampler.num_envs_per_worker=8",
         "--set", "model.encoder_mlp_layers=[64,64]", "--set", "appo.batch_size=256", "--set", "run.seed=1"]


def pool_state(folder):
    return json.loads((folder / "pool" / "pool.json").read_text())


def last_status(folder):
    return json.loads((folder / "status.jsonl").read_text().splitlines()[-1])


@pytest.mark.slow  # 39 s of self-play training: run by CI's slow phase, to keep the default run under its limit
def test_snapshots_join_the_pool_are_seated_at_the_configured_rate_rated_and_kept_across_a_resume(tmp_path):
    pool = ["--set", "sampler.num_policies=2", "--set", "pool.snapshot_every_env_steps=12000",
            "--set", "pool.seat_probability=0.5"]
    result = sftui("train", RPS, "-e", "selfplay", "--train-dir", str(tmp_path), *SMALL, *pool,
                   "--set", "pool.max_snapshots=4", "--set", "run.train_for_env_steps=60000", timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    folder = tmp_path / "selfplay"
    state = pool_state(folder)
    members = [m["name"] for m in state["members"]]
    # every 12k frames both policies are frozen; the oldest are dropped beyond max_snapshots, files too
    assert len(members) == 4 and all(m["kind"] == "snapshot" for m in state["members"])
    assert sorted(p.stem for p in (folder / "pool").glob("*.pt")) == sorted(members)
    assert result.stderr.count("joined the pool") >= 3
    # about half of the opponent seats went to pool members once the pool had any
    assert state["opponent_seats"] > 1000
    assert 0.45 < state["pool_seats"] / state["opponent_seats"] < 0.55, state
    assert all(state["games"][name] > 0 for name in ("p0", "p1"))
    # rated: every name moved off the 1000 start. Near-equal RPS players random-walk around it (K=16 gives a
    # spread of about 40 points), so only a rating far outside that range is a fault.
    ratings = [state["ratings"][name] for name in ("p0", "p1", *members)]
    assert all(750 < r < 1250 and r != 1000.0 for r in ratings), state["ratings"]
    status = last_status(folder)
    assert [m["name"] for m in status["pool"]["members"]] == members
    assert all(p["rating"] is not None for p in status["policies"])
    text = sftui("status", "selfplay", "--train-dir", str(tmp_path)).stdout
    assert "pool         4 members, " in text and "% of " in text and ", rating " in text, text

    # resumed with a checkpoint of its own first run as an explicit member too
    best = folder / "checkpoints" / "p0" / "best.pt"
    if not best.exists():
        best = sorted((folder / "checkpoints" / "p0").glob("ckpt_*.pt"))[-1]
    explicit = tmp_path / "explicit.pt"
    explicit.write_bytes(best.read_bytes())
    result = sftui("train", RPS, "-e", "selfplay", "--train-dir", str(tmp_path), *SMALL, *pool,
                   "--set", "pool.max_snapshots=20", "--set", f"pool.checkpoints=[\"{explicit}\"]",
                   "--set", "run.train_for_env_steps=80000", timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    resumed = pool_state(folder)
    names = [m["name"] for m in resumed["members"]]
    assert names[0] == "explicit" and resumed["members"][0]["kind"] == "checkpoint"
    assert names[1:5] == members and len(names) > 5  # the same pool, grown
    assert resumed["games"]["explicit"] > 0  # seated, and rated
    assert resumed["last_snapshot_env_frames"] > state["last_snapshot_env_frames"]
    assert resumed["games"]["p0"] > state["games"]["p0"]  # ratings go on from where they were
    assert resumed["opponent_seats"] > state["opponent_seats"]


def test_a_pool_members_steps_are_in_no_policys_loss():
    step = {"policy_ids": torch.tensor([[0, -1, -1, 1]]), "policy_versions": torch.tensor([[9, 0, 0, 9]]),
            "active": torch.ones(1, 4, dtype=torch.bool)}
    assert valid_steps(step, policy=0, version=10, max_policy_lag=50).tolist() == [[True, False, False, False]]
    assert valid_steps(step, policy=1, version=10, max_policy_lag=50).tolist() == [[False, False, False, True]]


def test_pool_settings_that_cannot_work_are_refused_in_one_line_before_anything_is_created(tmp_path):
    result = cli("train", "gym_CartPole-v1", "--set", "pool.snapshot_every_env_steps=1000", "-e", "bad",
                 "--train-dir", str(tmp_path))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "seats a single agent, so there is no opponent seat" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "bad").exists()

    # a checkpoint made for rps with the default model; check_compatible reads only its header
    cfg = build_config({"env": {"name": RPS}})
    probe = make_env(cfg, EnvContext(seed=0))
    made = tmp_path / "made.pt"
    header = {"format_version": checkpoints.FORMAT_VERSION, "env": {"name": RPS},
              "model": cfg.model.model_dump(mode="json"), "obs_specs": obs_specs_to_dict(probe.obs_specs),
              "action_spec": probe.action_spec.to_dict(), "learner": {"model": {}}}
    checkpoints.write_atomic(header, made)
    probe.close()
    (tmp_path / "text.pt").write_text("not a checkpoint")
    cases = [
        (["pool.seat_probability=0.5"], "pool: seat_probability is 0.5 but the pool would stay empty"),
        ([f"pool.checkpoints=[\"{tmp_path / 'nope.pt'}\"]"], "nope.pt: no such checkpoint"),
        ([f"pool.checkpoints=[\"{tmp_path / 'text.pt'}\"]"], "text.pt: not a readable checkpoint"),
        (["model.encoder_mlp_layers=[32]", f"pool.checkpoints=[\"{made}\"]"],
         "made.pt: made for a different model: encoder_mlp_layers [512, 512] (now [32])"),
        ([f"pool.checkpoints=[\"{made}\", \"{made}\"]"], "two checkpoints are named 'made'"),
    ]
    for overrides, expected in cases:
        with pytest.raises(ConfigError) as refused:
            prepare({"env": {"name": RPS}}, overrides, train_dir=str(tmp_path), experiment_default="bad")
        assert expected in str(refused.value) and "\n" not in str(refused.value)
        assert not (tmp_path / "bad").exists()
    assert prepare({"env": {"name": RPS}}, [f"pool.checkpoints=[\"{made}\"]", "pool.seat_probability=1"],
                   train_dir=str(tmp_path), experiment_default="good", create=False).cfg.pool.enabled
