"""What each worker process starts from: one spec object per worker, made by the run plan.

A spec holds the typed config, where the work goes (`Placement`), and exactly the shared memory and channels
that worker uses. It crosses to the spawned process whole (pickled), so a worker never rebuilds its config.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from sampler.config.derived import Placement
from sampler.config.schema import ExperimentConfig
from sampler.shm.buffers import BufferLayout, LearnerExchange, LearnerSnapshots, SharedWeights, TrajectoryBuffers
from sampler.shm.channels import MessageChannel, OwnedLock, ReplyChannel

ModelFactory = Callable[[], nn.Module]


@dataclass
class RolloutSpec:
    """A rollout worker: its envs, its range of trajectory buffers, and where it sends requests and trajectories."""

    index: int
    incarnation: int  # bumped by each restart, so answers meant for a dead predecessor are ignored
    cfg: ExperimentConfig
    placement: Placement
    layout: BufferLayout
    buffers: TrajectoryBuffers
    request_queues: list[MessageChannel]  # per policy, to its inference workers (unused with local inference)
    reply_queue: ReplyChannel  # action answers and freed buffers, for this worker only
    learner_queues: list[MessageChannel]  # per policy, full trajectories
    local_model: ModelFactory | None = None  # with local inference: the acting model, built in this process
    weights: SharedWeights | None = None  # with local inference: the policies' published weights
    pool_folder: str | None = None  # with an opponent pool: the experiment whose pool/ seats members
    pool_model: ModelFactory | None = None
    stacks_dir: str = ""  # where its stack dumps go (sampler.run.stacks); "" for none

    @property
    def name(self) -> str:
        return f"rollout_{self.index}"


@dataclass
class InferenceSpec:
    """An inference worker of one policy: it answers every rollout worker's requests in batches."""

    policy: int
    index: int
    cfg: ExperimentConfig
    placement: Placement
    buffers: TrajectoryBuffers
    weights: SharedWeights | None  # None: a parameter-free actor (`sftui sample`)
    model: ModelFactory
    request_queue: MessageChannel
    reply_queues: list[ReplyChannel]
    stacks_dir: str = ""

    @property
    def name(self) -> str:
        return f"inference_p{self.policy}_{self.index}"


@dataclass
class LearnerSpec:
    """The learner of one policy, and what it needs to resume, save, and take part in PBT."""

    policy: int
    cfg: ExperimentConfig
    placement: Placement
    layout: BufferLayout
    buffers: TrajectoryBuffers
    weights: SharedWeights
    model: ModelFactory
    trajectory_queue: MessageChannel
    reply_queues: list[ReplyChannel]
    consumers_lock: OwnedLock  # around taking and releasing buffers that several learners consume
    folder: str
    spec_dicts: dict[str, Any]  # the obs, action and model descriptors that checkpoints record
    exchange: LearnerExchange | None = None  # with PBT: whole learner states, copied between policies
    last_obs_follows_done: bool = False  # EnvFacts.last_obs_follows_done: a time-out's real bootstrap is known
    stacks_dir: str = ""
    snapshots: LearnerSnapshots | None = None  # the learners' recent states, to restart one from
    restarted: bool = False  # a restart of a learner that died: it resumes from its snapshot

    @property
    def name(self) -> str:
        return f"learner_p{self.policy}"
