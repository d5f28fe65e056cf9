"""The learning-rate schedule: constant, linear decay over the run, KL-adaptive within learning_rate's bounds."""

from __future__ import annotations

import pytest

from algos.appo_config import AppoConfig
from algos.lr_schedule import KL_ADAPTIVE_FACTOR, LearningRateSchedule
from algos.tunables import LEARNING_RATE


def schedule(kind: str, total_env_frames: int | None = 1000, **cfg) -> LearningRateSchedule:
    return LearningRateSchedule.from_config(AppoConfig(lr_schedule=kind, learning_rate=1e-3, **cfg), total_env_frames)


def test_constant_ignores_frames_and_kl():
    constant = schedule("constant")
    assert constant.lr_for(900) == 1e-3
    assert constant.after_sgd_step(1e9) == constant.after_sgd_step(0.0) == 1e-3


def test_linear_decay_reaches_zero_at_the_runs_end_and_is_constant_without_one():
    decay = schedule("linear_decay")
    assert [decay.lr_for(f) for f in (0, 250, 1000, 2000)] == pytest.approx([1e-3, 0.75e-3, 0.0, 0.0])
    assert decay.after_sgd_step(1e9) == 0.0
    assert schedule("linear_decay", total_env_frames=None).lr_for(500) == 1e-3


def test_kl_adaptive_steps_by_the_factor_around_the_threshold_and_stays_within_learning_rates_bounds():
    adaptive = schedule("kl_adaptive", lr_schedule_kl_threshold=0.01)
    assert adaptive.after_sgd_step(0.03) == pytest.approx(1e-3 / KL_ADAPTIVE_FACTOR)  # over twice: down
    assert adaptive.after_sgd_step(0.01) == pytest.approx(1e-3 / KL_ADAPTIVE_FACTOR)  # near: kept
    assert adaptive.lr_for(500) == pytest.approx(1e-3 / KL_ADAPTIVE_FACTOR)  # carried across batches
    low, high = LEARNING_RATE.bounds
    assert [adaptive.after_sgd_step(0.0) for _ in range(100)][-1] == high
    assert [adaptive.after_sgd_step(1.0) for _ in range(100)][-1] == low


def test_the_rate_round_trips_through_its_state_dict():
    adaptive = schedule("kl_adaptive")
    adaptive.after_sgd_step(0.0)
    restored = schedule("kl_adaptive")
    restored.load_state_dict(adaptive.state_dict())
    assert adaptive.state_dict() == {"lr": pytest.approx(1e-3 * KL_ADAPTIVE_FACTOR)}
    assert restored.lr == adaptive.lr
    carried = LearningRateSchedule.from_config(AppoConfig(lr_schedule="kl_adaptive"), None, lr=adaptive.lr)
    assert carried.lr == adaptive.lr
