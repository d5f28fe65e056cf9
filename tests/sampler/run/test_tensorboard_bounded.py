"""tb/ stays bounded: hourly event files, and history older than the last two files thinned by half each time
the folder passes its cap, every scalar keeping its first point; a thinning cut short changes nothing."""

from __future__ import annotations

from tensorboard.backend.event_processing.event_file_loader import RawEventFileLoader
from tensorboard.compat.proto.event_pb2 import Event
from torch.utils.tensorboard import SummaryWriter

from sampler.run import tensorboard as tb
from sampler.status import PolicyStatus, RunStatus


def _steps(folder) -> dict[str, list[int]]:
    """Each scalar's steps, reading the event files in the order they were written (TensorBoard's own reader
    orders them by name, which puts a tenth file opened within the same second before the second)."""
    steps: dict[str, list[int]] = {}
    for path in tb.event_files(folder):
        for record in RawEventFileLoader(str(path)).Load():
            event = Event.FromString(record)
            for value in event.summary.value:
                steps.setdefault(value.tag, []).append(event.step)
    return steps


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
    # two policies: each folder is thinned, each by its own thread
    writer = tb.TensorboardWriter(tmp_path, 2, cap_bytes=20_000, roll_every_sec=3600)
    status = RunStatus(experiment="x", policies=[PolicyStatus(policy_id=0), PolicyStatus(policy_id=1)])

    def write(version: int) -> None:
        status.env_frames = version * 1000
        for policy in status.policies:
            policy.version = version
        writer.write(status)

    for hour in range(6):
        for tick in range(100):  # an hour of status ticks
            write(hour * 100 + tick + 1)
        writer.opened_at = [t - 3600 for t in writer.opened_at]  # an hour passes
        for thread in writer.thinning:
            if thread is not None:
                thread.join()  # an hour is long enough to thin
    writer.write(status)  # (same version: nothing written, nothing rolled)
    write(601)
    writer.close()
    for policy in (0, 1):
        folder = tmp_path / f"p{policy}"
        files = tb.event_files(folder)
        assert len(files) == 7  # one per hour, and the one opened last
        steps = _steps(folder)["train/version"]
        # the last two files (the one opened by the last write is still empty) keep every point
        assert [s for s in steps if s > 501_000] == list(range(502_000, 601_001, 1000))
        assert 40 <= len([s for s in steps if 401_000 < s <= 501_000]) <= 60  # the hour before them: half
        assert len(steps) < 601 * 0.7  # older hours thinned, some more than once
        assert steps[0] == 1000  # each scalar keeps its first point
        hour = files[-2].stat().st_size
        assert tb.folder_bytes(folder) < 3.5 * hour  # 6 hours written: the two last whole, the rest thinned


def test_a_thinning_left_unfinished_is_cleared_at_the_next_start(tmp_path):
    (tmp_path / "p0").mkdir()
    (tmp_path / "p0" / tb.THINNING).write_bytes(b"half a file")
    tb.TensorboardWriter(tmp_path, 1).close()
    assert not (tmp_path / "p0" / tb.THINNING).exists()


def test_an_event_file_with_a_damaged_record_is_not_thinned(tmp_path):
    writer = SummaryWriter(str(tmp_path))
    for step in range(100):
        writer.add_scalar("a", step, step)
    writer.close()
    (path,) = tb.event_files(tmp_path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # the reader stops at the damaged record: thinning would lose what follows
    path.write_bytes(bytes(data))
    tb.thin_event_file(path)
    assert path.read_bytes() == bytes(data)
    assert not (tmp_path / tb.THINNING).exists()
