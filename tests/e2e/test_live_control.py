"""Watching and steering a live run: status, pause/resume, save, stop, the socket protocol, one run per folder."""

from __future__ import annotations

import json
import socket
import time

import pytest

from sampler.experiment.control import ControlClient
from tests.support import all_gone, cli, process_tree, sftui, start_detached, summary, supervisor_pid, wait_for


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    train_dir = tmp_path_factory.mktemp("live")
    folder = start_detached(train_dir, "live", "--set", "run.stall_timeout_sec=3")
    yield folder
    if (folder / "run.json").exists():
        tree = process_tree(supervisor_pid(folder))
        sftui("stop", str(folder))
        wait_for(lambda: all_gone(tree), timeout=30, what="the live run to exit")


def _status(folder) -> dict:
    with ControlClient.for_experiment(folder) as client:
        return next(client.subscribe())


def test_status_from_a_second_terminal(live):
    result = sftui("status", "live", "--train-dir", str(live.parent))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("live: running")
    for name in ("learner_p0", "rollout_0", "rollout_1"):
        assert name in result.stdout


def test_pause_freezes_frames_version_and_every_worker_then_resume_goes_on(live):
    wait_for(lambda: _status(live)["env_frames"] > 0, what="training to start")
    result = sftui("pause", str(live))
    assert result.returncode == 0 and "paused at" in result.stdout, result.stderr
    again = sftui("pause", str(live))  # idempotent: one line, no error
    assert again.returncode == 0 and again.stdout == f"{live}: already paused\n" and not again.stderr, again.stderr
    first = _status(live)
    time.sleep(1.5)
    second = _status(live)
    assert second["state"] == "paused"
    assert second["env_frames"] == first["env_frames"]
    assert second["policies"][0]["version"] == first["policies"][0]["version"]
    assert [w["steps"] for w in second["workers"]] == [w["steps"] for w in first["workers"]]
    assert all(w["state"] == "paused" for w in second["workers"])

    assert sftui("resume", str(live)).returncode == 0
    wait_for(lambda: _status(live)["env_frames"] > second["env_frames"], timeout=20, what="frames after resume")
    assert _status(live)["state"] == "running"


def test_save_returns_checkpoint_paths(live):
    result = sftui("save", str(live))
    assert result.returncode == 0, result.stderr
    path = result.stdout.strip().removeprefix("saved ")
    assert path.startswith(str(live / "checkpoints" / "p0" / "ckpt_"))


def test_set_changes_one_policys_hyperparameters_from_its_next_step_and_records_it(live):
    result = sftui("set", str(live), "--policy", "0", "appo.learning_rate=0.0002", "exploration_loss_coeff=0.01")
    assert result.returncode == 0, result.stderr
    assert "policies [0]: learning_rate 0.0002, exploration_loss_coeff 0.01" in result.stdout
    saved = json.loads((live / "policies" / "p0" / "hparams.json").read_text())
    assert saved["learning_rate"] == 0.0002 and saved["exploration_loss_coeff"] == 0.01
    history = [json.loads(line) for line in (live / "policies" / "p0" / "history.jsonl").read_text().splitlines()]
    assert history[-1]["source"] == "set" and history[-1]["after"]["learning_rate"] == 0.0002
    version = _status(live)["policies"][0]["version"]
    wait_for(lambda: _status(live)["policies"][0]["version"] > version, what="the next learner step")
    policy = _status(live)["policies"][0]
    assert policy["hyperparameters"]["learning_rate"] == 0.0002 and policy["learning_rate"] == 0.0002

    for bad, message in [
        (["appo.learning_rate=-1"], "appo.learning_rate: Input should be greater than 0"),
        (["appo.bogus=1"], "set takes hyperparameters among"),
        (["learning_rate"], "expected KEY=VALUE"),
        (["--policy", "3", "appo.gamma=0.9"], "--policy 3: the run has policies 0..0"),
        (["env.reward_shaping.hits=1"], "set takes hyperparameters among"),  # CartPole reports no components
    ]:
        result = cli("set", str(live), *bad)
        assert result.returncode != 0 and message in result.stderr, (bad, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_second_run_on_a_live_folder_is_refused(live):
    result = cli("train", "gym_CartPole-v1", "-e", "live", "--train-dir", str(live.parent))
    assert result.returncode == 2
    assert "is live" in result.stderr and "Traceback" not in result.stderr
    result = cli("train", "gym_CartPole-v1", "-e", "live", "--train-dir", str(live.parent), "--restart")
    assert result.returncode == 2


def test_socket_protocol_errors_get_clear_replies(live):
    path = json.loads((live / "run.json").read_text())["socket"]

    def exchange(*lines: bytes) -> list[dict]:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(10)
            sock.connect(path)
            stream = sock.makefile("rwb")
            replies = []
            for line in lines:
                stream.write(line + b"\n")
                stream.flush()
                replies.append(json.loads(stream.readline()))
            return replies

    (reply,) = exchange(b'{"id": 1, "cmd": "pause"}')
    assert reply["ok"] is False and "hello" in reply["error"]
    (reply,) = exchange(b'{"hello": {"version": 99}}')
    assert reply["ok"] is False and "version" in reply["error"]
    hello, bad_json, unknown, bad_args, bad_set = exchange(
        b'{"hello": {"version": 1}}',
        b"this is not json",
        b'{"id": 2, "cmd": "explode"}',
        b'{"id": 3, "cmd": "pause", "args": [1]}',
        b'{"id": 4, "cmd": "set", "args": {"hyperparameters": {"warp": 9}}}',
    )
    assert hello["hello"]["version"] == 1 and hello["hello"]["experiment"] == "live"
    assert bad_json == {"id": None, "ok": False, "error": "not JSON: send one JSON object per line"}
    assert unknown["id"] == 2 and not unknown["ok"] and "unknown command" in unknown["error"]
    assert bad_args["id"] == 3 and not bad_args["ok"]
    assert bad_set["id"] == 4 and not bad_set["ok"] and "learning_rate" in bad_set["error"]


def test_set_changes_a_hyperparameter_live_and_records_it(live):
    with ControlClient.for_experiment(live) as client:
        result = client.call("set", {"hyperparameters": {"learning_rate": 0.0002}})
    assert result["hyperparameters"] == {"learning_rate": 0.0002}
    hparams = live / "policies" / "p0" / "hparams.json"
    wait_for(lambda: json.loads(hparams.read_text())["learning_rate"] == 0.0002, timeout=10, what="hparams.json")
    history = [json.loads(line) for line in (live / "policies" / "p0" / "history.jsonl").read_text().splitlines()]
    assert history[-1]["after"]["learning_rate"] == 0.0002


def test_a_stopped_worker_shows_as_stalled(live):
    import psutil

    rollout = next(w for w in _status(live)["workers"] if w["name"] == "rollout_1")
    proc = psutil.Process(rollout["pid"])
    proc.suspend()
    try:
        wait_for(lambda: next(w for w in _status(live)["workers"] if w["name"] == "rollout_1")["state"] == "stalled",
                 timeout=15, what="rollout_1 to show as stalled")
    finally:
        proc.resume()
    wait_for(lambda: next(w for w in _status(live)["workers"] if w["name"] == "rollout_1")["state"] == "running",
             timeout=15, what="rollout_1 to recover")


def test_stop_command_saves_and_leaves_a_resumable_stopped_run(live):
    tree = process_tree(supervisor_pid(live))
    socket_path = json.loads((live / "run.json").read_text())["socket"]
    result = sftui("stop", str(live))
    assert result.returncode == 0, result.stderr
    wait_for(lambda: all_gone(tree), timeout=30, what="the run's processes to exit")
    assert summary(live)["state"] == "stopped"
    assert not (live / "run.json").exists()
    import os

    assert not os.path.exists(socket_path)
    assert "stopped" in sftui("ls", "--train-dir", str(live.parent)).stdout
    result = sftui("status", "live", "--train-dir", str(live.parent))
    assert result.returncode == 0 and result.stdout.startswith("live: stopped")

