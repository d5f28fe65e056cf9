"""TensorBoard scalars under <experiment>/tb/p<k>, written when a policy's learner reports a new version."""

from __future__ import annotations

from pathlib import Path

from sampler.status import RunStatus


class TensorboardWriter:
    def __init__(self, directory: Path, num_policies: int):
        from torch.utils.tensorboard import SummaryWriter

        self.writers = [SummaryWriter(str(directory / f"p{p}"), flush_secs=10) for p in range(num_policies)]
        self.last_version = [-1] * num_policies

    def write(self, status: RunStatus) -> None:
        for policy in status.policies:
            if policy.version == self.last_version[policy.policy_id]:
                continue
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
            for tag, value in scalars.items():
                writer.add_scalar(tag, value, step)

    def write_eval(self, policy: int, mean_return: float, env_frames: int) -> None:
        self.writers[policy].add_scalar("eval/episode_return", mean_return, env_frames)

    def close(self) -> None:
        for writer in self.writers:
            writer.close()
