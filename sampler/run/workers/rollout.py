"""Rollout worker: steps its envs in splits, writes experience into shared buffers, sends only indices.

While one split waits for the inference worker's actions, the other steps (double buffering). With
local inference the worker computes its own actions instead, and sends no requests at all.
After `rollout` steps a split hands its trajectory indices to the learners and takes free buffers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from multiprocessing.connection import Connection

import numpy as np
import torch

from sampler.envs.contract import EnvContext
from sampler.envs.families.registry import make_env
from sampler.envs.mapping import make_policy_mapping
from sampler.run.messages import Rerequest
from sampler.run.workers.acting import Actor
from sampler.run.workers.base import WorkerBase, run_worker, setup_process
from sampler.run.workers.env_failures import ENV_RESTARTED, EnvFailures
from sampler.run.workers.specs import RolloutSpec
from sampler.selfplay.pool import POOL_POLICY, PoolSeating
from sampler.shm.buffers import FREE, LEARNER, WORKER, reclaim, undelivered
from sampler.shm.channels import ACTIONS, INDICES_PER_MESSAGE, untagged


@dataclass
class Split:
    index: int
    envs: list  # (local env index, env)
    slots: list[tuple[int, int]]  # (position in envs, agent)
    traj: np.ndarray  # trajectory buffer per slot
    policy: np.ndarray  # policy acting for each slot this episode (POOL_POLICY: a pool member)
    member: list  # the pool member playing each slot this episode, or None
    used_policies: list[set[int]]
    ep_return: np.ndarray
    ep_shaped: np.ndarray  # the return with the acting policy's shaping (envs with reward components)
    ep_length: np.ndarray
    t: int = 0
    pending: set[int] = field(default_factory=set)  # policies whose actions are awaited
    next_obs: list | None = None  # observations waiting for free buffers
    next_infos: list | None = None
    next_rnn_states: np.ndarray | None = None  # recurrent state carried into the next trajectory


class RolloutWorker(WorkerBase):
    kind = "rollout"

    def __init__(self, pipe: Connection, spec: RolloutSpec):
        super().__init__(spec.name, pipe)
        setup_process(spec.cfg, torch_threads=1)
        cfg, index, layout, buffers = spec.cfg, spec.index, spec.layout, spec.buffers
        self.index, self.incarnation, self.cfg = index, spec.incarnation, cfg
        self.buffers, self.np = buffers, buffers.numpy_views()
        self.layout = layout
        self.request_queues, self.reply_queue = spec.request_queues, spec.reply_queue
        self.learner_queues = spec.learner_queues
        self.rollout = cfg.appo.rollout
        self.frameskip = cfg.env.frameskip
        self.mapping = make_policy_mapping(cfg, seed=(cfg.run.seed or 0) * 7919 + index)
        self.episodes: list[tuple] = []
        self.games: list[list] = []  # finished games with a pool: [(player, score), ...] per game
        self.seats = [0, 0]  # opponent seats filled, and how many of them by a pool member, since the last beat
        self.pool = None
        if spec.pool_folder is not None:
            self.pool = PoolSeating(cfg, spec.pool_folder, spec.pool_model,
                                    seed=(cfg.run.seed or 0) * 7919 + index + 104_729)
            self.pool.refresh(set)
        self.ready: list[Split] = []  # splits whose actions are written: step them next
        self.actors: list[Actor] = []
        if spec.local_model is not None:
            self.actors = [Actor(p, spec.local_model(), spec.weights, torch.device("cpu"))
                           for p in range(cfg.sampler.num_policies)]
        self.components = buffers.reward_components
        self.commands[Rerequest] = self._on_rerequest
        self.my_buffers = np.arange(layout.worker_range(index).start, layout.worker_range(index).stop)
        self._reclaim_buffers()

        n_envs = cfg.sampler.num_envs_per_worker
        self.base_seed = ((cfg.run.seed or 0) * 100_003 + index * n_envs) % (2**31 - n_envs)  # engines take 32 bits
        self.env_failures = EnvFailures()
        self.envs = envs = []
        try:
            for i in range(n_envs):
                envs.append(make_env(cfg, EnvContext(worker_index=index, env_index=i, seed=self.base_seed + i)))
        except BaseException:
            for env in envs:
                env.close()
            raise
        num_splits = spec.placement.worker_splits
        per_split = n_envs // num_splits
        self.splits = []
        for s in range(num_splits):
            group = list(enumerate(envs))[s * per_split:(s + 1) * per_split]
            slots = [(pos, agent) for pos, (_, env) in enumerate(group) for agent in range(env.num_agents)]
            count = len(slots)
            seats = [self._seat(i, a) for i, a in _env_agents(group, slots)]
            self.splits.append(Split(
                index=s, envs=group, slots=slots,
                traj=np.full(count, -1, np.int64),
                policy=np.array([policy for policy, _ in seats]), member=[member for _, member in seats],
                used_policies=[set() for _ in slots],
                ep_return=np.zeros(count), ep_shaped=np.zeros(count), ep_length=np.zeros(count, np.int64),
            ))
        self.results: dict[tuple[int, int], list] = {}  # (split, env position) -> its agents' finished scores

    def _seat(self, env: int, agent: int) -> tuple[int, str | None]:
        """Who plays an agent's next episode: (policy, None), or (POOL_POLICY, member) for an opponent seat
        given to a pool member."""
        policy = self.mapping.policy_for(self.index, env, agent)
        if self.pool is None or agent == 0:
            return policy, None
        if not self.pool.members:
            return policy, None  # nothing to seat yet: not counted in the seating rate
        member = self.pool.draw()
        self.seats[0] += 1
        if member is None:
            return policy, None
        self.seats[1] += 1
        return POOL_POLICY, member

    def _reclaim_buffers(self) -> None:
        """A restarted worker takes back what its predecessor held, but not what a learner holds."""
        self.discarded = reclaim(self.np, self.my_buffers)  # a dead predecessor's partial blocks: reported
        for policy, trajectories in undelivered(self.np, self.my_buffers).items():  # it died before sending them
            for i in range(0, len(trajectories), INDICES_PER_MESSAGE):
                self.learner_queues[policy].put(trajectories[i:i + INDICES_PER_MESSAGE])

    # ---- the loop --------------------------------------------------------------------------------

    def loop(self) -> None:
        try:
            self._loop()
        finally:
            for env in self.envs:
                env.close()

    def _loop(self) -> None:
        for split in self.splits:
            obs, infos = [], []
            for _, env in split.envs:
                o, i = env.reset()
                obs.extend(o)
                infos.extend(i)
            split.next_obs, split.next_infos = obs, infos
            self._start_trajectories(split)
        reader = self.reply_queue.reader
        while not self.stopping:
            # Split actions already written (local inference) mean work to do now: only peek at the pipes.
            self.wait([reader], timeout=0.0 if self.ready and not self.paused else 0.1)
            if self.pool is not None:
                self.pool.refresh(lambda: {m for split in self.splits for m in split.member if m is not None})
            while reader.poll():
                for kind, tag, split_index, policy in self.reply_queue.get_all():
                    if kind != ACTIONS:
                        continue  # freed buffers are found by scanning
                    incarnation, step = untagged(tag)
                    split = self.splits[split_index]
                    if incarnation != self.incarnation or policy not in split.pending or step != split.t & 0xFFFF:
                        continue  # an answer to a dead predecessor, or a late duplicate
                    split.pending.discard(policy)
                    self.np.awaiting[split.traj[split.policy == policy]] = -1
                    if not split.pending:
                        self.ready.append(split)
            if not self.paused:
                ready, self.ready = self.ready, []
                for split in ready:  # one step each, so commands and heartbeats are never starved
                    self._advance(split)
                for split in self.splits:
                    if split.next_obs is not None:
                        self._start_trajectories(split)
            self.settle_pause(idle=not any(s.pending for s in self.splits))
            self.heartbeat(self._beat)

    def _beat(self) -> dict:
        episodes, self.episodes = self.episodes, []
        beat: dict = {"episodes": episodes}
        if self.env_failures.new:
            beat["env_restarts"], beat["env_error"] = self.env_failures.take()
        if self.discarded:
            beat["discarded"], self.discarded = self.discarded, 0
        if self.pool is not None:
            beat["games"], self.games = self.games, []
            beat["seats"], self.seats = tuple(self.seats), [0, 0]
        if self.actors:
            beat["mean_batch"] = sum(a.mean_batch for a in self.actors) / len(self.actors)
        return beat

    # ---- one step of one split -------------------------------------------------------------------

    def _advance(self, split: Split) -> None:
        np_ = self.np
        t = split.t
        actions = np_.actions[split.traj, t]
        obs, rewards, terminated, truncated, infos = [], [], [], [], []
        slot = 0
        for pos, (local, env) in enumerate(split.envs):
            n = env.num_agents
            try:
                o, r, te, tr, inf = env.step(list(actions[slot:slot + n]))
                self.env_failures.stepped(local)
            except Exception as e:  # noqa: BLE001 - any env error: this env alone is rebuilt
                env = self._rebuild_env(split, pos, e)
                o, inf = env.reset()
                r, te, tr = [0.0] * n, [False] * n, [True] * n
                inf = [{**i, "is_active": False, ENV_RESTARTED: True} for i in inf]
            obs.extend(o)
            rewards.extend(r)
            terminated.extend(te)
            truncated.extend(tr)
            infos.extend(inf)
            slot += n
        rewards = np.asarray(rewards, np.float32)
        terminated = np.asarray(terminated, bool)
        truncated = np.asarray(truncated, bool)
        dones = terminated | truncated
        np_.rewards[split.traj, t] = rewards
        np_.dones[split.traj, t] = dones
        np_.time_outs[split.traj, t] = truncated & ~terminated
        np_.active[split.traj, t] = [info.get("is_active", True) for info in infos]
        self.steps += len(split.slots)
        if np_.components is not None:
            raw = np.asarray([[info.get("reward_components", {}).get(name, 0.0) for name in self.components]
                              for info in infos], np.float32)
            np_.components[split.traj, t] = raw
            split.ep_shaped += rewards + (raw * np_.shaping[np.maximum(split.policy, 0)]).sum(axis=1)

        if np_.rnn_states is not None and dones.any():
            np_.rnn_states[split.traj[dones], t + 1] = 0.0  # a new episode starts from a blank memory

        split.ep_return += rewards
        split.ep_length += 1
        for i in np.flatnonzero(dones):
            info = infos[i]
            if info.get("episode_continues"):
                continue  # e.g. a lost life: the trajectory is cut, the reported episode goes on
            policy = int(split.policy[i])
            if policy != POOL_POLICY and not info.get(ENV_RESTARTED):  # a cut episode is not a finished one
                # a pool member's episodes count only in its rating
                self.episodes.append((
                    policy, float(split.ep_return[i]), int(split.ep_length[i]) * self.frameskip,
                    info.get("true_objective"), info.get("episode_extra_stats"),
                    float(split.ep_shaped[i]) if np_.components is not None else None,
                ))
            env_pos, agent = split.slots[i]
            if self.pool is not None and not info.get(ENV_RESTARTED):
                self._score(split, i, info)
            split.ep_return[i] = 0.0
            split.ep_shaped[i] = 0.0
            split.ep_length[i] = 0
            split.policy[i], split.member[i] = self._seat(split.envs[env_pos][0], agent)
            if t + 1 < self.rollout and split.policy[i] != POOL_POLICY:  # the new episode's steps are here too
                split.used_policies[i].add(int(split.policy[i]))

        split.t = t + 1
        if split.t == self.rollout:
            self._write_obs(split, obs, infos, self.rollout)
            if np_.rnn_states is not None:
                split.next_rnn_states = np_.rnn_states[split.traj, self.rollout].copy()
            self._hand_over(split)
            split.next_obs, split.next_infos = obs, infos
            self._start_trajectories(split)
        else:
            self._write_obs(split, obs, infos, split.t)
            self._request_actions(split)

    def _rebuild_env(self, split: Split, pos: int, error: Exception):
        """Closes an env that raised and builds it anew in its place (its siblings go on); raises the env's own
        error once it keeps failing. Returns the new env, not yet reset."""
        local, env = split.envs[pos]
        line = " ".join(f"{type(error).__name__}: {error}".split())
        restarts = self.env_failures.failed(local, line)  # raises when it keeps failing
        try:
            env.close()
        except Exception:  # noqa: BLE001, S110 - a broken env may fail to close as well; it is dropped either way
            pass
        seed = (self.base_seed + local + restarts * 1_000_003) % (2**31)
        env = make_env(self.cfg, EnvContext(worker_index=self.index, env_index=local, seed=seed))
        split.envs[pos] = (local, env)
        self.envs[local] = env
        if self.pool is not None:
            self.results.pop((split.index, pos), None)  # the cut game is not scored
        return env

    def _score(self, split: Split, i: int, info: dict) -> None:
        """Notes slot i's finished episode; once every agent of its env has finished, the game is reported."""
        env_pos, _ = split.slots[i]
        objective = info.get("true_objective")
        score = float(split.ep_return[i] if objective is None else objective)
        player = split.member[i] if split.policy[i] == POOL_POLICY else f"p{int(split.policy[i])}"
        game = self.results.setdefault((split.index, env_pos), [])
        game.append((player, score))
        if len(game) == split.envs[env_pos][1].num_agents:
            self.games.append(game)
            del self.results[(split.index, env_pos)]

    def _write_obs(self, split: Split, obs: list, infos: list, t: int) -> None:
        for key, array in self.np.obs.items():
            array[split.traj, t] = np.stack([o[key] for o in obs])
        if self.np.action_masks is not None:
            masks = self.np.action_masks
            for i, info in enumerate(infos):
                mask = info.get("action_mask")
                masks[split.traj[i], t] = True if mask is None else np.asarray(mask, bool)

    def _request_actions(self, split: Split) -> None:
        np_ = self.np
        t = split.t
        np_.policy_ids[split.traj, t] = split.policy
        policies = np.unique(split.policy)
        for policy in policies:
            trajectories = split.traj if len(policies) == 1 else split.traj[split.policy == policy]
            if policy == POOL_POLICY:
                self._act_for_pool(split, t)
                continue
            if self.actors:
                actor = self.actors[policy]
                actor.refresh()
                actor.act(np_, trajectories, t)
                continue
            split.pending.add(int(policy))
            np_.awaiting[trajectories] = t
            request = (self.index, self.incarnation, split.index, t, trajectories.astype(np.int32))
            self.request_queues[policy].put(request)
        if not split.pending:  # every action is written already (local inference, or pool members alone)
            self.ready.append(split)

    def _on_rerequest(self, command: Rerequest) -> None:
        """Policy `command.policy`'s inference worker was restarted: ask again for what it never answered."""
        for split in self.splits:
            if command.policy in split.pending:
                trajectories = split.traj[split.policy == command.policy]
                request = (self.index, self.incarnation, split.index, split.t, trajectories.astype(np.int32))
                self.request_queues[command.policy].put(request)

    def _act_for_pool(self, split: Split, t: int) -> None:
        seated = [i for i, policy in enumerate(split.policy) if policy == POOL_POLICY]
        for member in {split.member[i] for i in seated}:
            slots = [i for i in seated if split.member[i] == member]
            self.pool.actor(member).act(self.np, split.traj[slots], t)

    def _hand_over(self, split: Split) -> None:
        np_ = self.np
        by_policy: dict[int, list[int]] = {}
        for i, traj in enumerate(split.traj):
            np_.consumers[traj] = len(split.used_policies[i])
            np_.addressed[traj] = sum(1 << policy for policy in split.used_policies[i])
            np_.state[traj] = LEARNER if split.used_policies[i] else FREE  # a pool member's alone: no learner
            for policy in split.used_policies[i]:
                by_policy.setdefault(policy, []).append(int(traj))
        for policy, trajectories in by_policy.items():
            self.learner_queues[policy].put(trajectories)

    def _start_trajectories(self, split: Split) -> None:
        """Take free buffers for every slot of the split, write the first observation, ask for actions."""
        free = self.my_buffers[self.np.state[self.my_buffers] == FREE]
        count = len(split.slots)
        if len(free) < count:
            return  # wait for a learner to free some
        split.traj = free[:count].copy()
        self.np.state[split.traj] = WORKER
        if self.cfg.run.debug_poison:
            self.buffers.poison(split.traj)
        split.t = 0
        split.used_policies = [{int(policy)} if policy != POOL_POLICY else set() for policy in split.policy]
        self._write_obs(split, split.next_obs, split.next_infos, 0)
        if self.np.rnn_states is not None:
            start = split.next_rnn_states
            self.np.rnn_states[split.traj, 0] = 0.0 if start is None else start
        split.next_obs = split.next_infos = split.next_rnn_states = None
        self._request_actions(split)


def _env_agents(group, slots):
    return [(group[pos][0], agent) for pos, agent in slots]


def rollout_main(pipe: Connection, spec: RolloutSpec) -> None:
    run_worker(RolloutWorker, pipe, spec)
