"""Process-tree hygiene for the supervisor: adopting orphans, killing trees, describing deaths."""

from __future__ import annotations

import ctypes
import signal
from multiprocessing import resource_tracker
from pathlib import Path

import psutil

PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> None:
    """Orphaned descendants (an engine whose worker was killed) get re-parented to us, so we can end them."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1)
    except OSError:
        pass


def describe_exit(code: int | None) -> str:
    if code is None:
        return "unknown"
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"


def kill_adopted_orphans(ours: set[int]) -> list[tuple[int, str]]:
    """Kills every child of this process that is not in `ours` (nor multiprocessing's resource tracker)."""
    keep = ours | {getattr(resource_tracker._resource_tracker, "_pid", None)}
    killed = []
    for child in psutil.Process().children():
        if child.pid not in keep:
            try:
                killed.append((child.pid, child.name()))
            except psutil.NoSuchProcess:
                continue
            kill_tree(child.pid)
    return killed


def kill_tree(pid: int) -> None:
    """Kills a process and its descendants, then removes the shared-memory files they had mapped.

    An engine killed this way cannot clean up after itself (vizdoom keeps its queues in /dev/shm).
    """
    try:
        parent = psutil.Process(pid)
        procs = [*parent.children(recursive=True), parent]
    except psutil.NoSuchProcess:
        return
    shm_files = set()
    for proc in procs:
        try:
            shm_files |= {m.path for m in proc.memory_maps() if m.path.startswith("/dev/shm/")}
            proc.kill()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    psutil.wait_procs(procs, timeout=5)  # reaps them: adopted orphans are our children now
    for path in shm_files:
        Path(path).unlink(missing_ok=True)
