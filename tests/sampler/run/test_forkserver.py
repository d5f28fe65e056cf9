"""The run's fork server: workers fork from it carrying the run's token, and nothing of it outlives the run."""

from __future__ import annotations

import importlib
import signal
import subprocess
import sys
import time

import psutil

from sampler.run import forkserver
from sampler.run.forkserver import WorkerStarter
from tests.support import ROOT, report_parent_and_token, wait_for


def test_every_preloaded_module_imports():
    """The server skips a module it cannot import: a wrong name would only make every worker start slower."""
    for name in forkserver.PRELOAD[1:]:  # all but __main__
        importlib.import_module(name)


def test_a_worker_forks_from_the_server_with_the_run_token_and_end_leaves_nothing(monkeypatch):
    monkeypatch.setattr(forkserver, "PRELOAD", ["tests.support"])  # the real imports take 4 s; any will do here
    starter = WorkerStarter.begin()
    server = forkserver.server_pid()
    try:
        queue = starter.ctx.Queue()
        worker = starter.ctx.Process(target=report_parent_and_token, args=(queue,))
        worker.start()
        parent, token = queue.get(timeout=60)
        worker.join(timeout=10)
    finally:
        starter.end()
    assert parent == server and token == starter.token
    assert worker.exitcode == 0 and not psutil.pid_exists(server)
    assert forkserver.server_pid() is None


def _ignores_sigint(pid: int) -> bool:
    with open(f"/proc/{pid}/status") as f:
        mask = next(int(line.split()[1], 16) for line in f if line.startswith("SigIgn:"))
    return bool(mask & (1 << (signal.SIGINT - 1)))


def test_a_refused_run_ends_the_server_in_the_middle_of_its_imports():
    starter = WorkerStarter.begin()
    server = forkserver.server_pid()
    # Ctrl+C is the supervisor's: in the middle of its imports the server must not print a KeyboardInterrupt
    assert _ignores_sigint(server)
    started = time.monotonic()
    starter.end()
    assert time.monotonic() - started < 1.0  # not after its 4 s of imports
    assert not psutil.pid_exists(server) and forkserver.server_pid() is None


SCRIPT = """
import sys, time
from sampler.run import forkserver
from sampler.run.forkserver import WorkerStarter, server_pid
from tests.support import sleep_as_a_worker
forkserver.PRELOAD = ["tests.support"]
starter = WorkerStarter.begin()
worker = starter.ctx.Process(target=sleep_as_a_worker)
worker.start()
time.sleep(0.5)  # the worker has closed its copy of the server's pipe
print(server_pid(), worker.pid, flush=True)
time.sleep(600)
"""


def test_a_killed_supervisor_takes_the_server_and_a_worker_that_reads_no_pipe_with_it():
    owner = subprocess.Popen([sys.executable, "-c", SCRIPT], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        server, worker = map(int, owner.stdout.readline().split())
        assert psutil.Process(worker).ppid() == server
        owner.kill()
        owner.wait()
        wait_for(lambda: not psutil.pid_exists(server) and not psutil.pid_exists(worker), timeout=10,
                 what="the fork server and its worker to exit")
    finally:
        owner.kill()
        for pid in (server, worker) if "worker" in locals() else ():
            if psutil.pid_exists(pid):
                psutil.Process(pid).kill()
