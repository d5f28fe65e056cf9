"""Batched rollout worker (`sampler.batched_sampling`): one vector env, stepped for all its envs in one call.

Where the per-agent worker loops over envs and agents in Python, this one moves whole arrays: observations
are written into the trajectory buffers as one array per key, the policy acts on all envs in one forward
pass, and the actions go to the vector env as one array. Its buffers are blocks of `num_envs` consecutive
trajectories, one per env, so that while every env is at the same step (sync mode) each write is a slice.

Each env keeps its own trajectory and its own step in it (`traj`, `t`). In sync mode they move together. In
async mode (EnvPool with num_envs > batch_size) each step answers for whichever envs were ready, and the
writes index those envs. A trajectory goes to the learner when its env has taken `appo.rollout` steps in it.

Autoreset follows the env's declared mode (sampler/vector.py). Under "next_step" the step after an
episode's end only resets the env: it is written as inactive (no loss, no statistics, no frames counted),
and the recurrent state is zeroed again for the new episode's first real step.
"""

from __future__ import annotations

from multiprocessing.connection import Connection

import numpy as np
import torch

from sampler.envs.contract import EnvContext
from sampler.envs.families.registry import make_vector_env
from sampler.envs.vector import VectorStep
from sampler.run.messages import Rerequest
from sampler.run.workers.acting import Actor
from sampler.run.workers.base import WorkerBase, run_worker, setup_process
from sampler.run.workers.specs import RolloutSpec
from sampler.shm.buffers import FREE, LEARNER, WORKER, undelivered
from sampler.shm.channels import ACTIONS, INDICES_PER_MESSAGE, tagged

POLICY = 0  # batched sampling trains one policy
CHUNK = INDICES_PER_MESSAGE  # trajectory indices per channel message


class BatchedRolloutWorker(WorkerBase):
    kind = "rollout"

    def __init__(self, pipe: Connection, spec: RolloutSpec):
        super().__init__(spec.name, pipe)
        setup_process(spec.cfg, torch_threads=1)
        cfg, index, layout = spec.cfg, spec.index, spec.layout
        self.index, self.incarnation, self.cfg = index, spec.incarnation, cfg
        self.buffers, self.np = spec.buffers, spec.buffers.numpy_views()
        self.commands[Rerequest] = self._on_rerequest
        self.request_queue, self.reply_queue = spec.request_queues[POLICY], spec.reply_queue
        self.learner_queue = spec.learner_queues[POLICY]
        self.rollout = cfg.appo.rollout
        self.frameskip = cfg.env.frameskip
        self.actor = None
        if spec.local_model is not None:
            self.actor = Actor(POLICY, spec.local_model(), spec.weights, torch.device("cpu"))
        self.my_buffers = np.arange(layout.worker_range(index).start, layout.worker_range(index).stop)
        self.np.state[self.my_buffers[self.np.state[self.my_buffers] != LEARNER]] = FREE  # a restart reclaims
        for trajectories in undelivered(self.np, self.my_buffers).values():  # its predecessor died before sending
            for i in range(0, len(trajectories), CHUNK):
                self.learner_queue.put(trajectories[i:i + CHUNK])
        seed = ((cfg.run.seed or 0) * 100_003 + index * layout.slots_per_worker) % (2**31 - 1)
        self.env = make_vector_env(cfg, EnvContext(worker_index=index, env_index=0, seed=seed))
        n = self.n = self.env.num_envs
        if n != layout.slots_per_worker:
            raise RuntimeError(f"the vector env has {n} envs; the buffers were laid out for {layout.slots_per_worker}")
        self.all_ids = np.arange(n)
        self.next_step_reset = self.env.autoreset == "next_step"
        self.traj = np.full(n, -1, np.int64)  # each env's trajectory buffer
        self.t = np.zeros(n, np.int64)  # each env's step in it
        self.started = np.zeros(n, bool)  # whether the env has a first observation in a trajectory
        self.aligned = False  # every env in one block of consecutive buffers, all at the same step
        self.resetting = np.zeros(n, bool)  # "next_step" autoreset: the env's coming step is its reset
        self.ep_return = np.zeros(n, np.float64)
        self.ep_length = np.zeros(n, np.int64)
        self.episodes: list[tuple] = []
        # What the loop does next, in order: place envs waiting for free buffers, act, await actions, step.
        self.blocked: tuple | None = None  # (ids to act on, ids needing buffers, their obs, their rnn states)
        self.act_ids: np.ndarray | None = None
        self.awaiting: np.ndarray | None = None  # ids whose actions an inference worker computes
        self.requests: list[tuple] = []  # the pieces of that request, each answered by a reply naming its index
        self.unanswered: set[int] = set()
        self.send_ids: np.ndarray | None = None  # ids whose actions are written: step them

    # ---- buffers ---------------------------------------------------------------------------------

    def _take_buffers(self, ids: np.ndarray) -> bool:
        """New trajectory buffers for envs `ids`: a whole block when every env needs one (so that later writes
        are slices), else any free buffers. False when not enough are free yet."""
        state = self.np.state[self.my_buffers]
        if len(ids) == self.n:
            blocks = (state == FREE).reshape(-1, self.n).all(axis=1)
            if blocks.any():
                start = int(np.flatnonzero(blocks)[0]) * self.n
                self.traj[:] = self.my_buffers[start:start + self.n]
                self._claim(ids)
                self.aligned = True
                return True
        free = self.my_buffers[state == FREE]
        if len(free) < len(ids):
            return False
        self.traj[ids] = free[:len(ids)]
        self._claim(ids)
        self.aligned = False
        return True

    def _claim(self, ids: np.ndarray) -> None:
        self.np.state[self.traj[ids]] = WORKER
        if self.cfg.run.debug_poison:
            self.buffers.poison(self.traj[ids])
        self.t[ids] = 0

    def _index(self, ids: np.ndarray):
        """(trajectory index, step index) for envs `ids`: two slices' worth while they are one block at one step."""
        if self.aligned and len(ids) == self.n:
            start = int(self.traj[0])
            return slice(start, start + self.n), int(self.t[0])
        return self.traj[ids], self.t[ids]

    # ---- the loop --------------------------------------------------------------------------------

    def loop(self) -> None:
        try:
            self._loop()
        finally:
            self.env.close()

    def _loop(self) -> None:
        self._receive(self.env.reset())
        reader = self.reply_queue.reader
        while not self.stopping:
            progress = not self.paused and self.blocked is None and self.awaiting is None
            self.wait([reader], timeout=0.0 if progress else 0.05)
            self._read_replies(reader)
            if not self.paused:
                self._advance()
            self.settle_pause(idle=self.awaiting is None)
            self.heartbeat(self._beat)

    def _advance(self) -> None:
        """One turn: envs waiting for buffers take them, envs due to act act, envs with actions step."""
        if self.blocked is not None:
            self._place(*self.blocked)
        if self.act_ids is not None:
            ids, self.act_ids = self.act_ids, None
            self._act(ids)
        if self.send_ids is not None:
            ids, self.send_ids = self.send_ids, None
            self._receive(self.env.step(self.np.actions[self._index(ids)], None if self.aligned else ids))

    def _read_replies(self, reader) -> None:
        while reader.poll():
            for kind, tag, piece, _ in self.reply_queue.get_all():
                if kind == ACTIONS and self.awaiting is not None and piece in self.unanswered:
                    asked = tagged(self.incarnation, np.asarray(self.requests[piece][3]).flat[0])
                    if tag != asked:
                        continue  # a late copy, answered before a restart of either worker
                    self.unanswered.discard(piece)
                    self.np.awaiting[self.requests[piece][4]] = -1  # a copy asked again is not acted on twice
                    if not self.unanswered:
                        self.send_ids, self.awaiting = self.awaiting, None
            # anything else: buffers freed by a learner, found by scanning

    def _beat(self) -> dict:
        episodes, self.episodes = self.episodes, []
        beat: dict = {"episodes": episodes}
        if self.actor is not None:
            beat["mean_batch"] = self.actor.mean_batch
        return beat

    # ---- one step's results ----------------------------------------------------------------------

    def _receive(self, result: VectorStep) -> None:
        """Writes a step's results for the envs that answered. Envs that filled their trajectory hand it over;
        they and envs seen for the first time (async mode) begin new ones; then all of them act again."""
        ids = self.all_ids if result.env_ids is None else np.asarray(result.env_ids, np.int64)
        starting = ~self.started[ids]
        if starting.all():  # the first observations after the reset
            self._place(ids, ids, result.obs, None)
            return
        stepped = ~starting
        full = self._record(ids[stepped], result if stepped.all() else _subset(result, stepped))
        need = starting.copy()
        if full is not None:
            need[np.flatnonzero(stepped)[full]] = True
        if not need.any():
            self.act_ids = ids
            return
        need_ids = ids[need]
        rnn = None
        if self.np.rnn_states is not None:  # a new trajectory goes on from its env's memory (zero for a new env)
            rnn = self.np.rnn_states[self.traj[need_ids], self.rollout].copy()
            rnn[starting[need]] = 0.0
        finished = need_ids[~starting[need]]
        self._hand_over(finished)
        self._place(ids, need_ids, result.obs if need.all() else _rows(result.obs, need), rnn)

    def _place(self, act_ids: np.ndarray, ids: np.ndarray, obs: dict, rnn: np.ndarray | None) -> None:
        """Envs `ids` begin trajectories with `obs` (and recurrent state `rnn`, zero if None); then `act_ids`
        act. Without enough free buffers all of it waits, and the loop tries again."""
        if not self._take_buffers(ids):
            self.blocked = (act_ids, ids, obs, rnn)
            return
        self.blocked = None
        self.started[ids] = True
        index, t = self._index(ids)
        self._write_obs(index, t, obs)
        if self.np.rnn_states is not None:
            self.np.rnn_states[self.traj[ids], 0] = 0.0 if rnn is None else rnn
        self.act_ids = act_ids

    def _record(self, ids: np.ndarray, result: VectorStep) -> np.ndarray | None:
        """Writes the step of envs `ids`; returns which of them filled their trajectory (None: none did)."""
        np_ = self.np
        index, t = self._index(ids)
        terminated, truncated = result.terminated, result.truncated
        dones = terminated | truncated
        active = ~self.resetting[ids]
        np_.rewards[index, t] = result.rewards
        # A reset step is stored as done too: the worker starts the next step from blank memory (below), and the
        # learner's recurrent replay zeroes its state after each done, so it must see one here to match. The step
        # is inactive, so no loss, return or bootstrap reads it.
        np_.dones[index, t] = dones | ~active
        np_.time_outs[index, t] = truncated & ~terminated
        np_.active[index, t] = active
        self.steps += int(active.sum())

        self.ep_return[ids] += np.where(active, result.rewards, 0.0)
        self.ep_length[ids] += active
        ended = dones & active
        if ended.any():
            objectives = result.true_objective
            for k in np.flatnonzero(ended):
                env = ids[k]
                self.episodes.append((POLICY, float(self.ep_return[env]), int(self.ep_length[env]) * self.frameskip,
                                      None if objectives is None else float(objectives[k]), None, None))
            self.ep_return[ids[ended]] = 0.0
            self.ep_length[ids[ended]] = 0
        if self.next_step_reset:
            self.resetting[ids] = ended  # the coming step of an env whose episode just ended is its reset

        self.t[ids] += 1
        index, t = self._index(ids)
        self._write_obs(index, t, result.obs)
        if np_.rnn_states is not None:
            fresh = ids[dones | ~active]  # a new episode (or the reset step before it) starts from blank memory
            if len(fresh):
                np_.rnn_states[self.traj[fresh], self.t[fresh]] = 0.0
        full = self.t[ids] == self.rollout
        return full if full.any() else None

    def _write_obs(self, index, t, obs: dict) -> None:
        for key, array in self.np.obs.items():
            array[index, t] = obs[key]
        if self.np.action_masks is not None:
            self.np.action_masks[index, t] = True

    def _act(self, ids: np.ndarray) -> None:
        index, t = self._index(ids)
        self.np.policy_ids[index, t] = POLICY
        if self.actor is not None:
            self.actor.refresh()
            self.actor.act(self.np, index, t)
            self.send_ids = ids
            return
        # One request while the envs are one block (a range), else pieces that each fit one channel message.
        if isinstance(index, slice):
            pieces = [(t, range(index.start, index.stop))]
        else:
            pieces = [(t[i:i + CHUNK], self.traj[ids[i:i + CHUNK]].astype(np.int32)) for i in range(0, len(ids), CHUNK)]
        self.awaiting, self.unanswered = ids, set(range(len(pieces)))
        self.requests = [(self.index, self.incarnation, i, step, traj) for i, (step, traj) in enumerate(pieces)]
        for request in self.requests:
            self.np.awaiting[request[4]] = request[3]  # what the inference worker checks before acting
            self.request_queue.put(request)

    def _on_rerequest(self, command: Rerequest) -> None:
        """The inference worker was restarted: ask again for the pieces it never answered."""
        for i in sorted(self.unanswered):
            self.request_queue.put(self.requests[i])

    def _hand_over(self, ids: np.ndarray) -> None:
        if not len(ids):
            return
        trajectories = self.traj[ids]
        self.np.consumers[trajectories] = 1
        self.np.addressed[trajectories] = 1 << POLICY
        self.np.state[trajectories] = LEARNER
        self.started[ids] = False
        first, last = int(trajectories[0]), int(trajectories[-1])
        if last - first + 1 == len(trajectories) and (np.diff(trajectories) == 1).all():
            self.learner_queue.put(range(first, last + 1))  # a block: a few bytes, however many envs
            return
        for i in range(0, len(trajectories), CHUNK):  # each message must fit one atomic pipe write
            self.learner_queue.put(trajectories[i:i + CHUNK].tolist())


def _rows(obs: dict, keep: np.ndarray) -> dict:
    return {key: value[keep] for key, value in obs.items()}


def _subset(result: VectorStep, keep: np.ndarray) -> VectorStep:
    return VectorStep(
        obs=_rows(result.obs, keep), rewards=result.rewards[keep], terminated=result.terminated[keep],
        truncated=result.truncated[keep], env_ids=None,
        true_objective=None if result.true_objective is None else result.true_objective[keep],
    )


def batched_rollout_main(pipe: Connection, spec: RolloutSpec) -> None:
    run_worker(BatchedRolloutWorker, pipe, spec)
