"""Folds worker reports into a RunStatus: throughput windows, per-policy returns and losses, events."""

from __future__ import annotations

import time
from collections import deque

from sampler.run.messages import Trained
from sampler.status import Event, Lag, PolicyStatus, RunStatus, WorkerStatus

EPISODES_AVERAGED = 100
FPS_WINDOWS = (10, 60, 300)


class PolicyStats:
    def __init__(self, policy_id: int):
        self.status = PolicyStatus(policy_id=policy_id)
        self.returns: deque[float] = deque(maxlen=EPISODES_AVERAGED)
        self.lengths: deque[float] = deque(maxlen=EPISODES_AVERAGED)
        self.objectives: deque[float] = deque(maxlen=EPISODES_AVERAGED)
        self.shaped: deque[float] = deque(maxlen=EPISODES_AVERAGED)
        self.samples_window: deque[tuple[float, int]] = deque()
        self.valid = 0
        self.total = 0

    def add_episode(self, ret: float, length: float, true_objective: float | None, extra: dict | None,
                    shaped_return: float | None = None) -> None:
        self.returns.append(ret)
        if shaped_return is not None:
            self.shaped.append(float(shaped_return))
        self.lengths.append(length)
        if true_objective is not None:
            self.objectives.append(float(true_objective))
        self.status.episodes += 1
        for key, value in (extra or {}).items():
            self.status.metrics[f"episode/{key}"] = float(value)

    def forget_episodes(self) -> None:
        """After PBT replaced this policy: its past episodes describe a policy that no longer exists, so it
        is not ranked again until it has episodes of its own."""
        for episodes in (self.returns, self.lengths, self.objectives, self.shaped):
            episodes.clear()
        s = self.status
        s.episode_return = s.episode_length = s.true_objective = s.shaped_return = None

    def add_training(self, report: Trained) -> None:
        s = self.status
        s.version = report.version
        s.env_frames = report.env_frames
        s.samples += report.samples
        self.valid += report.valid_samples
        self.total += report.samples
        s.lag = Lag(**report.lag)
        stats = report.stats
        s.learning_rate = float(stats.get("lr", s.learning_rate))
        s.losses = {k: float(v) for k, v in stats.items() if "loss" in k}
        s.metrics.update({k: float(v) for k, v in stats.items() if "loss" not in k and k != "lr"})

    def finish(self, now: float) -> PolicyStatus:
        s = self.status
        if self.returns:
            s.episode_return = sum(self.returns) / len(self.returns)
            s.episode_length = sum(self.lengths) / len(self.lengths)
        if self.objectives:
            s.true_objective = sum(self.objectives) / len(self.objectives)
        if self.shaped:
            s.shaped_return = sum(self.shaped) / len(self.shaped)
        s.valid_fraction = self.valid / self.total if self.total else 1.0
        self.samples_window.append((now, s.samples))
        while self.samples_window and now - self.samples_window[0][0] > FPS_WINDOWS[0]:
            self.samples_window.popleft()
        first_time, first_samples = self.samples_window[0]
        s.samples_per_sec = (s.samples - first_samples) / (now - first_time) if now > first_time else 0.0
        return s


class StatsBoard:
    def __init__(self, experiment: str, num_policies: int, budget_frames: int, budget_seconds: float):
        self.experiment = experiment
        self.policies = [PolicyStats(p) for p in range(num_policies)]
        self.frames_history: deque[tuple[float, int]] = deque()
        self.events: deque[Event] = deque(maxlen=50)
        self.budget_frames, self.budget_seconds = budget_frames, budget_seconds
        self.samples_collected = 0
        self.started_at = time.time()
        self.warning: str | None = None

    @property
    def env_frames(self) -> int:
        return sum(p.status.env_frames for p in self.policies)

    @property
    def samples(self) -> int:
        return sum(p.status.samples for p in self.policies)

    def event(self, kind: str, message: str) -> None:
        self.events.append(Event(time=time.time(), kind=kind, message=message))

    def fps(self, now: float) -> dict[str, float]:
        frames = self.env_frames
        self.frames_history.append((now, frames))
        while now - self.frames_history[0][0] > FPS_WINDOWS[-1] + 1:
            self.frames_history.popleft()
        out = {}
        for window in FPS_WINDOWS:
            start = next(((t, f) for t, f in self.frames_history if now - t <= window), (now, frames))
            span = now - start[0]
            out[str(window)] = (frames - start[1]) / span if span > 0 else 0.0
        return out

    def status(self, state: str, elapsed_sec: float, workers: list[WorkerStatus], error: str | None) -> RunStatus:
        now = time.monotonic()
        return RunStatus(
            experiment=self.experiment,
            state=state,
            env_frames=self.env_frames,
            samples=self.samples,
            samples_collected=self.samples_collected,
            fps=self.fps(now),
            budget_env_frames=self.budget_frames,
            budget_seconds=self.budget_seconds,
            started_at=self.started_at,
            elapsed_sec=elapsed_sec,
            error=error,
            warning=self.warning,
            policies=[p.finish(now) for p in self.policies],
            workers=workers,
            events=list(self.events),
        )
