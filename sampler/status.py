"""RunStatus: the one picture of a run that every reader renders (headless lines, the app, `sftui status`).

A plain, JSON-serializable dataclass tree. Later features add entries to `hyperparameters` and
`metrics` without changing readers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, is_dataclass
from typing import Any

SCHEMA_VERSION = 1

LIVE_STATES = ("starting", "running", "paused", "stopping")
FINAL_STATES = ("stopped", "finished", "failed")
LAG_HISTOGRAM_EDGES = (0, 1, 2, 4, 8, 16, 32, 64, 128, 256)


@dataclass
class Lag:
    min: float = 0.0
    avg: float = 0.0
    max: float = 0.0
    histogram: list[int] = field(default_factory=lambda: [0] * len(LAG_HISTOGRAM_EDGES))


@dataclass
class PolicyStatus:
    policy_id: int = 0
    version: int = 0
    env_frames: int = 0
    samples: int = 0
    samples_per_sec: float = 0.0
    valid_fraction: float = 1.0
    lag: Lag = field(default_factory=Lag)
    episode_return: float | None = None
    episode_length: float | None = None
    true_objective: float | None = None
    shaped_return: float | None = None  # the return with this policy's reward shaping (envs with components)
    pbt_last: str | None = None  # PBT's last replacement of this policy, and what it mutated
    rating: float | None = None  # Elo rating in games against the pool and the other policies (with a pool)
    episodes: int = 0
    best_return: float | None = None  # what best.pt holds: the best evaluation return with evaluation on
    eval_return: float | None = None  # the last evaluation's mean return (run.eval_every_env_steps)
    eval_env_frames: int | None = None  # the env frames of the checkpoint it evaluated
    learning_rate: float = 0.0
    losses: dict[str, float] = field(default_factory=dict)
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass
class WorkerStatus:
    name: str
    kind: str  # rollout | inference | learner
    pid: int | None = None
    state: str = "starting"  # starting | running | paused | stalled | dead | exited
    cpu_percent: float = 0.0
    steps: int = 0
    steps_per_sec: float = 0.0
    restarts: int = 0
    last_error: str | None = None
    mean_batch: float | None = None  # inference workers: mean samples per forward pass
    env_restarts: int = 0  # rollout workers: envs that raised and were rebuilt alone, over the run
    discarded: int = 0  # rollout workers: partial trajectory blocks dropped when a dead worker was replaced


@dataclass
class Event:
    time: float
    kind: str  # checkpoint | worker_restarted | worker_died | state | ...
    message: str


@dataclass
class RunStatus:
    experiment: str
    state: str = "starting"
    env_frames: int = 0
    samples: int = 0
    samples_collected: int = 0
    fps: dict[str, float] = field(default_factory=lambda: {"10": 0.0, "60": 0.0, "300": 0.0})
    budget_env_frames: int = 0
    budget_seconds: float = 0.0
    started_at: float = 0.0
    elapsed_sec: float = 0.0
    error: str | None = None
    warning: str | None = None  # what the run works around now, e.g. checkpoints that do not save
    policies: list[PolicyStatus] = field(default_factory=list)
    workers: list[WorkerStatus] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    # the opponent pool, with one: members (name, kind, rating, games), opponent_seats, pool_seats,
    # seat_probability, last_snapshot_env_frames
    pool: dict[str, Any] | None = None
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> RunStatus:
        return _build(cls, data)


def _build(cls, data: dict):
    kwargs = {}
    for f in fields(cls):
        if f.name not in data:
            continue
        value = data[f.name]
        kind = f.type if not isinstance(f.type, str) else _TYPES.get(f.type)
        if kind is not None and is_dataclass(kind) and isinstance(value, dict):
            value = _build(kind, value)
        elif f.name in _LIST_TYPES and isinstance(value, list):
            value = [_build(_LIST_TYPES[f.name], v) for v in value]
        kwargs[f.name] = value
    return cls(**kwargs)


_TYPES = {"Lag": Lag}
_LIST_TYPES = {"policies": PolicyStatus, "workers": WorkerStatus, "events": Event}
