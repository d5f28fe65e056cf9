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
]


def sftui(*args: str, timeout: float = 120, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sftui", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=kwargs.pop("cwd", ROOT), **kwargs)


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
    result = sftui("train", "gym_CartPole-v1", "-e", name, "--train-dir", str(train_dir), "--detach", *SMALL, *extra)
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


def all_gone(processes: list[psutil.Process]) -> bool:
    alive = []
    for proc in processes:
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(proc)
        except psutil.NoSuchProcess:
            pass
    return not alive
