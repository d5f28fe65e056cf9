"""PBT decisions as pure functions: when, ranking, gap thresholds, mutation bounds and rate."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from algos.pbt import PbtConfig, Replacement, due, mutate, rank, replacements
from algos.tunables import TUNABLES

BOUNDS = {t.name: t.bounds for t in TUNABLES if t.pbt_mutable}

HPARAMS = {"learning_rate": 3e-4, "exploration_loss_coeff": 0.003, "value_loss_coeff": 0.5, "ppo_clip_ratio": 0.1,
           "ppo_clip_value": 0.2, "max_grad_norm": 4.0, "gamma": 0.99, "reward_scale": 1.0,
           "reward_shaping": {"deaths": -0.5, "hits": 0.05, "ammo": 0.0}}


def test_updates_start_after_the_first_frames_then_come_every_period():
    cfg = PbtConfig(pbt_start_mutation=1000, pbt_period_env_steps=500)
    assert not due(999, 0, cfg)
    assert due(1000, 0, cfg)
    assert not due(1400, 1000, cfg)
    assert due(1500, 1000, cfg)


def test_ranking_is_best_first_and_leaves_out_policies_without_an_objective():
    assert rank({0: 1.0, 1: 5.0, 2: None, 3: -2.0, 4: float("nan")}) == [1, 0, 3]


def test_the_worst_fraction_takes_a_copy_of_the_best_when_both_gaps_hold():
    rng = np.random.default_rng(0)
    cfg = PbtConfig(pbt_replace_fraction=0.25, pbt_replace_reward_gap=0.1, pbt_replace_reward_gap_absolute=0.5)
    assert replacements({0: 10.0, 1: 8.0, 2: 9.0, 3: 1.0}, cfg, rng) == [Replacement(3, 0, 9.0)]
    # relative gap: 10 vs 9.5 is 5% of 10, under the 10% asked for
    assert replacements({0: 10.0, 1: 9.8, 2: 9.9, 3: 9.5}, cfg, rng) == []
    # absolute gap: 0.3 vs 0.0 is relatively huge but under 0.5
    assert replacements({0: 0.3, 1: 0.2, 2: 0.1, 3: 0.0}, cfg, rng) == []
    # a negative best: the relative gap is taken of its size
    assert replacements({0: -1.0, 1: -2.0, 2: -3.0, 3: -10.0}, cfg, rng) == [Replacement(3, 0, 9.0)]


def test_replacement_sources_come_from_the_best_fraction_only():
    rng = np.random.default_rng(1)
    cfg = PbtConfig(pbt_replace_fraction=0.5, pbt_replace_reward_gap=0.0, pbt_replace_reward_gap_absolute=0.0)
    objectives = {p: float(p) for p in range(6)}  # 5 is best
    seen = set()
    for _ in range(200):
        for r in replacements(objectives, cfg, rng):
            assert r.policy in (0, 1, 2) and r.source in (3, 4, 5)
            seen.add(r.source)
    assert seen == {3, 4, 5}
    assert replacements({0: 1.0}, cfg, rng) == []  # a population of one replaces nothing


def test_mutations_stay_in_bounds_and_happen_at_about_the_configured_rate():
    rng = np.random.default_rng(2)
    cfg = PbtConfig(pbt_mutation_rate=0.2, pbt_perturb_min=1.2, pbt_perturb_max=2.0)
    draws = 3000
    counts = dict.fromkeys(BOUNDS, 0)
    hp = dict(HPARAMS)
    for _ in range(draws):
        out, changed = mutate(HPARAMS, cfg, rng)
        for name in changed:
            if name in counts:
                counts[name] += 1
        assert out["reward_scale"] == 1.0  # not a PBT-mutable value
        assert out["gamma"] == 0.99  # gamma only with pbt_optimize_gamma
        hp, _ = mutate(hp, cfg, rng)  # a long chain of mutations must stay within bounds too
        for name, (low, high) in BOUNDS.items():
            assert low <= hp[name] <= high, (name, hp[name])
    for name in BOUNDS:
        if name != "gamma":
            assert 0.17 < counts[name] / draws < 0.23, (name, counts[name])
    for name in ("learning_rate", "max_grad_norm"):  # a chain of x/÷ [1.2, 2] reaches the bounds
        assert hp[name] != HPARAMS[name]


def test_a_mutation_multiplies_or_divides_by_a_factor_in_range():
    rng = np.random.default_rng(3)
    cfg = PbtConfig(pbt_mutation_rate=1.0, pbt_perturb_min=1.1, pbt_perturb_max=1.5, pbt_optimize_gamma=True)
    for _ in range(200):
        out, changed = mutate(HPARAMS, cfg, rng)
        ratio = out["learning_rate"] / HPARAMS["learning_rate"]
        assert 1.1 <= ratio <= 1.5 or 1 / 1.5 <= ratio <= 1 / 1.1
        horizon = (1 / (1 - out["gamma"])) / 100.0  # gamma mutates as its horizon 1 / (1 - gamma)
        assert 1.1 - 1e-9 <= horizon <= 1.5 + 1e-9 or 1 / 1.5 - 1e-9 <= horizon <= 1 / 1.1 + 1e-9
        shaping = out["reward_shaping"]
        assert shaping["ammo"] == 0.0  # a zero coefficient (a component switched off) stays off
        assert shaping["deaths"] < 0 and shaping["hits"] > 0  # signs are kept
        assert "reward_shaping.deaths" in changed


def test_shaping_mutation_can_be_turned_off_and_bad_perturbation_ranges_are_refused():
    rng = np.random.default_rng(4)
    out, changed = mutate(HPARAMS, PbtConfig(pbt_mutation_rate=1.0, pbt_mutate_reward_shaping=False), rng)
    assert out["reward_shaping"] == HPARAMS["reward_shaping"] and not any("shaping" in k for k in changed)
    with pytest.raises(ValidationError, match="pbt_perturb_min"):
        PbtConfig(pbt_perturb_min=2.0, pbt_perturb_max=1.5)
