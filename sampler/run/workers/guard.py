"""Keeps a learner's state finite: a copy of the last good state, rollbacks to it, and a limit on both.

A NaN that reaches the weights spreads everywhere: every action sampled from them fails and every checkpoint
written after it is useless. The learner checks its weights and normalizers after each update. Gone
non-finite, they are rolled back to the last good state (kept every GOOD_STATE_EVERY_SEC, so at most that much
training is lost), and the version moves on so that samplers pick the restored weights up as new ones. A
rollback now and then is survivable; MAX_ROLLBACKS within ROLLBACK_WINDOW_SEC means the cause will not go away
(a learning rate too high, an env that emits NaN), and the run fails with a line that says what to look at.
"""

from __future__ import annotations

import copy
import time
from collections import deque

import torch

from sampler.errors import ExperimentError
from sampler.experiment import checkpoints

GOOD_STATE_EVERY_SEC = 10.0
ROLLBACK_WINDOW_SEC = 600.0
MAX_ROLLBACKS = 5  # within the window: the run fails at this one
MAX_BROKEN_BATCHES = 100  # in a row, each with every SGD step skipped for a non-finite loss


class FiniteGuard:
    def __init__(self, policy: int) -> None:
        self.policy = policy
        self.good: dict | None = None
        self.kept_at = float("-inf")
        self.rollbacks: deque[float] = deque()
        self.broken_in_a_row = 0

    @staticmethod
    def finite(learner) -> bool:
        """Whether every floating-point weight and buffer (the normalizers' statistics too) is finite."""
        tensors = [t.detach() for t in learner.model.state_dict().values() if t.is_floating_point()]
        if not tensors:
            return True
        # One sum per tensor and one check: NaN and infinities survive a sum. A sum can overflow where no value
        # is infinite, so a non-finite total is confirmed tensor by tensor.
        if bool(torch.isfinite(torch.stack([t.float().sum() for t in tensors]).sum())):
            return True
        return all(bool(torch.isfinite(t).all()) for t in tensors)

    def keep(self, learner, force: bool = False) -> bool:
        """After a good update: the state is copied at most every GOOD_STATE_EVERY_SEC (with `force`, now).
        Returns whether a new good state was kept (every tensor finite, the optimizer's moments too)."""
        self.broken_in_a_row = 0
        now = time.monotonic()
        if not force and now - self.kept_at < GOOD_STATE_EVERY_SEC:
            return False
        state = copy.deepcopy(learner.state_dict())
        if checkpoints.non_finite(state):
            return False
        self.good, self.kept_at = state, now
        return True

    def roll_back(self, learner) -> str:
        """Restores the last good state (the version still moves forward) and says what it did; raises once
        rollbacks come too often."""
        now = time.monotonic()
        self.rollbacks.append(now)
        while now - self.rollbacks[0] > ROLLBACK_WINDOW_SEC:
            self.rollbacks.popleft()
        if len(self.rollbacks) >= MAX_ROLLBACKS or self.good is None:
            raise ExperimentError(
                f"policy {self.policy}: weights turned non-finite {len(self.rollbacks)} times in "
                f"{ROLLBACK_WINDOW_SEC / 60:.0f} min, rolled back each time; lower appo.learning_rate (or "
                "appo.max_grad_norm), or look for NaN or inf in the env's observations and rewards")
        version = learner.version
        learner.load_state_dict(copy.deepcopy(self.good))  # the optimizer would update the kept moments in place
        learner.version = version + 1
        window = f"{ROLLBACK_WINDOW_SEC / 60:.0f} min"
        allowed = f"{len(self.rollbacks)} of {MAX_ROLLBACKS - 1} rollbacks allowed in {window}"
        return f"rolled back to the state of {now - self.kept_at:.0f} s before ({allowed})"

    def record_broken_batch(self) -> None:
        """A batch whose every SGD step had a non-finite loss: nothing was learned from it."""
        self.broken_in_a_row += 1
        if self.broken_in_a_row >= MAX_BROKEN_BATCHES:
            raise ExperimentError(
                f"policy {self.policy}: {self.broken_in_a_row} batches in a row gave a non-finite loss in every "
                "SGD step; look for NaN or inf in the env's observations and rewards")
