"""Which pool member a rollout worker seats: uniformly, or by prioritized fictitious self-play."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from sampler.config.build import build_config
from sampler.selfplay.pool import PoolSeating, index_path


def seat_counts(tmp_path, sampling: str, draws: int = 3000) -> Counter:
    cfg = build_config({"env": {"name": "gym_CartPole-v1"}, "sampler": {"num_policies": 2},
                        "pool": {"seat_probability": 1.0, "snapshot_every_env_steps": 1000,
                                 "opponent_sampling": sampling}})
    index = index_path(tmp_path)
    index.parent.mkdir(parents=True)
    members = [{"name": name, "kind": "snapshot", "path": str(tmp_path / f"{name}.pt")}
               for name in ("strong", "equal", "weak")]
    # the learning policies average 1000: they lose to "strong" mostly and beat "weak" mostly
    ratings = {"p0": 1050.0, "p1": 950.0, "strong": 1400.0, "equal": 1000.0, "weak": 600.0}
    index.write_text(json.dumps({"members": members, "ratings": ratings}))
    seating = PoolSeating(cfg, tmp_path, model_factory=None, seed=0)
    seating.actor = lambda name: object()  # no model files here: only the choice is under test
    seating.refresh(in_use=set)
    return Counter(seating.draw() for _ in range(draws))


def test_uniform_sampling_seats_every_member_alike(tmp_path):
    counts = seat_counts(tmp_path, "uniform")
    assert set(counts) == {"strong", "equal", "weak"}
    assert all(abs(n / 3000 - 1 / 3) < 0.04 for n in counts.values())


def test_pfsp_seats_the_members_the_learners_lose_to_most(tmp_path):
    counts = seat_counts(tmp_path, "pfsp")
    # weights (1 - p)^2: 0.826, 0.25, 0.008 before the floor; normalized about 0.76, 0.23, 0.01
    assert counts["strong"] / 3000 == pytest.approx(0.76, abs=0.04)
    assert counts["equal"] / 3000 == pytest.approx(0.23, abs=0.04)
    assert 0 < counts["weak"] < 100


def test_a_moved_folder_keeps_its_snapshots_found_in_its_own_pool_folder(tmp_path):
    # pool.json names snapshots by absolute path; after a move or copy that is the old folder's
    from sampler.selfplay.pool import OpponentPool

    cfg = build_config({"env": {"name": "gym_CartPole-v1"}, "sampler": {"num_policies": 2},
                        "pool": {"seat_probability": 0.5, "snapshot_every_env_steps": 1000}})
    elsewhere = tmp_path / "trained_here" / "exp" / "pool"
    folder = tmp_path / "copied" / "exp"
    index = index_path(folder)
    index.parent.mkdir(parents=True)
    (index.parent / "p0-v3.pt").write_bytes(b"snapshot")
    members = [{"name": name, "kind": "snapshot", "path": str(elsewhere / f"{name}.pt"), "policy": 0}
               for name in ("p0-v3", "p0-v1")]  # p0-v1's file is gone from both places
    index.write_text(json.dumps({"members": members, "ratings": {"p0-v3": 990.0}, "games": {"p0-v3": 7}}))
    pool = OpponentPool(cfg, folder, 2, explicit=[])
    assert [(m["name"], m["path"]) for m in pool.members] == [("p0-v3", str(index.parent / "p0-v3.pt"))]
    assert pool.ratings["p0-v3"] == 990.0 and pool.games["p0-v3"] == 7
    assert json.loads(index.read_text())["members"] == pool.members  # rewritten before any worker reads it
