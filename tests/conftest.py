from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.support import sftui


@pytest.fixture(scope="session")
def trained(tmp_path_factory) -> Path:
    """One short CartPole experiment with the default config and evaluation on, trained once through the whole
    process tree.

    Tests that change the folder copy it first.
    """
    train_dir = tmp_path_factory.mktemp("shared_train_dir")
    result = sftui(
        "train", "gym_CartPole-v1", "-e", "cartpole", "--train-dir", str(train_dir),
        "--set", "run.train_for_env_steps=100000", "--set", "run.save_every_sec=2", "--set", "run.seed=1",
        "--set", "run.eval_every_env_steps=40000", "--set", "run.eval_episodes=2",
        timeout=240,
    )
    folder = train_dir / "cartpole"
    assert result.returncode == 0, result.stdout + result.stderr
    (folder / "stdout.txt").write_text(result.stdout)
    assert json.loads((folder / "summary.json").read_text())["state"] == "finished"
    return folder


@pytest.fixture(scope="session", autouse=True)
def no_run_outlives_the_tests(tmp_path_factory):
    """A test that fails halfway may leave its run training; end every run started under our temp dir."""
    yield
    import psutil

    base = str(tmp_path_factory.getbasetemp())
    for proc in psutil.process_iter(["cmdline"]):
        if any(base in part for part in proc.info["cmdline"] or []) and proc.pid != os.getpid():
            try:
                proc.kill()  # its workers follow (PR_SET_PDEATHSIG), its janitor removes the socket
            except psutil.NoSuchProcess:
                pass
