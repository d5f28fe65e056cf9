"""A real CartPole run through the whole process tree, and what it leaves in its folder."""

from __future__ import annotations

import json
import re
import shutil

import psutil
import torch

from sampler.experiment import checkpoints
from sampler.status import RunStatus
from sftui.report import progress_line, status_text
from tests.support import cli, sftui, summary


def _statuses(folder) -> list[dict]:
    return [json.loads(line) for line in (folder / "status.jsonl").read_text().splitlines() if line.strip()]


def test_cartpole_return_rises_above_100_within_100k_frames(trained):
    # A random policy averages about 22; measured runs of this fixture reach 135 to 200 here.
    best = max(
        (s["policies"][0]["episode_return"] or 0.0 for s in _statuses(trained) if s["env_frames"] <= 100_000 + 4096),
        default=0.0,
    )
    assert best > 100, f"best mean return within 100k frames was {best:.1f}"


def test_progress_lines_show_frames_fps_lag_and_return(trained):
    lines = [line for line in (trained / "stdout.txt").read_text().splitlines() if line.startswith("[")]
    assert len(lines) >= 2
    assert re.search(r"frames [\d,]+ \| fps [\d,]+ / [\d,]+ / [\d,]+ \(10/60/300 s\) \| p0 lag \d+/[\d.]+/\d+ "
                     r"return [\d.,]+ (eval [\d.,]+ )?v\d+", lines[-1]), lines[-1]
    assert lines[-1].split("] ")[1].startswith("finished")


def test_folder_holds_config_summary_status_log_tensorboard_and_checkpoints(trained):
    cfg = json.loads((trained / "cfg.json").read_text())
    assert cfg["env"]["name"] == "gym_CartPole-v1" and cfg["run"]["seed"] == 1
    final = RunStatus.from_dict(summary(trained))
    assert final.state == "finished" and final.env_frames >= 100_000
    assert final.policies[0].version > 0 and final.policies[0].losses
    assert len(_statuses(trained)) >= 2
    assert "finished at" in (trained / "log.txt").read_text()
    assert list((trained / "tb" / "p0").glob("events.out.tfevents.*"))
    periodic = checkpoints.list_checkpoints(trained, 0)
    assert 1 <= len(periodic) <= 2, periodic  # keep_checkpoints=2
    assert (trained / "checkpoints" / "p0" / "best.pt").exists()
    assert not (trained / "run.json").exists()


def test_evaluation_plays_checkpoints_reports_eval_return_best_pt_follows_it_and_its_process_ends(trained):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    log = (trained / "log.txt").read_text()
    found = re.findall(r"evaluation of policy 0 at ([\d,]+) env frames: mean return ([\d.]+) over 2 episodes", log)
    evaluations = [(int(frames.replace(",", "")), float(mean)) for frames, mean in found]
    # one at the first mark (40k frames; a later mark passed while one still plays is skipped), and the final one:
    # the run reached its budget, so it played the checkpoint it ended with before it finished
    assert len(evaluations) >= 2 and evaluations[0][0] >= 40_000, log
    assert "final evaluation: 2 episode(s) per policy" in log and evaluations[-1][0] >= 100_000, log
    tb = EventAccumulator(str(trained / "tb" / "p0"))
    tb.Reload()
    assert [(e.step, round(e.value, 2)) for e in tb.Scalars("eval/episode_return")] == evaluations
    final = RunStatus.from_dict(summary(trained))
    policy = final.policies[0]
    assert (policy.eval_env_frames, policy.eval_return) == evaluations[-1]
    assert "evaluation " in status_text(final) and " eval " in progress_line(final)
    # best.pt is the first checkpoint with the best evaluation return, not the best training return
    best_frames, best_return = max(evaluations, key=lambda e: e[1])
    assert checkpoints.load(trained / "checkpoints" / "p0" / "best.pt")["env_frames"] == best_frames
    assert policy.best_return == best_return
    assert not list((trained / "checkpoints").rglob(".eval.pt*"))
    pid = int(re.search(r"evaluation process started \(pid (\d+)\)", log).group(1))
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_checkpoint_loads_with_weights_only_and_describes_itself(trained):
    path = checkpoints.latest_checkpoint(trained, 0)
    payload = torch.load(path, weights_only=True)
    assert payload["format_version"] == checkpoints.FORMAT_VERSION
    assert payload["env"]["name"] == "gym_CartPole-v1"
    assert payload["action_spec"]["kind"] == "discrete" and payload["action_spec"]["n"] == 2
    assert payload["obs_specs"]["obs"]["shape"] == [4]
    assert payload["env_frames"] >= 100_000 and payload["version"] > 0
    learner = payload["learner"]
    assert "obs_normalizers.obs.mean" in learner["model"] and learner["optimizer"]["state"]
    assert set(payload["hyperparameters"]) >= {"learning_rate", "gamma"}


def test_resume_continues_frames_restores_learner_state_and_a_learning_rate_given_on_resume_wins(trained, tmp_path):
    folder = tmp_path / "cartpole"
    shutil.copytree(trained, folder)
    latest = checkpoints.latest_checkpoint(folder, 0)
    payload = checkpoints.load(latest)
    expected_digest = checkpoints.state_digest(payload["learner"])
    hparams = folder / "policies" / "p0" / "hparams.json"
    hparams.write_text(json.dumps({**json.loads(hparams.read_text()), "learning_rate": 2e-4}))  # as `set` leaves it

    best_before = checkpoints.load(folder / "checkpoints" / "p0" / "best.pt")["env_frames"]

    result = sftui("train", "gym_CartPole-v1", "-e", "cartpole", "--train-dir", str(tmp_path),
                   "--set", "run.train_for_env_steps=120000", "--set", "appo.learning_rate=1e-5",
                   "--set", "run.eval_every_env_steps=0")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "resuming" in result.stdout and "run.train_for_env_steps: 100000 -> 120000" in result.stdout
    assert "appo.learning_rate: 0.0003 -> 1e-05" in result.stdout
    log = (folder / "log.txt").read_text()
    assert f"restored from {latest.relative_to(folder)} (state digest {expected_digest})" in log
    statuses = _statuses(folder)
    resumed = [s for s in statuses[len(_statuses(trained)):] if s["state"] == "running"]
    assert resumed and min(s["env_frames"] for s in resumed) >= payload["env_frames"]
    final = summary(folder)
    assert final["state"] == "finished" and final["env_frames"] >= 120_000
    assert final["elapsed_sec"] > payload["elapsed_sec"]
    # best.pt's return came back with the run: the training returns after the resume (below the evaluated 500 of
    # the deterministic policy, or equal to it) do not replace it
    assert final["policies"][0]["best_return"] == summary(trained)["policies"][0]["best_return"]
    assert checkpoints.load(folder / "checkpoints" / "p0" / "best.pt")["env_frames"] == best_before

    # the learning rate given on resume wins over hparams.json, is recorded, and is what every step used
    assert json.loads(hparams.read_text())["learning_rate"] == 1e-5
    last = json.loads((hparams.parent / "history.jsonl").read_text().splitlines()[-1])
    assert last["source"] == "resume" and last["before"]["learning_rate"] == 2e-4
    assert last["after"]["learning_rate"] == 1e-5 and last["version"] == payload["version"]
    trained_rows = [s["policies"][0] for s in statuses[len(_statuses(trained)):]
                    if s["state"] in ("running", "finished") and s["env_frames"] > payload["env_frames"]]
    assert trained_rows and {p["learning_rate"] for p in trained_rows} == {1e-5}
    assert {p["hyperparameters"]["learning_rate"] for p in trained_rows} == {1e-5}
    status = cli("status", str(folder))
    assert status.returncode == 0 and "lr 1e-05" in status.stdout, status.stdout + status.stderr


def test_an_unreadable_newest_checkpoint_is_set_aside_and_the_run_resumes_from_the_one_before(trained, tmp_path):
    folder = tmp_path / "cartpole"
    shutil.copytree(trained, folder)
    older, newest = checkpoints.list_checkpoints(folder, 0)[-2:]
    newest.write_bytes(newest.read_bytes()[:1000])  # a partial copy
    budget = summary(folder)["env_frames"] + 10_000  # the fixture stops a little past its budget
    result = sftui("train", "gym_CartPole-v1", "-e", "cartpole", "--train-dir", str(tmp_path),
                   "--set", f"run.train_for_env_steps={budget}")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{newest.name}: not a readable checkpoint" in result.stderr
    assert f"restored from {older.relative_to(folder)}" in (folder / "log.txt").read_text()
    assert newest.with_name(newest.name + ".unreadable").exists()  # kept, out of the rotation

    # no periodic checkpoint readable: best.pt is the last resort, and the log says so
    best = checkpoints.policy_dir(folder, 0) / "best.pt"
    assert best.exists()
    for path in checkpoints.list_checkpoints(folder, 0):
        path.write_bytes(b"junk")
    budget = summary(folder)["env_frames"] + 10_000
    result = sftui("train", "gym_CartPole-v1", "-e", "cartpole", "--train-dir", str(tmp_path),
                   "--set", f"run.train_for_env_steps={budget}")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no periodic checkpoint reads, so this run resumes from best.pt" in result.stderr
    assert "restored from checkpoints/p0/best.pt" in (folder / "log.txt").read_text()

    # with none readable: refused in one line before anything is written; nothing is renamed
    for path in [*checkpoints.list_checkpoints(folder, 0), best]:
        path.write_bytes(b"junk")
    before = {p: p.stat().st_mtime_ns for p in folder.rglob("*")}
    result = cli("train", "gym_CartPole-v1", "-e", "cartpole", "--train-dir", str(tmp_path),
                   "--set", f"run.train_for_env_steps={budget + 100_000}")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "no older checkpoint of policy 0 reads either" in result.stderr
    assert {p: p.stat().st_mtime_ns for p in folder.rglob("*")} == before


def test_finished_experiment_without_a_raised_budget_exits_zero_with_one_line(trained, tmp_path):
    shutil.copytree(trained, tmp_path / "cartpole")
    result = cli("train", "gym_CartPole-v1", "-e", "cartpole", "--train-dir", str(tmp_path))
    assert result.returncode == 0
    assert "already finished at" in result.stdout and "--restart" in result.stdout


def test_ls_lists_state_env_frames_and_return(trained):
    result = sftui("ls", "--train-dir", str(trained.parent))
    assert result.returncode == 0
    row = [line for line in result.stdout.splitlines() if line.startswith("cartpole")][0]
    assert "finished" in row and "gym_CartPole-v1" in row


def test_restart_archives_the_old_folder_and_continuous_actions_train_through_the_tree(trained, tmp_path):
    # One run for both: --restart on the CartPole experiment's name archives its folder, and the new experiment
    # under that name is Pendulum, a Box action space, trained through the whole tree.
    shutil.copytree(trained, tmp_path / "cartpole")
    result = sftui("train", "gym_Pendulum-v1", "-e", "cartpole", "--train-dir", str(tmp_path), "--restart",
                   "--set", "sampler.num_workers=1", "--set", "sampler.num_envs_per_worker=4",
                   "--set", "appo.batch_size=256", "--set", "model.encoder_mlp_layers=[32]",
                   "--set", "run.train_for_env_steps=8000")
    assert result.returncode == 0, result.stdout + result.stderr
    archived = list(tmp_path.glob("cartpole.old-*"))
    assert len(archived) == 1 and (archived[0] / "checkpoints").is_dir()
    assert summary(archived[0])["env_frames"] >= 100_000 and json.loads(
        (archived[0] / "cfg.json").read_text())["env"]["name"] == "gym_CartPole-v1"
    final = RunStatus.from_dict(summary(tmp_path / "cartpole"))
    assert final.state == "finished" and final.env_frames < 100_000 and final.policies[0].episode_return is not None
    # On a CPU-only machine the rollout workers act themselves: no inference processes.
    assert {w.kind for w in final.workers} == {"rollout", "learner"}
    assert all(w.mean_batch == 4 for w in final.workers if w.kind == "rollout")
    payload = checkpoints.load(checkpoints.latest_checkpoint(tmp_path / "cartpole", 0))
    assert payload["action_spec"]["kind"] == "box"
    # a run shorter than best.pt's 5 s check still ends with the best.pt its training return earned
    policy = final.policies[0]
    assert policy.best_return is not None and policy.best_return >= policy.episode_return - 1e-3
    assert (tmp_path / "cartpole" / "checkpoints" / "p0" / "best.pt").exists()
