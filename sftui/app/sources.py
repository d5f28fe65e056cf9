"""Where the app's RunStatus stream comes from, and where its commands go.

`LiveSource` talks to a run's control socket: one connection streams statuses (latest-wins, so the
app can never slow the run down), and each command opens its own short connection. Tests use
`FakeSource`, which the test feeds by hand and which records the commands it receives.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sampler.errors import SftuiError
from sampler.experiment.control import ControlClient
from sampler.status import RunStatus

OnStatus = Callable[[RunStatus], None]
OnLost = Callable[[str], None]


class StatusSource:
    """The interface the dashboard needs: a status stream and blocking commands (called off the UI thread)."""

    folder: Path | None = None

    def start(self, on_status: OnStatus, on_lost: OnLost) -> None:
        raise NotImplementedError

    def command(self, cmd: str, args: dict | None = None) -> Any:
        raise NotImplementedError

    def close(self) -> None:
        pass


class LiveSource(StatusSource):
    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self._client: ControlClient | None = None
        self._closed = threading.Event()

    def start(self, on_status: OnStatus, on_lost: OnLost) -> None:
        threading.Thread(target=self._stream, args=(on_status, on_lost), name="sftui-status", daemon=True).start()

    def _stream(self, on_status: OnStatus, on_lost: OnLost) -> None:
        try:
            self._client = ControlClient.for_experiment(self.folder, timeout=10.0)
            for message in self._client.subscribe():
                if self._closed.is_set():
                    return
                on_status(RunStatus.from_dict(message))
        except (SftuiError, OSError, ValueError) as e:
            if not self._closed.is_set():
                on_lost(str(e))
            return
        if not self._closed.is_set():
            on_lost("the run closed the connection")

    def command(self, cmd: str, args: dict | None = None) -> Any:
        with ControlClient.for_experiment(self.folder, timeout=120.0) as client:
            return client.call(cmd, args)

    def close(self) -> None:
        self._closed.set()
        if self._client is not None:
            try:
                self._client.close()
            except OSError:
                pass


class FakeSource(StatusSource):
    """A hand-fed stream for tests and benchmarks; commands are recorded and answered from `replies`."""

    def __init__(self, folder: Path | None = None, replies: dict[str, Any] | None = None):
        self.folder = folder
        self.commands: list[tuple[str, dict | None]] = []
        self.replies = replies or {}
        self._on_status: OnStatus | None = None
        self._on_lost: OnLost | None = None

    def start(self, on_status: OnStatus, on_lost: OnLost) -> None:
        self._on_status, self._on_lost = on_status, on_lost

    def push(self, status: RunStatus) -> None:
        assert self._on_status is not None, "start() first"
        self._on_status(status)

    def lose(self, reason: str) -> None:
        assert self._on_lost is not None, "start() first"
        self._on_lost(reason)

    def command(self, cmd: str, args: dict | None = None) -> Any:
        self.commands.append((cmd, args))
        reply = self.replies.get(cmd)
        if isinstance(reply, Exception):
            raise reply
        return reply
