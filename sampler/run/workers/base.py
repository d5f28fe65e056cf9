"""What every worker process shares: start-up, the duplex pipe to the supervisor, and dying with it.

A worker exits when its pipe to the supervisor closes, and the kernel sends it SIGTERM when the
supervisor dies (PR_SET_PDEATHSIG). SIGTERM unwinds the worker through its `finally` blocks, so env
engines that run as separate processes (vizdoom) are closed too: nothing outlives a killed run.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import time
import traceback
from multiprocessing.connection import Connection, wait

from sampler.errors import SftuiError

PR_SET_PDEATHSIG = 1
HEARTBEAT_SEC = 0.5


class SupervisorGone(BaseException):
    """The supervisor is gone (its pipe closed, or the kernel's SIGTERM arrived): unwind and exit."""


def die_with_parent() -> None:
    def unwind(signum, frame):
        raise SupervisorGone

    signal.signal(signal.SIGTERM, unwind)
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


def setup_process(cfg_dict: dict, torch_threads: int | None = None):
    """Start-up of every worker; returns the config, rebuilt here so that run.imports register first.

    `torch_threads` None means the learner's configured count.
    """
    die_with_parent()
    close_on_exec()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C is the supervisor's to handle
    from sampler.config.build import build_config
    from sampler.config.derived import learner_threads

    cfg = build_config(cfg_dict)
    threads = torch_threads or learner_threads(cfg)
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import torch

    torch.set_num_threads(threads)
    return cfg


class WorkerBase:
    """A worker's loop skeleton: wait on the pipe and its data sources, answer commands, send heartbeats."""

    kind = "worker"

    def __init__(self, name: str, pipe: Connection):
        self.name = name
        self.pipe = pipe
        self.paused = False
        self.stopping = False
        self.steps = 0
        self._last_beat = 0.0
        self._pause_acked = False

    def send(self, kind: str, **payload) -> None:
        try:
            self.pipe.send((kind, payload))
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
                cmd, args = self.pipe.recv()
            except (EOFError, OSError):
                raise SupervisorGone from None
            self.handle_command(cmd, args)

    def handle_command(self, cmd: str, args: dict) -> None:
        if cmd == "pause":
            self.paused = True
        elif cmd == "resume":
            self.paused = False
            self.send("resumed")
        elif cmd == "stop":
            self.stopping = True
        else:
            self.on_command(cmd, args)

    def on_command(self, cmd: str, args: dict) -> None:
        raise ValueError(f"{self.name}: unknown command {cmd!r}")

    def settle_pause(self, idle: bool) -> None:
        """Acknowledges a pause, with the final step count, once this worker has no work in flight."""
        if not self.paused:
            self._pause_acked = False
        elif idle and not self._pause_acked:
            self._pause_acked = True
            self.send("paused", steps=self.steps)

    def heartbeat(self, extra=None) -> None:
        """Sends steps and `extra()` (computed only when a beat is due) every HEARTBEAT_SEC."""
        now = time.monotonic()
        if now - self._last_beat >= HEARTBEAT_SEC:
            self._last_beat = now
            self.send("heartbeat", steps=self.steps, paused=self.paused, **(extra() if extra else {}))

    def loop(self) -> None:
        raise NotImplementedError


def run_worker(make_worker, *args) -> None:
    """Process entry: build the worker, run its loop, report any error up the pipe before exiting."""
    pipe: Connection = args[0]
    try:
        worker = make_worker(*args)
        worker.loop()
        pipe.send(("exited", {}))
    except SupervisorGone:
        sys.exit(0)
    except BaseException as e:  # noqa: BLE001 - everything is reported to the supervisor
        detail = "" if isinstance(e, SftuiError) else traceback.format_exc()  # a user's error says it all
        try:
            pipe.send(("error", {"error": f"{type(e).__name__}: {e}", "traceback": detail}))
        except (BrokenPipeError, OSError):
            pass
        sys.exit(1)
