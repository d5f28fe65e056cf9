"""Checkpoints carry a digest checked on load, are never written with non-finite numbers, and rotation keeps
the last one known to load; when no periodic checkpoint reads, best.pt is the last resort."""

import errno

import pytest
import torch

from sampler.errors import ExperimentError
from sampler.experiment import checkpoints


def payload(version: int, frames: int, weight: float = 1.0) -> dict:
    return {"format_version": checkpoints.FORMAT_VERSION, "version": version, "env_frames": frames,
            "learner": {"model": {"w": torch.full((4096,), weight), "steps": torch.arange(3)},
                        "optimizer": {"state": {0: {"exp_avg": torch.zeros(4096)}}, "param_groups": [{"lr": 1e-3}]},
                        "lr": 1e-3, "version": version}}


def overwrite_middle(path, count: int = 64) -> None:
    """Flip 64 bytes inside the model's weights, where torch.load itself notices nothing."""
    data = bytearray(path.read_bytes())
    start = data.find(torch.ones(64).numpy().tobytes()) + 1024
    data[start:start + count] = bytes(255 - b for b in data[start:start + count])
    path.write_bytes(bytes(data))


def test_bytes_overwritten_mid_file_fail_the_digest_and_the_one_before_is_used(tmp_path):
    older = checkpoints.save(payload(1, 100), tmp_path, 0, keep=2)
    newest = checkpoints.save(payload(2, 200), tmp_path, 0, keep=2)
    assert checkpoints.load(newest)["env_frames"] == 200 and "digest" not in checkpoints.load(newest)
    overwrite_middle(newest)
    with pytest.raises(ExperimentError, match="digest mismatch"):
        checkpoints.load(newest)
    path, loaded, skipped = checkpoints.load_latest(tmp_path, 0)
    assert path == older and loaded["env_frames"] == 100
    assert len(skipped) == 1 and "digest mismatch" in skipped[0]
    assert newest.with_name(newest.name + ".unreadable").exists() and not newest.exists()


def test_a_checkpoint_written_before_digests_still_loads(tmp_path):
    path = tmp_path / "old.pt"
    torch.save(payload(1, 100), path)
    assert checkpoints.load(path)["env_frames"] == 100


def test_non_finite_state_is_never_written_and_older_checkpoints_stay(tmp_path):
    good = checkpoints.save(payload(1, 100), tmp_path, 0, keep=1)
    bad = payload(2, 200)
    bad["learner"]["optimizer"]["state"][0]["exp_avg"][7] = float("nan")
    with pytest.raises(checkpoints.NonFiniteState, match="optimizer/state/0/exp_avg"):
        checkpoints.save(bad, tmp_path, 0, keep=1)
    assert checkpoints.list_checkpoints(tmp_path, 0) == [good]
    assert not list(checkpoints.policy_dir(tmp_path, 0).glob(".tmp-*"))


def test_a_non_finite_checkpoint_on_disk_is_refused_like_a_corrupt_one(tmp_path):
    bad = payload(1, 100, weight=float("inf"))
    path = tmp_path / "bad.pt"
    torch.save(bad, path)
    with pytest.raises(ExperimentError, match="non-finite"):
        checkpoints.load(path)


def test_resume_falls_back_to_best_when_no_periodic_checkpoint_reads(tmp_path):
    checkpoints.save(payload(1, 100), tmp_path, 0, keep=2)
    checkpoints.save(payload(3, 300), tmp_path, 0, keep=2, best=True)
    for path in checkpoints.list_checkpoints(tmp_path, 0):
        overwrite_middle(path)
    path, loaded, skipped = checkpoints.load_latest(tmp_path, 0)
    assert path.name == "best.pt" and loaded["env_frames"] == 300
    assert "resumes from best.pt (300 env frames)" in skipped[-1]
    # nothing readable at all: one error, nothing renamed
    overwrite_middle(path)
    checkpoints.list_checkpoints(tmp_path, 0)  # the set-aside periodic one is out of the rotation already
    with pytest.raises(ExperimentError, match="no older checkpoint of policy 0 reads either"):
        checkpoints.load_latest(tmp_path, 0, set_aside=False)


def test_rotation_keeps_the_newest_and_never_leaves_temporary_files(tmp_path):
    for version in range(1, 5):
        checkpoints.save(payload(version, version * 100), tmp_path, 0, keep=2)
    names = [p.name for p in checkpoints.list_checkpoints(tmp_path, 0)]
    assert names == ["ckpt_000000003_300.pt", "ckpt_000000004_400.pt"]
    assert not list(checkpoints.policy_dir(tmp_path, 0).glob(".tmp-*"))


def test_a_full_disk_names_itself_and_leaves_the_previous_checkpoint_as_it_was(tmp_path, monkeypatch):
    good = checkpoints.save(payload(1, 100), tmp_path, 0, keep=1)
    before = good.read_bytes()

    def full(f, data):
        f.write(data[:100])  # part of it reaches the disk, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoints, "_write_all", full)
    with pytest.raises(checkpoints.SaveFailed, match=f"no space left on device: {checkpoints.policy_dir(tmp_path, 0)}"):
        checkpoints.save(payload(2, 200), tmp_path, 0, keep=1)
    assert checkpoints.list_checkpoints(tmp_path, 0) == [good] and good.read_bytes() == before
    assert not list(checkpoints.policy_dir(tmp_path, 0).glob(".tmp-*"))


def test_a_folder_that_lost_its_cfg_is_listed_as_damaged_and_one_with_a_torn_summary_stays_resumable(tmp_path):
    from sampler.experiment.folders import derived_state, is_resumable, list_experiments

    damaged = tmp_path / "damaged"
    checkpoints.save(payload(1, 100), damaged, 0, keep=2)
    (damaged / "summary.json").write_text('{"state": "stopped", "env_frames": 100}')
    torn = tmp_path / "torn"
    torn.mkdir()
    (torn / "cfg.json").write_text('{"env": {"name": "gym_CartPole-v1"}}')
    (torn / "summary.json").write_text('{"state": "runn')
    found = {e.id: e for e in list_experiments(tmp_path)}
    assert found["damaged"].state == "damaged" and "cfg.json is missing" in found["damaged"].reason
    assert found["damaged"].env_frames == 100
    assert found["torn"].state == "unreadable" and is_resumable(derived_state(torn)[0], torn)
