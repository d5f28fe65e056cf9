"""Values derived from a config and this machine: the device, where inference runs, env splits, learner threads.

They are decided once per run, by `Placement.of`, and travel to the workers in the run plan.
"""

from __future__ import annotations

from dataclasses import dataclass

from sampler import machine
from sampler.config.schema import ExperimentConfig
from sampler.envs.families.registry import family_for


@dataclass(frozen=True)
class Placement:
    """Where a run's work goes on this machine."""

    device: str  # "cpu" or "cuda"
    local_inference: bool  # rollout workers compute their own actions: no inference processes
    worker_splits: int  # env groups per rollout worker
    learner_threads: int  # each learner's starting torch thread count
    envs_per_worker: int  # envs each rollout worker steps: sampler.num_envs_per_worker unless the family decides

    @classmethod
    def of(cls, cfg: ExperimentConfig) -> Placement:
        return cls(device=resolved_device(cfg), local_inference=uses_local_inference(cfg),
                   worker_splits=worker_splits(cfg), learner_threads=learner_threads(cfg),
                   envs_per_worker=envs_per_worker(cfg))


def resolved_device(cfg: ExperimentConfig) -> str:
    """The torch device a run uses: run.device, with auto meaning cuda when torch sees a GPU."""
    import torch

    if cfg.run.device == "cuda" or (cfg.run.device == "auto" and torch.cuda.is_available()):
        return "cuda"
    return "cpu"


def uses_local_inference(cfg: ExperimentConfig) -> bool:
    """Whether rollout workers compute their own actions (sampler.inference, auto: on CPU-only runs)."""
    return cfg.sampler.inference == "local" or (cfg.sampler.inference == "auto" and resolved_device(cfg) == "cpu")


def learner_threads(cfg: ExperimentConfig) -> int:
    """The learner's starting thread count: run.learner_threads, with 0 resolved to all cores for batched sampling
    on CPU and 1 otherwise (where the count is tuned, sampler/run/threads.py, tuning starts here)."""
    if cfg.run.learner_threads:
        return cfg.run.learner_threads
    if cfg.sampler.batched_sampling and resolved_device(cfg) == "cpu":
        return machine.usable_cores()
    return 1


def worker_splits(cfg: ExperimentConfig) -> int:
    """Env groups per rollout worker: sampler.worker_num_splits, or its default for the inference placement."""
    if cfg.sampler.worker_num_splits is not None:
        return cfg.sampler.worker_num_splits
    if uses_local_inference(cfg) or cfg.sampler.num_envs_per_worker % 2:
        return 1  # measured with local inference: 1 split trains CartPole 35% and doom_basic 12% faster than 2
    return 2


def envs_per_worker(cfg: ExperimentConfig) -> int:
    """The envs each rollout worker steps: the family's count where it decides (EnvPool's num_envs), else
    sampler.num_envs_per_worker."""
    family = family_for(cfg.env.name)
    return family.envs_per_worker(cfg) if family.envs_per_worker is not None else cfg.sampler.num_envs_per_worker
