"""Gymnasium envs that fail on purpose, for the healing tests and bench/faults.py (`--import tests.faulty_envs`):

- `gym_FlakyCartPole-v1`: CartPole whose `step` raises in 1% of its steps (FLAKY_RATE);
- `gym_BrokenCartPole-v1`: CartPole whose `step` raises every time after its first reset;
- `gym_HangingCartPole-v1`: CartPole that hangs in `step` (in `time.sleep`), once per run, in the first env that
  reaches HANG_AFTER_STEPS steps and finds no `hung` marker in the folder SFTUI_HANG_MARKER names.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import gymnasium as gym
from gymnasium.envs.classic_control import CartPoleEnv

FLAKY_RATE = 0.01
HANG_AFTER_STEPS = 300


class FlakyCartPole(CartPoleEnv):
    def __init__(self, rate: float = FLAKY_RATE, **kwargs):
        super().__init__(**kwargs)
        self.rate = rate
        self.rng = random.Random(os.getpid() ^ id(self))

    def step(self, action):
        if self.rng.random() < self.rate:
            raise RuntimeError("injected env failure")
        return super().step(action)


class HangingCartPole(CartPoleEnv):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.steps = 0

    def step(self, action):
        self.steps += 1
        if self.steps == HANG_AFTER_STEPS:
            marker = Path(os.environ.get("SFTUI_HANG_MARKER", "/nonexistent")) / "hung"
            try:
                marker.open("x").close()  # exactly one env of the run hangs
            except OSError:
                pass
            else:
                hang_in_step()
        return super().step(action)


def hang_in_step() -> None:
    while True:
        time.sleep(1)


for env_id, entry in (("FlakyCartPole-v1", FlakyCartPole), ("BrokenCartPole-v1", lambda **kw: FlakyCartPole(1.0, **kw)),
                      ("HangingCartPole-v1", HangingCartPole)):
    if env_id not in gym.registry:
        gym.register(env_id, entry_point=entry, max_episode_steps=500)
