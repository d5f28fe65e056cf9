"""The learner's finite guard: the last good state comes back, the version moves on, and rollbacks that keep
coming end the run with a line that says what to look at."""

import pytest
import torch

from sampler.errors import ExperimentError
from sampler.run.workers import guard
from sampler.run.workers.guard import FiniteGuard


class Learner:
    def __init__(self):
        self.model = torch.nn.Linear(3, 2)
        self.optimizer = torch.optim.Adam(self.model.parameters())
        self.version = 0

    def state_dict(self):
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(), "version": self.version}

    def load_state_dict(self, state):
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.version = state["version"]


def test_roll_back_restores_the_last_good_weights_and_moves_the_version_on():
    learner, keeper = Learner(), FiniteGuard(policy=0)
    keeper.keep(learner, force=True)
    good = learner.model.weight.detach().clone()
    learner.version = 7
    with torch.no_grad():
        learner.model.weight[0, 0] = float("inf")
    assert not keeper.finite(learner)
    message = keeper.roll_back(learner)
    assert keeper.finite(learner) and torch.equal(learner.model.weight, good)
    assert learner.version == 8 and "rolled back" in message


def test_a_huge_but_finite_model_is_not_taken_for_a_broken_one():
    learner = Learner()
    with torch.no_grad():
        learner.model.weight.fill_(3e38)  # its sum overflows; no value is infinite
    assert FiniteGuard.finite(learner)


def test_rollbacks_that_keep_coming_fail_with_the_cause_to_look_at():
    learner, keeper = Learner(), FiniteGuard(policy=2)
    keeper.keep(learner, force=True)
    for _ in range(guard.MAX_ROLLBACKS - 1):
        keeper.roll_back(learner)
    with pytest.raises(ExperimentError, match="policy 2: weights turned non-finite 5 times .* appo.learning_rate"):
        keeper.roll_back(learner)


def test_batches_that_never_give_a_finite_loss_fail_the_run():
    keeper = FiniteGuard(policy=0)
    for _ in range(guard.MAX_BROKEN_BATCHES - 1):
        keeper.record_broken_batch()
    keeper.keep(Learner())  # one good batch between resets the count
    for _ in range(guard.MAX_BROKEN_BATCHES - 1):
        keeper.record_broken_batch()
    with pytest.raises(ExperimentError, match="NaN or inf in the env's observations and rewards"):
        keeper.record_broken_batch()


def test_a_state_with_non_finite_optimizer_moments_is_never_kept_so_never_snapshot():
    # the learner writes its restart snapshot from what keep() accepted, and only when it accepted one
    learner, keeper = Learner(), FiniteGuard(policy=0)
    learner.model(torch.ones(1, 3)).sum().backward()
    learner.optimizer.step()
    assert keeper.keep(learner, force=True)
    kept = keeper.good
    learner.optimizer.state[learner.model.weight]["exp_avg_sq"][0, 0] = float("nan")  # weights still finite
    assert keeper.finite(learner)
    assert not keeper.keep(learner, force=True)
    assert keeper.good is kept
