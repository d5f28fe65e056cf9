"""Batched sampling's rollout worker on a tiny deterministic vector env: autoreset in both modes, episode
statistics against a hand count, and no step crossing an episode boundary."""

from __future__ import annotations

import os
import re

import numpy as np
import pytest

from algos.models import make_actor_critic
from algos.spaces import ActionSpec, ObsSpec
from sampler.config.build import build_config
from sampler.config.derived import Placement, learner_threads
from sampler.envs.contract import EnvFacts
from sampler.envs.families.registry import EnvFamily, register_family
from sampler.envs.vector import VectorStep
from sampler.errors import ConfigError
from sampler.run.workers import batched
from sampler.run.workers.specs import RolloutSpec
from sampler.shm.buffers import FREE, BufferLayout, SharedWeights, TrajectoryBuffers

LENGTHS = (2, 3, 5, 7)  # env i's episodes last LENGTHS[i] steps; every step pays 1


class TickVector:
    """obs = (episode number, step in episode, env); an episode of env i ends after LENGTHS[i] steps."""

    is_async = False

    def __init__(self, autoreset: str):
        self.autoreset = autoreset
        self.num_envs = len(LENGTHS)
        self.obs_specs = {"obs": ObsSpec((3,), "float32")}
        self.action_spec = ActionSpec(kind="discrete", n=2)
        self.episode = np.zeros(self.num_envs)
        self.step_in = np.zeros(self.num_envs)
        self.ended = np.zeros(self.num_envs, bool)
        self.lengths = np.array(LENGTHS)
        self.stepped = np.zeros(self.num_envs, np.int64)  # steps each env has taken

    def _obs(self):
        return {"obs": np.stack([self.episode, self.step_in, np.arange(self.num_envs)], axis=1).astype(np.float32)}

    def reset(self):
        n = self.num_envs
        return VectorStep(self._obs(), np.zeros(n, np.float32), np.zeros(n, bool), np.zeros(n, bool))

    def step(self, actions, env_ids=None):
        rewards = np.ones(self.num_envs, np.float32)
        self.stepped += 1
        if self.autoreset == "next_step":  # envs that ended last step only reset now, reward 0
            rewards[self.ended] = 0.0
            self.episode[self.ended] += 1
            self.step_in[self.ended] = 0
            self.step_in[~self.ended] += 1
        else:
            self.step_in += 1
        terminated = (self.step_in == self.lengths) & ~self.ended if self.autoreset == "next_step" else \
            self.step_in == self.lengths
        obs = self._obs()
        if self.autoreset == "same_step":  # the episode's first observation comes back at once
            self.episode[terminated] += 1
            self.step_in[terminated] = 0
            obs = self._obs()
        self.ended = terminated.copy()
        return VectorStep(obs, rewards, terminated, np.zeros(self.num_envs, bool))

    def close(self):
        pass


class TickAsync(TickVector):
    """The same envs in async mode, as EnvPool with batch_size 2 of 4: each step sends actions for the envs
    that answered last and answers for the 2 that have been waiting longest (first the reset ones)."""

    is_async = True

    def __init__(self):
        super().__init__("next_step")
        self.ready: list[tuple] = []

    def _answer(self):
        answered, self.ready = self.ready[:2], self.ready[2:]
        ids = np.array([a[0] for a in answered])
        return VectorStep({"obs": np.stack([a[1] for a in answered])}, np.array([a[2] for a in answered], np.float32),
                          np.array([a[3] for a in answered]), np.zeros(2, bool), env_ids=ids)

    def reset(self):
        self.ready = [(i, self._obs()["obs"][i], 0.0, False) for i in range(self.num_envs)]
        return self._answer()

    def step(self, actions, env_ids=None):
        assert env_ids is not None and len(actions) == len(env_ids)
        for i in env_ids:
            self.stepped[i] += 1
            reward = 0.0 if self.ended[i] else 1.0
            if self.ended[i]:
                self.episode[i] += 1
                self.step_in[i] = 0
            else:
                self.step_in[i] += 1
            self.ended[i] = not self.ended[i] and self.step_in[i] == self.lengths[i] and reward == 1.0
            self.ready.append((i, self._obs()["obs"][i], reward, bool(self.ended[i])))
        return self._answer()


@pytest.fixture
def tick_family():
    """The tick env as a family, for this test only (the app lists the registered families)."""
    from sampler.envs.families import registry

    register_family(EnvFamily(prefix="ticktest", description="test vector env", make=None,
                              make_vector=lambda cfg, context: make_tick(cfg.env.name.split("_", 1)[1])))
    yield
    registry._FAMILIES.pop("ticktest", None)


def make_tick(mode: str):
    return TickAsync() if mode == "async" else TickVector(mode)


class Collected:
    def __init__(self):
        self.handed: list[list[int]] = []

    def put(self, trajectories):
        self.handed.append(trajectories)


def make_worker(monkeypatch, mode: str, rnn: bool = False):
    monkeypatch.setattr(batched, "setup_process", lambda cfg, torch_threads: None)
    cfg = build_config({"env": {"name": f"ticktest_{mode}"},
                        "sampler": {"batched_sampling": True, "num_workers": 1, "num_envs_per_worker": 4},
                        "appo": {"rollout": 8, "recurrence": 8, "batch_size": 32},
                        "model": {"encoder_mlp_layers": [8], "use_rnn": rnn, "rnn_size": 8}})
    env = make_tick(mode)
    model = make_actor_critic(cfg.model, env.obs_specs, env.action_spec)
    layout = BufferLayout.for_run(cfg, 1, env.num_envs)
    buffers = TrajectoryBuffers(layout, env.obs_specs, env.action_spec, rnn_state_size=model.rnn_state_size)
    factory = lambda: make_actor_critic(cfg.model, env.obs_specs, env.action_spec)  # noqa: E731
    learner = Collected()
    spec = RolloutSpec(index=0, incarnation=0, cfg=cfg, placement=Placement.of(cfg), layout=layout, buffers=buffers,
                       request_queues=[None], reply_queue=None, learner_queues=[learner], local_model=factory,
                       weights=SharedWeights([model.state_dict()]))
    worker = batched.BatchedRolloutWorker(None, spec)
    return worker, buffers, learner


def run(worker, buffers, learner, turns: int) -> list[dict]:
    """Drives the worker; returns a copy of every trajectory handed over, taken before its buffer is reused."""
    worker._receive(worker.env.reset())
    handed = []
    for _ in range(turns):
        worker._advance()
        for trajectories in learner.handed:  # the learner copies them out and frees them
            for traj in trajectories:
                handed.append({"env": int(buffers.obs["obs"][traj, 0, 2]), "obs": buffers.obs["obs"][traj].clone(),
                               **{k: buffers.step_tensors()[k][traj].clone() for k in ("active", "dones", "rewards")},
                               "rnn": None if buffers.rnn_states is None else buffers.rnn_states[traj].clone()})
            buffers.state[trajectories] = FREE
        learner.handed.clear()
    return handed


@pytest.mark.parametrize("mode", ["next_step", "same_step", "async"])
def test_autoreset_leaves_no_fake_transition_and_episodes_match_a_hand_count(monkeypatch, tick_family, mode):
    worker, buffers, learner = make_worker(monkeypatch, mode)
    # what the learner's time-out bootstrap reads: whether obs[t + 1] after a done is that episode's last one
    assert EnvFacts.of(worker.env, batched=True).last_obs_follows_done == (mode != "same_step")
    handed = run(worker, buffers, learner, turns=64)
    # steps whose results the worker has seen (async: each turn steps 2 of the 4 envs, and the answers to the
    # last actions sent may still wait in the env)
    stepped = worker.env.stepped.copy()
    for pending in getattr(worker.env, "ready", ()):
        stepped[pending[0]] -= 1
    assert len(handed) == sum(stepped // 8) > 0  # rollouts of 8 steps per env
    inactive = 0
    for traj in handed:
        obs, active, dones, rewards = traj["obs"].tolist(), traj["active"], traj["dones"], traj["rewards"]
        for t in range(8):
            episode, step, env = obs[t]
            next_episode, next_step, next_env = obs[t + 1]
            assert env == next_env == traj["env"]  # a trajectory holds one env's steps
            if not active[t]:  # only ever the reset step right after an episode ended
                inactive += 1
                assert mode != "same_step" and next_step == 0 and next_episode == episode + 1
                assert rewards[t] == 0 and dones[t]  # done: the replay starts the next step from blank memory
                continue
            assert rewards[t] == 1
            if dones[t]:  # the episode's last step: its length is the env's
                assert step + 1 == LENGTHS[traj["env"]]
                assert (next_episode, next_step) == ((episode, step + 1) if mode != "same_step" else (episode + 1, 0))
            else:  # a real transition stays inside its episode
                assert (next_episode, next_step) == (episode, step + 1)
    assert (inactive > 0) == (mode != "same_step")

    # every finished episode: its return and length are the env's own episode length
    lengths = sorted({(ret, length) for _, ret, length, *_ in worker.episodes})
    assert lengths == [(float(n), n) for n in LENGTHS]
    counts = {n: sum(1 for _, _, length, *_ in worker.episodes if length == n) for n in LENGTHS}
    extra = int(mode != "same_step")  # the reset step after each episode
    assert counts == {n: (int(s) + extra) // (n + extra) for n, s in zip(LENGTHS, stepped, strict=True)}


@pytest.mark.parametrize("mode", ["next_step", "same_step", "async"])
def test_the_learners_recurrent_replay_starts_blank_exactly_where_acting_did(monkeypatch, tick_family, mode):
    worker, buffers, learner = make_worker(monkeypatch, mode, rnn=True)
    handed = run(worker, buffers, learner, turns=64)
    assert handed
    blank_starts = 0
    for traj in handed:
        # the worker stores the state each step acted from; the learner's replay (forward_sequences) zeroes
        # its state after each done step: the two must agree on every step
        for t in range(1, 9):
            acted_blank = bool((traj["rnn"][t] == 0).all())
            assert acted_blank == bool(traj["dones"][t - 1]), (mode, t, traj["active"], traj["dones"])
            blank_starts += acted_blank
    assert blank_starts > 0


def test_the_worker_writes_slices_while_its_envs_share_one_block(monkeypatch, tick_family):
    worker, buffers, learner = make_worker(monkeypatch, "same_step")
    worker._receive(worker.env.reset())
    index, t = worker._index(worker.all_ids)
    assert isinstance(index, slice) and index.stop - index.start == 4 and t == 0


def test_batched_sampling_refuses_what_it_cannot_do():
    with pytest.raises(ConfigError, match=r"atari_\* envs are not vectorized; batched sampling takes .*gym_\*"):
        build_config({"env": {"name": "atari_pong"}, "sampler": {"batched_sampling": True}})
    with pytest.raises(ConfigError, match="one policy per run"):
        build_config({"env": {"name": "gym_CartPole-v1"}, "sampler": {"batched_sampling": True, "num_policies": 2}})


def test_cartpoles_vector_env_trains_batched_through_the_process_tree(tmp_path):
    import json

    from tests.support import sftui

    result = sftui("train", "gym_CartPole-v1", "-e", "vec", "--train-dir", str(tmp_path),
                   "--set", "sampler.batched_sampling=true", "--set", "sampler.num_workers=1",
                   "--set", "sampler.num_envs_per_worker=256", "--set", "model.encoder_mlp_layers=[64,64]",
                   "--set", "appo.batch_size=2048", "--set", "run.train_for_env_steps=150000", timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    last = json.loads((tmp_path / "vec" / "status.jsonl").read_text().splitlines()[-1])
    (policy,) = last["policies"]
    assert last["state"] == "finished" and policy["env_frames"] >= 150_000
    # CartPole's vector env resets on the step after a done: those steps are the only ones left out
    assert 0.9 < policy["valid_fraction"] < 1.0
    assert policy["episodes"] > 1000 and policy["episode_return"] > 40  # random play makes about 22
    # the rollout worker leaves most of the machine idle: the learner takes every core
    assert re.search(rf"learner: \w+, {len(os.sched_getaffinity(0))} torch thread", result.stderr), result.stderr


def test_the_learner_takes_every_core_only_for_batched_sampling_on_cpu():
    cores = len(os.sched_getaffinity(0))
    batched = {"env": {"name": "gym_CartPole-v1"}, "sampler": {"batched_sampling": True}, "run": {"device": "cpu"}}
    assert learner_threads(build_config(batched)) == cores
    assert learner_threads(build_config({**batched, "sampler": {"batched_sampling": False}})) == 1
    assert learner_threads(build_config({**batched, "run": {"device": "cpu", "learner_threads": 3}})) == 3


def test_a_killed_inference_worker_of_batched_sampling_is_restarted_and_asked_again(tmp_path):
    import signal

    from sampler.status import RunStatus
    from tests.support import popen, summary, wait_for

    folder = tmp_path / "vec"
    proc = popen("train", "gym_CartPole-v1", "-e", "vec", "--train-dir", str(tmp_path),
                 "--set", "sampler.batched_sampling=true", "--set", "sampler.inference=process",
                 "--set", "sampler.num_workers=1", "--set", "sampler.num_envs_per_worker=64",
                 "--set", "model.encoder_mlp_layers=[32]", "--set", "appo.batch_size=512",
                 "--set", "run.status_every_sec=0.5")
    try:
        def inference():
            return next((w for w in RunStatus.from_dict(summary(folder)).workers if w.kind == "inference"), None)

        wait_for(lambda: summary(folder).get("env_frames", 0) > 5000 and inference() is not None, timeout=90,
                 what="the run to train")
        frames = summary(folder)["env_frames"]
        os.kill(inference().pid, signal.SIGKILL)
        # the pieces of the step it never answered are asked for again: the worker steps on
        wait_for(lambda: inference().restarts == 1 and inference().state == "running"
                 and summary(folder)["env_frames"] > frames + 20_000, timeout=60, what="training after the restart")
        assert summary(folder)["state"] == "running"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
