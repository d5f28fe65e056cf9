"""A custom encoder, selected from the config with `"model": {"encoder": "residual_mlp"}`.

A factory takes the model config and the observation specs and returns a module with
`out_features` that maps the (normalized) observation dict to [N, out_features]. Cores
(`register_core`) and whole actor-critics (`register_actor_critic`) register the same way;
all three are imported from `sampler.plugins`, and algos/registry.py describes their interfaces.
"""

from __future__ import annotations

import torch
from torch import nn

from sampler.plugins import register_encoder


class ResidualMLP(nn.Module):
    def __init__(self, cfg, obs_specs):
        super().__init__()
        in_features = sum(int(torch.tensor(spec.shape).prod()) for spec in obs_specs.values())
        width = cfg.encoder_mlp_layers[0] if cfg.encoder_mlp_layers else 64
        self.inp = nn.Linear(in_features, width)
        self.block = nn.Sequential(nn.ELU(), nn.Linear(width, width), nn.ELU(), nn.Linear(width, width))
        self.out_features = width

    def forward(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        x = torch.cat([v.flatten(1).float() for _, v in sorted(obs.items())], dim=1)
        h = self.inp(x)
        return torch.relu(h + self.block(h))


register_encoder("residual_mlp", ResidualMLP)
