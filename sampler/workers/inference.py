"""Inference worker: gathers action requests from many rollout workers and answers them in one forward pass.

Requests carry only (worker, split, t, trajectory indices). Observations are read from, and actions,
log-probs, values and the acting policy version written to, the shared trajectory buffers.
"""

from __future__ import annotations

import numpy as np
import torch

from sampler.buffers import SharedWeights, TrajectoryBuffers
from sampler.channels import ACTIONS
from sampler.workers.base import WorkerBase, run_worker, setup_process

MAX_REQUESTS_PER_BATCH = 256


class InferenceWorker(WorkerBase):
    kind = "inference"

    def __init__(self, pipe, name, policy, cfg, buffers: TrajectoryBuffers, weights: SharedWeights | None,
                 model_factory, request_queue, reply_queues, device: str):
        """weights None: the model has no parameters to follow (the sampler-only run's random actor)."""
        super().__init__(name, pipe)
        cfg = setup_process(cfg, torch_threads=1)
        self.policy, self.cfg = policy, cfg
        self.np = buffers.numpy_views()
        self.action_spec = buffers.action_spec
        self.weights = weights
        self.device = torch.device(device)
        self.model = model_factory().to(self.device).eval()
        self.version = weights.load_into(policy, self.model) if weights is not None else 0
        self.request_queue, self.reply_queues = request_queue, reply_queues
        self.forward_passes = 0
        self.samples_served = 0

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
            self.heartbeat(lambda: {"version": self.version,
                                    "mean_batch": self.samples_served / max(1, self.forward_passes)})

    @torch.no_grad()
    def _serve(self, requests: list) -> None:
        if self.weights is not None and self.weights.version(self.policy) != self.version:
            self.version = self.weights.load_into(self.policy, self.model)
        np_ = self.np
        traj = np.concatenate([r[4] for r in requests])
        t = np.concatenate([np.full(len(r[4]), r[3], np.int64) for r in requests])
        obs = {key: torch.from_numpy(array[traj, t]).to(self.device) for key, array in np_.obs.items()}
        mask = None
        if np_.action_masks is not None:
            mask = torch.from_numpy(np_.action_masks[traj, t]).to(self.device)
        states = None
        if np_.rnn_states is not None:
            states = torch.from_numpy(np_.rnn_states[traj, t]).to(self.device)
        out = self.model.act(obs, rnn_states=states, action_mask=mask)
        if states is not None:
            np_.rnn_states[traj, t + 1] = out["rnn_states"].cpu().numpy()
        np_.actions[traj, t] = out["actions"].cpu().numpy()
        np_.log_probs[traj, t] = out["log_probs"].cpu().numpy()
        np_.values[traj, t] = out["values"].cpu().numpy()
        np_.dist_params[traj, t] = out["dist_params"].cpu().numpy()
        np_.policy_versions[traj, t] = self.version
        for worker, incarnation, split, _, _ in requests:
            self.reply_queues[worker].put(ACTIONS, incarnation, split, self.policy)
        self.steps += len(traj)
        self.forward_passes += 1
        self.samples_served += len(traj)


def inference_main(*args) -> None:
    run_worker(InferenceWorker, *args)
