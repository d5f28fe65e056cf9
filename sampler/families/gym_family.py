"""`gym_<id>`: any Gymnasium id with vector observations, Discrete or Box actions."""

from __future__ import annotations

import difflib
from typing import Any

import gymnasium as gym
from pydantic import BaseModel, ConfigDict, Field

from sampler.envs import EnvContext, GymnasiumAgent
from sampler.errors import ConfigError
from sampler.families.registry import EnvFamily, register_family


class GymSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_episode_steps: int | None = Field(
        None, ge=1, description="Override the id's episode time limit (none keeps the registered one)."
    )
    kwargs: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments for gymnasium.make.")


def gym_id(env_name: str) -> str:
    return env_name.split("_", 1)[1]


def validate_name(env_name: str) -> None:
    env_id = gym_id(env_name)
    if env_id in gym.registry:
        return
    close = difflib.get_close_matches(env_id, list(gym.registry), n=1, cutoff=0.6)
    hint = f" (did you mean gym_{close[0]}?)" if close else ""
    raise ConfigError(f"env.name: {env_id!r} is not a registered Gymnasium id{hint}")


def make(cfg, context: EnvContext) -> GymnasiumAgent:
    settings: GymSettings = cfg.env.gym
    kwargs = dict(settings.kwargs)
    if settings.max_episode_steps is not None:
        kwargs["max_episode_steps"] = settings.max_episode_steps
    env = gym.make(gym_id(cfg.env.name), render_mode=context.render_mode, **kwargs)
    return GymnasiumAgent(env, seed=context.seed)


register_family(
    EnvFamily(
        prefix="gym",
        description="Any Gymnasium id with vector observations, e.g. gym_CartPole-v1",
        make=make,
        defaults={
            "sampler": {"num_envs_per_worker": 16},
            "appo": {"learning_rate": 3e-4, "rollout": 32, "batch_size": 1024, "num_epochs": 1},
        },
        settings_model=GymSettings,
        validate_name=validate_name,
    )
)
