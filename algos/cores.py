"""Cores between the encoder and the heads: identity, or one step of a GRU/LSTM.

A core maps (x [N, F], state [N, S]) -> (y [N, out_features], new_state [N, S]). The state of
one agent is a flat float vector of `state_size` entries so the sampler can store it as an
ordinary [N, S] tensor without knowing the core's structure.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from algos.model_config import ModelConfig


class IdentityCore(nn.Module):
    """Feed-forward models: no state (S = 0), features pass through."""

    state_size = 0

    def __init__(self, in_features: int) -> None:
        super().__init__()
        self.out_features = in_features

    def forward(self, x: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        return x, state


def _to_layers(flat: Tensor, num_layers: int) -> Tensor:
    """[N, L*H] -> [L, N, H], the layout torch's recurrent modules expect."""
    return flat.reshape(flat.shape[0], num_layers, -1).transpose(0, 1).contiguous()


def _from_layers(state: Tensor) -> Tensor:
    """[L, N, H] -> [N, L*H]."""
    return state.transpose(0, 1).reshape(state.shape[1], -1)


class GruCore(nn.Module):
    """State: the hidden state of each layer, [N, layers * H]."""

    def __init__(self, in_features: int, hidden_size: int, num_layers: int) -> None:
        super().__init__()
        self.rnn = nn.GRU(in_features, hidden_size, num_layers)
        self.num_layers = num_layers
        self.out_features = hidden_size
        self.state_size = num_layers * hidden_size

    def forward(self, x: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        y, h = self.rnn(x.unsqueeze(0), _to_layers(state, self.num_layers))
        return y.squeeze(0), _from_layers(h)


class LstmCore(nn.Module):
    """State: all layers' h, then all layers' c: [N, 2 * layers * H]."""

    def __init__(self, in_features: int, hidden_size: int, num_layers: int) -> None:
        super().__init__()
        self.rnn = nn.LSTM(in_features, hidden_size, num_layers)
        self.num_layers = num_layers
        self.out_features = hidden_size
        self.state_size = 2 * num_layers * hidden_size

    def forward(self, x: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        h, c = state.chunk(2, dim=1)
        y, (h, c) = self.rnn(x.unsqueeze(0), (_to_layers(h, self.num_layers), _to_layers(c, self.num_layers)))
        return y.squeeze(0), torch.cat([_from_layers(h), _from_layers(c)], dim=1)


def default_core(cfg: ModelConfig, in_features: int) -> nn.Module:
    """The "default" core factory: identity unless cfg.use_rnn, then cfg.rnn_type."""
    if not cfg.use_rnn:
        return IdentityCore(in_features)
    core = GruCore if cfg.rnn_type == "gru" else LstmCore
    return core(in_features, cfg.rnn_size, cfg.rnn_num_layers)
