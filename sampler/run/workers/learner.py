"""Learner: assembles batches from trajectory indices, runs APPO, publishes versioned weights, saves checkpoints.

Buffers go back to their rollout workers as soon as the batch is copied out, so sampling goes on
while the learner trains. Samples acted on by a policy version `max_policy_lag` or more behind are
masked out of the loss.
"""

from __future__ import annotations

import time
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np
import torch

from algos import tunables
from algos.appo import AppoLearner, TrainBatch
from sampler import faults, machine
from sampler.experiment import checkpoints
from sampler.experiment.hparams import read_hparams, record_change, write_hparams
from sampler.run.messages import (
    HyperparametersNow,
    Notice,
    PbtCopied,
    PbtCopy,
    PbtPublish,
    PbtPublished,
    PoolSaved,
    PoolSnapshot,
    Ready,
    Save,
    Saved,
    SetHyperparameters,
    ThreadsChosen,
    Trained,
)
from sampler.run.threads import ThreadTuner, thread_choices
from sampler.run.workers.base import WorkerBase, run_worker, setup_process
from sampler.run.workers.guard import FiniteGuard
from sampler.run.workers.specs import LearnerSpec
from sampler.shm import channels
from sampler.shm.buffers import LEARNER, release, take
from sampler.status import LAG_HISTOGRAM_EDGES


def valid_steps(step: dict[str, torch.Tensor], policy: int, version: int, max_policy_lag: int,
                min_version: int = 0) -> torch.Tensor:
    """[B, T] bool: the steps that count in this policy's loss. Another policy's steps, an inactive agent's
    (`is_active: False`, e.g. dead and waiting to respawn), samples too stale, and samples acted before
    `min_version` (before PBT replaced this policy's weights) are left out."""
    lag = version - step["policy_versions"]
    fresh = (lag < max_policy_lag) & (step["policy_versions"] >= min_version)
    return (step["policy_ids"] == policy) & step["active"] & fresh


def shaped_rewards(step: dict[str, torch.Tensor], shaping: torch.Tensor | None, policy: int) -> torch.Tensor:
    """[B, T] rewards this policy trains on: the env's reward plus the step's raw reward components weighted by
    this policy's coefficients (`shaping[policy]`). Steps of other policies get the same weights, but
    valid_steps leaves them out of the loss."""
    if "components" not in step or shaping is None:
        return step["rewards"]
    return step["rewards"] + step["components"] @ shaping[policy]


class LearnerWorker(WorkerBase):
    kind = "learner"

    def __init__(self, pipe: Connection, spec: LearnerSpec):
        super().__init__(spec.name, pipe)
        setup_process(spec.cfg, torch_threads=spec.placement.learner_threads)
        cfg, policy, buffers = spec.cfg, spec.policy, spec.buffers
        self.policy, self.cfg = policy, cfg
        self.buffers, self.np, self.layout = buffers, buffers.numpy_views(), spec.layout
        self.weights, self.exchange = spec.weights, spec.exchange
        self.min_version = 0  # samples acted before this version are not trained on (set by a PBT copy)
        self.queue, self.reply_queues = spec.trajectory_queue, spec.reply_queues
        self.snapshots, self.bit = spec.snapshots, np.int64(1 << policy)
        self.consumers_lock = spec.consumers_lock
        self.folder = Path(spec.folder)
        self.spec_dicts = spec.spec_dicts
        self.last_obs_follows_done = spec.last_obs_follows_done
        self.device = torch.device(spec.placement.device)
        self.commands.update({
            Save: self._on_save, SetHyperparameters: self._on_set, PbtPublish: self._on_pbt_publish,
            PbtCopy: self._on_pbt_copy, PoolSnapshot: self._on_pool_snapshot,
        })
        budget = cfg.run.train_for_env_steps // cfg.sampler.num_policies
        self.learner = AppoLearner(spec.model().to(self.device), cfg.appo, self.device, total_env_frames=budget,
                                   bf16=machine.uses_bf16(cfg.appo.precision, self.device))
        self.reward_shaping: dict[str, float] | None = None
        if buffers.reward_components:
            self.reward_shaping = {name: 0.0 for name in buffers.reward_components}
            self._set_shaping({k: v for k, v in cfg.env.reward_shaping.items() if k in self.reward_shaping})
        self.policy_env_frames = 0
        self.elapsed_sec = 0.0
        self.restored_from: str | None = None
        self.restored_digest = ""  # of the learner state as the checkpoint held it, before hparams.json applies
        self.skipped_checkpoints: list[str] = []  # newer checkpoints that did not read
        restored = self._restore_snapshot() if spec.restarted else None
        if restored is None:
            self._resume()
        self.guard = FiniteGuard(policy)
        self.poison_at = int(faults.injected("learner_nan") or -1)  # bench/faults.py
        self.weights.publish(policy, self.learner.model.state_dict(), self.learner.version)
        self.trajectories_per_batch = cfg.appo.batch_size * cfg.appo.num_batches_per_epoch // cfg.appo.rollout
        # what a dead predecessor took from the queue and never released, or read from it and died before
        # marking it held: trained on first (a copy still in the queue is dropped when it comes, see `take`)
        self.pending: list[int] = self._adopt() if spec.restarted else []
        self._keep_good(force=True)
        choices = thread_choices(cfg, spec.placement.device, machine.usable_cores())
        self.tuner = ThreadTuner(choices, start=torch.get_num_threads()) if choices else None
        self._tuned: dict[int, float] = {}  # the tuner's rates last reported
        if restored is not None:
            self.send(Notice(topic="learner", message=restored + f", {len(self.pending)} held trajectories "
                                                                  "taken back"))
        self.send(Ready(policy=policy, version=self.learner.version, env_frames=self.policy_env_frames,
                        elapsed_sec=self.elapsed_sec, hyperparameters=self.hyperparameters(),
                        checkpoint=self.restored_from, skipped=self.skipped_checkpoints,
                        digest=self.restored_digest or checkpoints.state_digest(self.learner.state_dict()),
                        precision="bf16" if self.learner.bf16 else "fp32", threads=torch.get_num_threads()))

    # ---- state ----------------------------------------------------------------------------------

    def hyperparameters(self) -> dict:
        out = {key: getattr(self.learner.cfg, key) for key in tunables.NAMES}
        if self.reward_shaping is not None:
            out["reward_shaping"] = dict(self.reward_shaping)
        return out

    def _apply_hyperparameters(self, changes: dict) -> None:
        changes = dict(changes)
        shaping = changes.pop("reward_shaping", None)
        if shaping is not None:
            self._set_shaping(shaping)
        if changes:
            self.learner.set_hyperparameters(**changes)

    def _set_shaping(self, changes: dict) -> None:
        """This policy's reward-shaping coefficients, one per component the env reports; others are refused."""
        names = self.buffers.reward_components
        if not names:
            raise ValueError("reward_shaping: this env reports no reward components")
        unknown = set(changes) - set(names)
        if unknown:
            raise ValueError(f"reward_shaping: unknown component(s) {sorted(unknown)}; components: {', '.join(names)}")
        shaping = {**self.reward_shaping, **{name: float(value) for name, value in changes.items()}}
        self.buffers.shaping[self.policy] = torch.tensor([shaping[name] for name in names])
        self.reward_shaping = shaping

    def _adopt(self) -> list[int]:
        with self.consumers_lock:
            held = self.np.held & self.bit != 0
            unread = (self.np.state == LEARNER) & (self.np.addressed & self.bit != 0) & ~held
            self.np.held[unread] |= self.bit
            return np.flatnonzero(held | unread).tolist()

    def _resume(self) -> None:
        latest = checkpoints.load_latest(self.folder, self.policy)
        if latest is not None:
            path, payload, self.skipped_checkpoints = latest
            checkpoints.check_compatible(payload, path, self.cfg.env.name, self.spec_dicts["model"],
                                         self.spec_dicts["obs"], self.spec_dicts["action"])
            self.learner.load_state_dict(payload["learner"])
            self.restored_digest = checkpoints.state_digest(self.learner.state_dict())
            self.restored_from = str(path.relative_to(self.folder))
            self.policy_env_frames = int(payload["policy_env_frames"])
            self.elapsed_sec = float(payload["elapsed_sec"])
        saved = read_hparams(self.folder, self.policy)  # PBT's, `set`'s and a resume override's values win
        if saved is not None:
            self._apply_hyperparameters(saved)
        else:
            write_hparams(self.folder, self.policy, self.hyperparameters())

    def _keep_good(self, force: bool = False) -> None:
        """The guard keeps a good state (every tensor finite) at most every GOOD_STATE_EVERY_SEC; the same copy,
        checked once, goes into shared memory (LearnerSnapshots) for a restart after this process dies. A
        restarted learner so never resumes from a state the guard would have refused."""
        if not self.guard.keep(self.learner, force=force) or self.snapshots is None:
            return
        self.snapshots.write(self.policy, {
            "learner": self.guard.good, "policy_env_frames": self.policy_env_frames,
            "elapsed_sec": self.elapsed_sec, "min_version": self.min_version, "hyperparameters": self.hyperparameters(),
            "taken_at": time.time(),
        })

    def _restore_snapshot(self) -> str | None:
        """After a restart: the dead learner's last snapshot, with the version moved past every one it published
        (samplers take the restored weights as new). Returns what it did, or None without a snapshot."""
        state = self.snapshots.read(self.policy) if self.snapshots is not None else None
        if state is None:
            return None
        published = self.weights.version(self.policy)
        self.learner.load_state_dict(state["learner"])
        self.learner.version = max(self.learner.version, published) + 1
        self.min_version = int(state["min_version"])
        self.policy_env_frames = int(state["policy_env_frames"])
        self.elapsed_sec = float(state["elapsed_sec"])
        self._apply_hyperparameters(read_hparams(self.folder, self.policy) or state["hyperparameters"])  # a later `set`
        self.restored_from = "snapshot"
        age = time.time() - float(state["taken_at"])
        return f"restarted from its snapshot of {age:.1f} s before, at {self.policy_env_frames:,} env frames"

    def _payload(self, env_frames: int, elapsed_sec: float) -> dict:
        return {
            "format_version": checkpoints.FORMAT_VERSION,
            "env": {"name": self.cfg.env.name},
            "model": self.spec_dicts["model"],
            "obs_specs": self.spec_dicts["obs"],
            "action_spec": self.spec_dicts["action"],
            "policy": self.policy,
            "version": self.learner.version,
            "env_frames": int(env_frames),
            "policy_env_frames": int(self.policy_env_frames),
            "elapsed_sec": float(elapsed_sec),
            "hyperparameters": self.hyperparameters(),
            "learner": self.learner.state_dict(),
            "saved_at": time.time(),
        }

    def save(self, env_frames: int, elapsed_sec: float, best: bool = False) -> str:
        payload = self._payload(env_frames, elapsed_sec)
        return str(checkpoints.save(payload, self.folder, self.policy, self.cfg.run.keep_checkpoints, best=best))

    def snapshot(self, directory: Path, env_frames: int) -> Path:
        """A frozen copy of the model for the opponent pool: a checkpoint without the optimizer state."""
        payload = self._payload(env_frames, self.elapsed_sec)
        payload["learner"] = {"model": self.learner.model.state_dict(), "version": self.learner.version}
        path = directory / f"p{self.policy}-v{self.learner.version}.pt"
        checkpoints.write_atomic(payload, path)
        return path

    # ---- commands -------------------------------------------------------------------------------

    def _on_save(self, command: Save) -> None:
        """Saves, and answers in every case: a state gone non-finite is rolled back first (never written), and a
        save the disk refuses is answered with the reason while training goes on."""
        if not self.guard.finite(self.learner):
            self._roll_back("found at a save")
        try:
            try:
                path = self.save(command.env_frames, command.elapsed_sec, best=command.best)
            except checkpoints.NonFiniteState:  # the optimizer's state: the weights were checked above
                self._roll_back("in the optimizer state, found at a save")
                path = self.save(command.env_frames, command.elapsed_sec, best=command.best)
        except checkpoints.SaveFailed as e:
            self.send(Saved(request=command.request, path="", best=command.best, error=str(e)))
            return
        self.send(Saved(request=command.request, path=path, best=command.best))

    def _on_set(self, command: SetHyperparameters) -> None:
        self.set_hyperparameters(command.hyperparameters, command.source)

    def _on_pbt_publish(self, command: PbtPublish) -> None:
        size = self.exchange.write(self.policy, self.learner.state_dict())
        self.send(PbtPublished(request=command.request, size=size,
                               digest=checkpoints.state_digest(self.learner.model.state_dict())))

    def _on_pbt_copy(self, command: PbtCopy) -> None:
        self.copy_from(command.source, command.hyperparameters, command.request)

    def _on_pool_snapshot(self, command: PoolSnapshot) -> None:
        path = self.snapshot(Path(command.directory), command.env_frames)
        self.send(PoolSaved(request=command.request, path=str(path), version=self.learner.version))

    def set_hyperparameters(self, changes: dict, source: str) -> None:
        before = self.hyperparameters()
        self._apply_hyperparameters(changes)
        after = self.hyperparameters()
        record_change(self.folder, self.policy, before, after, source, self.learner.version)
        self.send(HyperparametersNow(hyperparameters=after))

    def copy_from(self, source: int, hyperparameters: dict, request: int) -> None:
        """PBT: become a copy of `source` (weights, optimizer state, normalizers) with `hyperparameters`.
        The version moves past both, and experience acted before it is masked out of the loss."""
        before = checkpoints.state_digest(self.learner.model.state_dict())
        state = self.exchange.read(source)
        version = max(self.learner.version, int(state["version"])) + 1
        self.learner.load_state_dict(state)
        self.learner.version = self.min_version = version
        self.set_hyperparameters(hyperparameters, f"pbt: copy of p{source}")
        self._keep_good(force=True)  # a rollback or a restart goes back to the copy, not to what it replaced
        self.weights.publish(self.policy, self.learner.model.state_dict(), self.learner.version)
        self.send(PbtCopied(request=request, version=version, digest_before=before,
                            digest_after=checkpoints.state_digest(self.learner.model.state_dict())))

    # ---- the loop -------------------------------------------------------------------------------

    def loop(self) -> None:
        reader = self.queue.reader
        while not self.stopping:
            self.wait([reader], timeout=0.1)
            while reader.poll():
                with self.consumers_lock:
                    taken = take(self.np, self.bit, self.queue.get())
                self.pending.extend(taken)
            while not self.paused and not self.stopping and len(self.pending) >= self.trajectories_per_batch:
                batch, self.pending = (self.pending[:self.trajectories_per_batch],
                                       self.pending[self.trajectories_per_batch:])
                self._train(batch)
                self._read_commands()
            self.settle_pause(idle=True)
            self.heartbeat(lambda: {"version": self.learner.version, "env_frames": self.policy_env_frames})

    def _train(self, trajectories: list[int]) -> None:
        index = torch.as_tensor(trajectories, dtype=torch.long)
        b = self.buffers
        obs = {key: tensor.index_select(0, index) for key, tensor in b.obs.items()}
        step = {name: tensor.index_select(0, index) for name, tensor in b.step_tensors().items()}
        masks = b.action_masks.index_select(0, index)[:, :-1] if b.action_masks is not None else None
        rnn_states = b.rnn_states.index_select(0, index) if b.rnn_states is not None else None
        self._release(trajectories)

        mine = step["policy_ids"] == self.policy
        lag = self.learner.version - step["policy_versions"]
        valids = valid_steps(step, self.policy, self.learner.version, self.cfg.sampler.max_policy_lag,
                             self.min_version)
        rewards = shaped_rewards(step, self.buffers.shaping, self.policy)
        batch = TrainBatch(
            obs=obs, actions=step["actions"], log_probs=step["log_probs"], values=step["values"],
            dist_params=step["dist_params"], rewards=rewards, dones=step["dones"].float(),
            time_outs=step["time_outs"].float(), valids=valids, action_masks=masks, rnn_states=rnn_states,
            last_obs_follows_done=self.last_obs_follows_done,
        ).to(self.device)
        stats = self.learner.train(batch, env_frames=self.policy_env_frames)
        if self.learner.version == self.poison_at:
            faults.poison(self.learner.model)
        self._check_finite(stats)
        self.weights.publish(self.policy, self.learner.model.state_dict(), self.learner.version)

        valid_count = int(valids.sum())
        self.policy_env_frames += valid_count * self.cfg.env.frameskip
        self.steps += valid_count
        my_lag = lag[mine].float()
        self.send(Trained(version=self.learner.version, env_frames=self.policy_env_frames, samples=int(mine.sum()),
                          valid_samples=valid_count, lag=_lag_summary(my_lag), stats=stats))
        if self.tuner is not None:
            self._tune(valid_count * self.cfg.env.frameskip)

    def _check_finite(self, stats: dict) -> None:
        """After each update: weights or normalizers gone non-finite are rolled back to the last good state; a
        good state is kept every GOOD_STATE_EVERY_SEC. Batches whose every SGD step was skipped for a non-finite
        loss leave the weights alone but are counted: many in a row mean the data itself is broken."""
        if not self.guard.finite(self.learner):
            self._roll_back("after an update")
        elif stats.get("nonfinite_sgd_steps", 0) and not stats.get("num_sgd_steps", 0):
            self.guard.record_broken_batch()
        else:
            self._keep_good()

    def _roll_back(self, when: str) -> None:
        message = self.guard.roll_back(self.learner)  # raises once rollbacks come too often
        self.send(Notice(topic="nonfinite", message=f"non-finite weights {when}; {message}"))

    def _tune(self, frames: int) -> None:
        threads = self.tuner.record(frames, time.monotonic())
        if threads is not None:
            torch.set_num_threads(threads)
        if self.tuner.phase == "settled" and self.tuner.rates != self._tuned:
            self._tuned = dict(self.tuner.rates)
            self.send(ThreadsChosen(threads=self.tuner.current, message=self.tuner.describe()))

    def _release(self, trajectories: list[int]) -> None:
        with self.consumers_lock:
            self.np.held[trajectories] &= ~self.bit
            self.np.addressed[trajectories] &= ~self.bit
            owners, _ = release(self.np, self.layout, trajectories)
        for owner in owners:
            self.reply_queues[owner].put(channels.FREE)


def _lag_summary(lag: torch.Tensor) -> dict:
    if lag.numel() == 0:
        return {"min": 0.0, "avg": 0.0, "max": 0.0, "histogram": [0] * len(LAG_HISTOGRAM_EDGES)}
    values = lag.numpy()
    bins = np.searchsorted(np.asarray(LAG_HISTOGRAM_EDGES), values, side="right") - 1
    histogram = np.bincount(np.clip(bins, 0, len(LAG_HISTOGRAM_EDGES) - 1), minlength=len(LAG_HISTOGRAM_EDGES))
    return {"min": float(values.min()), "avg": float(values.mean()), "max": float(values.max()),
            "histogram": histogram.tolist()}


def learner_main(pipe: Connection, spec: LearnerSpec) -> None:
    run_worker(LearnerWorker, pipe, spec)
