"""How a run starts its workers: from a fork server that has imported torch and the worker modules once.

A spawned worker is a fresh interpreter that imports torch, gymnasium and the engine (about 2 s of CPU each on a
small machine) before it does anything. A run starts its own fork server instead: one process that imports them
once, then forks a worker for each start, in milliseconds. Restarted workers and PBT's learners start as fast.

What the fork server changes, and how the run keeps its guarantees:
- A worker's parent is the fork server, not the supervisor. The server exits when every copy of its pipe is
  closed; a worker closes the copy it inherits, so the server exits when the supervisor exits or is killed, and
  a worker's PR_SET_PDEATHSIG, which fires when its parent dies, still ends it with the supervisor.
- A forked worker's environment is the server's, as it was when the server started. The server is therefore
  started after this process's environment was tagged with the run's token, so the janitor finds the server
  and every worker by that token; `end` ends the server with the run, so a later run in the same process
  starts a fresh one with its own token.
- The server forks while it runs no thread, and it never initialises CUDA: each worker sets up its own torch
  threads and device after the fork, as a spawned one did.

Where the platform has no fork server, workers are spawned.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing import forkserver, resource_tracker
from multiprocessing.context import BaseContext

import psutil

from sampler.run import janitor

# Imported once by the server; a worker finds them loaded. The family's own env package (ale-py, vizdoom) is
# imported by the worker that builds an env, as before.
PRELOAD = [
    "__main__",  # as spawn does: what the main module defines at its top level can be handed to a worker
    "torch",
    "torch._dynamo",  # torch.optim imports it on a learner's first optimizer: 1.6 s of a learner's start
    "numpy",
    "gymnasium",
    "sampler.run.workers.rollout",
    "sampler.run.workers.batched",
    "sampler.run.workers.inference",
    "sampler.run.workers.learner",
]


@dataclass
class WorkerStarter:
    """How one run starts its processes: the context its workers start from, and the run's janitor token."""

    ctx: BaseContext
    token: str

    @classmethod
    def begin(cls) -> WorkerStarter:
        """Tags this process's environment with a run token and starts the fork server, which imports while
        the caller goes on (preparing the experiment takes as long). Multiprocessing's resource tracker starts
        first, untagged: it outlives the run to unlink what a killed run left registered."""
        resource_tracker.ensure_running()
        token = janitor.tag_environment()
        ctx = _context()
        if ctx.get_start_method() == "forkserver":
            # Ctrl+C is the supervisor's to handle: the server starts with SIGINT ignored (a disposition its exec
            # keeps), so a Ctrl+C in the middle of its imports prints no traceback, and its workers inherit it.
            # Meanwhile SIGINT is blocked here too: a Ctrl+C in that window waits and is delivered after it,
            # where ignored alone it was lost and the run trained on as if nobody had pressed it.
            blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
            previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
            try:
                forkserver.ensure_running()
            finally:
                signal.signal(signal.SIGINT, previous)
                signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        return cls(ctx, token)

    def end(self) -> None:
        """Ends the fork server: after the run's workers ended, or at once when the run will not start (it may
        be in the middle of its imports). It holds nothing to save, so it is killed: a graceful exit of a process
        that loaded torch takes most of a second. Nothing of the run outlives it, and a later run in this process
        starts a fresh server with its own token."""
        server = forkserver._forkserver
        pid = getattr(server, "_forkserver_pid", None)
        if pid is None:
            return
        # Its children now are workers that never got their spec (a start cut short by Ctrl+C).
        try:
            for child in psutil.Process(pid).children():
                child.kill()
        except psutil.NoSuchProcess:
            pass
        _signal(pid, signal.SIGKILL)
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:  # reaped already, by a kill of the whole tree
            pass
        os.close(server._forkserver_alive_fd)
        server._forkserver_pid = server._forkserver_alive_fd = server._forkserver_address = None

    @contextlib.contextmanager
    def ended_on_error(self) -> Iterator[WorkerStarter]:
        """For the caller's work before the run starts: an error (a refused config, Ctrl+C) ends the server."""
        try:
            yield self
        except BaseException:
            self.end()
            raise


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def close_inherited_pipe() -> None:
    """In a worker: closes its copy of the server's pipe, so that the server exits when the supervisor does
    (and the worker's PR_SET_PDEATHSIG fires) rather than when the last worker does."""
    fd = getattr(forkserver._forkserver, "_forkserver_alive_fd", None)
    if fd is not None and forkserver._forkserver._forkserver_pid is None:  # a child's copy, not the owner's
        try:
            os.close(fd)
        except OSError:
            pass
        forkserver._forkserver._forkserver_alive_fd = None


def server_pid() -> int | None:
    """The fork server's pid while it runs: a child of the supervisor that is not a worker."""
    return getattr(forkserver._forkserver, "_forkserver_pid", None)


def _context() -> BaseContext:
    if "forkserver" not in mp.get_all_start_methods():
        return mp.get_context("spawn")
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    return ctx
