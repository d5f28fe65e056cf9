"""Running mean/std normalizer whose statistics live in the model's state_dict."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class RunningMeanStd(nn.Module):
    """Tracks mean and variance of a stream of batches.

    Statistics are float64 buffers so that long runs do not drift, and so that they
    are saved with the model. Do not call `.float()`/`.half()` on a module holding
    one of these: that would downcast the statistics.
    """

    def __init__(self, shape: tuple[int, ...], clip: float = 5.0, epsilon: float = 1e-5) -> None:
        super().__init__()
        self.shape = tuple(shape)
        self.clip = clip
        self.epsilon = epsilon
        self.register_buffer("mean", torch.zeros(self.shape, dtype=torch.float64))
        self.register_buffer("var", torch.ones(self.shape, dtype=torch.float64))
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))

    @torch.no_grad()
    def update(self, x: Tensor) -> None:
        """Fold a batch x of shape [N, *shape] into the statistics."""
        x = x.reshape(-1, *self.shape)
        n = x.shape[0]
        if n == 0:
            return
        # One batch's moments are exact enough in float32 (images would need gigabytes in float64);
        # the running combination below stays in float64.
        batch_var, batch_mean = torch.var_mean(x.float(), dim=0, unbiased=False)
        batch_var, batch_mean = batch_var.double(), batch_mean.double()
        # Chan et al. parallel combination of (count, mean, M2) pairs.
        total = self.count + n
        delta = batch_mean - self.mean
        m2 = self.var * self.count + batch_var * n + delta.pow(2) * self.count * n / total
        self.mean.add_(delta * n / total)
        self.var.copy_(m2 / total)
        self.count.copy_(total)

    def normalize(self, x: Tensor) -> Tensor:
        std = torch.sqrt(self.var + self.epsilon).float()
        return ((x.float() - self.mean.float()) / std).clamp(-self.clip, self.clip)

    def denormalize(self, x: Tensor) -> Tensor:
        std = torch.sqrt(self.var + self.epsilon).float()
        return x.float() * std + self.mean.float()
