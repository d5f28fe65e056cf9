"""Cleans up after a run once its supervisor is gone, even after SIGKILL.

The supervisor starts this tiny process with a pipe on its stdin and never writes to it. When the
supervisor exits for any reason the pipe closes. The janitor then:
- kills every process that still carries the run's token in its environment (`SFTUI_RUN`), which
  every worker inherits and passes on to whatever it starts: an env's helper processes and the game
  engines they run, which would otherwise outlive a SIGKILLed tree (an engine waiting on its network
  peer never notices its controller is gone), and removes the /dev/shm files those processes had mapped;
- unlinks the control socket, but only if it is still the same file (a new run on the same folder may
  have made a new one).
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

TOKEN_VARIABLE = "SFTUI_RUN"


def tag_environment() -> str:
    """Tags this process's environment with a fresh run token: every process started from now on carries it
    (this process itself does not: /proc shows the environment a process started with)."""
    token = secrets.token_hex(8)
    os.environ[TOKEN_VARIABLE] = token
    return token


def start(socket_path: Path, token: str) -> subprocess.Popen:
    """Starts the janitor of the run tagged with `token`; the janitor itself does not carry it."""
    inode = os.stat(socket_path).st_ino
    env = {k: v for k, v in os.environ.items() if k != TOKEN_VARIABLE}
    return subprocess.Popen(
        [sys.executable, "-m", "sampler.run.janitor", str(socket_path), str(inode), token],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        env=env,
    )


def _tagged(token: str) -> list[int]:
    tag = f"{TOKEN_VARIABLE}={token}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if tag in f.read().split(b"\0"):
                    found.append(int(entry))
        except OSError:
            continue  # gone, or not ours
    return found


def _shared_memory_files(pid: int) -> set[str]:
    try:
        with open(f"/proc/{pid}/maps") as f:
            fields = [line.split(None, 5) for line in f]
    except OSError:
        return set()
    return {f[5].strip() for f in fields if len(f) == 6 and f[5].startswith("/dev/shm/")}


def sweep(token: str, seconds: float = 5.0) -> list[int]:
    """Kills the run's leftover processes (again, while new ones appear) and removes their shared memory."""
    if not os.path.isdir("/proc"):
        return []
    killed: list[int] = []
    files: set[str] = set()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        pids = _tagged(token)
        if not pids:
            break
        for pid in pids:
            files |= _shared_memory_files(pid)
            try:
                os.kill(pid, 9)
                killed.append(pid)
            except OSError:
                pass
        time.sleep(0.1)
    for path in files:
        Path(path.removesuffix(" (deleted)")).unlink(missing_ok=True)
    return killed


# Shared-memory files an env's engine makes (ViZDoom's queues and screen buffers). An engine that exits by
# itself after its controller was killed leaves them behind, before the sweep can read its maps.
ENGINE_SHM_PREFIXES = ("ViZDoom",)
ORPHAN_WAIT_SEC = 10.0


def remove_orphaned_engine_files(since: float) -> tuple[list[str], int]:
    """Removes the engine shared-memory files made since `since` (the run's start) that no live process maps;
    returns their names and how many such files a live process still maps."""
    folder = Path("/dev/shm")
    if not folder.is_dir() or not os.path.isdir("/proc"):
        return [], 0
    candidates = [f for f in folder.iterdir() if f.name.startswith(ENGINE_SHM_PREFIXES)]
    try:
        candidates = [f for f in candidates if f.stat().st_mtime >= since and f.stat().st_uid == os.getuid()]
    except FileNotFoundError:
        candidates = [f for f in candidates if f.exists()]
    if not candidates:
        return [], 0
    mapped: set[str] = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            mapped |= _shared_memory_files(int(entry))
    removed = []
    for f in candidates:
        if str(f) not in mapped:
            f.unlink(missing_ok=True)
            removed.append(f.name)
    return removed, len(candidates) - len(removed)


def main(socket_path: str, inode: str, token: str = "") -> None:
    started = time.time() - 1.0
    sys.stdin.buffer.read()  # returns at EOF: the supervisor is gone
    if token:
        sweep(token)
        # An engine may still be on its way out, its files mapped: a doom_duel run killed in CI left two of
        # ViZDoom's queues behind when this looked only once. Look again for a few seconds.
        deadline = time.monotonic() + ORPHAN_WAIT_SEC
        while remove_orphaned_engine_files(started)[1] and time.monotonic() < deadline:
            time.sleep(0.2)
    try:
        if os.stat(socket_path).st_ino == int(inode):
            os.unlink(socket_path)
    except FileNotFoundError:
        pass


if __name__ == "__main__":
    main(*sys.argv[1:4])
