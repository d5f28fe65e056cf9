"""Inference worker: gathers action requests from many rollout workers and answers them in one forward pass.

Requests carry only (worker, incarnation, split, t, trajectory indices). Observations are read from, and
actions, log-probs, values and the acting policy version written to, the shared trajectory buffers.
"""

from __future__ import annotations

from multiprocessing.connection import Connection

import numpy as np
import torch

from sampler.run.workers.acting import Actor
from sampler.run.workers.base import WorkerBase, run_worker, setup_process
from sampler.run.workers.specs import InferenceSpec
from sampler.shm.channels import ACTIONS, tagged

MAX_REQUESTS_PER_BATCH = 256


class InferenceWorker(WorkerBase):
    kind = "inference"

    def __init__(self, pipe: Connection, spec: InferenceSpec):
        super().__init__(spec.name, pipe)
        setup_process(spec.cfg, torch_threads=1)
        self.cfg = spec.cfg
        self.np = spec.buffers.numpy_views()
        self.actor = Actor(spec.policy, spec.model(), spec.weights, torch.device(spec.placement.device))
        self.request_queue, self.reply_queues = spec.request_queue, spec.reply_queues

    def loop(self) -> None:
        reader = self.request_queue.reader
        while not self.stopping:
            self.wait([reader], timeout=0.1)
            requests = []
            while len(requests) < MAX_REQUESTS_PER_BATCH and reader.poll():
                requests.append(self.request_queue.get())
            if requests:
                self._serve(requests)
            self.settle_pause(idle=True)
            self.heartbeat(lambda: {"version": self.actor.version, "mean_batch": self.actor.mean_batch})

    def _serve(self, requests: list) -> None:
        # a request whose trajectories no longer await that step was answered already (asked again after a restart)
        requests = [r for r in requests if self.np.awaiting[r[4][0]] == np.asarray(r[3]).flat[0]]
        if not requests:
            return
        self.actor.refresh()
        traj = np.concatenate([np.asarray(r[4], np.int64) for r in requests])  # arrays, or a block's range
        t = np.concatenate([np.broadcast_to(np.asarray(r[3], np.int64), len(r[4])) for r in requests])
        self.actor.act(self.np, traj, t)
        replies: dict[int, list] = {}
        for worker, incarnation, split, step, _ in requests:
            replies.setdefault(worker, []).append(
                (ACTIONS, tagged(incarnation, np.asarray(step).flat[0]), split, self.actor.policy))
        for worker, frames in replies.items():
            self.reply_queues[worker].put_many(frames)  # one write, one wake-up per rollout worker
        self.steps += len(traj)


def inference_main(pipe: Connection, spec: InferenceSpec) -> None:
    run_worker(InferenceWorker, pipe, spec)
