"""The env contract every family meets, and the adapter that brings a Gymnasium env to it.

An env has `num_agents`. It takes one action per agent and returns, per agent, an observation dict,
reward, terminated, truncated and info. Each agent resets by itself: the observation after a done
is the first of the next episode. `reset` returns the observations and infos of every agent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import gymnasium as gym
import numpy as np

from algos.spaces import ActionSpec, ObsSpec

Obs = dict[str, np.ndarray]


@dataclass
class EnvContext:
    """Where an env is built: which worker, which slot, and its seed."""

    worker_index: int = 0
    env_index: int = 0
    seed: int | None = None
    render_mode: str | None = None


@dataclass(frozen=True)
class EnvFacts:
    """What a run's layout needs from its env, read from one built env: the spaces, the agents per env (1 for a
    vector env), the envs of a vector env, and the reward components it reports."""

    obs_specs: dict[str, ObsSpec]
    action_spec: ActionSpec
    num_agents: int
    num_envs: int | None
    reward_components: tuple[str, ...]
    # A vector env with next-step autoreset: the obs after an episode's end is its last one (see envs/vector.py).
    last_obs_follows_done: bool = False

    @classmethod
    def of(cls, env, batched: bool) -> EnvFacts:
        return cls(env.obs_specs, env.action_spec, 1 if batched else env.num_agents,
                   env.num_envs if batched else None, tuple(getattr(env, "reward_components", ())),
                   batched and getattr(env, "autoreset", "same_step") == "next_step")


class MultiAgentEnv(Protocol):
    num_agents: int
    obs_specs: dict[str, ObsSpec]
    action_spec: ActionSpec

    def reset(self, seed: int | None = None) -> tuple[list[Obs], list[dict]]: ...

    def step(
        self, actions: list[Any]
    ) -> tuple[list[Obs], list[float], list[bool], list[bool], list[dict]]: ...

    def close(self) -> None: ...


def obs_specs_of(space: gym.Space) -> dict[str, ObsSpec]:
    if isinstance(space, gym.spaces.Dict):
        return {key: _box_spec(sub, key) for key, sub in space.spaces.items()}
    return {"obs": _box_spec(space, "obs")}


def _box_spec(space: gym.Space, key: str) -> ObsSpec:
    if isinstance(space, gym.spaces.Box):
        return ObsSpec(tuple(space.shape), np.dtype(space.dtype).name)
    if isinstance(space, gym.spaces.Discrete):
        return ObsSpec((int(space.n),), "float32")
    raise TypeError(f"observation {key!r}: {type(space).__name__} spaces are not supported; use Box or Dict of Box")


def action_spec_of(space: gym.Space) -> ActionSpec:
    if isinstance(space, gym.spaces.Discrete):
        return ActionSpec(kind="discrete", n=int(space.n))
    if isinstance(space, gym.spaces.Box) and len(space.shape) == 1:
        return ActionSpec(
            kind="box",
            shape=tuple(space.shape),
            low=tuple(float(x) for x in space.low),
            high=tuple(float(x) for x in space.high),
        )
    raise TypeError(f"action space {space} is not supported; use Discrete or a 1-D Box")


class GymnasiumAgent:
    """A single-agent Gymnasium env as a one-agent MultiAgentEnv, with auto-reset and dict observations."""

    num_agents = 1

    def __init__(self, env: gym.Env, seed: int | None = None):
        self.env = env
        self.obs_specs = obs_specs_of(env.observation_space)
        self.action_spec = action_spec_of(env.action_space)
        self._discrete_obs = isinstance(env.observation_space, gym.spaces.Discrete)
        self._dict_obs = isinstance(env.observation_space, gym.spaces.Dict)
        self._seed = seed
        self._box_action = self.action_spec.kind == "box"

    def _wrap(self, obs: Any) -> Obs:
        if self._dict_obs:
            return obs
        if self._discrete_obs:
            one_hot = np.zeros(self.obs_specs["obs"].shape, np.float32)
            one_hot[int(obs)] = 1.0
            return {"obs": one_hot}
        return {"obs": obs}

    def reset(self, seed: int | None = None) -> tuple[list[Obs], list[dict]]:
        obs, info = self.env.reset(seed=self._seed if seed is None else seed)
        return [self._wrap(obs)], [info]

    def step(self, actions: list[Any]):
        action = actions[0]
        if self._box_action:
            action = np.clip(action, self.env.action_space.low, self.env.action_space.high)
        else:
            action = int(action)
        obs, reward, terminated, truncated, info = self.env.step(action)
        if terminated or truncated:
            obs, reset_info = self.env.reset()
            if "action_mask" in reset_info:  # the mask that matters now is the new episode's
                info = {**info, "action_mask": reset_info["action_mask"]}
        return [self._wrap(obs)], [float(reward)], [bool(terminated)], [bool(truncated)], [info]

    def render(self) -> Any:
        """The env's own render (an rgb_array when built with render_mode="rgb_array")."""
        return self.env.render()

    def close(self) -> None:
        self.env.close()
