"""Ctrl+C at the moments of start-up that used to go wrong: it always ends the command as a stop (130), with no
traceback, the run never marked failed, and nothing left behind. Each test sends the SIGINT from inside the
command at one exact moment (a patched function), instead of at a random time."""

from __future__ import annotations

import subprocess
import sys

import psutil

from tests.support import ROOT, SMALL, shm_entries, shm_left_behind, summary

# Runs `sftui ARGS` as the console script does, after patching one function to send this process a SIGINT first.
SCRIPT = """
import os, signal, sys
import importlib
module_name, function_name = sys.argv.pop(1).rsplit(".", 1)
module = importlib.import_module(module_name)
holder = module
*path, name = function_name.split(":")
for part in path:
    holder = getattr(holder, part)
original = getattr(holder, name)
def interrupted(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGINT)
    return original(*args, **kwargs)
setattr(holder, name, interrupted)
sys.argv[0] = "sftui"
from sftui.__main__ import main
main()
"""


def _interrupted(where: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", SCRIPT, where, *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=120)


def _children_of_this_test() -> set[int]:
    return {p.pid for p in psutil.Process().children(recursive=True)}


def test_ctrl_c_while_the_command_line_is_built_stops_training_and_any_other_command(tmp_path):
    # typer builds its click command before click catches anything: a KeyboardInterrupt there was a traceback
    shm_before, children_before = shm_entries(), _children_of_this_test()
    result = _interrupted("typer.main.get_command", "train", "gym_CartPole-v1", "-e", "x", "--train-dir",
                          str(tmp_path), *SMALL)
    assert result.returncode == 130, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert summary(tmp_path / "x").get("state") != "failed"
    assert _children_of_this_test() <= children_before and not shm_left_behind(shm_before)

    listing = _interrupted("typer.main.get_command", "ls", "--train-dir", str(tmp_path))
    assert listing.returncode == 130 and "Traceback" not in listing.stderr


def test_ctrl_c_noted_before_the_supervisor_took_it_over_stops_the_run_at_once(tmp_path):
    # Held until the supervisor's event loop handles SIGINT: it must act on the one noted meanwhile, not train on
    children_before = _children_of_this_test()
    result = _interrupted("sampler.run.supervisor.Supervisor:run", "train", "gym_CartPole-v1", "-e", "x",
                          "--train-dir", str(tmp_path), *SMALL, "--set", "run.train_for_env_steps=100000000")
    assert result.returncode in (0, 130), result.stdout + result.stderr  # a stop: 0 once the run began
    assert "Traceback" not in result.stderr + result.stdout
    assert "stopping (received SIGINT)" in result.stderr
    assert summary(tmp_path / "x")["state"] == "stopped"
    assert _children_of_this_test() <= children_before
