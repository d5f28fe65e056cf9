"""Doom and Atari through the whole process tree, and a Doom run's engines dying with it."""

from __future__ import annotations

import json
import os
import signal

import psutil
import pytest

from sampler.experiment import checkpoints
from tests.support import (
    all_gone,
    cli,
    process_tree,
    sftui,
    shm_entries,
    shm_left_behind,
    summary,
    supervisor_pid,
    wait_for,
)

pytest.importorskip("vizdoom")
SMALL_RECURRENT = [
    "--set", "sampler.num_workers=2", "--set", "sampler.num_envs_per_worker=4",
    "--set", "model.rnn_size=64", "--set", "model.encoder_conv_mlp_layers=[64]",
    "--set", "appo.batch_size=256", "--set", "run.report_interval_sec=1", "--set", "run.status_every_sec=0.5",
]


def _statuses(folder) -> list[dict]:
    return [json.loads(line) for line in (folder / "status.jsonl").read_text().splitlines() if line.strip()]


def test_atari_pong_trains_through_the_tree(tmp_path):
    result = sftui("train", "atari_pong", "-e", "pong", "--train-dir", str(tmp_path),
                   "--set", "sampler.num_workers=1", "--set", "sampler.num_envs_per_worker=4",
                   "--set", "appo.rollout=32", "--set", "appo.batch_size=256", "--set", "appo.num_batches_per_epoch=1",
                   "--set", "appo.num_epochs=1", "--set", "model.encoder_conv_mlp_layers=[64]",
                   "--set", "run.train_for_env_steps=4000", timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    folder = tmp_path / "pong"
    final = summary(folder)
    assert final["state"] == "finished" and final["env_frames"] >= 4_000
    assert final["policies"][0]["samples"] * 4 == final["env_frames"]
    payload = checkpoints.load(checkpoints.latest_checkpoint(folder, 0))
    assert payload["obs_specs"]["obs"] == {"shape": [4, 84, 84], "dtype": "uint8"}
    assert payload["action_spec"]["n"] == 6


def _vizdoom_processes() -> set[int]:
    """Engines, and doom_duel's player processes that drive them."""
    found = set()
    for proc in psutil.process_iter(["name", "cmdline"]):
        text = " ".join([proc.info["name"] or "", *(proc.info["cmdline"] or [])]).lower()
        if ("vizdoom" in text or "sampler.envs.families.doom.duel" in text) and proc.pid != os.getpid():
            found.add(proc.pid)
    return found


def _start_doom(train_dir, env_name="doom_basic", *extra):
    # `sftui train --detach` in this process: the supervisor it starts is a process of its own
    result = cli("train", env_name, "-e", "doomkill", "--train-dir", str(train_dir), "--detach",
                 *SMALL_RECURRENT, *extra)
    assert result.returncode == 0, result.stdout + result.stderr
    return train_dir / "doomkill"


def _sigkill_leaves_nothing_behind(folder, engines_before: set[int], shm_before: set[str]) -> None:
    """SIGKILLs the run's supervisor: every process of the tree and every engine exits, the run's shared memory
    and its socket are removed."""
    pid = supervisor_pid(folder)
    tree = process_tree(pid)
    socket_path = json.loads((folder / "run.json").read_text())["socket"]
    assert _vizdoom_processes() - engines_before, "the Doom engines should be running"

    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: all_gone(tree), timeout=30, what="the process tree, engines included, to exit")
    wait_for(lambda: not (_vizdoom_processes() - engines_before), timeout=30, what="every vizdoom engine to exit")
    assert not shm_left_behind(shm_before)
    assert not os.path.exists(socket_path)


def test_doom_basic_trains_with_frames_counted_times_four_a_killed_worker_is_replaced_and_stop_closes_engines(
        tmp_path):
    # One Doom run for three facts: it trains through the tree with four env frames a sample; a killed worker's
    # engines die with it and its successor starts its own; `sftui stop` then ends the run as its budget would
    # (a checkpoint saved, every engine and its shared memory closed). SIGKILL of a Doom run: the duel test below.
    engines_before = _vizdoom_processes()
    shm_before = shm_entries()
    folder = _start_doom(tmp_path, "doom_basic", "--set", "sampler.num_envs_per_worker=2")
    wait_for(lambda: summary(folder).get("env_frames", 0) > 0, timeout=120, what="the Doom run to train")
    engines = _vizdoom_processes() - engines_before
    assert len(engines) == 4  # 2 workers x 2 envs
    rollout = next(w for w in summary(folder)["workers"] if w["name"] == "rollout_0")
    os.kill(rollout["pid"], signal.SIGKILL)

    def replaced():
        workers = {w["name"]: w for w in summary(folder)["workers"]}
        now = _vizdoom_processes() - engines_before
        return workers["rollout_0"]["restarts"] == 1 and len(now) == 4 and len(now & engines) == 2

    wait_for(replaced, timeout=60, what="the dead worker's engines to be killed and its successor's to start")
    wait_for(lambda: summary(folder)["policies"][0]["episodes"] > 0, timeout=60, what="a finished episode")

    tree = process_tree(supervisor_pid(folder))
    assert cli("stop", str(folder)).returncode == 0
    wait_for(lambda: all_gone(tree), timeout=30, what="the run's processes to exit")
    final = summary(folder)
    assert final["state"] == "stopped"
    policy = final["policies"][0]
    assert final["env_frames"] == policy["env_frames"] > 0
    assert policy["samples"] * 4 == final["env_frames"]  # frameskip 4: four env frames per sample
    assert policy["episodes"] > 0 and policy["episode_return"] is not None
    payload = checkpoints.load(checkpoints.latest_checkpoint(folder, 0))
    assert payload["obs_specs"]["obs"] == {"shape": [3, 72, 128], "dtype": "uint8"}
    assert "rnn_states" not in payload  # states live in the buffers, not the checkpoint
    assert payload["model"]["use_rnn"] is True
    wait_for(lambda: not (_vizdoom_processes() - engines_before), timeout=30, what="every engine to exit")
    assert not shm_left_behind(shm_before)


def test_sigkill_of_a_doom_duel_run_leaves_no_engine_player_shared_memory_or_socket(tmp_path):
    engines_before = _vizdoom_processes()
    shm_before = shm_entries()
    folder = _start_doom(tmp_path, "doom_duel", "--set", "sampler.num_workers=1",
                         "--set", "sampler.num_envs_per_worker=2", "--set", "sampler.num_policies=2")
    wait_for(lambda: summary(folder).get("env_frames", 0) > 0, timeout=120, what="the Doom run to train")
    _sigkill_leaves_nothing_behind(folder, engines_before, shm_before)


def test_doom_against_bots_reports_shaped_returns_per_policy_and_keeps_each_policys_shaping(tmp_path):
    from sampler.envs.families.doom.bots import DEFAULT_SHAPING

    result = sftui("train", "doom_duel_bots", "-e", "bots", "--train-dir", str(tmp_path), *SMALL_RECURRENT,
                   "--set", "sampler.num_workers=1", "--set", "sampler.num_envs_per_worker=2",
                   "--set", "sampler.num_policies=2", "--set", "env.doom.episode_timeout_sec=1",
                   "--set", "env.reward_shaping.hits=0.5", "--set", "run.train_for_env_steps=4000", timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    folder = tmp_path / "bots"
    final = _statuses(folder)[-1]
    for policy in final["policies"]:
        assert policy["episodes"] > 0 and policy["shaped_return"] is not None
        assert policy["true_objective"] is not None
        hparams = json.loads((folder / "policies" / f"p{policy['policy_id']}" / "hparams.json").read_text())
        assert hparams["reward_shaping"] == {**DEFAULT_SHAPING, "hits": 0.5}
