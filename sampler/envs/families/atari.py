"""`atari_<game>`: Arcade Learning Environment games through Gymnasium, with the usual DQN preprocessing.

`<game>` is the ROM's id in snake_case (atari_pong, atari_space_invaders). Per agent step the env
repeats the action for env.frameskip emulator frames and max-pools the last two (sprites that flicker
between frames stay visible); the frame is then resized to 84x84 grayscale and stacked with the 3
before it: `{"obs": uint8 [4, 84, 84]}`. A new game starts with 1..noop_max random no-ops, so that
episodes do not all begin alike, and presses FIRE in games that have it (many wait for it).

Rewards are raw game points; appo.reward_clip clips them in the learner's input.

With env.atari.episodic_life, losing a life ends the agent's trajectory (terminated=True) with
`info["episode_continues"] = True`: the game goes on, and the engine keeps adding to the episode's
return until the real game over.
"""

from __future__ import annotations

import difflib
import functools
from typing import Any

import gymnasium as gym
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from algos.spaces import ActionSpec, ObsSpec
from sampler.envs.contract import EnvContext, Obs
from sampler.envs.families.imaging import AreaResize
from sampler.envs.families.registry import EnvFamily, register_family
from sampler.errors import ConfigError, MissingDependencyError

FRAME_SIZE = 84
ATARI_FPS = 60.0  # the console's frame rate: real-time play
STACK = 4
NOOP = 0  # ALE's minimal action sets always start with NOOP


class AtariSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    episodic_life: bool = Field(
        False, description="End the agent's trajectory at each lost life; the reported episode still runs to game over."
    )
    noop_max: int = Field(30, ge=0, description="A new game starts with 1..noop_max random no-op frames (0: none).")
    repeat_action_probability: float = Field(
        0.0, ge=0, le=1, description="Sticky actions: chance that the emulator repeats the previous action each frame."
    )
    max_episode_frames: int = Field(
        108_000, ge=1, description="Emulator frames before a game is cut off as truncated (108000 = 30 min at 60 Hz)."
    )


def _ale_py() -> Any:
    try:
        import ale_py
    except ImportError:
        raise MissingDependencyError("atari_* envs need ale-py: pip install ale-py") from None
    return ale_py


@functools.cache
def gym_ids() -> dict[str, str]:
    """ROM id -> Gymnasium id (pong -> ALE/Pong-v5) for every ROM that has a single-player v5 env."""
    ale_py = _ale_py()
    gym.register_envs(ale_py)
    v5 = {
        spec.kwargs.get("game"): spec.id
        for spec in gym.registry.values()
        if spec.id.startswith("ALE/") and spec.id.endswith("-v5")
    }
    return {rom: v5[rom] for rom in ale_py.roms.get_all_rom_ids() if rom in v5}


def game_of(env_name: str) -> str:
    return env_name.split("_", 1)[1]


def validate_name(env_name: str) -> None:
    game = game_of(env_name)
    if game in gym_ids():
        return
    if game in _ale_py().roms.get_all_rom_ids():  # two-player-only ROMs (combat, joust, ...)
        raise ConfigError(f"env.name: Atari game {game!r} has no single-player mode in ALE")
    close = difflib.get_close_matches(game, list(gym_ids()), n=1)
    hint = f" (did you mean atari_{close[0]}?)" if close else ""
    raise ConfigError(
        f"env.name: unknown Atari game {game!r}{hint}; names are ALE ROM ids, e.g. atari_pong, atari_space_invaders"
    )


class AtariEnv:
    """A frameskip-1 grayscale ALE env as a one-agent MultiAgentEnv with auto-reset and the preprocessing above."""

    num_agents = 1

    def __init__(self, env: gym.Env, settings: AtariSettings, frameskip: int = 4, seed: int | None = None):
        self.env = env
        self.settings = settings
        self.frameskip = frameskip
        meanings = env.unwrapped.get_action_meanings()
        self._fire = meanings.index("FIRE") if "FIRE" in meanings else None
        self.action_spec = ActionSpec(kind="discrete", n=int(env.action_space.n))
        self.obs_specs = {"obs": ObsSpec((STACK, FRAME_SIZE, FRAME_SIZE), "uint8")}
        height, width = env.observation_space.shape
        self._resize = AreaResize(height, width, FRAME_SIZE, FRAME_SIZE)
        self._stack = np.zeros((STACK, FRAME_SIZE, FRAME_SIZE), np.uint8)
        self._rng = np.random.default_rng(seed)
        self._seed = seed  # seeds the emulator at the first reset only; later games continue its stream
        self._lives = 0

    def reset(self, seed: int | None = None) -> tuple[list[Obs], list[dict]]:
        frame = self._new_game(self._seed if seed is None else seed)
        self._seed = None
        return [self._restack(frame)], [{}]

    def step(self, actions: list[Any]) -> tuple[list[Obs], list[float], list[bool], list[bool], list[dict]]:
        frame, reward, terminated, truncated, lives = self._repeat(int(actions[0]))
        life_lost = lives < self._lives
        self._lives = lives
        info: dict = {}
        if terminated or truncated:
            obs = self._restack(self._new_game())
        elif life_lost and self.settings.episodic_life:
            terminated = True
            info["episode_continues"] = True
            if self._fire is not None:  # relaunch, as at a new game; its points belong to this step
                frame, fire_reward, over, _ = self._press(self._fire)
                reward += fire_reward
                if over:  # the game ended on that frame after all
                    del info["episode_continues"]
                    frame = self._new_game()
            obs = self._restack(frame)
        else:
            obs = self._push(frame)
        return [obs], [reward], [terminated], [truncated], [info]

    def close(self) -> None:
        self.env.close()

    def _repeat(self, action: int) -> tuple[np.ndarray, float, bool, bool, int]:
        """Hold `action` for frameskip frames; the frame is the max of the last two seen."""
        total = 0.0
        last_two: list[np.ndarray] = []
        for _ in range(self.frameskip):
            frame, reward, terminated, truncated, info = self.env.step(action)
            total += float(reward)
            last_two = [*last_two[-1:], frame]
            if terminated or truncated:
                break
        pooled = np.maximum(last_two[0], last_two[1]) if len(last_two) == 2 else last_two[0]
        return pooled, total, bool(terminated), bool(truncated), int(info["lives"])

    def _press(self, action: int) -> tuple[np.ndarray, float, bool, int]:
        frame, reward, terminated, truncated, info = self.env.step(action)
        return frame, float(reward), bool(terminated or truncated), int(info["lives"])

    def _new_game(self, seed: int | None = None) -> np.ndarray:
        frame, info = self.env.reset(seed=seed)
        lives = int(info["lives"])
        noops = int(self._rng.integers(1, self.settings.noop_max + 1)) if self.settings.noop_max else 0
        starting_presses = [NOOP] * noops + ([self._fire] if self._fire is not None else [])
        for action in starting_presses:
            frame, _, over, lives = self._press(action)
            if over:  # rare: the game ended during the start-up presses; the rest go to a fresh one
                frame, info = self.env.reset()
                lives = int(info["lives"])
        self._lives = lives
        return frame

    def _restack(self, frame: np.ndarray) -> Obs:
        self._stack[:] = self._resize.resize(frame)
        return {"obs": self._stack.copy()}

    def _push(self, frame: np.ndarray) -> Obs:
        self._stack[:-1] = self._stack[1:]
        self._stack[-1] = self._resize.resize(frame)
        return {"obs": self._stack.copy()}


def make(cfg: Any, context: EnvContext) -> AtariEnv:
    settings: AtariSettings = cfg.env.atari
    gym_id = gym_ids()[game_of(cfg.env.name)]  # also registers the ALE envs with Gymnasium in this process
    env = gym.make(
        gym_id,
        frameskip=1,
        repeat_action_probability=settings.repeat_action_probability,
        full_action_space=False,
        obs_type="grayscale",
        max_num_frames_per_episode=settings.max_episode_frames,  # ALE reports truncated when it is reached
    )
    return AtariEnv(env, settings, frameskip=cfg.env.frameskip, seed=context.seed)


register_family(
    EnvFamily(
        prefix="atari",
        description="Atari 2600 games from the Arcade Learning Environment, e.g. atari_pong, atari_breakout",
        make=make,
        example="atari_pong",
        play_fps=lambda cfg, frames_per_step: ATARI_FPS / frames_per_step,
        defaults={
            "env": {"frameskip": 4},
            "sampler": {"num_envs_per_worker": 8},
            "model": {"use_rnn": False, "encoder_conv_architecture": "convnet_atari", "encoder_conv_mlp_layers": [512]},
            "appo": {
                "rollout": 128,
                "batch_size": 256,
                "num_batches_per_epoch": 4,
                "num_epochs": 4,
                "learning_rate": 2.5e-4,
                "ppo_clip_ratio": 0.1,
                "exploration_loss_coeff": 0.01,
                "max_grad_norm": 0.5,
                "reward_clip": 1.0,
            },
        },
        settings_model=AtariSettings,
        validate_name=validate_name,
    )
)
