"""The messages between the supervisor and its workers, over each worker's duplex pipe.

Commands go down (supervisor -> worker), reports come up (worker -> supervisor). Each message is a
dataclass whose class names its kind, so a reader finds every field a message carries here, in one place,
and each side dispatches on the message's type through a table, not on strings. Requests that want an
answer (save, the PBT and pool requests) carry a request id that their reply repeats.

The index-only data path (action replies, freed trajectories) does not use these: see sampler/shm/channels.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# ---- commands: supervisor -> worker ------------------------------------------------------------------


@dataclass(frozen=True)
class Pause:
    """Stop taking new work; a worker answers with Paused once it has none in flight."""


@dataclass(frozen=True)
class Resume:
    pass


@dataclass(frozen=True)
class Stop:
    """Finish the current step and exit."""


@dataclass(frozen=True)
class Rerequest:
    """To rollout workers, after policy `policy`'s inference worker died and was restarted: ask again for the
    actions still awaited from it (what the dead worker took from the queue is never answered)."""

    policy: int


@dataclass(frozen=True)
class Save:
    """Learner: write a checkpoint (best.pt with `best`); answered by Saved."""

    request: int
    env_frames: int
    elapsed_sec: float
    best: bool = False


@dataclass(frozen=True)
class SetHyperparameters:
    """Learner: apply these hyperparameters before the next step and record them with `source`."""

    hyperparameters: dict[str, Any]
    source: str = "set"


@dataclass(frozen=True)
class PbtPublish:
    """Learner: write the whole learner state into its exchange slot; answered by PbtPublished."""

    request: int


@dataclass(frozen=True)
class PbtCopy:
    """Learner: become a copy of `source`'s published state with `hyperparameters`; answered by PbtCopied."""

    request: int
    source: int
    hyperparameters: dict[str, Any]


@dataclass(frozen=True)
class PoolSnapshot:
    """Learner: write a frozen copy of the model into `directory`; answered by PoolSaved."""

    request: int
    directory: str
    env_frames: int


Command = Pause | Resume | Stop | Rerequest | Save | SetHyperparameters | PbtPublish | PbtCopy | PoolSnapshot

# ---- reports: worker -> supervisor -------------------------------------------------------------------


@dataclass(frozen=True)
class Heartbeat:
    """Every worker, twice a second: alive, its step count, and what it gathered since the last beat."""

    steps: int
    paused: bool
    # rollout workers: finished episodes as (policy, return, length, true objective, extra stats, shaped return)
    episodes: list[tuple] = field(default_factory=list)
    games: list[list] = field(default_factory=list)  # with an opponent pool: [(player, score), ...] per game
    seats: tuple[int, int] = (0, 0)  # opponent seats filled, and how many by a pool member
    mean_batch: float | None = None  # samples per forward pass (inference, local or in its own process)
    version: int | None = None  # learner and inference workers: the policy version they hold
    env_frames: int | None = None  # learner: its policy's env frames
    env_restarts: int = 0  # rollout workers: envs rebuilt since the last beat after raising
    env_error: str | None = None  # the last such env's error line
    discarded: int = 0  # a restarted rollout worker: its predecessor's partial trajectory blocks, dropped


@dataclass(frozen=True)
class Ready:
    """Learner, once started: where it resumed from, and what it trains with."""

    policy: int
    version: int
    env_frames: int
    elapsed_sec: float
    hyperparameters: dict[str, Any]
    checkpoint: str | None
    skipped: list[str]  # newer checkpoints that did not load, and what became of them
    digest: str
    precision: str
    threads: int


@dataclass(frozen=True)
class Trained:
    """Learner, after each training step."""

    version: int
    env_frames: int
    samples: int
    valid_samples: int
    lag: dict[str, Any]
    stats: dict[str, float]


@dataclass(frozen=True)
class ThreadsChosen:
    """Learner: the thread count its measurement settled on, and why."""

    threads: int
    message: str


@dataclass(frozen=True)
class HyperparametersNow:
    """Learner: its hyperparameters after a change."""

    hyperparameters: dict[str, Any]


@dataclass(frozen=True)
class Paused:
    steps: int


@dataclass(frozen=True)
class Resumed:
    pass


@dataclass(frozen=True)
class Saved:
    request: int
    path: str  # "" where nothing was saved: `error` says why
    best: bool
    error: str = ""


@dataclass(frozen=True)
class Notice:
    """A worker's news for the log and the event list: `topic` names it (e.g. "nonfinite")."""

    topic: str
    message: str


@dataclass(frozen=True)
class PbtPublished:
    request: int
    size: int
    digest: str


@dataclass(frozen=True)
class PbtCopied:
    request: int
    version: int
    digest_before: str
    digest_after: str


@dataclass(frozen=True)
class PoolSaved:
    request: int
    path: str
    version: int


@dataclass(frozen=True)
class WorkerFailed:
    """A worker's last word: the error, with its traceback unless it is a user's error that says it all."""

    error: str
    traceback: str


@dataclass(frozen=True)
class Exited:
    """A worker's loop ended after a Stop."""


Report = (Heartbeat | Ready | Trained | ThreadsChosen | HyperparametersNow | Paused | Resumed | Saved | PbtPublished
          | PbtCopied | PoolSaved | WorkerFailed | Exited | Notice)
Reply = Saved | PbtPublished | PbtCopied | PoolSaved  # the answers to requests, matched by request id
