"""The env-family registry: `<prefix>_<id>` names map to a family that builds envs and knows its defaults.

Built-in families register on import. Installed packages register through the `sftui.plugins`
entry-point group; modules named in `run.imports` register when they are imported.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

from pydantic import BaseModel

from sampler.config.keys import deep_merge
from sampler.envs.contract import EnvContext, MultiAgentEnv
from sampler.errors import ConfigError


@dataclass
class EnvFamily:
    prefix: str
    description: str
    make: Callable[[Any, EnvContext], MultiAgentEnv]  # (ExperimentConfig, context) -> env
    # A full env name of the family, e.g. gym_CartPole-v1: what the launcher fills in when the family is picked
    # and `sftui settings` lists. One that builds with the base install where the family has such an env.
    example: str = ""
    defaults: dict = field(default_factory=dict)  # nested config overrides, below cfg.json
    settings_model: type[BaseModel] | None = None  # env.<prefix>.*
    validate_name: Callable[[str], None] | None = None  # raises ConfigError for an unknown id
    defaults_by_id: Callable[[str], dict] | None = None
    validate_config: Callable[[Any], None] | None = None  # raises ConfigError for settings the family refuses
    # (ExperimentConfig, context) -> a VectorEnv of the worker's envs, for sampler.batched_sampling (sampler/vector.py)
    make_vector: Callable[[Any, EnvContext], Any] | None = None
    # Enjoy: the family's frameskip is an action repeat the player can do itself, so every frame is shown.
    repeat_outside: bool = False
    # Enjoy: frames a second at real-time speed, given (cfg, env frames each shown step spans); None: the env's own
    # render_fps.
    play_fps: Callable[[Any, int], float | None] | None = None
    # The envs each rollout worker steps, where the family decides it; None: sampler.num_envs_per_worker.
    envs_per_worker: Callable[[Any], int] | None = None

    def defaults_for(self, env_name: str) -> dict:
        extra = self.defaults_by_id(env_name) if self.defaults_by_id else {}
        return deep_merge(self.defaults, extra)

    def check_name(self, env_name: str) -> None:
        if self.validate_name is not None:
            self.validate_name(env_name)

    def check(self, cfg) -> None:
        self.check_name(cfg.env.name)
        if self.validate_config is not None:
            self.validate_config(cfg)


_FAMILIES: dict[str, EnvFamily] = {}
_plugins_loaded = False


def register_family(family: EnvFamily) -> None:
    _FAMILIES[family.prefix] = family


def families() -> list[EnvFamily]:
    _load_builtin_and_plugins()
    return list(_FAMILIES.values())


def family_for(env_name: str) -> EnvFamily:
    _load_builtin_and_plugins()
    prefix = env_name.split("_", 1)[0]
    if "_" not in env_name or prefix not in _FAMILIES:
        close = difflib.get_close_matches(prefix, list(_FAMILIES), n=1)
        hint = f" (did you mean {close[0]}_...?)" if close else ""
        known = ", ".join(f"{p}_<id>" for p in sorted(_FAMILIES))
        raise ConfigError(f"env.name: unknown env family in {env_name!r}{hint}; known families: {known}")
    return _FAMILIES[prefix]


def make_env(cfg, context: EnvContext) -> MultiAgentEnv:
    return family_for(cfg.env.name).make(cfg, context)


def make_vector_env(cfg, context: EnvContext):
    """The vector env of one batched rollout worker (sampler.batched_sampling)."""
    return family_for(cfg.env.name).make_vector(cfg, context)


def make_probe_env(cfg):
    """One env as the run's workers build it (a vector env with batched sampling), to read its spaces from."""
    return (make_vector_env if cfg.sampler.batched_sampling else make_env)(cfg, EnvContext(seed=cfg.run.seed))


# Built-in families register the way plugins do: their module calls register_family when it is imported. Each
# imports its env's own package (ale-py, vizdoom, pettingzoo, generals-bots, envpool) only when an env is built.
BUILT_IN = (
    "sampler.envs.families.atari",
    "sampler.envs.families.doom.family",
    "sampler.envs.families.gym_family",
    "sampler.envs.families.pettingzoo",
    "sampler.envs.families.generals",
    "sampler.envs.families.envpool_family",
)


def _load_builtin_and_plugins() -> None:
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for module in BUILT_IN:
        importlib.import_module(module)
    for entry in entry_points(group="sftui.plugins"):
        entry.load()
