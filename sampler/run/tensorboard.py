"""TensorBoard scalars under <experiment>/tb/p<k>, written when a policy's learner reports a new version."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

from sampler.status import RunStatus

REOPEN_EVERY_SEC = 30.0


class TensorboardWriter:
    def __init__(self, directory: Path, num_policies: int):

        self.directory = directory
        self.writers = [self._open(p) for p in range(num_policies)]
        self.last_version = [-1] * num_policies
        self.resting_until = [0.0] * num_policies  # after a failed write: no new writer before then

    def _open(self, policy: int):
        from torch.utils.tensorboard import SummaryWriter

        return SummaryWriter(str(self.directory / f"p{policy}"), flush_secs=10)

    def _reopen(self, policy: int) -> None:
        """A writer whose background thread died (a full disk) raises its error on every later call: it is
        replaced by a new one, writing a new event file beside the old, which TensorBoard reads as one run."""
        with contextlib.suppress(Exception):
            self.writers[policy].close()
        self.writers[policy] = self._open(policy)
        self.resting_until[policy] = time.monotonic() + REOPEN_EVERY_SEC

    def write(self, status: RunStatus) -> None:
        for policy in status.policies:
            if policy.version == self.last_version[policy.policy_id]:
                continue
            if time.monotonic() < self.resting_until[policy.policy_id]:
                continue  # its last writer failed moments ago (a full disk): try again later
            self.last_version[policy.policy_id] = policy.version
            writer, step = self.writers[policy.policy_id], status.env_frames
            scalars = {
                "perf/fps_10s": status.fps["10"],
                "perf/samples_per_sec": policy.samples_per_sec,
                "perf/valid_fraction": policy.valid_fraction,
                "lag/min": policy.lag.min,
                "lag/avg": policy.lag.avg,
                "lag/max": policy.lag.max,
                "train/learning_rate": policy.learning_rate,
                "train/version": policy.version,
            }
            if policy.episode_return is not None:
                scalars["reward/episode_return"] = policy.episode_return
                scalars["reward/episode_length"] = policy.episode_length
            if policy.true_objective is not None:
                scalars["reward/true_objective"] = policy.true_objective
            if policy.shaped_return is not None:
                scalars["reward/shaped_return"] = policy.shaped_return
            scalars.update({f"train/{k}": v for k, v in policy.losses.items()})
            scalars.update({f"train/{k}": v for k, v in policy.metrics.items() if "/" not in k})
            scalars.update({k: v for k, v in policy.metrics.items() if "/" in k})
            try:
                for tag, value in scalars.items():
                    writer.add_scalar(tag, value, step)
            except OSError:
                self.last_version[policy.policy_id] = -1  # written again next time
                self._reopen(policy.policy_id)
                raise

    def write_eval(self, policy: int, mean_return: float, env_frames: int) -> None:
        self.writers[policy].add_scalar("eval/episode_return", mean_return, env_frames)

    def close(self) -> None:
        for writer in self.writers:
            writer.close()
