"""Elo ratings of self-play games: expected scores, pairwise updates, draws."""

from __future__ import annotations

import pytest

from algos.elo import INITIAL_RATING, expected_score, pfsp_weights, rate_game


def test_expected_score_is_a_half_between_equals_and_about_0_91_for_400_points_ahead():
    assert expected_score(1200, 1200) == 0.5
    assert expected_score(1400, 1000) == pytest.approx(10 / 11)
    assert expected_score(1000, 1400) == pytest.approx(1 / 11)


def test_a_win_moves_both_ratings_by_k_times_the_surprise_and_keeps_their_sum():
    after = rate_game({"p0": 1000.0, "pool": 1000.0}, [("p0", 3.0), ("pool", 1.0)], k=16)
    assert after == {"p0": 1008.0, "pool": 992.0}
    # beating a much stronger player is a bigger surprise than beating an equal
    upset = rate_game({"p0": 1000.0, "pool": 1400.0}, [("p0", 1.0), ("pool", 0.0)], k=16)
    assert upset["p0"] - 1000.0 == pytest.approx(16 * (1 - 1 / 11))
    assert sum(upset.values()) == pytest.approx(2400.0)


def test_a_draw_pulls_ratings_together_and_newcomers_start_at_the_initial_rating():
    after = rate_game({"p0": 1100.0}, [("p0", 0.0), ("p1-v5", 0.0)], k=32)
    assert after["p1-v5"] > INITIAL_RATING and after["p0"] < 1100.0
    assert after["p0"] + after["p1-v5"] == pytest.approx(1100.0 + INITIAL_RATING)


def test_seat_order_does_not_matter_and_a_policy_against_itself_keeps_its_rating():
    ratings = {"a": 1000.0, "b": 1050.0, "c": 980.0}
    game = [("a", 2.0), ("b", 1.0), ("c", 1.0)]
    assert rate_game(ratings, game, 16) == pytest.approx(rate_game(ratings, game[::-1], 16))
    assert rate_game({"p0": 1000.0}, [("p0", 1.0), ("p0", -1.0)], 16) == {"p0": 1000.0}


def test_pfsp_draws_the_members_the_learners_lose_to_most_and_never_drops_one():
    weights = pfsp_weights(1000.0, [1400.0, 1000.0, 600.0])
    assert sum(weights) == pytest.approx(1.0)
    assert weights[0] > weights[1] > weights[2]  # stronger opponents first
    # (1 - p)^2: p = 0.0909 against 1400, 0.5 against an equal, 0.909 against 600
    assert weights[0] / weights[1] == pytest.approx((1 - 0.0909) ** 2 / 0.25, rel=1e-2)
    assert min(pfsp_weights(3000.0, [0.0, 2990.0])) >= 0.01 / 2 * 0.99  # beaten for sure: the floor keeps it
    assert pfsp_weights(1000.0, [1000.0, 1000.0]) == pytest.approx([0.5, 0.5])
    assert pfsp_weights(1000.0, []) == []
