"""Where a run's status goes: listeners (the headless reporter), socket subscribers, TensorBoard,
status.jsonl and summary.json."""

from __future__ import annotations

import json
import time
from pathlib import Path

from sampler.experiment.folders import write_json_atomic
from sampler.status import RunStatus


class StatusSinks:
    def __init__(self, folder: Path, listeners=(), persist_every_sec: float = 2.0):
        self.folder = folder
        self.persist_every_sec = persist_every_sec  # run.status_every_sec
        self.listeners = list(listeners)
        self.server = None  # a ControlServer, once started
        self.tb = None  # a TensorboardWriter, once started
        self._last_persist = 0.0

    def publish(self, status: RunStatus, persist: bool | None = None) -> None:
        """Sends the status everywhere; writes the files when `persist`, or when they are due if None."""
        data = status.to_dict()
        for listener in self.listeners:
            listener(status)
        if self.server is not None:
            self.server.publish(data)
        if self.tb is not None:
            self.tb.write(status)
        now = time.monotonic()
        if persist or (persist is None and now - self._last_persist >= self.persist_every_sec):
            self._last_persist = now
            with open(self.folder / "status.jsonl", "a") as f:
                f.write(json.dumps(data) + "\n")
            write_json_atomic(self.folder / "summary.json", {**data, "heartbeat_at": time.time()})

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
