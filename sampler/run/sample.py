"""The sampler alone: rollout workers and inference workers with random actions, no learner.

`sftui sample ENV` runs the real rollout pipeline (env stepping, shared buffers, action requests,
double-buffered splits, trajectory hand-over) with a model-free actor in place of the policy, and a
drain in this process in place of the learner that frees each trajectory as soon as it arrives. Its
frames/s is the most any learner can train on with this env and sampler config on this machine.
"""

from __future__ import annotations

import functools
import multiprocessing as mp
import signal
import time
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from algos.distributions import make_distribution
from algos.spaces import ActionSpec
from sampler.config.schema import ExperimentConfig
from sampler.envs.contract import EnvFacts
from sampler.envs.families.registry import make_probe_env
from sampler.errors import SftuiError
from sampler.run.forkserver import WorkerStarter
from sampler.run.messages import Heartbeat, Stop, WorkerFailed
from sampler.run.plan import RunPlan
from sampler.run.workers.batched import batched_rollout_main
from sampler.run.workers.inference import inference_main
from sampler.run.workers.rollout import rollout_main
from sampler.shm import channels
from sampler.shm.buffers import release

JOIN_TIMEOUT_SEC = 10.0


class RandomActor(nn.Module):
    """Uniform actions (masks respected; box actions from a unit Gaussian), zero values: no parameters."""

    rnn_state_size = 0

    def __init__(self, action_spec: ActionSpec):
        super().__init__()
        self.action_spec = action_spec

    @torch.no_grad()
    def act(self, obs: dict[str, Tensor], rnn_states=None, action_mask=None, deterministic=False) -> dict:
        n = next(iter(obs.values())).shape[0]
        params = torch.zeros(n, self.action_spec.num_dist_params())
        dist = make_distribution(self.action_spec, params, action_mask)
        actions = dist.sample()
        return {"actions": actions, "log_probs": dist.log_prob(actions), "values": torch.zeros(n),
                "dist_params": params}


@dataclass
class SampleReport:
    env: str
    workers: int
    envs_per_worker: int
    seconds: float
    env_frames: int
    fps: float


class _Worker:
    def __init__(self, ctx, name: str, target, spec):
        self.name = name
        self.conn, child = ctx.Pipe(duplex=True)
        self.process = ctx.Process(target=target, args=(child, spec), name=name, daemon=True)
        self.process.start()
        child.close()
        self.ready = False

    def drain_messages(self) -> None:
        """Reads what the worker said; an error report or a silent death ends the measurement."""
        try:
            while self.conn.poll():
                report = self.conn.recv()
                if isinstance(report, WorkerFailed):
                    raise SftuiError(f"{self.name} failed: {report.error}")
                if isinstance(report, Heartbeat):
                    self.ready = True
        except (EOFError, OSError):
            pass
        if not self.process.is_alive():
            raise SftuiError(f"{self.name} died (exit code {self.process.exitcode})")


def measure(cfg: ExperimentConfig, seconds: float = 20.0, warmup: float = 5.0, on_tick=None,
            starter: WorkerStarter | None = None) -> SampleReport:
    """Runs the sampler for warmup + seconds and returns the frames/s of the last `seconds`. `starter`: one the
    caller began early (its fork server imports while the caller builds the config); ended here."""
    torch.set_num_threads(1)
    # Ctrl+C (and a SIGINT sent by hand) ends the measurement even when this process was started with
    # SIGINT ignored, as a shell does for background jobs; the supervisor does the same for training.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    starter = starter or WorkerStarter.begin()  # the workers start as a training run's do
    try:
        return _measure(cfg, starter.ctx, seconds, warmup, on_tick)
    finally:
        starter.end()


def _measure(cfg: ExperimentConfig, ctx, seconds: float, warmup: float, on_tick) -> SampleReport:
    probe = make_probe_env(cfg)
    env = EnvFacts.of(probe, cfg.sampler.batched_sampling)
    probe.close()
    plan = RunPlan.build(cfg, env, functools.partial(RandomActor, env.action_spec), ctx)
    rollout = batched_rollout_main if cfg.sampler.batched_sampling else rollout_main
    workers: list[_Worker] = []
    # Ctrl+C waits until every worker is started: an interrupt in the middle of handing a child its
    # shared buffers could leave that child, and our exit, waiting on each other.
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        for spec in plan.inference_specs():
            workers.append(_Worker(ctx, spec.name, inference_main, spec))
        for index in range(cfg.sampler.num_workers):
            spec = plan.rollout_spec(index)
            workers.append(_Worker(ctx, spec.name, rollout, spec))
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        return _drain(plan, workers, seconds, warmup, on_tick)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        _stop(workers)


def _drain(plan: RunPlan, workers: list[_Worker], seconds: float, warmup: float, on_tick) -> SampleReport:
    """The learner's stand-in: frees each trajectory as it arrives and counts its frames."""
    cfg, layout, learner_queues, reply_queues = plan.cfg, plan.layout, plan.learner_queues, plan.reply_queues
    frames_per_trajectory = cfg.appo.rollout * cfg.env.frameskip
    np_ = plan.buffers.numpy_views()
    readers = [q.reader for q in learner_queues]
    frames = 0
    started = measured_from = None
    frames_at_start = 0
    last_tick = time.monotonic()
    while True:
        for worker in workers:
            worker.drain_messages()
        now = time.monotonic()
        if started is None and all(w.ready for w in workers):
            started = now  # every env is up: the warm-up starts
        if started is not None and measured_from is None and now - started >= warmup:
            measured_from, frames_at_start = now, frames
        if measured_from is not None and now - measured_from >= seconds:
            break
        if on_tick is not None and now - last_tick >= 1.0:
            last_tick = now
            on_tick(frames, now - (started or now))
        for reader in mp.connection.wait(readers, timeout=0.1):
            queue = learner_queues[readers.index(reader)]
            while queue.poll():
                owners, freed = release(np_, layout, queue.get())
                frames += freed * frames_per_trajectory
                for owner in owners:
                    reply_queues[owner].put(channels.FREE)
    elapsed = time.monotonic() - measured_from
    counted = frames - frames_at_start
    return SampleReport(env=cfg.env.name, workers=cfg.sampler.num_workers,
                        envs_per_worker=layout.slots_per_worker, seconds=elapsed,
                        env_frames=counted, fps=counted / elapsed)


def _stop(workers: list[_Worker]) -> None:
    for worker in workers:
        try:
            worker.conn.send(Stop())
        except (BrokenPipeError, OSError):
            pass
    deadline = time.monotonic() + JOIN_TIMEOUT_SEC
    for worker in workers:
        worker.process.join(timeout=max(0.0, deadline - time.monotonic()))
        if worker.process.is_alive():
            worker.process.terminate()  # SIGTERM unwinds it, closing its env engines
            worker.process.join(timeout=5)
        if worker.process.is_alive():
            worker.process.kill()
            worker.process.join()
        worker.conn.close()
    for child in mp.active_children():  # anything else this process started
        child.kill()
        child.join()
