"""Healing paths through the whole process tree: envs that raise or hang, weights that turn non-finite."""

from __future__ import annotations

import os
import signal

import torch

from sampler.experiment import checkpoints
from sampler.faults import VARIABLE
from tests.support import SMALL, cli, popen, sftui, summary, wait_for


def test_an_env_raising_now_and_then_is_rebuilt_alone_and_non_finite_weights_are_rolled_back(tmp_path):
    # One run for both healings: an env that raises in 1% of its steps, and a learner whose weights turn NaN
    # after its 4th update (injected); training goes on through both, and nothing non-finite is ever saved.
    result = sftui("train", "gym_FlakyCartPole-v1", "-e", "flaky", "--train-dir", str(tmp_path), *SMALL,
                   "--set", "run.imports=[\"tests.faulty_envs\"]", "--set", "run.train_for_env_steps=60000",
                   "--set", "run.save_every_sec=1", env={**os.environ, VARIABLE: "learner_nan=4"})
    assert result.returncode == 0, result.stdout + result.stderr
    folder = tmp_path / "flaky"
    final = summary(folder)
    assert final["state"] == "finished" and final["env_frames"] >= 60000
    rollouts = [w for w in final["workers"] if w["kind"] == "rollout"]
    assert sum(w["env_restarts"] for w in rollouts) > 100  # about 1 in 100 of 60k steps
    assert all(w["restarts"] == 0 for w in rollouts)  # no worker died for it
    assert final["policies"][0]["episode_return"] > 30  # it learns: cut episodes are not counted as finished
    log = (folder / "log.txt").read_text()
    assert "env rebuilt after it raised" in log and "RuntimeError: injected env failure" in log
    assert "non-finite weights after an update; rolled back to the state of" in log, log
    saved = checkpoints.list_checkpoints(folder, 0)
    assert saved and checkpoints.load(saved[-1])["env_frames"] >= 60000
    for path in saved:
        model = checkpoints.load(path)["learner"]["model"]
        assert all(bool(torch.isfinite(t).all()) for t in model.values() if t.is_floating_point())


def test_an_env_that_keeps_failing_fails_its_worker_with_its_own_error(tmp_path):
    result = sftui("train", "gym_BrokenCartPole-v1", "-e", "broken", "--train-dir", str(tmp_path), *SMALL,
                   "--set", "run.imports=[\"tests.faulty_envs\"]", "--set", "run.train_for_env_steps=60000",
                   "--set", "run.max_worker_restarts=1")
    assert result.returncode == 1
    final = summary(tmp_path / "broken")
    assert final["state"] == "failed"
    assert "failed 5 times in a row" in final["error"] and "RuntimeError: injected env failure" in final["error"]


def test_a_worker_hung_in_an_env_is_dumped_shown_by_sftui_stacks_then_killed_and_restarted(tmp_path):
    folder = tmp_path / "hang"
    proc = popen("train", "gym_HangingCartPole-v1", "-e", "hang", "--train-dir", str(tmp_path), *SMALL,
                 "--set", "run.imports=[\"tests.faulty_envs\"]", "--set", "run.train_for_env_steps=10000000",
                 "--set", "run.stall_timeout_sec=3", "--set", "run.kill_stalled_after_sec=6",
                 env={**os.environ, "SFTUI_HANG_MARKER": str(tmp_path)})

    def stalled_event():
        return next((e["message"] for e in summary(folder).get("events", []) if e["kind"] == "worker_stalled"), None)

    wait_for(stalled_event, timeout=60, what="the hung worker's stall event")
    message = stalled_event()
    assert "stuck in hang_in_step (tests/faulty_envs.py:" in message, message
    name = message.split()[0]
    assert "hang_in_step" in (folder / "stacks" / f"{name}.stalled.txt").read_text()

    shown = cli("stacks", "hang", name, "--train-dir", str(tmp_path))  # on demand, while it hangs
    assert shown.returncode == 0, shown.stderr
    assert f"== {name} (pid" in shown.stdout and "in hang_in_step" in shown.stdout
    assert "its stack when it last stalled" in shown.stdout
    everyone = cli("stacks", "hang", "--train-dir", str(tmp_path))
    assert "== learner_p0 (pid" in everyone.stdout and f"== {name} (pid" in everyone.stdout
    refused = cli("stacks", "hang", "rollout_9", "--train-dir", str(tmp_path))
    assert refused.returncode != 0 and "has no worker rollout_9" in refused.stderr

    def restarted():
        return next(w for w in summary(folder)["workers"] if w["name"] == name)["restarts"] == 1

    wait_for(restarted, timeout=30, what=f"{name} to be killed at 6 s silent and restarted")
    frames = summary(folder)["env_frames"]
    wait_for(lambda: summary(folder)["env_frames"] > frames + 5000, timeout=30, what="training to go on")
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    worker = next(w for w in summary(folder)["workers"] if w["name"] == name)
    assert "stalled for" in worker["last_error"] and "killed" in worker["last_error"]
