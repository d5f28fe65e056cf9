"""Elo ratings for self-play: the learning policies and the frozen snapshots of the opponent pool on one scale.

A game between seats is scored pairwise: for every two players of one game, the one with the higher episode
score (the env's true objective where it reports one, else the return) won, equal scores are a draw. Each
pair moves both ratings by `k * (result - expected)`, where `expected = 1 / (1 + 10 ** ((b - a) / 400))`.
Games of more than two seats are thus rated as all their pairs (an approximation Elo makes for free-for-alls).
"""

from __future__ import annotations

from itertools import combinations

INITIAL_RATING = 1000.0


def expected_score(rating: float, opponent: float) -> float:
    """The chance that a player rated `rating` beats one rated `opponent` (a draw counting half)."""
    return 1.0 / (1.0 + 10.0 ** ((opponent - rating) / 400.0))


def result(score: float, opponent_score: float) -> float:
    """1 for a win, 0.5 for a draw, 0 for a loss."""
    return 1.0 if score > opponent_score else 0.5 if score == opponent_score else 0.0


def rate_game(ratings: dict[str, float], game: list[tuple[str, float]], k: float) -> dict[str, float]:
    """Ratings after one game of players (name, score). Players not yet rated start at INITIAL_RATING. Every
    pair's update is computed from the ratings before the game, so the seat order does not matter."""
    before = {name: ratings.get(name, INITIAL_RATING) for name, _ in game}
    after = dict(ratings)
    for name in before:
        after[name] = before[name]
    for (a, score_a), (b, score_b) in combinations(game, 2):
        if a == b:
            continue  # a policy playing itself learns nothing about its rating
        delta = k * (result(score_a, score_b) - expected_score(before[a], before[b]))
        after[a] += delta
        after[b] -= delta
    return after


def pfsp_weights(learner_rating: float, member_ratings: list[float], power: float = 2.0) -> list[float]:
    """Prioritized fictitious self-play: each member's chance to be drawn, in proportion to (1 - p) ** power,
    p the chance the learning policies (at `learner_rating`) beat it. Members they still lose to come up most;
    ones they always beat come up rarely but never vanish (a floor keeps every weight above 1% of uniform).
    """
    if not member_ratings:
        return []
    raw = [(1.0 - expected_score(learner_rating, rating)) ** power for rating in member_ratings]
    total = sum(raw)
    floor = 0.01 / len(raw)
    weights = [max(w / total, floor) for w in raw]
    norm = sum(weights)
    return [w / norm for w in weights]
