"""The control socket: newline-delimited JSON over a Unix socket, one per live run.

Client: {"hello": {"version": 1}}, then {"id": n, "cmd": ..., "args": {...}}.
Server: {"id": n, "ok": true, "result": ...} or {"id": n, "ok": false, "error": "..."}.
`subscribe` streams {"status": RunStatus} messages, latest-wins, so a slow client never backs up the run.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import socket
import stat
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

from sampler.config.keys import parse_item
from sampler.errors import ControlError
from sampler.experiment.folders import read_json

PROTOCOL_VERSION = 1
COMMANDS = ("pause", "resume", "save", "stop", "set", "subscribe")


def socket_dir() -> Path:
    directory = Path(tempfile.gettempdir()) / f"sftui-{os.getuid()}"
    directory.mkdir(mode=0o700, exist_ok=True)
    info = directory.stat()
    if info.st_uid != os.getuid() or stat.S_IMODE(info.st_mode) & 0o077:
        raise ControlError(f"{directory} must be owned by you with mode 0700; remove it and retry")
    return directory


def socket_path_for(folder: Path) -> Path:
    digest = hashlib.sha256(str(folder.absolute()).encode()).hexdigest()[:20]
    return socket_dir() / f"{digest}.sock"


Handler = Callable[[str, dict], Awaitable[object]]


class ControlServer:
    """Serves commands to `handler(cmd, args)` and pushes statuses to subscribers."""

    def __init__(self, path: Path, handler: Handler, experiment: str):
        self.path = path
        self.handler = handler
        self.experiment = experiment
        self._server: asyncio.AbstractServer | None = None
        self._subscribers: set[_Subscriber] = set()

    async def start(self) -> None:
        self.path.unlink(missing_ok=True)
        self._server = await asyncio.start_unix_server(self._serve, path=str(self.path))
        os.chmod(self.path, 0o600)

    async def close(self) -> None:
        for sub in list(self._subscribers):
            sub.close()
        if self._server is not None:
            self._server.close()
        self.path.unlink(missing_ok=True)

    def publish(self, status: dict) -> None:
        for sub in self._subscribers:
            sub.offer(status)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        subscriber: _Subscriber | None = None
        try:
            hello = await self._read(reader)
            if not (isinstance(hello, dict) and isinstance(hello.get("hello"), dict)):
                await _send(writer, {"id": None, "ok": False, "error": 'send {"hello": {"version": 1}} first'})
                return
            if hello["hello"].get("version") != PROTOCOL_VERSION:
                await _send(writer, {"id": None, "ok": False,
                                     "error": f"protocol version {PROTOCOL_VERSION} is the one spoken here"})
                return
            await _send(writer, {"hello": {"version": PROTOCOL_VERSION, "experiment": self.experiment}})
            while True:
                try:
                    message = await self._read(reader)
                except ValueError as e:
                    await _send(writer, {"id": None, "ok": False, "error": str(e)})
                    continue
                if message is None:
                    return
                reply, subscribe = await self._dispatch(message)
                await _send(writer, reply)
                if subscribe and subscriber is None:
                    subscriber = _Subscriber(writer)
                    self._subscribers.add(subscriber)
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            return
        except asyncio.CancelledError:
            # The run is shutting down with a client still connected. Ending normally keeps asyncio's
            # stream callback (Python 3.11) from logging the cancellation as an error with a traceback.
            return
        finally:
            if subscriber is not None:
                self._subscribers.discard(subscriber)
                subscriber.close()
            writer.close()

    async def _read(self, reader: asyncio.StreamReader):
        line = await reader.readline()
        if not line:
            return None
        try:
            return json.loads(line)
        except json.JSONDecodeError:
            raise ValueError("not JSON: send one JSON object per line") from None

    async def _dispatch(self, message) -> tuple[dict, bool]:
        if not isinstance(message, dict) or "cmd" not in message:
            return {"id": None, "ok": False, "error": 'expected {"id": n, "cmd": ..., "args": {...}}'}, False
        request_id, cmd, args = message.get("id"), message["cmd"], message.get("args") or {}
        if cmd not in COMMANDS:
            return {"id": request_id, "ok": False,
                    "error": f"unknown command {cmd!r}; commands: {', '.join(COMMANDS)}"}, False
        if not isinstance(args, dict):
            return {"id": request_id, "ok": False, "error": "args must be an object"}, False
        if cmd == "subscribe":
            return {"id": request_id, "ok": True, "result": "subscribed"}, True
        try:
            result = await self.handler(cmd, args)
        except ControlError as e:
            return {"id": request_id, "ok": False, "error": str(e)}, False
        return {"id": request_id, "ok": True, "result": result}, False


class _Subscriber:
    """Holds only the latest status; a writer task sends it when the client keeps up."""

    def __init__(self, writer: asyncio.StreamWriter):
        self.writer = writer
        self.latest: dict | None = None
        self.ready = asyncio.Event()
        self.task = asyncio.create_task(self._pump())

    def offer(self, status: dict) -> None:
        self.latest = status
        self.ready.set()

    async def _pump(self) -> None:
        try:
            while True:
                await self.ready.wait()
                self.ready.clear()
                status, self.latest = self.latest, None
                await _send(self.writer, {"status": status})
        except (ConnectionError, RuntimeError):
            return

    def close(self) -> None:
        self.task.cancel()


async def _send(writer: asyncio.StreamWriter, message: dict) -> None:
    writer.write((json.dumps(message) + "\n").encode())
    await writer.drain()


# ---- client ----------------------------------------------------------------------------------------


class ControlClient:
    """A blocking client, for the CLI and the app's worker threads."""

    def __init__(self, path: Path, timeout: float = 60.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(str(path))
        except OSError as e:
            self.sock.close()
            raise ControlError(f"cannot reach the run's socket {path} ({e.strerror or e})") from None
        self.file = self.sock.makefile("rwb")
        self._next_id = 0
        self._write({"hello": {"version": PROTOCOL_VERSION}})
        reply = self._read()
        if "hello" not in reply:
            raise ControlError(f"the run refused the connection: {reply.get('error')}")

    @classmethod
    def for_experiment(cls, folder: Path, timeout: float = 60.0) -> ControlClient:
        info = read_json(folder / "run.json")
        if not info or not info.get("socket"):
            raise ControlError(f"{folder.name} is not running (no run.json); `sftui ls` shows its state")
        if info.get("hostname") != socket.gethostname():
            raise ControlError(f"{folder.name} runs on {info.get('hostname')}; control it from there")
        return cls(Path(info["socket"]), timeout=timeout)

    def call(self, cmd: str, args: dict | None = None):
        self._next_id += 1
        self._write({"id": self._next_id, "cmd": cmd, "args": args or {}})
        while True:
            reply = self._read()
            if reply.get("id") == self._next_id:
                break
        if not reply.get("ok"):
            raise ControlError(f"{cmd} refused: {reply.get('error')}")
        return reply.get("result")

    def subscribe(self) -> Iterator[dict]:
        self.call("subscribe")
        self.sock.settimeout(None)
        while True:
            message = self._read()
            if "status" in message:
                yield message["status"]

    def _write(self, message: dict) -> None:
        try:
            self.file.write((json.dumps(message) + "\n").encode())
            self.file.flush()
        except OSError as e:
            raise ControlError(f"the run closed the connection ({e})") from None

    def _read(self) -> dict:
        try:
            line = self.file.readline()
        except TimeoutError:
            raise ControlError("the run did not answer in time") from None
        except OSError as e:
            raise ControlError(f"the run closed the connection ({e})") from None
        if not line:
            raise ControlError("the run closed the connection")
        return json.loads(line)

    def close(self) -> None:
        self.file.close()
        self.sock.close()

    def __enter__(self) -> ControlClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def hyperparameter_changes(items: list[str]) -> dict:
    """`KEY=VALUE` items (`appo.learning_rate=2e-4`, `exploration_loss_coeff=0.01`,
    `env.reward_shaping.hits=0.1`) as the `set` command's hyperparameters; values are JSON where they parse."""
    changes: dict = {}
    for item in items:
        key, value = parse_item(item, example="appo.learning_rate=2e-4")
        key = key.removeprefix("appo.")
        if key.startswith("env.reward_shaping."):
            changes.setdefault("reward_shaping", {})[key.removeprefix("env.reward_shaping.")] = value
        else:
            changes[key] = value
    return changes
