"""Shared buffers are written only where indexed: a real rollout worker against poisoned buffers."""

from __future__ import annotations

import multiprocessing as mp

import numpy as np

from sampler.config.build import build_config
from sampler.config.derived import Placement
from sampler.envs.contract import EnvContext
from sampler.envs.families.registry import make_env
from sampler.run.messages import Stop
from sampler.run.workers.rollout import rollout_main
from sampler.run.workers.specs import RolloutSpec
from sampler.shm.buffers import LEARNER, POISON_INT, BufferLayout, TrajectoryBuffers
from sampler.shm.channels import ACTIONS, MessageChannel, ReplyChannel, tagged

ROLLOUT = 4


def _poisoned(array: np.ndarray) -> np.ndarray:
    if np.issubdtype(array.dtype, np.floating):
        return np.isnan(array)
    return array == np.iinfo(array.dtype).min


def test_rollout_worker_writes_only_indexed_cells_and_hands_over_complete_trajectories():
    cfg = build_config({
        "env": {"name": "gym_CartPole-v1"},
        "sampler": {"num_workers": 2, "num_envs_per_worker": 4, "worker_num_splits": 2},
        "appo": {"rollout": ROLLOUT, "batch_size": 16},
        "run": {"debug_poison": True, "seed": 3},
    })
    probe = make_env(cfg, EnvContext())
    layout = BufferLayout(num_workers=2, slots_per_worker=4, buffers_per_slot=3, rollout=ROLLOUT)
    buffers = TrajectoryBuffers(layout, probe.obs_specs, probe.action_spec, poison=True)
    views = buffers.numpy_views()
    ctx = mp.get_context("spawn")
    requests, learner = MessageChannel(ctx), MessageChannel(ctx)
    replies = [ReplyChannel(ctx), ReplyChannel(ctx)]
    parent, child = ctx.Pipe()
    placement = Placement(device="cpu", local_inference=False, worker_splits=2, learner_threads=1,
                          envs_per_worker=4)  # asks for its actions
    spec = RolloutSpec(index=1, incarnation=0, cfg=cfg, placement=placement, layout=layout, buffers=buffers,
                       request_queues=[requests], reply_queue=replies[1], learner_queues=[learner])
    worker = ctx.Process(target=rollout_main, args=(child, spec))
    worker.start()
    handed_over: list[int] = []
    try:
        while len(handed_over) < 8:  # two hand-overs of each split
            if requests.reader.poll(20):
                _, incarnation, split, t, trajectories = requests.get()
                views.actions[trajectories, t] = 1
                views.log_probs[trajectories, t] = -0.7
                views.values[trajectories, t] = 0.5
                views.dist_params[trajectories, t] = 0.0
                views.policy_versions[trajectories, t] = 0
                replies[1].put(ACTIONS, tagged(incarnation, t), split, 0)  # the step it answers, tagged
            while learner.poll():
                handed_over.extend(learner.get())
            assert worker.is_alive()
    finally:
        parent.send(Stop())
        worker.join(10)
        if worker.is_alive():
            worker.kill()

    assert all(layout.owner(t) == 1 for t in handed_over)
    assert (views.state[handed_over] == LEARNER).all()
    for name, array in {"obs": views.obs["obs"], **{k: getattr(views, k) for k in (
            "actions", "log_probs", "values", "dist_params", "policy_versions", "policy_ids", "rewards")}}.items():
        assert not _poisoned(array[handed_over]).any(), f"{name}: a handed-over trajectory has unwritten cells"
        assert _poisoned(array[layout.worker_range(0)]).all(), f"{name}: worker 0's buffers were written"
    assert views.rewards[handed_over].sum() == len(handed_over) * ROLLOUT  # CartPole pays 1 per step
    assert POISON_INT == np.iinfo(np.int32).min
