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
