"""A run's processes die with it: signals, SIGKILL of the supervisor, crashed workers.

Each test ends one run in one way; where two facts can be read off one run, one test checks both (a run start
costs about 4.5 s here, most of it the fork server importing torch while the CLI prepares)."""

from __future__ import annotations

import json
import os
import signal

from sampler.experiment import checkpoints
from sampler.status import RunStatus
from tests.support import (
    SMALL,
    all_gone,
    popen,
    process_tree,
    sftui,
    shm_entries,
    shm_left_behind,
    start_detached,
    summary,
    supervisor_pid,
    wait_for,
)


def _training(folder) -> bool:
    return summary(folder).get("state") == "running" and summary(folder).get("env_frames", 0) > 0


def _stop_with(proc, folder, sig: int, processes: int, shm_before: set[str]) -> str:
    """Sends `sig` to a training `sftui train`: it exits 0 having saved a checkpoint, and leaves no process, shared
    memory or socket behind. Returns its output."""
    wait_for(lambda: (folder / "run.json").exists() and _training(folder), what="the run to train")
    tree = process_tree(proc.pid)
    socket_path = json.loads((folder / "run.json").read_text())["socket"]
    assert len(tree) >= processes
    saved_before = checkpoints.latest_checkpoint(folder, 0)

    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert "Traceback" not in out
    wait_for(lambda: all_gone(tree), timeout=15, what="every worker to exit")
    assert summary(folder)["state"] == "stopped" and summary(folder)["env_frames"] > 0
    saved = checkpoints.latest_checkpoint(folder, 0)
    assert saved is not None and saved != saved_before
    assert not os.path.exists(socket_path)
    assert not shm_left_behind(shm_before)
    return out


def test_two_policies_train_with_inference_processes_dead_workers_come_back_then_the_budget_fails_the_run(
        tmp_path):
    # One run for what were five tests: two policies, each with its learner and inference process, each train on
    # their own agents; a learner dies and is restarted, an inference worker dies and is restarted; a second death
    # of that inference worker, past its budget, fails the run with the reason, and the whole tree (eight
    # processes) exits, leaving no shared memory or socket. SIGTERM and Ctrl+C: the test below.
    shm_before = shm_entries()
    folder = tmp_path / "two"
    proc = popen("train", "gym_CartPole-v1", "-e", "two", "--train-dir", str(tmp_path), *SMALL,
                 "--set", "sampler.num_policies=2", "--set", "sampler.inference=process",
                 "--set", "run.max_worker_restarts=1",
                 "--set", "model.encoder_mlp_layers=[32]")

    def both_trained() -> bool:
        policies = summary(folder).get("policies", [])
        return len(policies) == 2 and all(p["version"] > 0 and p["env_frames"] > 5000 and p["episodes"] > 0
                                          for p in policies)

    wait_for(both_trained, timeout=120, what="both policies to train")
    trained = RunStatus.from_dict(summary(folder))
    assert [p.policy_id for p in trained.policies] == [0, 1]
    assert trained.env_frames == sum(p.env_frames for p in trained.policies)
    assert {w.name for w in trained.workers} >= {"learner_p0", "learner_p1", "inference_p0_0", "inference_p1_0"}

    # a killed learner is restarted from its snapshot in shared memory (at most 10 s old), and trains on
    learner = next(w for w in trained.workers if w.name == "learner_p1")
    frames = trained.policies[1].env_frames
    os.kill(learner.pid, signal.SIGKILL)

    def learner_back():
        status = summary(folder)
        worker = next(w for w in status["workers"] if w["name"] == "learner_p1")
        return worker["restarts"] == 1 and status["policies"][1]["env_frames"] > frames + 5000

    wait_for(learner_back, timeout=60, what="learner_p1 to restart and train on")
    log = (folder / "log.txt").read_text()
    assert "learner_p1: restarted from its snapshot of" in log, log

    # a killed inference worker is restarted too, and the actions it never answered are asked for again
    def inference(name: str):
        return next(w for w in RunStatus.from_dict(summary(folder)).workers if w.name == name)

    frames = summary(folder)["policies"][1]["env_frames"]
    os.kill(inference("inference_p1_0").pid, signal.SIGKILL)
    wait_for(lambda: inference("inference_p1_0").restarts == 1 and inference("inference_p1_0").state == "running"
             and summary(folder)["policies"][1]["env_frames"] > frames + 5000, timeout=60,
             what="inference_p1_0 to restart and policy 1 to train on")

    # past its restart budget (1 an hour here), a death fails the run with the reason; the whole tree exits
    tree = process_tree(proc.pid)
    socket_path = json.loads((folder / "run.json").read_text())["socket"]
    assert len(tree) >= 8  # supervisor, janitor, two learners, two inference workers, two rollout workers
    os.kill(inference("inference_p1_0").pid, signal.SIGKILL)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1, out
    wait_for(lambda: all_gone(tree), timeout=15, what="every worker to exit")
    final = summary(folder)
    assert final["state"] == "failed"
    assert "inference_p1_0 died: killed by SIGKILL (its 1 restarts allowed within an hour were used)" in final["error"]
    assert not os.path.exists(socket_path)
    assert not shm_left_behind(shm_before)


def test_sigterm_stops_saves_and_leaves_nothing_behind_then_the_resumed_run_stops_on_ctrl_c(tmp_path):
    # One experiment for both signals, with the rollout workers acting themselves: SIGTERM stops it, it resumes
    # from that checkpoint, and Ctrl+C (SIGINT) stops the resumed run the same way.
    shm_before = shm_entries()
    folder = tmp_path / "term"
    proc = popen("train", "gym_CartPole-v1", "-e", "term", "--train-dir", str(tmp_path), *SMALL,
                 "--set", "sampler.inference=local")
    _stop_with(proc, folder, signal.SIGTERM, 5, shm_before)  # supervisor, janitor, learner, two rollout workers
    stopped_at = summary(folder)["env_frames"]

    proc = popen("train", "gym_CartPole-v1", "-e", "term", "--train-dir", str(tmp_path))
    wait_for(lambda: summary(folder).get("env_frames", 0) > stopped_at, what="the resumed run to train on")
    out = _stop_with(proc, folder, signal.SIGINT, 5, shm_before)
    assert "resuming" in out


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
        # (its partial blocks, dropped, are counted in "discarded": none when it was waiting for free buffers)
        return workers["rollout_0"]["restarts"] == 1 and workers["rollout_0"]["state"] == "running"

    wait_for(restarted, timeout=60, what="rollout_0 to restart")
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

    state, seen = derived_state(folder)
    assert state == "crashed" and all(w["state"] == "dead" for w in seen["workers"])  # not their last word

    # the same command resumes it, and says how far back its checkpoint was (none was saved: from 0)
    reached = summary(folder)["env_frames"]
    result = sftui("train", "gym_CartPole-v1", "-e", "crash", "--train-dir", str(tmp_path), *SMALL,
                   "--set", "run.train_for_env_steps=10000")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"the last run reached {reached:,} env frames but saved no checkpoint" in result.stderr
