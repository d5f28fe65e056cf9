"""Where a run's status goes: listeners (the headless reporter), socket subscribers, TensorBoard,
status.jsonl and summary.json."""

from __future__ import annotations

import errno
import json
import time
from pathlib import Path

from sampler.experiment.folders import write_atomic, write_json_atomic
from sampler.status import RunStatus

CAP_BYTES = 16 * 2**20  # status.jsonl is thinned whenever it grows past this
FULL_RESOLUTION_SEC = 3600.0  # the last hour of lines is never thinned


class StatusHistory:
    """status.jsonl: one line per persisted status, bounded on disk.

    Each line holds only the events that are new since the line before (summary.json has the last 50), so an
    event is written once. When the file passes CAP_BYTES, every other line older than the last `keep_full`
    lines is dropped (its events move to the next line kept), written to a temporary file and renamed over the
    old one. Older history thins out geometrically and the file stays under CAP_BYTES whatever the run's length:
    full resolution for the last hour, half for the stretch before, a quarter before that, and so on.
    """

    def __init__(self, path: Path, keep_full: int, cap_bytes: int = CAP_BYTES):
        self.path, self.keep_full, self.cap_bytes = path, max(1, keep_full), cap_bytes
        self.size = path.stat().st_size if path.exists() else 0
        self.thin_at = cap_bytes
        self.last_event = float("-inf")

    def append(self, data: dict) -> None:
        events = [e for e in data.get("events", []) if e["time"] > self.last_event]
        if events:
            self.last_event = events[-1]["time"]
        line = json.dumps({**data, "events": events}) + "\n"
        with open(self.path, "a") as f:
            f.write(line)
        self.size += len(line.encode())
        if self.size > self.thin_at:
            self.thin()

    def thin(self) -> None:
        lines = self.path.read_text(errors="replace").splitlines()
        old, recent = lines[:-self.keep_full], lines[-self.keep_full:]
        kept, carried = [], []
        for i, line in enumerate(old):
            try:
                status = json.loads(line)
            except ValueError:
                continue  # a torn line: dropped
            if i % 2 == 1 and i != len(old) - 1:
                carried += status.get("events") or []
                continue
            if carried:
                status["events"] = carried + (status.get("events") or [])
                carried = []
            kept.append(json.dumps(status))
        text = "".join(line + "\n" for line in kept + recent)
        write_atomic(self.path, text)
        self.size = len(text.encode())
        # where the last hour alone is most of the cap (statuses written very often), not again at once
        self.thin_at = max(self.cap_bytes, self.size + self.cap_bytes // 4)


class StatusSinks:
    def __init__(self, folder: Path, listeners=(), persist_every_sec: float = 2.0):
        self.folder = folder
        self.persist_every_sec = persist_every_sec  # run.status_every_sec
        self.listeners = list(listeners)
        self.server = None  # a ControlServer, once started
        self.tb = None  # a TensorboardWriter, once started
        self._last_persist = 0.0
        self.write_error: str | None = None  # why the status files could not be written, while that lasts
        self.history = StatusHistory(folder / "status.jsonl", keep_full=int(FULL_RESOLUTION_SEC / persist_every_sec))

    def publish(self, status: RunStatus, persist: bool | None = None) -> None:
        """Sends the status everywhere; writes the files when `persist`, or when they are due if None."""
        data = status.to_dict()
        for listener in self.listeners:
            listener(status)
        if self.server is not None:
            self.server.publish(data)
        now = time.monotonic()
        try:
            if persist or (persist is None and now - self._last_persist >= self.persist_every_sec):
                self._last_persist = now
                if self.tb is not None:  # TensorBoard at the status history's pace: 2 s apart by default
                    self.tb.write(status)
                self.history.append(data)
                write_json_atomic(self.folder / "summary.json", {**data, "heartbeat_at": time.time()})
            self.write_error = None
        except OSError as e:
            # A full disk must not stop the run's clock (saves, the budget, stalls): the status still reaches
            # listeners and the socket, and the files are written again once they can be.
            self.write_error = (f"no space left on device: {self.folder}" if e.errno == errno.ENOSPC
                                else f"{self.folder}: {e.strerror or e}")

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
