"""What every worker process shares: start-up, the duplex pipe to the supervisor, and dying with it.

A worker exits when its pipe to the supervisor closes, and the kernel sends it SIGTERM when its parent, the
run's fork server, exits (PR_SET_PDEATHSIG), which the server does when the supervisor dies. SIGTERM unwinds
the worker through its `finally` blocks, so env engines that run as separate processes (vizdoom) are closed
too: nothing outlives a killed run.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection, wait
from typing import Any

import torch

from sampler.config.build import import_modules
from sampler.config.schema import ExperimentConfig
from sampler.errors import SftuiError
from sampler.run import forkserver, stacks
from sampler.run.messages import Command, Exited, Heartbeat, Pause, Paused, Report, Resume, Resumed, Stop, WorkerFailed

PR_SET_PDEATHSIG = 1
HEARTBEAT_SEC = 0.5


class SupervisorGone(BaseException):
    """The supervisor is gone (its pipe closed, or the kernel's SIGTERM arrived): unwind and exit."""


def die_with_parent() -> None:
    def unwind(signum, frame):
        raise SupervisorGone

    signal.signal(signal.SIGTERM, unwind)
    forkserver.close_inherited_pipe()  # our parent, the run's fork server, then lives only as long as the supervisor
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass  # not Linux: the closed pipe still ends the worker


def close_on_exec() -> None:
    """Keeps the fds spawn handed us (the supervisor's pipe, the liveness sentinel) out of programs we exec.

    An env engine started as a separate program (vizdoom) would otherwise hold them open, and the
    supervisor would not see this worker die while the engine lives.
    """
    for name in os.listdir("/proc/self/fd") if os.path.isdir("/proc/self/fd") else ():
        fd = int(name)
        if fd > 2:
            try:
                os.set_inheritable(fd, False)
            except OSError:
                pass  # the fd listing itself, already closed


def setup_process(cfg: ExperimentConfig, torch_threads: int) -> None:
    """Start-up of every worker: die with the supervisor, leave Ctrl+C to it, import `run.imports` (custom envs and
    models register here before any is built), and set this process's torch threads on purpose.

    The config itself arrives built, in the worker's spec: it is never rebuilt here.
    """
    die_with_parent()
    close_on_exec()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C is the supervisor's to handle
    import_modules(cfg.run.imports)
    os.environ["OMP_NUM_THREADS"] = str(torch_threads)
    torch.set_num_threads(torch_threads)


class WorkerBase:
    """A worker's loop skeleton: wait on the pipe and its data sources, answer commands, send heartbeats.

    `self.commands` maps each command type to its handler; a worker kind adds its own to the table.
    """

    kind = "worker"

    def __init__(self, name: str, pipe: Connection):
        self.name = name
        self.pipe = pipe
        self.paused = False
        self.stopping = False
        self.steps = 0
        self._last_beat = 0.0
        self._pause_acked = False
        self.commands: dict[type, Callable[[Any], None]] = {
            Pause: self._on_pause, Resume: self._on_resume, Stop: self._on_stop}

    def send(self, report: Report) -> None:
        try:
            self.pipe.send(report)
        except (BrokenPipeError, OSError):
            raise SupervisorGone from None

    def wait(self, sources: list, timeout: float) -> list:
        ready = wait([self.pipe, *sources], timeout)
        if self.pipe in ready:
            self._read_commands()
        return ready

    def _read_commands(self) -> None:
        while True:
            try:
                if not self.pipe.poll():
                    return
                command: Command = self.pipe.recv()
            except (EOFError, OSError):
                raise SupervisorGone from None
            handler = self.commands.get(type(command))
            if handler is None:
                raise ValueError(f"{self.name}: no handler for {type(command).__name__}")
            handler(command)

    def _on_pause(self, _: Pause) -> None:
        self.paused = True

    def _on_resume(self, _: Resume) -> None:
        self.paused = False
        self.send(Resumed())

    def _on_stop(self, _: Stop) -> None:
        self.stopping = True

    def settle_pause(self, idle: bool) -> None:
        """Acknowledges a pause, with the final step count, once this worker has no work in flight."""
        if not self.paused:
            self._pause_acked = False
        elif idle and not self._pause_acked:
            self._pause_acked = True
            self.send(Paused(steps=self.steps))

    def heartbeat(self, extra: Callable[[], dict] | None = None) -> None:
        """Sends steps and `extra()` (Heartbeat fields, computed only when a beat is due) every HEARTBEAT_SEC."""
        now = time.monotonic()
        if now - self._last_beat >= HEARTBEAT_SEC:
            self._last_beat = now
            self.send(Heartbeat(steps=self.steps, paused=self.paused, **(extra() if extra else {})))

    def loop(self) -> None:
        raise NotImplementedError


def run_worker(make_worker: Callable[[Connection, Any], WorkerBase], pipe: Connection, spec: Any) -> None:
    """Process entry: build the worker from its spec, run its loop, report any error up the pipe before exiting."""
    try:
        stacks.arm(getattr(spec, "stacks_dir", ""), spec.name)  # first: a stall anywhere after can be seen
        worker = make_worker(pipe, spec)
        worker.loop()
        pipe.send(Exited())
    except SupervisorGone:
        sys.exit(0)
    except BaseException as e:  # noqa: BLE001 - everything is reported to the supervisor
        detail = "" if isinstance(e, SftuiError) else traceback.format_exc()  # a user's error says it all
        try:
            pipe.send(WorkerFailed(error=f"{type(e).__name__}: {e}", traceback=detail))
        except (BrokenPipeError, OSError):
            pass
        sys.exit(1)
