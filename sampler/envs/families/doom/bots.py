"""Multiplayer Doom against the engine's built-in bots: `doom_duel_bots` (one bot) and
`doom_deathmatch_bots` (seven), on cig.wad with its .cfg (move, strafe, turn, aim and shoot heads).

The learning agent hosts a deathmatch (`-host 1`: it is the only networked player; the bots run
inside its engine) on a UDP port that no other sftui env on this machine holds: each env keeps an
flock on `port-<n>.lock` for as long as it lives, and a port is only taken when nothing is bound to
it on 127.0.0.1. A dead player respawns at once; the episode is `env.doom.episode_timeout_sec` of
game time (default 4 minutes).

Rewards come from game variables. The env's own reward is the change of the frag count (the game's score:
+1 a frag, -1 a suicide). Every step also reports raw shaping components in info["reward_components"]:
deaths, hits (shots that hit a player), damage_taken, health and ammo changes. The learners weight them
with each policy's own coefficients, which start from `env.reward_shaping` (the family's defaults below,
overridden by the config). The true objective is the frag count of the episode.
"""

from __future__ import annotations

import fcntl
import os
import random
import socket
import tempfile
from typing import Any

import numpy as np

from algos.spaces import ObsSpec
from sampler.envs.contract import Obs
from sampler.envs.families.doom.engine import SCREEN_H, SCREEN_W, ButtonActions, _vizdoom, init_game, lock_folder
from sampler.envs.families.imaging import AreaResize
from sampler.errors import ConfigError

PORTS = range(45000, 47000)
EPISODE_MINUTES = 4.0
GAME_ARGS = ("-deathmatch +sv_forcerespawn 1 +sv_noautoaim 1 +sv_respawnprotect 1 +sv_spawnfarthest 1 "
             "+sv_nocrouch 1 +viz_respawn_delay 0 +viz_nocheat 1")
# reward component -> the game variable whose change per step it is. The frag count is not among them: its
# change is the env's own reward (the game's score: +1 a frag, -1 a suicide).
COMPONENTS = {
    "deaths": "DEATHCOUNT",
    "hits": "HITCOUNT",
    "damage_taken": "DAMAGE_TAKEN",
    "health": "HEALTH",
    "ammo": "SELECTED_WEAPON_AMMO",
}
# The game variables a player's Scoreboard reads, in this order: the frag count first, then the components'.
VARIABLES = ("FRAGCOUNT", *COMPONENTS.values())
DEFAULT_SHAPING = {"deaths": -0.5, "hits": 0.05, "damage_taken": -0.005, "health": 0.002, "ammo": 0.002}
BOTS = {"duel_bots": 1, "deathmatch_bots": 7}


class Scoreboard:
    """One player's game variables turned into per-step reward components, measurements and episode stats."""

    def __init__(self, now: np.ndarray):
        self.start(now)

    def start(self, now: np.ndarray) -> None:
        self._start = now.copy()
        self._last = now.copy()

    def rebase(self, now: np.ndarray) -> None:
        """Forget the change since the last step (a respawn's full health and ammo are not the agent's doing)."""
        self._last = now.copy()

    def step(self, now: np.ndarray, respawned: bool = False) -> tuple[float, dict[str, float]]:
        """(the change of the frag count, the reward components) since the last step."""
        delta = now - self._last
        self._last = now.copy()
        if respawned:
            delta[4:] = 0.0
        return float(delta[0]), dict(zip(COMPONENTS, delta[1:].tolist(), strict=True))

    def measurements(self, now: np.ndarray) -> np.ndarray:
        """Frags, deaths, hits and damage taken so far this episode; health and ammo as they are; times 0.01."""
        so_far = np.concatenate([now[:4] - self._start[:4], now[4:]])
        return (so_far * 0.01).astype(np.float32)

    def episode_end(self, now: np.ndarray) -> dict:
        frags, deaths = float(now[0] - self._start[0]), float(now[1] - self._start[1])
        return {"true_objective": frags, "episode_extra_stats": {"frags": frags, "deaths": deaths}}


def cig_game(vzd: Any, settings, role_args: str, seed: int | None) -> Any:
    """A cig.wad deathmatch game, not yet started: `role_args` makes it the host or a client."""
    game = vzd.DoomGame()
    game.load_config(os.path.join(vzd.scenarios_path, "cig.cfg"))
    game.set_doom_map("map01")
    game.set_window_visible(False)
    game.set_sound_enabled(False)
    game.set_screen_resolution(vzd.ScreenResolution.RES_160X120)
    game.set_screen_format(vzd.ScreenFormat.CRCGCB)
    game.set_mode(vzd.Mode.PLAYER)
    game.set_doom_config_path(os.path.join(tempfile.gettempdir(), f"sftui-vizdoom-{os.getuid()}.ini"))
    game.add_game_args(role_args)
    for name in VARIABLES:
        game.add_available_game_variable(getattr(vzd.GameVariable, name))
    if seed is not None:
        game.set_seed(seed)
    return game


def host_args(port: int, players: int, settings) -> str:
    minutes = (settings.episode_timeout_sec or EPISODE_MINUTES * 60) / 60
    # no episode timeout of the engine's own: the deathmatch time limit ends episodes for every player
    return f"-host {players} -port {port} -netmode 0 {GAME_ARGS} +timelimit {minutes:.3f} +name p0 +colorset 0"


def read_variables(game: Any, variables: list) -> np.ndarray:
    """The Scoreboard's variables now (readable after the episode ended too, unlike the state)."""
    return np.asarray([game.get_game_variable(v) for v in variables], np.float64)


def check_shaping(shaping: dict[str, float]) -> None:
    unknown = set(shaping) - set(COMPONENTS)
    if unknown:
        raise ConfigError(f"env.reward_shaping: unknown component(s) {sorted(unknown)}; "
                          f"components: {', '.join(COMPONENTS)}")


def _port_locks() -> str:
    folder = lock_folder()
    folder.mkdir(mode=0o700, exist_ok=True)
    return str(folder)


def _free_on_loopback(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def reserve_port(ports: range = PORTS) -> tuple[int, int]:
    """(port, lock fd): a port no other sftui env holds and nothing is bound to; close the fd to free it."""
    folder = _port_locks()
    start = random.randrange(len(ports))
    for i in range(len(ports)):
        port = ports[(start + i) % len(ports)]
        fd = os.open(os.path.join(folder, f"port-{port}.lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        if _free_on_loopback(port):
            return port, fd
        os.close(fd)
    raise ConfigError(f"no free loopback UDP port in {ports.start}..{ports.stop - 1} for a multiplayer Doom game; "
                      "close other Doom games or runs")


class DoomBotsEnv:
    """One learning agent against built-in bots, as a one-agent MultiAgentEnv with auto-reset."""

    num_agents = 1
    reward_components = tuple(COMPONENTS)

    def __init__(self, scenario: str, settings, frameskip: int = 4, res_h: int = 72, res_w: int = 128,
                 seed: int | None = None):
        vzd = _vizdoom()
        self.frameskip = frameskip
        self.bots = BOTS[scenario]
        self.port, self._port_fd = reserve_port()
        try:
            game = cig_game(vzd, settings, host_args(self.port, 1, settings), seed)
            game.set_episode_timeout(0)
            init_game(game, settings.max_concurrent_inits)
            self.game = game
        except BaseException:
            os.close(self._port_fd)
            raise
        self._actions = ButtonActions([b.name for b in game.get_available_buttons()], "heads")
        self.action_spec = self._actions.spec
        self._vars = [getattr(vzd.GameVariable, name) for name in VARIABLES]
        self.obs_specs = {"obs": ObsSpec((3, res_h, res_w), "uint8"),
                          "measurements": ObsSpec((len(VARIABLES),), "float32")}
        self._resize = AreaResize(SCREEN_H, SCREEN_W, res_h, res_w)
        self.board = Scoreboard(read_variables(game, self._vars))
        self._start_episode()

    def _start_episode(self) -> None:
        self.game.send_game_command("removebots")
        for _ in range(self.bots):
            self.game.send_game_command("addbot")
        self.board.start(read_variables(self.game, self._vars))

    def reset(self, seed: int | None = None) -> tuple[list[Obs], list[dict]]:
        if seed is not None:
            self.game.set_seed(seed)
        self.game.new_episode()
        self._start_episode()
        return [self._observe()], [{}]

    def step(self, actions: list[Any]) -> tuple[list[Obs], list[float], list[bool], list[bool], list[dict]]:
        game = self.game
        game.make_action(self._actions.buttons(actions[0]), self.frameskip)
        now = read_variables(game, self._vars)
        reward, components = self.board.step(now)
        info: dict = {"reward_components": components}
        if game.is_episode_finished():  # the time limit: the same for every player, so a truncation
            info.update(self.board.episode_end(now))
            game.new_episode()
            self._start_episode()
            return [self._observe()], [reward], [False], [True], [info]
        if game.is_player_dead():
            game.respawn_player()
            self.board.rebase(read_variables(game, self._vars))
        return [self._observe()], [reward], [False], [False], [info]

    def _observe(self) -> Obs:
        state = self.game.get_state()
        now = np.asarray(state.game_variables, np.float64)
        return {"obs": self._resize.resize(state.screen_buffer), "measurements": self.board.measurements(now)}

    def close(self) -> None:
        try:
            self.game.close()
        finally:
            os.close(self._port_fd)
