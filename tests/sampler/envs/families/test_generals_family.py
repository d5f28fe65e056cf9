"""generals_*: the flat action head and its joint mask (everywhere), and the env itself (where generals-bots is
installed: its own environment, `.ci/generals-env`)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from algos.distributions import make_distribution
from algos.spaces import ActionSpec
from sampler.config.build import build_config
from sampler.envs.contract import EnvContext
from sampler.envs.families.generals import DIRECTIONS, decode_action, encode_move, joint_mask
from sampler.errors import ConfigError, MissingDependencyError

INSTALLED = importlib.util.find_spec("generals") is not None
SKIP_REASON = "generals-bots is not installed here (it conflicts with vizdoom): .ci/generals-env runs these"
needs_generals = pytest.mark.skipif(not INSTALLED, reason=SKIP_REASON)


def test_every_flat_action_decodes_to_the_move_it_encodes():
    size = 5
    assert decode_action(size, 0)[0] is True  # pass
    seen = set()
    for row in range(size):
        for col in range(size):
            for direction in range(DIRECTIONS):
                for split in (False, True):
                    index = encode_move(size, row, col, direction, split)
                    assert decode_action(size, index) == (False, row, col, direction, split)
                    seen.add(index)
    assert seen == set(range(1, 1 + 2 * size * size * DIRECTIONS))


def test_the_mask_is_joint_over_row_column_and_direction_and_the_distribution_honours_it():
    size = 3
    moves = np.zeros((2, 2, DIRECTIONS), np.int8)  # a 2x2 map padded to 3x3
    moves[0, 0, 1] = 1  # (0, 0) down
    moves[1, 1, 3] = 1  # (1, 1) right
    mask = joint_mask(size, moves)
    legal = {int(i) for i in np.flatnonzero(mask)}
    expected = {0} | {encode_move(size, r, c, d, s) for r, c, d in ((0, 0, 1), (1, 1, 3)) for s in (False, True)}
    assert legal == expected
    # every row, column and direction of (1, 0, 3) is legal on its own, the move is not: no per-head mask says that
    assert encode_move(size, 1, 0, 3, False) not in legal

    spec = ActionSpec(kind="discrete", n=1 + 2 * size * size * DIRECTIONS)
    logits = torch.randn(4096, spec.n) * 3
    dist = make_distribution(spec, logits, torch.from_numpy(mask).bool().expand(4096, -1))
    samples = set(dist.sample().tolist())
    assert samples <= legal and len(samples) == len(legal)
    assert torch.isfinite(dist.entropy()).all()


def test_a_generals_name_is_checked_and_a_missing_package_named_in_one_line():
    with pytest.raises(ConfigError, match="unknown Generals mode 'triple'; known: generals_duel"):
        build_config({"env": {"name": "generals_triple"}})
    with pytest.raises(ConfigError, match="grid_min"):
        build_config({"env": {"name": "generals_duel", "generals": {"grid_min": 12, "grid_max": 8}}})
    if INSTALLED:
        return
    from sampler.envs.families.registry import make_env

    with pytest.raises(MissingDependencyError, match=r"generals-bots 2\.5.*\.ci/generals-env"):
        make_env(build_config({"env": {"name": "generals_duel"}}), EnvContext(seed=0))


def play(env, steps, rng, mask_of=None):
    """Random legal actions for `steps` steps; returns the finished games' per-seat (returns, infos)."""
    obs, infos = env.reset(seed=3)
    returns = np.zeros(env.num_agents)
    games = []
    for _ in range(steps):
        actions = [int(rng.choice(np.flatnonzero(info["action_mask"]))) for info in infos]
        obs, rewards, terminated, truncated, infos = env.step(actions)
        returns += rewards
        if terminated[0] or truncated[0]:
            games.append((returns.copy(), infos, terminated[0]))
            returns[:] = 0
    return obs, games


@needs_generals
def test_a_duel_plays_whole_games_with_legal_moves_and_scores_each_seat():
    from sampler.envs.families.generals import GeneralsEnv, GeneralsSettings

    env = GeneralsEnv(GeneralsSettings(grid_min=6, grid_max=8, max_turns=150), "duel", seed=1)
    assert env.num_agents == 2 and env.action_spec.n == 1 + 2 * 8 * 8 * 4
    obs, games = play(env, 900, np.random.default_rng(0))
    assert obs[0]["grid"].shape == (9, 8, 8) and obs[0]["stats"].shape == (5,)
    assert games, "no game ended in 900 steps"
    for returns, infos, terminated in games:
        objectives = [info["true_objective"] for info in infos]
        assert list(returns) == objectives  # the return is the game's result: +1 won, -1 lost, 0 cut
        assert sorted(objectives) in ([-1.0, 1.0], [0.0, 0.0])
        assert (sorted(objectives) == [-1.0, 1.0]) == terminated
        assert set(infos[0]["reward_components"]) == {"land", "army", "cities"}
        assert infos[0]["episode_extra_stats"]["turns"] <= 150


@needs_generals
def test_a_legal_move_moves_armies_and_the_scripted_opponents_play_the_other_seat():
    from sampler.envs.families.generals import GeneralsEnv, GeneralsSettings

    env = GeneralsEnv(GeneralsSettings(), "vs_expander", seed=2)
    assert env.num_agents == 1
    obs, infos = env.reset()
    for _ in range(30):  # armies grow on the general: after a while a move is legal
        obs, _, _, _, infos = env.step([0])
    legal = np.flatnonzero(infos[0]["action_mask"])
    assert len(legal) > 1
    _, row, col, direction, _ = decode_action(env.size, int(legal[1]))
    before = env.game.channels.armies[row, col]
    env.step([int(legal[1])])
    assert env.game.channels.armies[row, col] < before + 1  # the army left (the general may add one)
    land = env._holdings("blue")[0]
    assert land > 1, "the expander never expanded"
    _, games = play(GeneralsEnv(GeneralsSettings(max_turns=60), "vs_random", seed=4), 200, np.random.default_rng(1))
    assert games
