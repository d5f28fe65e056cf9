"""TensorBoard scalars under <experiment>/tb/p<k>, written when a policy's learner reports a new version.

A policy's folder stays bounded however long the run: a new event file starts every hour, and whenever the
folder grows past CAP_BYTES the files older than the last two are thinned in a background thread, keeping
every other point of each scalar. The last one to two hours stay at full resolution; older history thins out
geometrically, as in status.jsonl.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from pathlib import Path

from sampler.status import RunStatus

REOPEN_EVERY_SEC = 30.0
CAP_BYTES = 32 * 2**20  # a policy's tb/p<k> is thinned whenever it grows past this
ROLL_EVERY_SEC = 3600.0  # a new event file each hour
THINNING = ".thinning.tmp"  # the file a thinned event file is written to, then renamed over it
RECORD_FRAMING = 16  # bytes around each record of an event file: its length, and a checksum of each


def event_files(folder: Path) -> list[Path]:
    """The event files of a folder, oldest first: their names hold the second they were opened and a counter
    (`events.out.tfevents.<time>.<host>.<pid>.<n>`), compared as numbers."""

    def key(path: Path) -> tuple:
        return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in path.name.split("."))

    return sorted((p for p in folder.glob("*tfevents*") if p.is_file()), key=key)


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file()) if folder.is_dir() else 0


def thin_event_file(path: Path) -> None:
    """Rewrites a closed event file keeping every other point of each scalar (always its first), through a
    temporary file renamed over it: a full disk or a crash leaves the file as it was."""
    from tensorboard.backend.event_processing.event_file_loader import RawEventFileLoader
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.summary.writer.record_writer import RecordWriter

    seen: dict[str, int] = {}
    temporary = path.parent / THINNING
    read = 0
    try:
        with open(temporary, "wb") as out:
            writer = RecordWriter(out)
            for record in RawEventFileLoader(str(path)).Load():
                read += len(record) + RECORD_FRAMING
                values = Event.FromString(record).summary.value
                if values:
                    tag = values[0].tag
                    seen[tag] = seen.get(tag, 0) + 1
                    if seen[tag] % 2 == 0:
                        continue
                writer.write(record)
            out.flush()
            os.fsync(out.fileno())
        if read == path.stat().st_size:  # a damaged record stops the reader early: such a file stays whole
            os.replace(temporary, path)
    except Exception:  # noqa: BLE001 - a file that cannot be thinned stays as it was; the run goes on
        pass
    finally:
        temporary.unlink(missing_ok=True)


class TensorboardWriter:
    def __init__(self, directory: Path, num_policies: int, cap_bytes: int = CAP_BYTES,
                 roll_every_sec: float = ROLL_EVERY_SEC):
        self.directory = directory
        for policy in range(num_policies):  # left by a run that ended in the middle of thinning
            (directory / f"p{policy}" / THINNING).unlink(missing_ok=True)
        self.writers = [self._open(p) for p in range(num_policies)]
        self.last_version = [-1] * num_policies
        self.resting_until = [0.0] * num_policies  # after a failed write: no new writer before then
        self.cap_bytes, self.roll_every_sec = cap_bytes, roll_every_sec
        self.opened_at = [time.monotonic()] * num_policies
        self.thin_at = [cap_bytes] * num_policies  # raised after each thinning, as status.jsonl's
        self.thinning: list[threading.Thread | None] = [None] * num_policies

    def _open(self, policy: int):
        from torch.utils.tensorboard import SummaryWriter

        return SummaryWriter(str(self.directory / f"p{policy}"), flush_secs=10)

    def _reopen(self, policy: int) -> None:
        """A writer whose background thread died (a full disk) raises its error on every later call: it is
        replaced by a new one, writing a new event file beside the old, which TensorBoard reads as one run."""
        with contextlib.suppress(Exception):
            self.writers[policy].close()
        self.writers[policy] = self._open(policy)
        self.resting_until[policy] = time.monotonic() + REOPEN_EVERY_SEC

    def write(self, status: RunStatus) -> None:
        for policy in status.policies:
            if policy.version == self.last_version[policy.policy_id]:
                continue
            if time.monotonic() < self.resting_until[policy.policy_id]:
                continue  # its last writer failed moments ago (a full disk): try again later
            self.last_version[policy.policy_id] = policy.version
            writer, step = self.writers[policy.policy_id], status.env_frames
            scalars = {
                "perf/fps_10s": status.fps["10"],
                "perf/samples_per_sec": policy.samples_per_sec,
                "perf/valid_fraction": policy.valid_fraction,
                "lag/min": policy.lag.min,
                "lag/avg": policy.lag.avg,
                "lag/max": policy.lag.max,
                "train/learning_rate": policy.learning_rate,
                "train/version": policy.version,
            }
            if policy.episode_return is not None:
                scalars["reward/episode_return"] = policy.episode_return
                scalars["reward/episode_length"] = policy.episode_length
            if policy.true_objective is not None:
                scalars["reward/true_objective"] = policy.true_objective
            if policy.shaped_return is not None:
                scalars["reward/shaped_return"] = policy.shaped_return
            scalars.update({f"train/{k}": v for k, v in policy.losses.items()})
            scalars.update({f"train/{k}": v for k, v in policy.metrics.items() if "/" not in k})
            scalars.update({k: v for k, v in policy.metrics.items() if "/" in k})
            try:
                for tag, value in scalars.items():
                    writer.add_scalar(tag, value, step)
            except OSError:
                self.last_version[policy.policy_id] = -1  # written again next time
                self._reopen(policy.policy_id)
                raise
            self._roll(policy.policy_id)

    def _roll(self, policy: int) -> None:
        """Every roll_every_sec: a new event file, and the folder thinned if it grew past its threshold."""
        now = time.monotonic()
        if now - self.opened_at[policy] < self.roll_every_sec:
            return
        self.opened_at[policy] = now
        self.writers[policy].close()
        self.writers[policy] = self._open(policy)
        folder = self.directory / f"p{policy}"
        busy = self.thinning[policy] is not None and self.thinning[policy].is_alive()
        if folder_bytes(folder) > self.thin_at[policy] and not busy:
            self.thinning[policy] = threading.Thread(target=self._thin, args=(policy, folder), daemon=True,
                                                     name=f"tb-thinning-p{policy}")
            self.thinning[policy].start()

    def _thin(self, policy: int, folder: Path) -> None:
        for path in event_files(folder)[:-2]:  # the file just opened and the hour before it stay whole
            thin_event_file(path)
        self.thin_at[policy] = max(self.cap_bytes, folder_bytes(folder) + self.cap_bytes // 4)

    def write_eval(self, policy: int, mean_return: float, env_frames: int) -> None:
        self.writers[policy].add_scalar("eval/episode_return", mean_return, env_frames)

    def close(self) -> None:
        for writer in self.writers:
            writer.close()
        for thread in self.thinning:
            if thread is not None:
                thread.join(timeout=5)  # past that it is cut short: the file it rewrote stays as it was
