"""Experiment folders: where they live, the one-run-per-folder lock, atomic files and derived states."""

from __future__ import annotations

import fcntl
import json
import os
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from sampler.errors import ExperimentError
from sampler.status import LIVE_STATES

NOT_RESPONDING_AFTER_SEC = 10.0


def resolve_train_dir(cli_value: str | None = None, cfg_value: str | None = None) -> Path:
    """--train-dir, else $SFTUI_TRAIN_DIR, else run.train_dir, else ./train_dir."""
    if cli_value is not None and not cli_value.strip():
        raise ExperimentError("--train-dir is empty; name a folder, e.g. --train-dir ./train_dir")
    chosen = cli_value or os.environ.get("SFTUI_TRAIN_DIR") or cfg_value or "train_dir"
    return Path(chosen).expanduser().absolute()


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, data) -> None:
    write_atomic(path, json.dumps(data, indent=2) + "\n")


def read_json(path: Path) -> dict | None:
    """A JSON object from a file; None when it is missing, unreadable, not JSON, or JSON but not an object."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):  # ValueError: not JSON, or not UTF-8
        return None
    return data if isinstance(data, dict) else None


class ExperimentLock:
    """An exclusive flock on <experiment>/.lock, held for the supervisor's whole life."""

    def __init__(self, folder: Path):
        self.path = folder / ".lock"
        self._fd: int | None = None

    def acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def is_live(folder: Path) -> bool:
    """True when a supervisor holds the folder's lock."""
    lock_path = folder / ".lock"
    if not lock_path.exists():
        return False
    fd = os.open(lock_path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


@dataclass
class ExperimentInfo:
    id: str
    path: Path
    state: str
    env: str
    env_frames: int
    last_return: float | None
    reason: str | None = None


def derived_state(folder: Path) -> tuple[str, dict]:
    """The state a reader should show: the written one, or crashed / not_responding / remote / unreadable."""
    summary = read_json(folder / "summary.json")
    if summary is None:
        if (folder / "summary.json").exists():
            return "unreadable", {"reason": "summary.json holds no valid JSON object"}
        return ("unreadable" if not (folder / "cfg.json").exists() else "stopped"), {}
    state = summary.get("state", "unreadable")
    run_info = read_json(folder / "run.json") or {}
    live = is_live(folder)
    if run_info.get("hostname") not in (None, socket.gethostname()) and state in LIVE_STATES:
        return "remote", summary
    if state in LIVE_STATES and not live:
        # nothing of a crashed run is running, whatever its last summary said: its workers died with it
        workers = [{**w, "state": "dead", "steps_per_sec": 0.0, "cpu_percent": 0.0} if isinstance(w, dict) else w
                   for w in summary.get("workers") or []]
        return "crashed", {**summary, "workers": workers, "fps": dict.fromkeys(summary.get("fps") or {}, 0.0)}
    if live and time.time() - float(summary.get("heartbeat_at", time.time())) > NOT_RESPONDING_AFTER_SEC:
        return "not_responding", summary
    return state, summary


def is_resumable(state: str, folder: Path) -> bool:
    if state in ("stopped", "crashed"):
        return True
    if state == "unreadable":  # summary.json lost or torn: with cfg.json intact, the run resumes as it was
        return read_json(folder / "cfg.json") is not None
    if state == "failed":
        return any((folder / "checkpoints").glob("p*/ckpt_*.pt"))
    return False


def list_experiments(train_dir: Path) -> list[ExperimentInfo]:
    out = []
    if not train_dir.is_dir():
        return out
    for cfg_path in sorted(train_dir.rglob("cfg.json")):
        folder = cfg_path.parent
        if ".old-" in folder.name or (folder / "sweep.json").exists():
            continue
        cfg = read_json(cfg_path)
        state, summary = derived_state(folder)
        if cfg is None:
            state, summary = "unreadable", {"reason": "cfg.json is not valid JSON"}
        policies = summary.get("policies")
        policies = policies if isinstance(policies, list) else []
        returns = [p.get("episode_return") for p in policies if isinstance(p, dict)]
        returns = [r for r in returns if isinstance(r, int | float)]
        frames = summary.get("env_frames", 0)
        out.append(
            ExperimentInfo(
                id=str(folder.relative_to(train_dir)),
                path=folder,
                state=state,
                env=((cfg or {}).get("env") or {}).get("name", "?"),
                env_frames=int(frames) if isinstance(frames, int | float) else 0,
                last_return=max(returns) if returns else None,
                reason=summary.get("reason"),
            )
        )
    listed = {info.path for info in out}
    for found in sorted({*train_dir.rglob("summary.json"), *train_dir.rglob("checkpoints")}):
        folder = found.parent
        if folder in listed or ".old-" in folder.name or (folder / "sweep.json").exists():
            continue
        listed.add(folder)
        summary = read_json(folder / "summary.json") or {}
        frames = summary.get("env_frames", 0)
        out.append(ExperimentInfo(
            id=str(folder.relative_to(train_dir)), path=folder, state="damaged", env="?",
            env_frames=int(frames) if isinstance(frames, int | float) else 0, last_return=None,
            reason="cfg.json is missing, so it cannot be resumed; restore cfg.json, or delete the experiment"))
    return sorted(out, key=lambda info: info.id)


def find_experiment(name: str, train_dir: Path) -> Path:
    """An experiment named by id (relative to train_dir) or by path."""
    for candidate in (Path(name), train_dir / name):
        if (candidate / "cfg.json").is_file():
            return candidate.absolute()
    raise ExperimentError(f"no experiment {name!r} in {train_dir}; `sftui ls` lists them")


def archive_folder(folder: Path) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = folder.with_name(f"{folder.name}.old-{stamp}")
    folder.rename(target)
    return target
