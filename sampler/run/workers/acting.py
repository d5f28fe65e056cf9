"""One policy acting on the shared trajectory buffers: observations in, actions and their statistics out.

Inference workers use it for requests batched across rollout workers; a rollout worker with local
inference uses it directly on its own envs, with no messages at all.
"""

from __future__ import annotations

import numpy as np
import torch

from sampler.shm.buffers import NumpyViews, SharedWeights


class Actor:
    def __init__(self, policy: int, model: torch.nn.Module, weights: SharedWeights | None, device: torch.device):
        """weights None: the model has no parameters to follow (the sampler-only run's random actor)."""
        self.policy = policy
        self.device = device
        self.model = model.to(device).eval()
        self.weights = weights
        self.version = weights.load_into(policy, self.model) if weights is not None else 0
        self.forward_passes = 0
        self.samples = 0

    @property
    def mean_batch(self) -> float:
        return self.samples / max(1, self.forward_passes)

    def refresh(self) -> None:
        """Load the learner's newest weights if they changed since the last call."""
        if self.weights is not None and self.weights.version(self.policy) != self.version:
            self.version = self.weights.load_into(self.policy, self.model)

    @torch.no_grad()
    def act(self, np_: NumpyViews, traj: np.ndarray, t: np.ndarray | int) -> None:
        """Acts for trajectories `traj` (indices, or a slice) at steps `t` (one per trajectory, or one for all)."""
        device = self.device
        obs = {key: torch.from_numpy(array[traj, t]).to(device) for key, array in np_.obs.items()}
        mask = None if np_.action_masks is None else torch.from_numpy(np_.action_masks[traj, t]).to(device)
        states = None if np_.rnn_states is None else torch.from_numpy(np_.rnn_states[traj, t]).to(device)
        out = self.model.act(obs, rnn_states=states, action_mask=mask)
        if states is not None:
            np_.rnn_states[traj, t + 1] = out["rnn_states"].cpu().numpy()
        np_.actions[traj, t] = out["actions"].cpu().numpy()
        np_.log_probs[traj, t] = out["log_probs"].cpu().numpy()
        np_.values[traj, t] = out["values"].cpu().numpy()
        np_.dist_params[traj, t] = out["dist_params"].cpu().numpy()
        np_.policy_versions[traj, t] = self.version
        self.forward_passes += 1
        self.samples += len(out["values"])
