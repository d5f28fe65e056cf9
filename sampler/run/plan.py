"""The run plan: a run's shared memory, channels and worker specs, laid out once from the config and the env.

The supervisor lays a training run out through `RunPlan`, and `sftui sample` (the sampler alone, with a
parameter-free actor and no learner) lays its run out through the same plan, so the sampler-alone figure
measures the pipeline training would use: the same buffers, channels, splits and inference placement.
"""

from __future__ import annotations

import multiprocessing as mp
from dataclasses import dataclass
from typing import Any

from algos.spaces import obs_specs_to_dict
from sampler.config.derived import Placement
from sampler.config.schema import ExperimentConfig
from sampler.envs.contract import EnvFacts
from sampler.run.workers.specs import InferenceSpec, LearnerSpec, ModelFactory, RolloutSpec
from sampler.shm.buffers import (
    BufferLayout,
    LearnerExchange,
    LearnerSnapshots,
    SharedWeights,
    TrajectoryBuffers,
    check_shared_memory,
)
from sampler.shm.channels import MessageChannel, OwnedLock, ReplyChannel


@dataclass
class RunPlan:
    cfg: ExperimentConfig
    placement: Placement
    env: EnvFacts
    layout: BufferLayout
    buffers: TrajectoryBuffers
    model: ModelFactory  # the policy's model (a parameter-free actor for the sampler alone)
    weights: SharedWeights | None  # None: the model has no parameters to share
    request_queues: list[MessageChannel]  # per policy: action requests to its inference workers
    learner_queues: list[MessageChannel]  # per policy: full trajectories to its learner
    reply_queues: list[ReplyChannel]  # per rollout worker: action answers and freed buffers
    consumers_lock: OwnedLock
    exchange: LearnerExchange | None = None
    stacks_dir: str = ""  # the experiment's stacks/, set by the supervisor: workers dump their stacks there
    snapshots: LearnerSnapshots | None = None  # each learner's recent state, to restart a dead one from

    @classmethod
    def build(cls, cfg: ExperimentConfig, env: EnvFacts, model: ModelFactory, ctx: Any = None, *,
              initial_weights: list[dict] | None = None, rnn_state_size: int = 0,
              exchange: LearnerExchange | None = None) -> RunPlan:
        """Allocates the run's shared memory and channels. `initial_weights`: one state dict per policy to
        publish before any worker starts (None for a model without parameters)."""
        ctx = ctx or mp.get_context("spawn")
        policies = cfg.sampler.num_policies
        layout = BufferLayout.for_run(cfg, env.num_agents, env.num_envs)
        check_shared_memory(TrajectoryBuffers.required_bytes(
            layout, env.obs_specs, env.action_spec, rnn_state_size=rnn_state_size,
            reward_components=env.reward_components, num_policies=policies))
        buffers = TrajectoryBuffers(layout, env.obs_specs, env.action_spec, rnn_state_size=rnn_state_size,
                                    poison=cfg.run.debug_poison, reward_components=env.reward_components,
                                    num_policies=policies)
        shared_readers = cfg.sampler.policy_workers_per_policy > 1
        return cls(
            cfg=cfg, placement=Placement.of(cfg), env=env, layout=layout, buffers=buffers, model=model,
            weights=SharedWeights(initial_weights, ctx) if initial_weights is not None else None,
            request_queues=[MessageChannel(ctx, shared_readers=shared_readers) for _ in range(policies)],
            learner_queues=[MessageChannel(ctx) for _ in range(policies)],
            reply_queues=[ReplyChannel(ctx) for _ in range(cfg.sampler.num_workers)],
            consumers_lock=OwnedLock(ctx), exchange=exchange,
            snapshots=LearnerSnapshots(policies, LearnerExchange.capacity_for(model()))
            if initial_weights is not None else None,
        )

    @property
    def spec_dicts(self) -> dict[str, Any]:
        """The obs, action and model descriptors a checkpoint records, to refuse one made for another run."""
        return {"obs": obs_specs_to_dict(self.env.obs_specs), "action": self.env.action_spec.to_dict(),
                "model": self.cfg.model.model_dump(mode="json")}

    def rollout_spec(self, index: int, incarnation: int = 0, pool_folder: str | None = None) -> RolloutSpec:
        local = self.placement.local_inference
        return RolloutSpec(
            index=index, incarnation=incarnation, cfg=self.cfg, placement=self.placement, layout=self.layout,
            buffers=self.buffers, request_queues=self.request_queues, reply_queue=self.reply_queues[index],
            learner_queues=self.learner_queues, local_model=self.model if local else None,
            weights=self.weights if local else None, pool_folder=pool_folder,
            pool_model=self.model if pool_folder is not None else None, stacks_dir=self.stacks_dir,
        )

    def inference_specs(self) -> list[InferenceSpec]:
        """Every inference worker of every policy; none with local inference."""
        if self.placement.local_inference:
            return []
        return [InferenceSpec(policy=policy, index=i, cfg=self.cfg, placement=self.placement, buffers=self.buffers,
                              weights=self.weights, model=self.model, request_queue=self.request_queues[policy],
                              reply_queues=self.reply_queues, stacks_dir=self.stacks_dir)
                for policy in range(self.cfg.sampler.num_policies)
                for i in range(self.cfg.sampler.policy_workers_per_policy)]

    def learner_spec(self, policy: int, folder: str, restarted: bool = False) -> LearnerSpec:
        return LearnerSpec(
            policy=policy, cfg=self.cfg, placement=self.placement, layout=self.layout, buffers=self.buffers,
            weights=self.weights, model=self.model, trajectory_queue=self.learner_queues[policy],
            reply_queues=self.reply_queues, consumers_lock=self.consumers_lock, folder=folder,
            spec_dicts=self.spec_dicts, exchange=self.exchange, last_obs_follows_done=self.env.last_obs_follows_done,
            stacks_dir=self.stacks_dir, snapshots=self.snapshots, restarted=restarted,
        )
