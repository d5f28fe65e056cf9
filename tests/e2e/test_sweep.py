"""Sweeps on local processes: one at a time when asked, skipped when finished, resumed when interrupted."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

from sampler.experiment import derived_state
from tests.support import ROOT, sftui, wait_for

SWEEP = """
env = "gym_CartPole-v1"
[set]
"run.train_for_env_steps" = 24000
"sampler.num_workers" = 1
"sampler.num_envs_per_worker" = 8
"model.encoder_mlp_layers" = [32]
"appo.batch_size" = 256
[grid]
"run.seed" = [0, 1]
"""


def test_a_sweep_runs_one_at_a_time_is_ranked_and_resumes_after_ctrl_c(tmp_path):
    path = tmp_path / "pair.toml"
    path.write_text(SWEEP)
    train_dir = tmp_path / "td"
    runner = subprocess.Popen([sys.executable, "-m", "sftui", "sweep", "run", str(path), "--train-dir", str(train_dir),
                               "--max-parallel", "1"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    first, second = train_dir / "pair" / "seed_0", train_dir / "pair" / "seed_1"
    # the second starts only once the first is done; then Ctrl+C stops it half-way
    wait_for(lambda: derived_state(second)[0] == "running" if (second / "cfg.json").exists() else False, 120)
    assert derived_state(first)[0] == "finished"
    first_done = json.loads((first / "summary.json").read_text())["heartbeat_at"]
    assert json.loads((second / "summary.json").read_text())["started_at"] >= first_done - 1.0
    runner.send_signal(signal.SIGINT)
    out, err = runner.communicate(timeout=120)
    assert runner.returncode == 130, out + err
    assert "seed_1: stopping" in out and derived_state(second)[0] == "stopped"
    assert json.loads((train_dir / "pair" / "sweep.json").read_text())["experiments"][1]["name"] == "seed_1"

    result = sftui("sweep", "run", str(path), "--train-dir", str(train_dir), timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "seed_0: finished already, skipped" in result.stdout
    assert "seed_1: resumed" in result.stdout and "sweep pair: 2 finished" in result.stdout
    resumed = json.loads((second / "summary.json").read_text())
    assert resumed["state"] == "finished" and resumed["env_frames"] >= 24000

    status = sftui("sweep", "status", str(path), "--train-dir", str(train_dir)).stdout.splitlines()
    assert status[0] == "sweep pair (2 experiments, best final return first)"
    rows = [line.split() for line in status[2:]]
    assert {r[0] for r in rows} == {"seed_0", "seed_1"} and all(r[1] == "finished" for r in rows)
    last = [float(r[3]) for r in rows]
    assert last == sorted(last, reverse=True)  # ranked by final return
