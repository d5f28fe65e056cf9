import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from pydantic import ValidationError
from torch import Tensor, nn

from algos import registry
from algos.appo import AppoConfig, AppoLearner, TrainBatch
from algos.model_config import ModelConfig
from algos.models import ActorCritic, make_actor_critic
from algos.spaces import ActionSpec, ObsSpec

OBS_SPECS = {"obs": ObsSpec((5,), "float32")}
DISCRETE = ActionSpec(kind="discrete", n=3)


class TinyEncoder(nn.Module):
    def __init__(self, cfg: ModelConfig, obs_specs: dict[str, ObsSpec]) -> None:
        super().__init__()
        self.keys = sorted(obs_specs)
        self.out_features = 4
        self.linear = nn.Linear(sum(math.prod(obs_specs[k].shape) for k in self.keys), self.out_features)

    def forward(self, obs: dict[str, Tensor]) -> Tensor:
        return torch.tanh(self.linear(torch.cat([obs[k].flatten(1) for k in self.keys], dim=1)))


class LeakyMemoryCore(nn.Module):
    """state <- 0.5 * state + W x; outputs the new state."""

    def __init__(self, cfg: ModelConfig, in_features: int) -> None:
        super().__init__()
        self.out_features = self.state_size = 6
        self.linear = nn.Linear(in_features, self.state_size)

    def forward(self, x: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        new_state = 0.5 * state + self.linear(x)
        return new_state, new_state


class TaggedActorCritic(ActorCritic):
    tag = "custom"


registry.register_encoder("tiny_test_encoder", TinyEncoder)
registry.register_core("leaky_test_core", LeakyMemoryCore)
registry.register_actor_critic("tagged_test_ac", TaggedActorCritic)


def test_custom_encoder_and_core_train_one_step():
    torch.manual_seed(0)
    cfg = ModelConfig(encoder="tiny_test_encoder", core="leaky_test_core")
    model = make_actor_critic(cfg, OBS_SPECS, DISCRETE)
    assert isinstance(model.encoder, TinyEncoder) and isinstance(model.core, LeakyMemoryCore)
    assert model.rnn_state_size == 6  # a custom core decides its own state, use_rnn or not

    num_traj, steps = 4, 8
    gen = torch.Generator().manual_seed(0)
    obs = {"obs": torch.randn(num_traj, steps + 1, 5, generator=gen)}
    dones = torch.zeros(num_traj, steps)
    dones[:, 3] = 1.0
    states = torch.zeros(num_traj, steps + 1, 6)
    outs = []
    for t in range(steps):
        out = model.act({"obs": obs["obs"][:, t]}, rnn_states=states[:, t])
        states[:, t + 1] = out["rnn_states"] * (1.0 - dones[:, t : t + 1])
        outs.append(out)
    acted = {
        key: torch.stack([o[key] for o in outs], dim=1) for key in ("actions", "log_probs", "values", "dist_params")
    }

    learner = AppoLearner(model, AppoConfig(rollout=8, recurrence=4, batch_size=32), torch.device("cpu"))
    before = [p.detach().clone() for p in model.parameters()]
    stats = learner.train(
        TrainBatch(
            obs=obs,
            rewards=torch.randn(num_traj, steps, generator=gen),
            dones=dones,
            time_outs=torch.zeros_like(dones),
            valids=torch.ones(num_traj, steps, dtype=torch.bool),
            rnn_states=states,
            **acted,
        )
    )
    assert all(math.isfinite(v) for v in stats.values())
    assert stats["num_sgd_steps"] == 1
    assert all(not torch.equal(b, p) for b, p in zip(before, model.parameters(), strict=True))


def test_make_actor_critic_uses_the_registered_factory():
    assert type(make_actor_critic(ModelConfig(encoder_mlp_layers=[4]), OBS_SPECS, DISCRETE)) is ActorCritic
    custom = make_actor_critic(ModelConfig(encoder_mlp_layers=[4], actor_critic="tagged_test_ac"), OBS_SPECS, DISCRETE)
    assert custom.tag == "custom"


def test_registered_names_validate_and_errors_list_them():
    assert ModelConfig(encoder="tiny_test_encoder").encoder == "tiny_test_encoder"
    with pytest.raises(ValidationError) as info:
        ModelConfig(core="missing")
    assert "model.core: unknown core 'missing'; registered: default, leaky_test_core" in str(info.value)


def test_a_taken_name_cannot_be_given_to_another_factory():
    registry.register_encoder("tiny_test_encoder", TinyEncoder)  # the same factory again is fine
    with pytest.raises(ValueError, match="already registered"):
        registry.register_encoder("tiny_test_encoder", nn.Identity)
    with pytest.raises(ValueError, match="already registered"):
        registry.register_core("default", LeakyMemoryCore)


def test_a_default_config_validates_before_algos_models_registers_the_built_ins():
    # The sampler validates configs in processes that never build a model.
    script = ("import sys; from algos.model_config import ModelConfig; ModelConfig(); "
              "assert 'algos.models' not in sys.modules")
    subprocess.run([sys.executable, "-c", script], check=True, cwd=Path(__file__).resolve().parents[2])
