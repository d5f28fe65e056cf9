"""Shared-memory trajectory buffers and policy weights, allocated by the supervisor before any worker starts.

Only indices travel between processes; the tensors here are shared. They use torch's file-descriptor
sharing, so no named segment exists in /dev/shm: nothing can be left behind, even after SIGKILL.

Each rollout worker owns a fixed range of trajectory buffers. A buffer's `state` moves
WORKER -> LEARNER (the worker hands it over) -> FREE (the last consuming learner is done)
-> WORKER (the worker takes it again). Only the owner moves FREE -> WORKER, so a restarted
worker can reclaim its half-written buffers without racing the learners.
"""

from __future__ import annotations

import math
import shutil
import time
from dataclasses import dataclass

import numpy as np
import torch

from algos.spaces import ActionSpec, ObsSpec
from sampler.errors import ExperimentError

FREE, WORKER, LEARNER = 0, 1, 2
SHM_DIR = "/dev/shm"
POISON_FLOAT = float("nan")
POISON_INT = -(2**31)


@dataclass(frozen=True)
class BufferLayout:
    num_workers: int
    slots_per_worker: int  # envs x agents
    buffers_per_slot: int
    rollout: int

    @property
    def per_worker(self) -> int:
        return self.slots_per_worker * self.buffers_per_slot

    @property
    def total(self) -> int:
        return self.num_workers * self.per_worker

    def worker_range(self, worker: int) -> range:
        return range(worker * self.per_worker, (worker + 1) * self.per_worker)

    def owner(self, traj: int) -> int:
        return traj // self.per_worker

    @classmethod
    def for_run(cls, cfg, num_agents: int, vector_envs: int | None = None) -> BufferLayout:
        """The layout a run's config asks for: every env slot of every worker, and enough buffers for every
        policy's learner to gather a batch at once. Each learner keeps the trajectories it waits on, so with
        buffers for one batch only, two learners each holding part of one could wait on each other forever
        (seen with doom_duel_bots and two policies: 6,144 frames, then nothing)."""
        slots = vector_envs or cfg.sampler.num_envs_per_worker * num_agents  # batched: one per env of the vector
        batch_trajectories = (cfg.appo.batch_size * cfg.appo.num_batches_per_epoch // cfg.appo.rollout
                              * cfg.sampler.num_policies)
        return cls(num_workers=cfg.sampler.num_workers, slots_per_worker=slots, rollout=cfg.appo.rollout,
                   buffers_per_slot=buffers_per_slot(batch_trajectories, cfg.sampler.num_workers, slots))


def buffers_per_slot(batch_trajectories: int, num_workers: int, slots_per_worker: int) -> int:
    """Enough buffers for the learner to hold a full batch while every slot keeps filling one."""
    per_slot_for_batch = math.ceil(batch_trajectories / max(1, num_workers * slots_per_worker))
    return max(2, per_slot_for_batch + 1) + 1


def reclaim(np_: NumpyViews, trajectories: np.ndarray) -> int:
    """A restarted rollout worker takes back its predecessor's buffers but those a learner holds (LEARNER).
    Returns how many partial blocks (WORKER) it was filling: dropped, never trained, and reported."""
    states = np_.state[trajectories]
    np_.state[trajectories[states != LEARNER]] = FREE
    return int((states == WORKER).sum())


def undelivered(np_: NumpyViews, trajectories: np.ndarray) -> dict[int, list[int]]:
    """Of a rollout worker's buffers, those handed over (LEARNER) that a learner they were addressed to never took
    from its queue, by policy: its predecessor died after marking them, maybe before sending them. Sent again;
    a learner that finds one it holds already, or one released since, drops it (`take`)."""
    missing: dict[int, list[int]] = {}
    for traj in trajectories[np_.state[trajectories] == LEARNER]:
        bits = int(np_.addressed[traj]) & ~int(np_.held[traj])
        for policy in range(bits.bit_length()):
            if bits >> policy & 1:
                missing.setdefault(policy, []).append(int(traj))
    return missing


def take(np_: NumpyViews, bit: int, trajectories) -> list[int]:
    """A learner takes trajectories from its queue: those addressed to it and neither held nor released since
    (a copy sent again by a restarted rollout worker is dropped). Callers hold the consumers lock."""
    taken = np.asarray(trajectories, dtype=np.int64)
    fresh = taken[(np_.state[taken] == LEARNER) & (np_.addressed[taken] & bit != 0) & (np_.held[taken] & bit == 0)]
    np_.held[fresh] |= bit
    return fresh.tolist()


def release(np_: NumpyViews, layout: BufferLayout, trajectories) -> tuple[set[int], int]:
    """One consumer is done with each trajectory; those no one else needs go back to FREE.

    Returns the rollout workers owning freed buffers (to be told) and how many were freed. Callers
    that share buffers with other consumers hold the consumers lock around this.
    """
    owners: set[int] = set()
    freed = 0
    for traj in trajectories:
        np_.consumers[traj] -= 1
        if np_.consumers[traj] <= 0:
            np_.state[traj] = FREE
            owners.add(layout.owner(traj))
            freed += 1
    return owners, freed


class TrajectoryBuffers:
    def __init__(
        self,
        layout: BufferLayout,
        obs_specs: dict[str, ObsSpec],
        action_spec: ActionSpec,
        rnn_state_size: int = 0,
        poison: bool = False,
        reward_components: tuple[str, ...] = (),
        num_policies: int = 1,
        _alloc=None,
    ):
        n, t = layout.total, layout.rollout
        self.layout = layout
        self.action_spec = action_spec
        self.reward_components = tuple(reward_components)

        def shared(shape, dtype):
            return torch.zeros(shape, dtype=dtype).share_memory_()

        alloc = _alloc or shared

        self.obs = {
            key: alloc((n, t + 1, *spec.shape), getattr(torch, spec.dtype)) for key, spec in obs_specs.items()
        }
        self.actions = alloc((n, t, *action_spec.action_shape()), action_spec.action_dtype())
        discrete = action_spec.kind in ("discrete", "multi_discrete")  # masks: one flag per action of each head
        self.action_masks = alloc((n, t + 1, action_spec.num_dist_params()), torch.bool) if discrete else None
        self.log_probs = alloc((n, t), torch.float32)
        self.values = alloc((n, t), torch.float32)
        self.dist_params = alloc((n, t, action_spec.num_dist_params()), torch.float32)
        self.policy_versions = alloc((n, t), torch.int64)
        self.policy_ids = alloc((n, t), torch.int64)
        self.rewards = alloc((n, t), torch.float32)
        self.dones = alloc((n, t), torch.bool)
        self.time_outs = alloc((n, t), torch.bool)
        self.active = alloc((n, t), torch.bool)
        # The recurrent state before each observation; index T seeds the next trajectory of the slot.
        self.rnn_states = alloc((n, t + 1, rnn_state_size), torch.float32) if rnn_state_size else None
        # Raw reward-shaping components per step (info["reward_components"], in the env's order), and each
        # policy's coefficients for them: its learner owns its row and weights the components into the
        # rewards it trains on; rollout workers read the rows to report shaped returns.
        k = len(self.reward_components)
        self.components = alloc((n, t, k), torch.float32) if k else None
        self.shaping = alloc((num_policies, k), torch.float32) if k else None
        self.state = alloc((n,), torch.int32)
        self.consumers = alloc((n,), torch.int32)
        # which learners (bit p: policy p's) took the buffer from their queue and have not released it yet: a
        # restarted learner trains on what its dead predecessor held, so no completed block is lost
        self.held = alloc((n,), torch.int64)
        # which learners (bit p) a trajectory was handed over to and have not released it: with `held`, what a
        # restarted rollout worker sends again when its predecessor died between marking it and sending it
        self.addressed = alloc((n,), torch.int64)
        # the step whose actions a trajectory awaits from an inference worker (-1: none): a request that no longer
        # matches (asked again after an inference worker's restart, and answered already) is not acted on twice
        self.awaiting = alloc((n,), torch.int32)
        if self.awaiting is not None:
            self.awaiting.fill_(-1)
        if poison:
            self.poison()

    @staticmethod
    def required_bytes(layout: BufferLayout, obs_specs: dict[str, ObsSpec], action_spec: ActionSpec,
                       rnn_state_size: int = 0, reward_components: tuple[str, ...] = (),
                       num_policies: int = 1) -> int:
        """The shared memory these buffers take, computed without allocating any."""
        total = 0

        def count(shape, dtype):
            nonlocal total
            total += math.prod(shape) * torch.empty((), dtype=dtype).element_size()

        TrajectoryBuffers(layout, obs_specs, action_spec, rnn_state_size=rnn_state_size,
                          reward_components=reward_components, num_policies=num_policies, _alloc=count)
        return total

    def step_tensors(self) -> dict[str, torch.Tensor]:
        """Per-step tensors (everything indexed [trajectory, t] except observations and masks)."""
        extra = {"components": self.components} if self.components is not None else {}
        return {
            **extra,
            "actions": self.actions,
            "log_probs": self.log_probs,
            "values": self.values,
            "dist_params": self.dist_params,
            "policy_versions": self.policy_versions,
            "policy_ids": self.policy_ids,
            "rewards": self.rewards,
            "dones": self.dones,
            "time_outs": self.time_outs,
            "active": self.active,
        }

    def poison(self, trajectories=None) -> None:
        """Fill data tensors with values no writer produces, so reads of unwritten data stand out."""
        index = slice(None) if trajectories is None else torch.as_tensor(list(trajectories), dtype=torch.long)
        extra = [self.rnn_states] if self.rnn_states is not None else []
        for tensor in [*self.obs.values(), *self.step_tensors().values(), *extra]:
            if tensor.dtype == torch.bool:
                continue
            tensor[index] = POISON_FLOAT if tensor.is_floating_point() else _int_poison(tensor.dtype)

    def numpy_views(self) -> NumpyViews:
        return NumpyViews(self)


def _int_poison(dtype: torch.dtype) -> int:
    return int(torch.iinfo(dtype).min)


class NumpyViews:
    """Numpy views of the shared tensors: per-step indexing in numpy is several times cheaper than in torch."""

    def __init__(self, buffers: TrajectoryBuffers):
        self.obs = {key: t.numpy() for key, t in buffers.obs.items()}
        for name, tensor in buffers.step_tensors().items():
            setattr(self, name, tensor.numpy())
        self.action_masks = buffers.action_masks.numpy() if buffers.action_masks is not None else None
        self.rnn_states = buffers.rnn_states.numpy() if buffers.rnn_states is not None else None
        self.components = buffers.components.numpy() if buffers.components is not None else None
        self.shaping = buffers.shaping.numpy() if buffers.shaping is not None else None
        self.state = buffers.state.numpy()
        self.consumers = buffers.consumers.numpy()
        self.held = buffers.held.numpy()
        self.addressed = buffers.addressed.numpy()
        self.awaiting = buffers.awaiting.numpy()


class LearnerExchange:
    """One shared byte slot per policy for its whole learner state (weights, optimizer moments, normalizers):
    PBT copies a better policy into a worse one through it, with no file in between. A learner writes its own
    slot when asked; others read it."""

    def __init__(self, num_policies: int, capacity: int):
        self.data = torch.zeros((num_policies, capacity), dtype=torch.uint8).share_memory_()
        self.sizes = torch.zeros(num_policies, dtype=torch.int64).share_memory_()

    @staticmethod
    def capacity_for(model: torch.nn.Module) -> int:
        """Room for the model and an Adam optimizer's two moments per parameter, with headroom."""
        model_bytes = sum(t.numel() * t.element_size() for t in model.state_dict().values())
        return 3 * model_bytes + (4 << 20)

    def write(self, policy: int, state: dict) -> int:
        import io

        buffer = io.BytesIO()
        torch.save(state, buffer)
        raw = buffer.getbuffer()
        if len(raw) > self.data.shape[1]:
            raise ValueError(f"learner state of {len(raw):,} bytes does not fit the {self.data.shape[1]:,}-byte slot")
        self.data[policy, :len(raw)] = torch.frombuffer(raw, dtype=torch.uint8)
        self.sizes[policy] = len(raw)
        return len(raw)

    def read(self, policy: int) -> dict:
        import io

        size = int(self.sizes[policy])
        return torch.load(io.BytesIO(self.data[policy, :size].numpy().tobytes()), weights_only=False)


class LearnerSnapshots:
    """Each learner's recent whole state (weights, optimizer, normalizers, counters), kept in shared memory every
    few seconds: a learner that dies is restarted from it, losing only the seconds since, where a checkpoint
    could be minutes old. Two slots per policy: a learner killed mid-write leaves the other one whole."""

    def __init__(self, num_policies: int, capacity: int):
        self.slots = LearnerExchange(2 * num_policies, capacity)
        self.current = torch.full((num_policies,), -1, dtype=torch.int64).share_memory_()  # slot, or -1: none yet

    def write(self, policy: int, state: dict) -> int:
        slot = 2 * policy + (1 if int(self.current[policy]) == 2 * policy else 0)  # the one not current
        size = self.slots.write(slot, state)
        self.current[policy] = slot
        return size

    def read(self, policy: int) -> dict | None:
        slot = int(self.current[policy])
        return self.slots.read(slot) if slot >= 0 else None


class SharedWeights:
    """Each policy's model state in shared memory, with a version counter.

    Readers take no lock, so a reader killed mid-read (a rollout worker acting locally) can block
    nobody. Each policy has one writer, its learner, which makes its sequence number odd while it
    writes; a reader retries until it copied the weights between two equal, even readings.
    """

    def __init__(self, state_dicts: list[dict[str, torch.Tensor]], ctx=None):
        self.tensors = [{k: v.detach().clone().cpu().share_memory_() for k, v in sd.items()} for sd in state_dicts]
        self.versions = torch.zeros(len(state_dicts), dtype=torch.int64).share_memory_()
        self.sequence = torch.zeros(len(state_dicts), dtype=torch.int64).share_memory_()

    def publish(self, policy: int, state_dict: dict[str, torch.Tensor], version: int) -> None:
        self.sequence[policy] += 1  # odd: a write is under way
        for key, tensor in self.tensors[policy].items():
            tensor.copy_(state_dict[key].detach())
        self.versions[policy] = version
        self.sequence[policy] += 1  # even: the weights are whole again

    def version(self, policy: int) -> int:
        return int(self.versions[policy])

    def load_into(self, policy: int, model: torch.nn.Module) -> int:
        while True:
            before = int(self.sequence[policy])
            if before % 2 == 0:
                model.load_state_dict(self.tensors[policy])
                version = int(self.versions[policy])
                if int(self.sequence[policy]) == before:
                    return version
            time.sleep(0.0005)  # the learner is writing: it takes milliseconds


def check_shared_memory(needed: int, directory: str = SHM_DIR) -> None:
    """Refuses, in one line, a run whose shared buffers do not fit the shared-memory filesystem (64 MB is common
    in containers): past its size, touching a buffer would kill a worker with SIGBUS, far from the cause."""
    try:
        free = shutil.disk_usage(directory).free
    except OSError:
        return  # no /dev/shm to measure (not Linux): torch finds its own way
    if needed * 1.05 > free:
        raise ExperimentError(
            f"the run's shared buffers need {needed / 2**20:,.0f} MB of shared memory, but {directory} has "
            f"{free / 2**20:,.0f} MB free; enlarge it (in Docker: --shm-size=2g) or lower "
            "sampler.num_envs_per_worker, appo.batch_size or appo.rollout")
