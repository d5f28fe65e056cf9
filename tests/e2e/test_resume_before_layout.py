"""An experiment folder written by the code before sampler/ was split into subpackages still resumes and plays.

tests/fixtures/experiment_before_layout is a two-policy self-play run of pettingzoo_classic.rps_v2 trained by
commit 8fd21e4 (the commit before the layout change): its checkpoints, a policies/p1/hparams.json (and
history.jsonl) left by a live `sftui set`, and an opponent pool whose pool.json names its snapshots by the
absolute paths of the folder it was trained in. It is resumed from a copy, as a moved folder would be.

Made with the old source first on the path (tb/ and .lock left out):

    git worktree add /work/wt-old 8fd21e4 && cd /work/wt-old && export PYTHONPATH=$PWD
    python -m sftui train pettingzoo_classic.rps_v2 -e before_layout --train-dir /tmp/oldtrain --detach \
      --set sampler.num_policies=2 --set pool.snapshot_every_env_steps=4000 --set pool.seat_probability=0.5 \
      --set model.encoder_mlp_layers=[16] --set run.keep_checkpoints=1 --set sampler.num_workers=1 \
      --set sampler.num_envs_per_worker=4 --set appo.batch_size=128 --set appo.rollout=16 \
      --set run.train_for_env_steps=12000 --set run.seed=1
    python -m sftui set before_layout --train-dir /tmp/oldtrain --policy 1 appo.learning_rate=0.000321 \
      appo.exploration_loss_coeff=0.0123      # once summary.json says running
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from sampler.experiment import checkpoints
from tests.support import sftui

pytest.importorskip("pettingzoo")

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "experiment_before_layout"
NAME = "before_layout"
BUDGET = 18_000  # the fixture stopped at 12,818 env frames with a budget of 12,000; one snapshot is due at 13,877,
# and the 4,000 frames after it span several of the clock's half-second ticks, so the run cannot end before it


def _json(path: Path):
    return json.loads(path.read_text())


def _statuses(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "status.jsonl").read_text().splitlines() if line.strip()]


def test_a_folder_from_before_the_layout_change_resumes_with_its_checkpoints_hparams_and_pool(tmp_path):
    folder = tmp_path / NAME
    shutil.copytree(FIXTURE, folder)
    saved = _json(folder / "summary.json")
    saved_pool = _json(folder / "pool" / "pool.json")
    saved_statuses = len(_statuses(folder))
    latest = {p: checkpoints.latest_checkpoint(folder, p) for p in (0, 1)}
    payloads = {p: checkpoints.load(path) for p, path in latest.items()}
    members = [m["name"] for m in saved_pool["members"]]
    assert len(members) == 4 and not any(str(tmp_path) in m["path"] for m in saved_pool["members"])

    result = sftui("run", "--headless", str(folder / "cfg.json"), "--train-dir", str(tmp_path),
                   "--set", f"run.train_for_env_steps={BUDGET}", timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "resuming" in result.stdout and f"run.train_for_env_steps: 12000 -> {BUDGET}" in result.stdout

    # each policy restored from the old checkpoint: its version and the env frames go on from there
    log = (folder / "log.txt").read_text()
    for policy, path in latest.items():
        digest = checkpoints.state_digest(payloads[policy]["learner"])
        assert f"policy {policy} restored from {path.relative_to(folder)} (state digest {digest})" in log
    resumed = [s for s in _statuses(folder)[saved_statuses:] if s["state"] == "running"]
    assert resumed and min(s["env_frames"] for s in resumed) >= saved["env_frames"]
    for policy in (0, 1):
        assert min(s["policies"][policy]["version"] for s in resumed) >= payloads[policy]["version"]
    final = _json(folder / "summary.json")
    assert final["state"] == "finished" and final["env_frames"] >= BUDGET
    for policy in (0, 1):
        assert final["policies"][policy]["version"] > payloads[policy]["version"]

    # policies/p1/hparams.json (set live in the old run) wins over cfg.json's learning rate; p0 keeps cfg's
    hparams = {p: final["policies"][p]["hyperparameters"] for p in (0, 1)}
    assert hparams[1]["learning_rate"] == pytest.approx(0.000321) and hparams[1]["exploration_loss_coeff"] == 0.0123
    assert hparams[0]["learning_rate"] == pytest.approx(1e-4)
    newest = checkpoints.load(checkpoints.latest_checkpoint(folder, 1))
    assert newest["hyperparameters"]["learning_rate"] == pytest.approx(0.000321)

    # the pool: its members are still listed, found in this folder (not where they were trained), and
    # seated again; the ratings and counts go on from the saved ones
    pool = _json(folder / "pool" / "pool.json")
    listed = {m["name"]: m for m in pool["members"]}
    for name in members:
        assert Path(listed[name]["path"]) == folder / "pool" / f"{name}.pt"
        assert (folder / "pool" / f"{name}.pt").exists()
    assert sum(pool["games"][n] for n in members) > sum(saved_pool["games"][n] for n in members)
    assert pool["opponent_seats"] > saved_pool["opponent_seats"] and pool["pool_seats"] > saved_pool["pool_seats"]
    assert pool["games"]["p0"] > saved_pool["games"]["p0"] and pool["games"]["p1"] > saved_pool["games"]["p1"]
    assert pool["last_snapshot_env_frames"] > saved_pool["last_snapshot_env_frames"]

    result = sftui("enjoy", str(folder), "--episodes", "1", "--no-render", timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "episode 1: return" in result.stdout
