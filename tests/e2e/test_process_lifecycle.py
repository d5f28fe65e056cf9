"""A run's processes die with it: signals, SIGKILL of the supervisor, crashed workers."""

from __future__ import annotations

import json
import os
import signal

import pytest

from sampler.experiment import checkpoints
from tests.support import (
    SMALL,
    all_gone,
    popen,
    process_tree,
    shm_entries,
    shm_left_behind,
    start_detached,
    summary,
    supervisor_pid,
    wait_for,
)


def _training(folder) -> bool:
    return summary(folder).get("state") == "running" and summary(folder).get("env_frames", 0) > 0


@pytest.mark.parametrize("inference", ["local", "process"])
def test_sigterm_stops_saves_and_leaves_nothing_behind(tmp_path, inference):
    shm_before = shm_entries()
    proc = popen("train", "gym_CartPole-v1", "-e", "term", "--train-dir", str(tmp_path), *SMALL,
                 "--set", f"sampler.inference={inference}")
    folder = tmp_path / "term"
    wait_for(lambda: (folder / "run.json").exists() and _training(folder), what="the run to train")
    tree = process_tree(proc.pid)
    socket_path = json.loads((folder / "run.json").read_text())["socket"]
    # supervisor, janitor, learner, two rollout workers, and the inference worker if asked for
    assert len(tree) >= (6 if inference == "process" else 5)

    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    wait_for(lambda: all_gone(tree), timeout=15, what="every worker to exit")
    assert summary(folder)["state"] == "stopped"
    assert checkpoints.latest_checkpoint(folder, 0) is not None
    assert not os.path.exists(socket_path)
    assert not shm_left_behind(shm_before)


def test_ctrl_c_stops_with_a_checkpoint_and_the_run_resumes(tmp_path):
    proc = popen("train", "gym_CartPole-v1", "-e", "intr", "--train-dir", str(tmp_path), *SMALL)
    folder = tmp_path / "intr"
    wait_for(lambda: (folder / "run.json").exists() and _training(folder), what="the run to train")
    tree = process_tree(proc.pid)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert "Traceback" not in out
    wait_for(lambda: all_gone(tree), timeout=15, what="every worker to exit")
    stopped_at = summary(folder)["env_frames"]
    assert summary(folder)["state"] == "stopped" and stopped_at > 0

    proc = popen("train", "gym_CartPole-v1", "-e", "intr", "--train-dir", str(tmp_path),
                 "--set", f"run.train_for_env_steps={stopped_at + 5000}")
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    assert "resuming" in out
    assert summary(folder)["state"] == "finished"


def test_a_crashed_rollout_worker_is_restarted_and_sigkill_of_the_supervisor_takes_the_whole_tree_down(tmp_path):
    # One run for both: a crashed worker is restarted and reported, training goes on; then the supervisor's
    # SIGKILL takes down every process of the tree, the restarted worker included.
    shm_before = shm_entries()
    folder = start_detached(tmp_path, "crash")
    wait_for(lambda: _training(folder), what="the run to train")
    rollout = next(w for w in summary(folder)["workers"] if w["name"] == "rollout_0")
    os.kill(rollout["pid"], signal.SIGKILL)

    def restarted():
        workers = {w["name"]: w for w in summary(folder)["workers"]}
        return workers["rollout_0"]["restarts"] == 1 and workers["rollout_0"]["state"] == "running"

    wait_for(restarted, timeout=30, what="rollout_0 to restart")
    status = summary(folder)
    events = [e["message"] for e in status["events"]]
    assert any("rollout_0 died: killed by SIGKILL" in m for m in events), events
    assert "killed by SIGKILL" in (folder / "log.txt").read_text()
    frames = status["env_frames"]
    wait_for(lambda: summary(folder)["env_frames"] > frames + 5000, timeout=30, what="training to go on")

    pid = supervisor_pid(folder)
    tree = process_tree(pid)
    socket_path = json.loads((folder / "run.json").read_text())["socket"]
    assert len(tree) >= 5  # supervisor, janitor, learner, two rollout workers
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: all_gone(tree), timeout=15, what="every worker to exit after SIGKILL")
    assert not shm_left_behind(shm_before)
    assert not os.path.exists(socket_path)
    from sampler.experiment.folders import derived_state

    assert derived_state(folder)[0] == "crashed"


def test_a_dead_learner_fails_the_run_with_the_reason(tmp_path):
    proc = popen("train", "gym_CartPole-v1", "-e", "dead", "--train-dir", str(tmp_path), *SMALL)
    folder = tmp_path / "dead"
    wait_for(lambda: (folder / "run.json").exists() and _training(folder), what="the run to train")
    tree = process_tree(proc.pid)
    learner = next(w for w in summary(folder)["workers"] if w["kind"] == "learner")
    os.kill(learner["pid"], signal.SIGKILL)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1, out
    wait_for(lambda: all_gone(tree), timeout=15, what="every worker to exit")
    final = summary(folder)
    assert final["state"] == "failed"
    assert "learner_p0 died: killed by SIGKILL" in final["error"]
