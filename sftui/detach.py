"""`--detach`: start the supervisor in its own session and return once the run reports `running`."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import typer

from sampler.experiment.folders import read_json

START_TIMEOUT_SEC = 300.0


def start_detached(folder: Path) -> int:
    with open(folder / "log.txt", "a") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "sftui", "supervise", str(folder)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True,
        )
    deadline = time.monotonic() + START_TIMEOUT_SEC
    while time.monotonic() < deadline:
        summary = read_json(folder / "summary.json") or {}
        if summary.get("state") in ("running", "paused"):
            typer.echo(str(folder))
            return 0
        code = process.poll()
        if code is not None:
            typer.echo(f"sftui: the run failed to start: {summary.get('error') or _last_line(folder)}", err=True)
            return 1
        time.sleep(0.2)
    typer.echo(f"sftui: the run did not start within {START_TIMEOUT_SEC:.0f} s; see {folder / 'log.txt'}", err=True)
    return 1


def _last_line(folder: Path) -> str:
    lines = (folder / "log.txt").read_text(errors="replace").strip().splitlines()
    return lines[-1] if lines else "no log output"
