"""The vectorized-env contract of batched sampling (`sampler.batched_sampling`), and Gymnasium's vector envs.

A vector env steps `num_envs` envs in one call. Observations come as one array per key for all of them,
actions go in as one array, and rewards, terminated and truncated come back as arrays. In async mode (EnvPool
with `num_envs > batch_size`) a step answers only for the envs that were ready, named by `env_ids`.

Autoreset, the one thing vector APIs disagree on, is declared by each env:
- "same_step": the step that ends an episode returns the next episode's first observation (our own env
  contract, Gymnasium's SAME_STEP mode). Every step is a real transition.
- "next_step": the step that ends an episode returns its last observation; the env's next step ignores the
  action, resets, and returns the new first observation with reward 0 (Gymnasium's default NEXT_STEP mode,
  CartPole's own vector env, and EnvPool). That next step is no transition at all: the batched rollout
  worker marks it inactive, so it enters no loss and no episode statistic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol

import gymnasium as gym
import numpy as np

from algos.spaces import ActionSpec, ObsSpec
from sampler.envs.contract import action_spec_of, obs_specs_of
from sampler.errors import ConfigError

Autoreset = Literal["same_step", "next_step"]


@dataclass
class VectorStep:
    obs: dict[str, np.ndarray]  # [B, ...] per key
    rewards: np.ndarray  # [B] float32
    terminated: np.ndarray  # [B] bool
    truncated: np.ndarray  # [B] bool
    env_ids: np.ndarray | None = None  # [B] which envs answered (async mode); None: all, in order
    true_objective: np.ndarray | None = None  # [B], read where an episode ended


class VectorEnv(Protocol):
    num_envs: int
    obs_specs: dict[str, ObsSpec]
    action_spec: ActionSpec
    autoreset: Autoreset
    is_async: bool

    def reset(self) -> VectorStep: ...

    def step(self, actions: np.ndarray, env_ids: np.ndarray | None = None) -> VectorStep: ...

    def close(self) -> None: ...


def _as_dict(obs: Any, discrete_n: int | None) -> dict[str, np.ndarray]:
    if isinstance(obs, dict):
        return obs
    if discrete_n is not None:  # Discrete observations become one-hot vectors, as GymnasiumAgent does
        one_hot = np.zeros((len(obs), discrete_n), np.float32)
        one_hot[np.arange(len(obs)), obs] = 1.0
        return {"obs": one_hot}
    return {"obs": obs}


class GymnasiumVector:
    """`gymnasium.make_vec` behind the vector contract: the id's own vector implementation where it has one
    (CartPole's), else a sync or async vector env of single envs, in whichever autoreset mode it declares."""

    is_async = False

    def __init__(self, env: gym.vector.VectorEnv, seed: int | None):
        self.env = env
        self.num_envs = env.num_envs
        space = env.single_observation_space
        self.obs_specs = obs_specs_of(space)
        self.action_spec = action_spec_of(env.single_action_space)
        self._discrete_n = int(space.n) if isinstance(space, gym.spaces.Discrete) else None
        mode = env.metadata.get("autoreset_mode", gym.vector.AutoresetMode.NEXT_STEP)
        if mode == gym.vector.AutoresetMode.SAME_STEP:
            self.autoreset: Autoreset = "same_step"
        elif mode == gym.vector.AutoresetMode.NEXT_STEP:
            self.autoreset = "next_step"
        else:
            raise ConfigError(f"{env}: autoreset mode {mode} cannot be sampled; use NEXT_STEP or SAME_STEP")
        self._seed = seed
        self._box = self.action_spec.kind == "box"

    def reset(self) -> VectorStep:
        obs, _ = self.env.reset(seed=self._seed)
        n = self.num_envs
        return VectorStep(_as_dict(obs, self._discrete_n), np.zeros(n, np.float32), np.zeros(n, bool),
                          np.zeros(n, bool))

    def step(self, actions: np.ndarray, env_ids: np.ndarray | None = None) -> VectorStep:
        if self._box:
            space = self.env.single_action_space
            actions = np.clip(actions, space.low, space.high)
        obs, rewards, terminated, truncated, _ = self.env.step(actions)
        return VectorStep(_as_dict(obs, self._discrete_n), np.asarray(rewards, np.float32),
                          np.asarray(terminated, bool), np.asarray(truncated, bool))

    def close(self) -> None:
        self.env.close()
