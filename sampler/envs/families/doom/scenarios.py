"""`doom_<scenario>`: ViZDoom's single-player scenarios, headless, as one-agent envs.

Observations: `"obs"`, the screen rendered at 160x120 (CHW RGB) and area-resized to env.res_h x
env.res_w; and `"measurements"`, the scenario's game variables (health, ammo, ...) times 0.01, present
only when the scenario's .cfg lists some. 0.01 brings health/ammo/armor (0..200) near 0..2; the model's
input normalizer handles the rest.

Each agent step holds the chosen buttons for env.frameskip game tics (35 tics per game second); the
reward is the scenario's raw reward summed over those tics.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from algos.spaces import ObsSpec
from sampler.envs.contract import Obs
from sampler.envs.families.doom.engine import (
    MEASUREMENT_SCALE,
    SCREEN_H,
    SCREEN_W,
    TICS_PER_SECOND,
    ButtonActions,
    DoomSettings,
    _vizdoom,
    init_game,
)
from sampler.envs.families.imaging import AreaResize


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

