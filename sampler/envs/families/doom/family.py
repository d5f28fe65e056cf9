"""The `doom_*` family: single-player scenarios, games against the engine's bots, and duels of two learners.

It names the scenarios, builds the right env for each, and holds the defaults measured for them.
"""

from __future__ import annotations

import difflib
from typing import Any

from sampler.envs.contract import EnvContext
from sampler.envs.families.doom.bots import BOTS, DEFAULT_SHAPING, DoomBotsEnv, check_shaping
from sampler.envs.families.doom.duel import DoomDuelEnv
from sampler.envs.families.doom.engine import TICS_PER_SECOND, DoomSettings, _vizdoom
from sampler.envs.families.doom.scenarios import SCENARIOS, DoomEnv
from sampler.envs.families.registry import EnvFamily, register_family
from sampler.errors import ConfigError

# ---- the family -----------------------------------------------------------------------------------


# cig.wad deathmatches (bots.py, duel.py): one agent against bots, or
# two learning agents in one networked game
MULTIPLAYER = ("duel_bots", "deathmatch_bots", "duel")


def scenario_of(env_name: str) -> str:
    return env_name.split("_", 1)[1]


def validate_name(env_name: str) -> None:
    scenario = scenario_of(env_name)
    if scenario not in SCENARIOS and scenario not in MULTIPLAYER:
        names = [*SCENARIOS, *MULTIPLAYER]
        close = difflib.get_close_matches(scenario, names, n=1)
        hint = f" (did you mean doom_{close[0]}?)" if close else ""
        known = ", ".join(f"doom_{name}" for name in names)
        raise ConfigError(f"env.name: unknown Doom scenario {scenario!r}{hint}; scenarios: {known}")
    _vizdoom()


def make(cfg: Any, context: EnvContext) -> Any:
    if scenario_of(cfg.env.name) == "duel":
        return DoomDuelEnv(cfg.env.doom, frameskip=cfg.env.frameskip, res_h=cfg.env.res_h, res_w=cfg.env.res_w,
                           seed=context.seed)
    if scenario_of(cfg.env.name) in BOTS:
        return DoomBotsEnv(scenario_of(cfg.env.name), cfg.env.doom, frameskip=cfg.env.frameskip,
                           res_h=cfg.env.res_h, res_w=cfg.env.res_w, seed=context.seed)
    return DoomEnv(
        scenario_of(cfg.env.name),
        cfg.env.doom,
        frameskip=cfg.env.frameskip,
        res_h=cfg.env.res_h,
        res_w=cfg.env.res_w,
        seed=context.seed,
    )


def validate_config(cfg: Any) -> None:
    if scenario_of(cfg.env.name) in MULTIPLAYER:
        check_shaping(cfg.env.reward_shaping)


def defaults_by_id(env_name: str) -> dict:
    if scenario_of(env_name) == "duel":
        # Each game is two engines and two player processes stepping in lockstep: 4 games a worker keep
        # 2 cores busy (16 engines with the default 2 workers).
        return {"env": {"reward_shaping": dict(DEFAULT_SHAPING)}, "sampler": {"num_envs_per_worker": 4}}
    if scenario_of(env_name) in MULTIPLAYER:
        return {"env": {"reward_shaping": dict(DEFAULT_SHAPING)}}
    scenario = SCENARIOS.get(scenario_of(env_name))
    if scenario is None or scenario.reward_scale == 1.0:
        return {}
    return {"appo": {"reward_scale": scenario.reward_scale}}


register_family(
    EnvFamily(
        prefix="doom",
        description="ViZDoom single-player scenarios, e.g. doom_basic, doom_deadly_corridor, doom_deathmatch",
        make=make,
        example="doom_basic",
        repeat_outside=True,  # the player steps Doom at frameskip 1 and repeats each action: every tic is a frame
        play_fps=lambda cfg, frames_per_step: TICS_PER_SECOND / frames_per_step,
        defaults={
            "env": {"frameskip": 4, "res_w": 128, "res_h": 72},
            "sampler": {"num_envs_per_worker": 8},
            "model": {
                "use_rnn": True,
                "rnn_type": "gru",
                "rnn_size": 512,
                "encoder_conv_architecture": "convnet_simple",
                "encoder_conv_mlp_layers": [512],
                # Measured on doom_basic: the small policy-head gain left the policy near uniform for
                # the first 400k frames.
                "policy_init_gain": 1.0,
            },
            "appo": {
                # Measured on doom_basic at 400k frames (seeds 0, 1, 3): rollout 16 halves the policy lag
                # (about 1.9 versions instead of 3) and the mean return crosses 60 at 260-330k frames
                # instead of 330-400k; exploration 0.003 keeps the policy from settling on "never shoot"
                # early (0.001: 364k, 0.003: 268k, seed 3). Together: 274k and 290k (seeds 3 and 0).
                "rollout": 16,
                "recurrence": 16,
                # Batch 1024 with lr 3e-4 reaches about 2 at 400k frames, batch 512 with 3e-4 about 59,
                # batch 512 with 5e-4 about 78; lr 6.5e-4 collapses. Twice the updates per frame at the
                # same learner cost per sample.
                "batch_size": 512,
                "learning_rate": 5e-4,
                "exploration_loss": "symmetric_kl",
                "exploration_loss_coeff": 0.003,
                "ppo_clip_value": 0.2,
            },
        },
        settings_model=DoomSettings,
        validate_name=validate_name,
        defaults_by_id=defaults_by_id,
        validate_config=validate_config,
    )
)
