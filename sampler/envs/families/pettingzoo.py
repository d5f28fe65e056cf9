"""`pettingzoo_<module>`: any PettingZoo Parallel API env, as a MultiAgentEnv.

`pettingzoo_classic.rps_v2` builds `pettingzoo.classic.rps_v2.parallel_env(**env.pettingzoo.kwargs)`;
a module outside PettingZoo works the same way (`pettingzoo_mypackage.my_env` imports
`mypackage.my_env`), as long as it has a `parallel_env` function.

Seats: one per entry of `possible_agents`, in that order. An agent that leaves the episode before
the others (PettingZoo drops it from `agents`) reports its terminal step, then steps as inactive
(`is_active: False`, masked out of the loss) until the env resets with every agent back.

Observations: a Dict with "observation" and "action_mask" (PettingZoo's convention for legal moves)
becomes `{"obs": observation}` with the mask in info["action_mask"]; a mask in the env's infos is
honoured too. Discrete observations become one-hot vectors.

All seats must share one observation and one action space, unless `env.pettingzoo.superset_spaces`
is set: then observations are zero-padded to the largest shape and Discrete actions widened to the
largest n, the actions a seat does not have masked out.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

import gymnasium as gym
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from algos.spaces import ActionSpec, ObsSpec
from sampler.envs.contract import EnvContext, action_spec_of
from sampler.envs.families.registry import EnvFamily, register_family
from sampler.errors import ConfigError, MissingDependencyError


class PettingZooSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kwargs: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments for parallel_env().")
    superset_spaces: bool = Field(
        False, description="Seats with different spaces share one: observations zero-padded to the largest "
        "shape, Discrete actions widened to the largest n with the extra actions masked."
    )


def module_name(env_name: str) -> str:
    return env_name.split("_", 1)[1]


def load_module(env_name: str):
    name = module_name(env_name)
    try:
        import pettingzoo  # noqa: F401
    except ImportError:
        raise MissingDependencyError("pettingzoo_* envs need pettingzoo: pip install pettingzoo") from None
    if not all(name.split(".")):  # importlib's ValueError or TypeError: empty, leading, trailing or doubled dots
        raise ConfigError(f"env.name: {env_name!r}: pettingzoo_<module> needs a dotted module name, e.g. "
                          "pettingzoo_classic.rps_v2 (pettingzoo.classic.rps_v2) or pettingzoo_mymodule")
    if os.getcwd() not in sys.path:  # a module of one's own is found from the current folder, as run.imports
        sys.path.append(os.getcwd())
    errors = []
    for candidate in (f"pettingzoo.{name}", name):
        try:
            module = importlib.import_module(candidate)
        except ImportError as e:
            errors.append(f"{candidate}: {e}")
            continue
        if not hasattr(module, "parallel_env"):
            raise ConfigError(f"env.name: {candidate} has no parallel_env(); it is not a PettingZoo Parallel env")
        return module
    raise ConfigError(f"env.name: cannot import {name!r} as pettingzoo.{name} or {name} ({'; '.join(errors)})")


def validate_name(env_name: str) -> None:
    load_module(env_name)


def _inner_obs_space(space: gym.Space) -> tuple[gym.Space, bool]:
    """(the observation part, whether the space carries an action mask beside it)."""
    if isinstance(space, gym.spaces.Dict) and "observation" in space.spaces and "action_mask" in space.spaces:
        return space.spaces["observation"], True
    return space, False


def _obs_shape(space: gym.Space) -> tuple[tuple[int, ...], str]:
    if isinstance(space, gym.spaces.Box):
        return tuple(space.shape), np.dtype(space.dtype).name
    if isinstance(space, gym.spaces.Discrete):
        return (int(space.n),), "float32"
    raise ConfigError(f"observation space {space} is not supported; use Box or Discrete (or a Dict with "
                      "'observation' and 'action_mask')")


class PettingZooAgents:
    def __init__(self, env, settings: PettingZooSettings, seed: int | None, env_name: str):
        self.env = env
        self.seats: list[str] = list(env.possible_agents)
        self._seat_of = {agent: seat for seat, agent in enumerate(self.seats)}
        self.num_agents = len(self.seats)
        self._seed = seed
        spaces = {agent: _inner_obs_space(env.observation_space(agent)) for agent in self.seats}
        self._has_mask_obs = {agent: has_mask for agent, (_, has_mask) in spaces.items()}
        shapes = {agent: _obs_shape(space) for agent, (space, _) in spaces.items()}
        self._discrete_obs = {agent: isinstance(space, gym.spaces.Discrete) for agent, (space, _) in spaces.items()}
        actions = {agent: env.action_space(agent) for agent in self.seats}
        same_obs = len(set(shapes.values())) == 1
        same_actions = len({repr(a) for a in actions.values()}) == 1
        if not (same_obs and same_actions) and not settings.superset_spaces:
            differ = "observation" if not same_obs else "action"
            listing = ", ".join(f"{a}: {shapes[a] if not same_obs else actions[a]}" for a in self.seats)
            raise ConfigError(f"{env_name}: the agents' {differ} spaces differ ({listing}); set "
                              "env.pettingzoo.superset_spaces=true to pad them to one space")
        dims = {len(shape) for shape, _ in shapes.values()}
        if len(dims) != 1:
            raise ConfigError(f"{env_name}: observations of different ranks cannot share a superset space")
        shape = tuple(int(max(s[0][i] for s in shapes.values())) for i in range(dims.pop()))
        dtype = np.result_type(*[s[1] for s in shapes.values()]).name
        self.obs_specs = {"obs": ObsSpec(shape, dtype)}
        self._obs_shape, self._obs_dtype = shape, np.dtype(dtype)
        if same_actions:
            self.action_spec = action_spec_of(next(iter(actions.values())))
            self._seat_actions = None
        else:
            if not all(isinstance(a, gym.spaces.Discrete) for a in actions.values()):
                raise ConfigError(f"{env_name}: only Discrete action spaces can be widened to a superset")
            self.action_spec = ActionSpec(kind="discrete", n=max(int(a.n) for a in actions.values()))
            self._seat_actions = {agent: int(a.n) for agent, a in actions.items()}
        self._box_action = self.action_spec.kind == "box"
        self._last_obs: dict[str, dict] = {}

    # ---- conversions ------------------------------------------------------------------------------

    def _obs(self, agent: str, raw) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
        mask = None
        if self._has_mask_obs[agent]:
            mask = np.asarray(raw["action_mask"], np.int8)
            raw = raw["observation"]
        if self._discrete_obs[agent]:
            array = np.zeros(self._obs_shape, self._obs_dtype)
            array[int(raw)] = 1
        else:
            array = np.asarray(raw, self._obs_dtype)
            if array.shape != self._obs_shape:
                padded = np.zeros(self._obs_shape, self._obs_dtype)
                padded[tuple(slice(0, n) for n in array.shape)] = array
                array = padded
        return {"obs": array}, mask

    def _mask(self, agent: str, mask: np.ndarray | None, info: dict) -> np.ndarray | None:
        if mask is None and "action_mask" in info:
            mask = np.asarray(info["action_mask"], np.int8)
        if self._seat_actions is not None:
            full = np.zeros(self.action_spec.n, np.int8)
            full[: self._seat_actions[agent]] = 1 if mask is None else mask
            return full
        return mask

    def _convert(self, agent: str, raw_obs, info: dict) -> tuple[dict, dict]:
        obs, mask = self._obs(agent, raw_obs)
        info = dict(info)
        mask = self._mask(agent, mask, info)
        if mask is not None:
            info["action_mask"] = mask
        self._last_obs[agent] = obs
        return obs, info

    def _idle(self, agent: str) -> tuple[dict, dict]:
        """An agent out of the episode until the next reset: its last observation, masked out of the loss."""
        obs = self._last_obs.get(agent) or {"obs": np.zeros(self._obs_shape, self._obs_dtype)}
        info: dict = {"is_active": False}
        if self.action_spec.kind != "box":
            info["action_mask"] = np.ones(self.action_spec.num_dist_params(), np.int8)
        return obs, info

    # ---- the env contract -------------------------------------------------------------------------

    def reset(self, seed: int | None = None):
        raw_obs, raw_infos = self.env.reset(seed=self._seed if seed is None else seed)
        self._seed = None  # seed the first episode only; later resets continue the env's own stream
        obs, infos = [], []
        for agent in self.seats:
            if agent in raw_obs:
                o, i = self._convert(agent, raw_obs[agent], raw_infos.get(agent, {}))
            else:
                o, i = self._idle(agent)
            obs.append(o)
            infos.append(i)
        return obs, infos

    def _action(self, agent: str, action) -> Any:
        if self._box_action:
            space = self.env.action_space(agent)
            return np.clip(np.asarray(action, space.dtype), space.low, space.high)
        return int(action)

    def step(self, actions: list[Any]):
        live = list(self.env.agents)
        raw_obs, rewards, terminations, truncations, raw_infos = self.env.step(
            {agent: self._action(agent, actions[self._seat_of[agent]]) for agent in live})
        episode_over = not self.env.agents
        if episode_over:
            next_obs, next_infos = self.reset()
        out_obs, out_rewards, out_term, out_trunc, out_infos = [], [], [], [], []
        for seat, agent in enumerate(self.seats):
            if agent not in live:  # out of this episode already: idle until the reset brings it back
                obs, info = (next_obs[seat], next_infos[seat]) if episode_over else self._idle(agent)
                out_obs.append(obs)
                out_rewards.append(0.0)
                out_term.append(False)
                out_trunc.append(False)
                out_infos.append(info)
                continue
            terminated = bool(terminations.get(agent, False))
            truncated = bool(truncations.get(agent, False))
            info = dict(raw_infos.get(agent, {}))
            if episode_over:
                obs, reset_info = next_obs[seat], next_infos[seat]
                if "action_mask" in reset_info:  # the mask that matters now is the new episode's
                    info["action_mask"] = reset_info["action_mask"]
                truncated = truncated or not terminated  # the env ended the episode for everyone
            elif terminated or truncated:
                obs, _ = self._convert(agent, raw_obs[agent], info) if agent in raw_obs else self._idle(agent)
                info.pop("action_mask", None)
            else:
                obs, info = self._convert(agent, raw_obs[agent], info)
            out_obs.append(obs)
            out_rewards.append(float(rewards.get(agent, 0.0)))
            out_term.append(terminated)
            out_trunc.append(truncated)
            out_infos.append(info)
        return out_obs, out_rewards, out_term, out_trunc, out_infos

    def render(self):
        return self.env.render()

    def close(self) -> None:
        self.env.close()


def make(cfg, context: EnvContext) -> PettingZooAgents:
    settings: PettingZooSettings = cfg.env.pettingzoo
    module = load_module(cfg.env.name)
    kwargs = dict(settings.kwargs)
    if context.render_mode is not None:
        kwargs.setdefault("render_mode", context.render_mode)
    return PettingZooAgents(module.parallel_env(**kwargs), settings, context.seed, cfg.env.name)


register_family(
    EnvFamily(
        prefix="pettingzoo",
        description="Any PettingZoo Parallel env, e.g. pettingzoo_classic.rps_v2, or a module of your own",
        make=make,
        example="pettingzoo_classic.rps_v2",
        defaults={"sampler": {"num_envs_per_worker": 8}},
        settings_model=PettingZooSettings,
        validate_name=validate_name,
    )
)
