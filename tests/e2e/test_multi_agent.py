"""Two policies learning in one two-seat env, and inactive agents left out of the loss."""

from __future__ import annotations

import json

import pytest
import torch

from sampler.run.workers.learner import valid_steps
from tests.support import sftui

pytest.importorskip("pettingzoo")


@pytest.fixture(scope="module")
def cues(tmp_path_factory):
    """The cue game trained with one policy per seat ("seat" mapping); two tests read it."""
    train_dir = tmp_path_factory.mktemp("cues")
    result = sftui("train", "pettingzoo_examples.cue_game", "-e", "cues", "--train-dir", str(train_dir),
                   "--set", "sampler.num_policies=2", "--set", "sampler.policy_mapping=seat",
                   "--set", "sampler.num_workers=2", "--set", "run.train_for_env_steps=150000",
                   "--set", "appo.learning_rate=0.001", "--set", "appo.batch_size=256", "--set", "appo.rollout=16",
                   "--set", "model.encoder_mlp_layers=[64,64]", "--set", "run.seed=0", timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    return train_dir / "cues"


def test_two_policies_each_learn_their_seat_of_the_cue_game(cues):
    # examples/cue_game.py: the leader must play the cue, the follower the leader's last move; 10 steps,
    # so each seat's best return is 10 and random play makes 2.5. One policy per seat.
    last = json.loads((cues / "status.jsonl").read_text().splitlines()[-1])
    returns = {p["policy_id"]: p["episode_return"] for p in last["policies"]}
    assert returns[0] >= 9.0 and returns[1] >= 9.0, returns
    assert all(p["env_frames"] > 0 and p["version"] > 10 for p in last["policies"])  # both learners trained


def test_inactive_agents_and_other_policies_steps_carry_no_weight():
    step = {
        "policy_ids": torch.tensor([[0, 0, 0, 1]]),
        "policy_versions": torch.tensor([[9, 9, 2, 9]]),
        "active": torch.tensor([[True, False, True, True]]),
    }
    # Step 1 is an inactive agent (dead, waiting to respawn), step 2 is too stale, step 3 is policy 1's.
    assert valid_steps(step, policy=0, version=10, max_policy_lag=5).tolist() == [[True, False, False, False]]
    assert valid_steps(step, policy=1, version=10, max_policy_lag=5).tolist() == [[False, False, False, True]]


def test_each_policy_trains_on_its_own_weighting_of_the_reward_components():
    from sampler.run.workers.learner import shaped_rewards

    step = {
        "rewards": torch.tensor([[1.0, 0.0]]),
        "components": torch.tensor([[[2.0, 0.0], [0.0, 4.0]]]),  # [B, T, K]: deaths, hits
    }
    shaping = torch.tensor([[-0.5, 0.25], [1.0, 0.0]])  # policy 0's row, policy 1's row
    assert shaped_rewards(step, shaping, policy=0).tolist() == [[0.0, 1.0]]
    assert shaped_rewards(step, shaping, policy=1).tolist() == [[3.0, 0.0]]
    assert shaped_rewards({"rewards": step["rewards"]}, None, policy=0) is step["rewards"]


def test_enjoy_seats_the_other_agents_with_their_mapped_policies(cues):
    from sampler.play.player import Player

    player = Player(cues, policy=0, agent=0)
    try:
        assert player.seat_policies == [0, 1]  # seat 1 plays policy 1 under "seat" mapping
        assert player.models[1] is not player.models[0]
        calls = []
        for policy, model in player.models.items():
            model.act = _recording(model.act, calls, policy)
        player.step()
        assert sorted((policy, batch) for policy, batch in calls) == [(0, 1), (1, 1)]  # one seat each
    finally:
        player.close()
    player = Player(cues, policy=1, agent=0)  # watching policy 1 in seat 0: both seats play it
    try:
        assert player.seat_policies == [1, 1]
    finally:
        player.close()


def test_an_evaluation_plays_multi_agent_envs_side_by_side_one_forward_pass_per_policy(cues):
    from sampler.play.player import Player, play_episodes

    players = [Player(cues, policy=0, agent=0, seed=i, deterministic=True, frames=False) for i in range(3)]
    try:
        calls = []
        for policy, model in players[0].models.items():  # the first player's models act for all three
            model.act = _recording(model.act, calls, policy)
        returns = play_episodes(players, 4)
        assert len(returns) == 4 and [len(p.episodes) for p in players] == [2, 1, 1]
        assert calls[0] == (0, 3) and calls[1] == (1, 3)  # seat 0 of each env, then seat 1 of each
    finally:
        for player in players:
            player.close()


def _recording(act, calls: list, policy: int):
    def wrapper(obs, **kwargs):
        calls.append((policy, len(next(iter(obs.values())))))
        return act(obs, **kwargs)

    return wrapper
