"""`gym_<id>`: any Gymnasium id with vector observations, Discrete or Box actions."""

from __future__ import annotations

import difflib
import functools
import re
from typing import Any, Literal

import gymnasium as gym
from pydantic import BaseModel, ConfigDict, Field

from sampler.config.keys import deep_merge
from sampler.envs.contract import EnvContext, GymnasiumAgent
from sampler.envs.families.atari import gym_ids
from sampler.envs.families.registry import EnvFamily, register_family
from sampler.envs.vector import GymnasiumVector
from sampler.errors import ConfigError, MissingDependencyError


class GymSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_episode_steps: int | None = Field(
        None, ge=1, description="Override the id's episode time limit (none keeps the registered one)."
    )
    kwargs: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments for gymnasium.make.")
    vectorization_mode: Literal["auto", "vector_entry_point", "sync", "async"] = Field(
        "auto", description="With sampler.batched_sampling: how gymnasium.make_vec builds the worker's "
        "sampler.num_envs_per_worker envs; auto: the id's own vector implementation where it has one "
        "(CartPole's), else sync.",
    )


def gym_id(env_name: str) -> str:
    return env_name.split("_", 1)[1]


def validate_name(env_name: str) -> None:
    env_id = gym_id(env_name)
    if env_id in gym.registry:
        return
    close = difflib.get_close_matches(env_id, list(gym.registry), n=1, cutoff=0.6)  # before ALE's ids join it
    hint = f" (did you mean gym_{close[0]}?)" if close else ""
    rom = _atari_rom(env_id)
    if rom:
        hint = f" (Atari games are atari_<rom>: did you mean atari_{rom}?)"
    raise ConfigError(f"env.name: {env_id!r} is not a registered Gymnasium id{hint}")


def _atari_rom(env_id: str) -> str | None:
    """The ALE ROM id an unregistered id names (Pong-v5, ALE/SpaceInvaders-v5 -> pong, space_invaders), if any."""
    stem = re.sub(r"(NoFrameskip)?-v\d+$", "", env_id.removeprefix("ALE/"))
    rom = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", stem).lower()
    try:
        return rom if rom in gym_ids() else None
    except MissingDependencyError:
        return None


# Box actions (continuous control) get PPO's usual choices. Each measured with gym_Pendulum-v1, 300k frames, seed 1,
# mean return of the last 20% of the run (the generic defaults: -1256): all of them -183 (seed 2: -184); without
# value_bootstrap -998; elu instead of tanh -254; one epoch instead of ten -1182. Minibatches of 1,024 instead of
# 256 (10 epochs of 4 x 1,024): over 1M frames, seed 1, the last 20% went from -155.9 to -149.8 and the run from
# 133 s to 71 s (a quarter of the SGD steps per sample); a linear learning-rate decay made it worse (-170.5).
# Tried over 1M frames, seed 1, last 20% (the family's 3e-4: -157.3): learning rate 1e-3 -149.7, 2e-3 -146.5, but
# 2e-3 over seeds 1/2/3 in bench/learning.py -159.6 / -157.4 / -160.0 (a run's last 20% moves by about 10 between
# runs of one seed); 3e-3 decayed linearly -153.5; gamma 0.95 -159.4; Sample Factory's MuJoCo settings (2.95e-3
# decayed, 2 epochs, KL loss 0.1, rollout 64) -163.7. None kept.
CONTINUOUS_DEFAULTS = {
    "model": {"nonlinearity": "tanh", "encoder_mlp_layers": [64, 64]},
    "appo": {"num_epochs": 10, "batch_size": 1024, "num_batches_per_epoch": 4, "value_bootstrap": True,
             "exploration_loss_coeff": 0.0, "ppo_clip_ratio": 0.2},
}

# MuJoCo's locomotion envs (gymnasium.envs.mujoco: Hopper, Walker2d, HalfCheetah, ...) over the continuous ones: four
# times the SGD steps per sample. gym_Walker2d-v4, 1M frames, seed 1, last 20%: 10 epochs of 4 x 1,024 1,180
# (179 s); of 16 x 256 2,051 (298 s), and 1,524 in bench/learning.py (242 s); Sample Factory's MuJoCo settings
# 1,320; 4 x 1,024 with a linear decay, a KL loss of 0.1 and rollout 64 1,071. gym_Hopper-v4 in bench/learning.py:
# 2,134 with 4 x 1,024, 2,479 with 16 x 256.
MUJOCO_DEFAULTS = {
    "appo": {"batch_size": 256, "num_batches_per_epoch": 16},
}


def _kind_defaults(env: gym.Env) -> dict:
    if not isinstance(env.action_space, gym.spaces.Box):
        return {}
    if type(env.unwrapped).__module__.startswith("gymnasium.envs.mujoco"):
        return deep_merge(CONTINUOUS_DEFAULTS, MUJOCO_DEFAULTS)
    return CONTINUOUS_DEFAULTS


# Ids whose measured best differs from their kind's defaults, as a zoo of tuned settings would list them.
TUNED_BY_ID = {
    # Acrobot: a random policy almost never reaches the goal in 500 steps (-496 over 40 episodes), and one SGD step
    # per 1,024 samples lets the policy settle on one that never does before a success teaches it anything: -500 at
    # 500k frames for seeds 1/2/3, and still -500 with policy_init_gain 1, an entropy bonus of 0.01, or no time-out
    # bootstrap. Four epochs of 4 x 256 (16 steps per 1,024 samples): the mean of the last 20% of a 500k run is
    # -84.6 / -84.6 / -83.4. CartPole keeps one epoch: with these it took 128 s instead of 43 s for 1M frames and
    # swung at the end (last 20% 487.6, lowest 449.6, seed 1).
    "Acrobot-v1": {"appo": {"num_epochs": 4, "batch_size": 256, "num_batches_per_epoch": 4}},
}


@functools.lru_cache(maxsize=64)
def defaults_by_id(env_name: str) -> dict:
    """The id's own defaults: continuous-control ones for a Box action space, MuJoCo's over them for its envs
    (read by building the env once), and the id's tuned settings (TUNED_BY_ID) over those."""
    env_id = gym_id(env_name)
    if env_id not in gym.registry:
        return {}
    try:
        env = gym.make(env_id)
    except Exception:  # noqa: BLE001 - a missing package or bad id is reported when the run builds the env
        return {}
    try:
        kind = _kind_defaults(env)
    finally:
        env.close()
    return deep_merge(kind, TUNED_BY_ID.get(env_id, {}))


def make(cfg, context: EnvContext) -> GymnasiumAgent:
    settings: GymSettings = cfg.env.gym
    kwargs = dict(settings.kwargs)
    if settings.max_episode_steps is not None:
        kwargs["max_episode_steps"] = settings.max_episode_steps
    env = gym.make(gym_id(cfg.env.name), render_mode=context.render_mode, **kwargs)
    return GymnasiumAgent(env, seed=context.seed)


def make_vector(cfg, context: EnvContext):
    settings: GymSettings = cfg.env.gym
    kwargs = dict(settings.kwargs)
    if settings.max_episode_steps is not None:
        kwargs["max_episode_steps"] = settings.max_episode_steps
    mode = None if settings.vectorization_mode == "auto" else settings.vectorization_mode
    try:
        env = gym.make_vec(gym_id(cfg.env.name), num_envs=cfg.sampler.num_envs_per_worker,
                           vectorization_mode=mode, **kwargs)
    except gym.error.Error as e:
        raise ConfigError(f"env.gym.vectorization_mode {settings.vectorization_mode}: {e}") from None
    return GymnasiumVector(env, seed=context.seed)


register_family(
    EnvFamily(
        prefix="gym",
        description="Any Gymnasium id with vector observations, e.g. gym_CartPole-v1",
        make=make,
        example="gym_CartPole-v1",
        defaults={
            "sampler": {"num_envs_per_worker": 16},
            # value_bootstrap: most Gymnasium ids end by a time limit, which the policy cannot see. Treated as a
            # real end it made a solved CartPole swing: 1M frames, mean return of the last 20% for seeds 1/2/3
            # was 500/381/395 without it and 500/500/500 with it (every status line of that 20% at 500).
            "appo": {"learning_rate": 3e-4, "rollout": 32, "batch_size": 1024, "num_epochs": 1,
                     "value_bootstrap": True},
        },
        settings_model=GymSettings,
        validate_name=validate_name,
        defaults_by_id=defaults_by_id,
        make_vector=make_vector,
    )
)
