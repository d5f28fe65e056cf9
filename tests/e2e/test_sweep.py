"""Sweeps on local processes: one at a time when asked, skipped when finished, resumed when interrupted."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import pytest

from sampler.experiment.folders import derived_state
from tests.support import ROOT, cli, sftui, wait_for

SWEEP = """
env = "gym_CartPole-v1"
[set]
"sampler.num_workers" = 1
"sampler.num_envs_per_worker" = 8
"model.encoder_mlp_layers" = [32]
"appo.batch_size" = 256
"run.status_every_sec" = 0.5
[[linked]]
"run.seed" = [0, 1]
"run.train_for_env_steps" = [8000, 40000]
"""


def test_a_sweep_runs_one_at_a_time_is_ranked_and_resumes_after_ctrl_c(tmp_path):
    path = tmp_path / "pair.toml"
    path.write_text(SWEEP)
    train_dir = tmp_path / "td"
    runner = subprocess.Popen([sys.executable, "-m", "sftui", "sweep", "run", str(path), "--train-dir", str(train_dir),
                               "--max-parallel", "1"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    first = train_dir / "pair" / "seed_0__train_for_env_steps_8000"
    second = train_dir / "pair" / "seed_1__train_for_env_steps_40000"
    # the second starts only once the first is done; then Ctrl+C stops it half-way
    wait_for(lambda: derived_state(second)[0] == "running" if (second / "cfg.json").exists() else False, 120)
    assert derived_state(first)[0] == "finished"
    first_done = json.loads((first / "summary.json").read_text())["heartbeat_at"]
    assert json.loads((second / "summary.json").read_text())["started_at"] >= first_done - 1.0
    runner.send_signal(signal.SIGINT)
    out, err = runner.communicate(timeout=120)
    assert runner.returncode == 130, out + err
    assert f"{second.name}: stopping" in out and derived_state(second)[0] == "stopped"
    assert json.loads((train_dir / "pair" / "sweep.json").read_text())["experiments"][1]["name"] == second.name

    result = cli("sweep", "run", str(path), "--train-dir", str(train_dir))  # in this process; runs start their own
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{first.name}: finished already, skipped" in result.stdout
    assert f"{second.name}: resumed" in result.stdout and "sweep pair: 2 finished" in result.stdout
    resumed = json.loads((second / "summary.json").read_text())
    assert resumed["state"] == "finished" and resumed["env_frames"] >= 40000

    status = cli("sweep", "status", str(path), "--train-dir", str(train_dir)).stdout.splitlines()
    assert status[0] == "sweep pair (2 experiments, best final return first)"
    rows = [line.split() for line in status[2:]]
    assert {r[0] for r in rows} == {first.name, second.name} and all(r[1] == "finished" for r in rows)
    last = [float(r[3]) for r in rows]
    assert last == sorted(last, reverse=True)  # ranked by final return


@pytest.mark.backend  # a Ray instance takes about 20 s to start and stop: kept out of the default run
def test_a_sweep_runs_on_a_local_ray_instance_and_leaves_no_ray_process(tmp_path):
    import pytest

    pytest.importorskip("ray", reason="Ray is not installed: pip install -c constraints.txt -e '.[ray]'")
    path = tmp_path / "onray.toml"
    path.write_text(SWEEP.replace("[8000, 40000]", "[16000, 16000]"))
    result = sftui("sweep", "run", str(path), "--train-dir", str(tmp_path / "td"), "--backend", "ray", timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "ray: a local Ray instance, 2 CPUs" in out
    first, second = "seed_0__train_for_env_steps_16000", "seed_1__train_for_env_steps_16000"
    assert f"{first}: submitted (2 CPUs)" in out and f"{second}: finished at" in out
    assert "sweep onray: 2 finished" in out
    left = subprocess.run(["pgrep", "-f", "raylet|gcs_server"], capture_output=True, text=True).stdout.split()
    assert not left, f"Ray processes left behind: {left}"


def test_an_unreachable_ray_address_is_one_clear_line(tmp_path):
    import pytest

    pytest.importorskip("ray", reason="Ray is not installed: pip install -c constraints.txt -e '.[ray]'")
    path = tmp_path / "nowhere.toml"
    path.write_text(SWEEP)
    result = sftui("sweep", "run", str(path), "--train-dir", str(tmp_path / "td"), "--backend", "ray",
                   "--ray-address", "127.0.0.1:1", timeout=120)
    assert result.returncode != 0
    assert "--ray-address 127.0.0.1:1: cannot connect" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "td").exists()
