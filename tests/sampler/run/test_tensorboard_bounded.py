"""tb/ stays bounded: hourly event files, and history older than the last two files thinned by half each time
the folder passes its cap, every scalar keeping its first point; a thinning cut short changes nothing."""

from __future__ import annotations

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.tensorboard import SummaryWriter

from sampler.run import tensorboard as tb
from sampler.status import PolicyStatus, RunStatus


def _steps(folder) -> dict[str, list[int]]:
    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [e.step for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_thinning_an_event_file_keeps_every_other_point_of_each_scalar(tmp_path):
    writer = SummaryWriter(str(tmp_path))
    for step in range(100):
        writer.add_scalar("a", step, step)
        if step % 5 == 0:
            writer.add_scalar("b", -step, step)
    writer.close()
    (path,) = tb.event_files(tmp_path)
    before = path.stat().st_size
    tb.thin_event_file(path)
    assert path.stat().st_size < 0.6 * before
    steps = _steps(tmp_path)
    assert steps["a"] == list(range(0, 100, 2))
    assert steps["b"] == [0, 10, 20, 30, 40, 50, 60, 70, 80, 90]
    assert not (tmp_path / tb.THINNING).exists()


def test_a_long_run_rolls_its_event_files_and_thins_the_old_ones_past_the_cap(tmp_path):
    writer = tb.TensorboardWriter(tmp_path, 1, cap_bytes=20_000, roll_every_sec=3600)
    status = RunStatus(experiment="x", policies=[PolicyStatus()])
    written = 0
    for _hour in range(6):
        for _ in range(100):  # an hour of status ticks
            written += 1
            status.env_frames = written * 1000
            status.policies[0].version = written
            writer.write(status)
        writer.opened_at[0] -= 3600  # an hour passes
        if writer.thinning is not None:
            writer.thinning.join()  # an hour is long enough to thin
    writer.write(status)  # (same version: nothing written, nothing rolled)
    status.policies[0].version, status.env_frames = 601, 601_000
    writer.write(status)
    writer.close()
    folder = tmp_path / "p0"
    files = tb.event_files(folder)
    assert len(files) == 7  # one per hour, and the one opened last
    steps = _steps(folder)["train/version"]
    # the last two files (the one opened by the last write is still empty) keep every point
    assert [s for s in steps if s > 501_000] == list(range(502_000, 601_001, 1000))
    assert 40 <= len([s for s in steps if 401_000 < s <= 501_000]) <= 60  # the hour before them: half
    assert len(steps) < written * 0.7  # older hours thinned, some more than once
    assert steps[0] == 1000  # each scalar keeps its first point
    hour = files[-2].stat().st_size
    assert tb.folder_bytes(folder) < 3.5 * hour  # 6 hours written: the two last whole, the rest thinned


def test_a_thinning_left_unfinished_is_cleared_at_the_next_start(tmp_path):
    (tmp_path / "p0").mkdir()
    (tmp_path / "p0" / tb.THINNING).write_bytes(b"half a file")
    tb.TensorboardWriter(tmp_path, 1).close()
    assert not (tmp_path / "p0" / tb.THINNING).exists()
