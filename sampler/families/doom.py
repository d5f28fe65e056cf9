"""`doom_<scenario>`: ViZDoom's single-player scenarios, headless, as one-agent envs.

Observations: `"obs"`, the screen rendered at 160x120 (CHW RGB) and area-resized to env.res_h x
env.res_w; and `"measurements"`, the scenario's game variables (health, ammo, ...) times 0.01, present
only when the scenario's .cfg lists some. 0.01 brings health/ammo/armor (0..200) near 0..2; the model's
input normalizer handles the rest.

Each agent step holds the chosen buttons for env.frameskip game tics (35 tics per game second); the
reward is the scenario's raw reward summed over those tics.
"""

from __future__ import annotations

import difflib
import fcntl
import os
import random
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from algos.spaces import ActionSpec, ObsSpec
from sampler.envs import EnvContext, Obs
from sampler.errors import ConfigError, MissingDependencyError
from sampler.families.imaging import AreaResize
from sampler.families.registry import EnvFamily, register_family

TICS_PER_SECOND = 35
SCREEN_H, SCREEN_W = 120, 160  # RES_160X120: small enough to render fast, large enough to resize down
MEASUREMENT_SCALE = 0.01


@dataclass(frozen=True)
class Scenario:
    cfg: str  # file in vizdoom.scenarios_path
    # "single": Discrete over {no-op, each button alone}: enough when the task needs one thing at a time.
    # "heads": one head per group of exclusive buttons (see button_heads), so the agent can move, turn
    # and shoot in the same step.
    actions: Literal["single", "heads"]
    objective: Literal["return", "kills"] = "return"  # what info["true_objective"] reports
    reward_scale: float = 1.0  # appo.reward_scale default: brings returns of hundreds near 1
    doom_map: str | None = None  # overrides the .cfg's map


# scenario                     buttons                                    action space                measurements
# basic                        MOVE_LEFT, MOVE_RIGHT, ATTACK              Discrete(4)                 AMMO2
# simpler_basic, rocket_basic  as basic                                   Discrete(4)                 -
# defend_the_center, _line     TURN_LEFT, TURN_RIGHT, ATTACK              Discrete(4)                 AMMO2, HEALTH
# predict_position             TURN_LEFT, TURN_RIGHT, ATTACK              Discrete(4)                 -
# health_gathering(_supreme)   TURN_LEFT, TURN_RIGHT, MOVE_FORWARD        Discrete(4)                 HEALTH
# take_cover                   MOVE_LEFT, MOVE_RIGHT                      Discrete(3)                 HEALTH
# my_way_home                  TURN_L/R, MOVE_FORWARD, MOVE_L/R           Discrete(6)                 -
# deadly_corridor              MOVE_L/R, ATTACK, MOVE_FWD/BACK, TURN_L/R  heads 3,2,3,3               HEALTH
# deathmatch                   20: 6 weapons, 3 deltas, ...               heads 2,2,2,3,3,3,9,3,11,3  5, below
# freedoom1, freedoom2         19: USE, 7 weapons, ...                    heads 2,2,2,2,3,3,3,10      -
# deathmatch's measurements: KILLCOUNT, HEALTH, ARMOR, SELECTED_WEAPON, SELECTED_WEAPON_AMMO.
#
# Left out: multi, multi_duel, cig (multiplayer: crash in single-player mode); doom, doom2 (need the
# commercial wads); oblige (a template for OBLIGE-generated maps); basic_audio, basic_notifications and
# learning (copies of basic that demonstrate engine buffers, which a headless agent does not see).
SCENARIOS: dict[str, Scenario] = {
    "basic": Scenario("basic.cfg", "single", reward_scale=0.01),
    "simpler_basic": Scenario("simpler_basic.cfg", "single", reward_scale=0.01),
    "rocket_basic": Scenario("rocket_basic.cfg", "single", reward_scale=0.01),
    "defend_the_center": Scenario("defend_the_center.cfg", "single", objective="kills"),
    "defend_the_line": Scenario("defend_the_line.cfg", "single", objective="kills"),
    "health_gathering": Scenario("health_gathering.cfg", "single"),
    "health_gathering_supreme": Scenario("health_gathering_supreme.cfg", "single"),
    "my_way_home": Scenario("my_way_home.cfg", "single"),
    "predict_position": Scenario("predict_position.cfg", "single"),
    "take_cover": Scenario("take_cover.cfg", "single"),
    "deadly_corridor": Scenario("deadly_corridor.cfg", "heads", reward_scale=0.01),
    "deathmatch": Scenario("deathmatch.cfg", "heads", objective="kills"),
    "freedoom1": Scenario("freedoom1.cfg", "heads", doom_map="E1M1"),  # its .cfg names map01, a Doom II map
    "freedoom2": Scenario("freedoom2.cfg", "heads"),
}


class DoomSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    episode_timeout_sec: float | None = Field(
        None, gt=0, description="Episode time limit in game seconds (35 tics each); none keeps the scenario's own."
    )
    measurements: bool = Field(
        True, description="Give the scenario's game variables (health, ammo, ...) as the 'measurements' input."
    )
    max_concurrent_inits: int = Field(
        4, ge=1, description="Doom engines allowed to start at once on this machine; the others wait their turn."
    )


def _vizdoom() -> Any:
    try:
        import vizdoom
    except ImportError:
        raise MissingDependencyError("doom_* envs need vizdoom: pip install vizdoom") from None
    return vizdoom


# ---- actions --------------------------------------------------------------------------------------

# Buttons in one group undo each other (forward vs backward), so a head picks at most one of them.
EXCLUSIVE_GROUPS: tuple[tuple[str, ...], ...] = (
    ("MOVE_FORWARD", "MOVE_BACKWARD"),
    ("MOVE_LEFT", "MOVE_RIGHT"),
    ("TURN_LEFT", "TURN_RIGHT"),
    ("LOOK_UP", "LOOK_DOWN"),
    ("MOVE_UP", "MOVE_DOWN"),
    ("SELECT_NEXT_ITEM", "SELECT_PREV_ITEM"),
    tuple(f"SELECT_WEAPON{i}" for i in range(10)) + ("SELECT_NEXT_WEAPON", "SELECT_PREV_WEAPON"),
)
# Delta buttons take a value per tic. Measured: the binary turn buttons turn ~3.5 degrees a tic, the
# binary strafe buttons move about as fast as MOVE_LEFT_RIGHT_DELTA 10, and pitch is clamped at +-32.
DELTA_VALUES: dict[str, tuple[float, ...]] = {
    "TURN_LEFT_RIGHT_DELTA": tuple(range(-10, 11, 2)),  # degrees a tic
    "LOOK_UP_DOWN_DELTA": (-1.0, 0.0, 1.0),  # degrees a tic
}
MOVE_DELTA_VALUES = (-10.0, 0.0, 10.0)  # the other deltas are movement speeds


def button_heads(buttons: Sequence[str]) -> list[np.ndarray]:
    """One [options, len(buttons)] table of button values per action head, in order of first button.

    A binary button's head is {none, the button} or, for an exclusive group, {none, each member}. A delta
    button's head is a few discrete values of it. Heads touch disjoint buttons, so the button vector of a
    multi-head action is the sum of the chosen rows.
    """
    index = {name: i for i, name in enumerate(buttons)}
    heads: list[np.ndarray] = []
    placed: set[str] = set()
    for name in buttons:
        if name in placed:
            continue
        if name.endswith("_DELTA"):  # ViZDoom names every delta button *_DELTA
            values = DELTA_VALUES.get(name, MOVE_DELTA_VALUES)
            table = np.zeros((len(values), len(buttons)), np.float64)
            table[:, index[name]] = values
            placed.add(name)
        else:
            group = next((g for g in EXCLUSIVE_GROUPS if name in g), (name,))
            members = [m for m in group if m in index]
            table = np.zeros((1 + len(members), len(buttons)), np.float64)
            for option, member in enumerate(members, start=1):
                table[option, index[member]] = 1.0
            placed.update(members)
        heads.append(table)
    return heads


class ButtonActions:
    """Maps the policy's action (an int, or one int per head) to ViZDoom's button vector."""

    def __init__(self, buttons: Sequence[str], layout: Literal["single", "heads"]):
        if layout == "single":
            self.heads = [np.vstack([np.zeros((1, len(buttons))), np.eye(len(buttons))])]
            self.spec = ActionSpec(kind="discrete", n=len(buttons) + 1)
        else:
            self.heads = button_heads(buttons)
            self.spec = ActionSpec(kind="multi_discrete", nvec=tuple(len(h) for h in self.heads))

    def buttons(self, action: Any) -> list[float]:
        choices = np.asarray(action, dtype=np.int64).reshape(-1)
        if len(choices) != len(self.heads):
            raise ValueError(f"expected {len(self.heads)} action head(s), got {action!r}")
        return sum(head[c] for head, c in zip(self.heads, choices, strict=True)).tolist()


# ---- start-up throttle ----------------------------------------------------------------------------


def lock_folder() -> Path:
    return Path(tempfile.gettempdir()) / f"sftui-doom-locks-{os.getuid()}"


@contextmanager
def init_slot(max_concurrent: int, folder: Path | None = None) -> Iterator[None]:
    """Hold one of `max_concurrent` machine-wide slots while the body runs.

    Many engines starting at once can time out talking to their Python side, so inits queue up. A slot is
    an flock on a file: the kernel releases it when the holder closes it or dies, so a crashed worker never
    leaves a slot taken.
    """
    folder = folder or lock_folder()
    folder.mkdir(mode=0o700, exist_ok=True)
    fd = _take_slot(folder, max_concurrent)
    try:
        yield
    finally:
        os.close(fd)


def _take_slot(folder: Path, max_concurrent: int) -> int:
    while True:
        for slot in range(max_concurrent):
            fd = os.open(folder / f"init-{slot}.lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return fd
            except BlockingIOError:
                os.close(fd)
        time.sleep(random.uniform(0.02, 0.1))  # jitter so waiters do not retry in lockstep


def init_game(game: Any, max_concurrent: int, attempts: int = 3) -> None:
    vzd = _vizdoom()
    for attempt in range(1, attempts + 1):
        with init_slot(max_concurrent):
            try:
                game.init()
                return
            except (vzd.ViZDoomUnexpectedExitException, vzd.ViZDoomErrorException, vzd.SharedMemoryException):
                game.close()
                if attempt == attempts:
                    raise
        time.sleep(attempt * random.uniform(0.5, 1.0))


# ---- the env --------------------------------------------------------------------------------------


class DoomEnv:
    """One ViZDoom game as a one-agent MultiAgentEnv with auto-reset."""

    num_agents = 1

    def __init__(
        self,
        scenario: str,
        settings: DoomSettings,
        frameskip: int = 4,
        res_h: int = 72,
        res_w: int = 128,
        seed: int | None = None,
    ):
        vzd = _vizdoom()
        self.scenario = SCENARIOS[scenario]
        self.frameskip = frameskip
        self.game = vzd.DoomGame()
        self.game.load_config(os.path.join(vzd.scenarios_path, self.scenario.cfg))
        self.game.set_window_visible(False)
        self.game.set_sound_enabled(False)
        self.game.set_audio_buffer_enabled(False)  # some .cfgs ask for buffers no observation uses
        self.game.set_automap_buffer_enabled(False)
        self.game.set_screen_resolution(vzd.ScreenResolution.RES_160X120)
        self.game.set_screen_format(vzd.ScreenFormat.CRCGCB)
        self.game.set_mode(vzd.Mode.PLAYER)
        # The engine writes its ini file where it is told; by default that is the user's current folder.
        self.game.set_doom_config_path(os.path.join(tempfile.gettempdir(), f"sftui-vizdoom-{os.getuid()}.ini"))
        if self.scenario.doom_map:
            self.game.set_doom_map(self.scenario.doom_map)
        if settings.episode_timeout_sec is not None:
            self.game.set_episode_timeout(round(settings.episode_timeout_sec * TICS_PER_SECOND))
        if seed is not None:
            self.game.set_seed(seed)
        init_game(self.game, settings.max_concurrent_inits)

        self._actions = ButtonActions([b.name for b in self.game.get_available_buttons()], self.scenario.actions)
        self.action_spec = self._actions.spec
        self._variables = list(self.game.get_available_game_variables()) if settings.measurements else []
        self.obs_specs = {"obs": ObsSpec((3, res_h, res_w), "uint8")}
        if self._variables:
            self.obs_specs["measurements"] = ObsSpec((len(self._variables),), "float32")
        self._resize = AreaResize(SCREEN_H, SCREEN_W, res_h, res_w)
        self._kills = vzd.GameVariable.KILLCOUNT
        self._episode_return = 0.0

    def reset(self, seed: int | None = None) -> tuple[list[Obs], list[dict]]:
        if seed is not None:
            self.game.set_seed(seed)
        self.game.new_episode()
        self._episode_return = 0.0
        return [self._observe()], [{}]

    def step(self, actions: list[Any]) -> tuple[list[Obs], list[float], list[bool], list[bool], list[dict]]:
        reward = self.game.make_action(self._actions.buttons(actions[0]), self.frameskip)
        self._episode_return += reward
        terminated = truncated = False
        info: dict = {}
        if self.game.is_episode_finished():
            truncated = self._timed_out()
            terminated = not truncated
            info = self._episode_end_info()
            self.game.new_episode()
            self._episode_return = 0.0
        return [self._observe()], [reward], [terminated], [truncated], [info]

    def close(self) -> None:
        self.game.close()  # ends the engine's process

    def _observe(self) -> Obs:
        state = self.game.get_state()
        obs = {"obs": self._resize.resize(state.screen_buffer)}
        if self._variables:
            obs["measurements"] = np.asarray(state.game_variables, np.float32) * MEASUREMENT_SCALE
        return obs

    def _timed_out(self) -> bool:
        # The timeout counts tics after the .cfg's start delay; a death on the last tic is still a death.
        timeout = self.game.get_episode_timeout()
        played = self.game.get_episode_time() - self.game.get_episode_start_time()
        return timeout > 0 and played >= timeout and not self.game.is_player_dead()

    def _episode_end_info(self) -> dict:
        if self.scenario.objective == "kills":
            objective = self.game.get_game_variable(self._kills)
        else:
            objective = self._episode_return
        info: dict = {"true_objective": float(objective)}
        if self._variables:  # final values, raw units, e.g. {"health": 0.0, "ammo2": 26.0}
            info["episode_extra_stats"] = {
                v.name.lower(): float(self.game.get_game_variable(v)) for v in self._variables
            }
        return info


# ---- the family -----------------------------------------------------------------------------------


# cig.wad deathmatches (sampler/families/doom_multiplayer.py, doom_duel.py): one agent against bots, or
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
    from sampler.families.doom_multiplayer import BOTS, DoomBotsEnv

    if scenario_of(cfg.env.name) == "duel":
        from sampler.families.doom_duel import DoomDuelEnv

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
    from sampler.families.doom_multiplayer import check_shaping

    if scenario_of(cfg.env.name) in MULTIPLAYER:
        check_shaping(cfg.env.reward_shaping)


def defaults_by_id(env_name: str) -> dict:
    from sampler.families.doom_multiplayer import DEFAULT_SHAPING

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
