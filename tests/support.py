"""Helpers for tests that drive real runs through the `sftui` command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
SMALL = [
    "--set", "sampler.num_workers=2",
    "--set", "sampler.num_envs_per_worker=8",
    "--set", "model.encoder_mlp_layers=[64,64]",
    "--set", "appo.batch_size=256",
    "--set", "run.report_interval_sec=1",
    "--set", "run.status_every_sec=0.5",  # summary.json, which the tests poll, four times as often
]


def sftui(*args: str, timeout: float = 120, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sftui", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=kwargs.pop("cwd", ROOT), **kwargs)


def cli(*args: str) -> subprocess.CompletedProcess:
    """`sftui ARGS` run in this process: `sftui.cli.main`, as the console script runs it, with its stdout, stderr
    and exit code. For commands that start no run (refusals, status, ls, the control commands): it spares a
    process start and its imports, about 2 s wherever torch loads. Warnings print as in a fresh process."""
    import contextlib
    import io
    import warnings

    from sftui.cli import main

    out, err = io.StringIO(), io.StringIO()
    saved = sys.argv, sys.excepthook, os.environ.get("SFTUI_TRAIN_DIR")
    sys.argv = ["sftui", *args]
    code: int | str | None = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings():
            warnings.resetwarnings()  # Python's defaults, not pytest's capture
            for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning):
                warnings.simplefilter("ignore", category)
            main()
    except SystemExit as e:
        code = e.code
    finally:
        sys.argv, sys.excepthook = saved[:2]
        if saved[2] is None:
            os.environ.pop("SFTUI_TRAIN_DIR", None)
        else:
            os.environ["SFTUI_TRAIN_DIR"] = saved[2]
    if not isinstance(code, int):
        code = 0 if code is None else 1
    return subprocess.CompletedProcess(["sftui", *args], code, out.getvalue(), err.getvalue())


def popen(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "sftui", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, cwd=ROOT, **kwargs)


def summary(folder: Path) -> dict:
    try:
        return json.loads((folder / "summary.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def wait_for(predicate, timeout: float = 60.0, interval: float = 0.2, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


def start_detached(train_dir: Path, name: str, *extra: str) -> Path:
    """`sftui train --detach`, in this process (`cli`): the supervisor it starts is a process of its own."""
    result = cli("train", "gym_CartPole-v1", "-e", name, "--train-dir", str(train_dir), "--detach", *SMALL, *extra)
    assert result.returncode == 0, result.stderr + result.stdout
    folder = train_dir / name
    assert result.stdout.strip().endswith(str(folder))
    return folder


def supervisor_pid(folder: Path) -> int:
    return json.loads((folder / "run.json").read_text())["pid"]


def process_tree(pid: int) -> list[psutil.Process]:
    parent = psutil.Process(pid)
    return [parent, *parent.children(recursive=True)]


def shm_entries() -> set[str]:
    return set(os.listdir("/dev/shm")) if os.path.isdir("/dev/shm") else set()


def _mapped_shm_inodes() -> set[int]:
    """Inodes of the /dev/shm files some other live process maps (this process's count as left behind). By
    inode: glibc's sem_open maps a temporary name, since deleted, that it then links under the real one."""
    mapped = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/maps") as f:
                fields = [line.split(None, 5) for line in f]
        except OSError:
            continue  # gone, or not readable
        mapped |= {int(f[4]) for f in fields if len(f) == 6 and f[5].startswith("/dev/shm/")}
    return mapped


def shm_left_behind(before: set[str]) -> set[str]:
    """The /dev/shm files made since `before` that no other live process maps: what a finished run (or env)
    left behind.

    Call it once the run's processes are gone. A file another live process still maps belongs to another program
    on this machine: other runs of sftui here (other checkouts, other engineers) make and remove
    multiprocessing's sem.mp-* files all the time, and a plain before/after difference counted those."""
    new = shm_entries() - before
    if not new:
        return new
    mapped = _mapped_shm_inodes()
    left = set()
    for name in new:
        try:
            if os.stat(f"/dev/shm/{name}").st_ino not in mapped:
                left.add(name)
        except FileNotFoundError:
            pass  # removed meanwhile
    return left


def all_gone(processes: list[psutil.Process]) -> bool:
    alive = []
    for proc in processes:
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(proc)
        except psutil.NoSuchProcess:
            pass
    return not alive


def report_parent_and_token(queue) -> None:
    """A worker body for the fork-server tests: who its parent is and which run token it carries."""
    from sampler.run.janitor import TOKEN_VARIABLE

    with open("/proc/self/environ", "rb") as f:
        environ = dict(item.split(b"=", 1) for item in f.read().split(b"\0") if b"=" in item)
    queue.put((os.getppid(), environ.get(TOKEN_VARIABLE.encode(), b"").decode()))


def sleep_as_a_worker() -> None:
    """A worker that never reads a pipe: only PR_SET_PDEATHSIG can end it when the supervisor dies."""
    from sampler.run.workers.base import die_with_parent

    die_with_parent()
    while True:
        time.sleep(1)
