"""A custom env family: `corridor_<length>`, written straight to sftui's env contract.

The agent starts at one end of a corridor and is paid 1 for reaching the other end, minus a little
for every step. Train it with:

    sftui run --headless examples/corridor.json

`run.imports` in that file names this module, so the supervisor and every spawned worker import it,
and the `register_family` call below makes `corridor_<length>` a known env name.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from sampler.plugins import ActionSpec, ConfigError, EnvContext, EnvFamily, ObsSpec, register_family


class CorridorSettings(BaseModel):
    """Settings under env.corridor.*: they appear in `sftui settings` and can be set with --set."""

    model_config = ConfigDict(extra="forbid")

    max_steps: int = Field(100, ge=1, description="Steps before the episode is cut (truncated).")
    step_cost: float = Field(0.01, ge=0, description="Reward paid for every step.")


class CorridorEnv:
    """One agent; observation {"obs": [position / length, 1 - position / length]}; actions left/right."""

    num_agents = 1
    action_spec = ActionSpec(kind="discrete", n=2)

    def __init__(self, length: int, settings: CorridorSettings, seed: int | None):
        self.length = length
        self.settings = settings
        self.obs_specs = {"obs": ObsSpec((2,), "float32")}
        self.rng = np.random.default_rng(seed)
        self.position = 0
        self.steps = 0

    def _obs(self) -> dict:
        x = self.position / self.length
        return {"obs": np.array([x, 1.0 - x], np.float32)}

    def reset(self, seed: int | None = None):
        self.position, self.steps = 0, 0
        return [self._obs()], [{}]

    def step(self, actions):
        self.position = max(0, self.position + (1 if int(actions[0]) == 1 else -1))
        self.steps += 1
        reached = self.position >= self.length
        reward = (1.0 if reached else 0.0) - self.settings.step_cost
        truncated = not reached and self.steps >= self.settings.max_steps
        info = {"true_objective": 1.0} if reached else ({"true_objective": 0.0} if truncated else {})
        if reached or truncated:
            self.reset()
        return [self._obs()], [reward], [reached], [truncated], [info]

    def close(self) -> None:
        pass


def _length(env_name: str) -> int:
    suffix = env_name.split("_", 1)[1]
    if not suffix.isdigit() or int(suffix) < 1:
        raise ConfigError(f"env.name: {env_name!r} should be corridor_<length>, e.g. corridor_8")
    return int(suffix)


def make(cfg, context: EnvContext) -> CorridorEnv:
    return CorridorEnv(_length(cfg.env.name), cfg.env.corridor, context.seed)


register_family(
    EnvFamily(
        prefix="corridor",
        description="Example: walk to the end of a corridor (examples/corridor_env.py)",
        make=make,
        example="corridor_8",
        defaults={"sampler": {"num_envs_per_worker": 8}, "appo": {"batch_size": 512, "learning_rate": 1e-3}},
        settings_model=CorridorSettings,
        validate_name=_length,
    )
)
