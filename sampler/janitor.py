"""Removes a run's socket once its supervisor is gone, even after SIGKILL.

The supervisor starts this tiny process with a pipe on its stdin and never writes to it. When the
supervisor exits for any reason the pipe closes; the janitor then unlinks the socket, but only if it
is still the same file (a new run on the same folder may have made a new one).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def start(socket_path: Path) -> subprocess.Popen:
    inode = os.stat(socket_path).st_ino
    return subprocess.Popen(
        [sys.executable, "-m", "sampler.janitor", str(socket_path), str(inode)],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )


def main(socket_path: str, inode: str) -> None:
    sys.stdin.buffer.read()  # returns at EOF: the supervisor is gone
    try:
        if os.stat(socket_path).st_ino == int(inode):
            os.unlink(socket_path)
    except FileNotFoundError:
        pass


if __name__ == "__main__":
    main(*sys.argv[1:3])
