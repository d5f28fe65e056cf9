"""A tunable hyperparameter given when an experiment is resumed wins over the policy's saved hparams.json."""

from __future__ import annotations

import json
import shutil

from tests.support import sftui


def test_a_learning_rate_given_on_resume_is_what_the_learner_trains_with_and_status_shows(trained, tmp_path):
    folder = tmp_path / "cartpole"
    shutil.copytree(trained, folder)
    hparams = folder / "policies" / "p0" / "hparams.json"
    saved = json.loads(hparams.read_text())
    hparams.write_text(json.dumps({**saved, "learning_rate": 2e-4}))  # as a live `set` or PBT leaves it
    frames = json.loads((folder / "summary.json").read_text())["env_frames"]
    rows_before = len((folder / "status.jsonl").read_text().splitlines())

    result = sftui("train", "gym_CartPole-v1", "-e", "cartpole", "--train-dir", str(tmp_path),
                   "--set", f"run.train_for_env_steps={frames + 20_000}", "--set", "appo.learning_rate=1e-5",
                   "--set", "run.report_interval_sec=1", timeout=180)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "changed appo.learning_rate: 0.0003 -> 1e-05" in result.stdout
    assert json.loads(hparams.read_text())["learning_rate"] == 1e-5
    last = json.loads((hparams.parent / "history.jsonl").read_text().splitlines()[-1])
    assert last["source"] == "resume" and last["before"]["learning_rate"] == 2e-4
    assert last["after"]["learning_rate"] == 1e-5 and last["version"] > 0
    rows = [json.loads(line) for line in (folder / "status.jsonl").read_text().splitlines()[rows_before:]]
    trained_rows = [r["policies"][0] for r in rows
                    if r["state"] in ("running", "finished") and r["env_frames"] > frames]
    assert trained_rows, "no status after the resume"
    assert {p["learning_rate"] for p in trained_rows} == {1e-5}  # the rate the learner's steps used
    assert {p["hyperparameters"]["learning_rate"] for p in trained_rows} == {1e-5}
    status = sftui("status", str(folder))
    assert status.returncode == 0 and "lr 1e-05" in status.stdout, status.stdout + status.stderr
