"""Hang forensics: every worker can write its Python stack on demand, and a stalled one is asked to.

Each worker arms `faulthandler` on SIGUSR2 at start-up, writing to `stacks/<worker>-<pid>.txt` in the
experiment folder; that file existing is what says the process may be sent the signal (unarmed, SIGUSR2 would
end it). faulthandler writes from its C signal handler, so a worker stuck anywhere (a blocking call, a
sleeping env, a loop that never returns to its pipe) still answers; only a stopped process (SIGSTOP) cannot
until it is continued. To take a dump, truncate the file and send the signal: the file is opened for
appending, so the new dump lands at its start. The supervisor does that when a worker stalls (and keeps it as
`stacks/<worker>.stalled.txt`); `sftui stacks` does it on demand.
"""

from __future__ import annotations

import faulthandler
import os
import re
import signal
import time
from pathlib import Path

DUMP_SIGNAL = signal.SIGUSR2
STALLED_SUFFIX = ".stalled.txt"
_FRAME = re.compile(r'^\s+File "(?P<file>[^"]+)", line (?P<line>\d+) in (?P<func>\S+)')
_armed_files: list = []  # kept open for faulthandler, for the life of the process


def dump_path(stacks_dir: str | Path, worker: str, pid: int) -> Path:
    return Path(stacks_dir) / f"{worker}-{pid}.txt"


def stalled_path(stacks_dir: str | Path, worker: str) -> Path:
    return Path(stacks_dir) / f"{worker}{STALLED_SUFFIX}"


def arm(stacks_dir: str, worker: str) -> None:
    """In a worker, at start-up: SIGUSR2 writes every thread's stack to stacks/<worker>-<pid>.txt (a dead
    predecessor's file goes)."""
    if not stacks_dir:
        return
    directory = Path(stacks_dir)
    directory.mkdir(parents=True, exist_ok=True)
    for old in directory.glob(f"{worker}-*.txt"):
        old.unlink(missing_ok=True)
    path = dump_path(directory, worker, os.getpid())
    f = open(path, "a")  # noqa: SIM115 - faulthandler writes to it for as long as the process lives
    _armed_files.append(f)
    faulthandler.register(DUMP_SIGNAL, file=f, all_threads=True, chain=False)


def request(pid: int, path: Path, timeout: float = 2.0) -> str | None:
    """Asks process `pid` for its stack and returns the dump, or None where none came within `timeout` (a
    stopped process, one that never armed, one that is gone)."""
    if not path.exists():
        return None  # not armed (yet): the signal would end it
    try:
        with open(path, "r+") as f:
            f.truncate(0)
        os.kill(pid, DUMP_SIGNAL)
    except (OSError, ProcessLookupError):
        return None
    deadline = time.monotonic() + timeout
    size = -1
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = path.stat().st_size if path.exists() else 0
        if now and now == size:  # written, and no longer growing
            return path.read_text(errors="replace")
        size = now
    return path.read_text(errors="replace") or None if path.exists() else None


def innermost(dump: str) -> str | None:
    """The function the dumping thread (the worker's main thread) was in, as 'func (file:line)'."""
    lines = dump.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("Current thread")), None)
    for line in lines[start + 1 if start is not None else 0:]:
        match = _FRAME.match(line)
        if match:
            return f"{match['func']} ({_short(match['file'])}:{match['line']})"
    return None


def _short(file: str) -> str:
    parts = Path(file).parts
    return str(Path(*parts[-2:])) if len(parts) >= 2 else file


def describe(folder: Path, worker: dict, live: bool) -> str:
    """What `sftui stacks` and the dashboard show for one worker: its stack now (asked for, where the run is live
    and the worker alive), then the one kept at its last stall."""
    directory, name, pid = folder / "stacks", worker["name"], worker.get("pid")
    parts = []
    if live and pid and worker.get("state") not in ("dead", "exited"):
        dump = request(int(pid), dump_path(directory, name, int(pid)))
        parts.append(f"== {name} (pid {pid}, {worker.get('state')}) ==")
        parts.append(dump.rstrip() if dump else "no answer (a stopped process answers once continued)")
    kept = stalled_path(directory, name)
    if kept.exists():
        parts.append(f"== {name}: its stack when it last stalled ({kept.relative_to(folder)}) ==")
        parts.append(kept.read_text(errors="replace").rstrip())
    return "\n".join(parts)
