"""The supervisor's view of one worker process: its pipe, liveness, rates and restarts."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import psutil

from sampler.run.messages import Command, Heartbeat, Paused, Report, Resumed
from sampler.status import WorkerStatus

RESTART_WINDOW_SEC = 3600.0  # run.max_worker_restarts counts restarts within this window


@dataclass
class WorkerHandle:
    name: str
    kind: str  # rollout | inference | learner
    policy: int = 0
    index: int = 0
    incarnation: int = 0
    restarts: int = 0
    process: object = None
    conn: object = None
    state: str = "starting"
    paused: bool = False
    expected_exit: bool = False
    last_error: str | None = None
    last_beat: float = 0.0
    steps: int = 0
    steps_per_sec: float = 0.0
    mean_batch: float | None = None
    env_restarts: int = 0  # over all its incarnations
    discarded: int = 0  # partial trajectory blocks dropped at its restarts
    killed_for_stall: bool = False
    env_error_reported: float = float("-inf")  # when an env restart last made an event
    restart_times: deque[float] = field(default_factory=deque)  # monotonic times of its restarts in the window
    expecting: dict[type, Any] = field(default_factory=dict)  # report type -> the future that awaits it
    _rate_mark: tuple[float, int] = (0.0, 0)
    _ps: object = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def alive(self) -> bool:
        return self.process is not None and self.state not in ("dead", "exited")

    def started(self) -> None:
        self.state = "starting"
        self.killed_for_stall = False
        self.paused = False
        self.expected_exit = False
        self.last_beat = time.monotonic()
        self._rate_mark = (self.last_beat, 0)
        self.steps = 0
        try:
            self._ps = psutil.Process(self.process.pid)
            self._ps.cpu_percent()
        except psutil.NoSuchProcess:
            self._ps = None

    def send(self, command: Command) -> None:
        try:
            self.conn.send(command)
        except (BrokenPipeError, OSError):
            pass  # its sentinel reports the death

    def beat(self, report: Report) -> None:
        """Any report shows the worker alive; heartbeats and pause acknowledgements also carry its state."""
        now = time.monotonic()
        self.last_beat = now
        if isinstance(report, Paused | Resumed):
            self.paused = isinstance(report, Paused)
        if self.state in ("starting", "stalled") or isinstance(report, Paused | Resumed):
            self.state = "paused" if self.paused else "running"
        if isinstance(report, Heartbeat) and report.mean_batch is not None:
            self.mean_batch = report.mean_batch
        if isinstance(report, Heartbeat):
            self.discarded += report.discarded
        if isinstance(report, Heartbeat | Paused):
            self.steps = report.steps
            mark_time, mark_steps = self._rate_mark
            if now - mark_time >= 2.0:
                self.steps_per_sec = (self.steps - mark_steps) / (now - mark_time)
                self._rate_mark = (now, self.steps)

    def check_stall(self, now: float, timeout: float) -> bool:
        """Marks the worker stalled when its heartbeat is too old; True the first time."""
        if self.state in ("running", "paused", "starting") and now - self.last_beat > timeout:
            self.state = "stalled"
            return True
        return False

    def may_restart(self, per_window: int, window: float = RESTART_WINDOW_SEC) -> bool:
        """Whether a restart fits the budget (at most `per_window` within `window` seconds); counts it if so."""
        now = time.monotonic()
        while self.restart_times and now - self.restart_times[0] > window:
            self.restart_times.popleft()
        if len(self.restart_times) >= per_window:
            return False
        self.restart_times.append(now)
        self.restarts += 1
        return True

    def exited(self) -> None:
        self.state = "exited" if self.expected_exit else "dead"

    def status(self) -> WorkerStatus:
        cpu = 0.0
        if self._ps is not None and self.alive:
            try:
                cpu = self._ps.cpu_percent()
            except psutil.NoSuchProcess:
                pass
        return WorkerStatus(
            name=self.name, kind=self.kind, pid=self.pid, state=self.state, cpu_percent=cpu, steps=self.steps,
            steps_per_sec=self.steps_per_sec if self.state != "stalled" else 0.0,  # silent: not its last rate
            restarts=self.restarts, last_error=self.last_error,
            mean_batch=self.mean_batch, env_restarts=self.env_restarts, discarded=self.discarded,
        )
