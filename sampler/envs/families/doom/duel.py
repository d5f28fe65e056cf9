"""`doom_duel`: two learning agents in one networked cig.wad deathmatch.

Each player is a small process of its own (`python -m sampler.envs.families.doom.duel`) that owns one ViZDoom
game: the first hosts on a reserved loopback port, the second joins it. The env, in the rollout worker,
drives them over a socket pair each.

ViZDoom's synchronous netgame stalls for good when one player's engine runs several tics ahead of the
other's (measured here: a 4-tic `make_action` in each player stalled within 20 to 500 steps). So the
players advance one tic at a time, and before every tic after the first of a step each one waits for the
env's go, which comes once both have finished the previous tic. Measured: 150 s, 154 one-minute episodes,
81,000 steps without a stall, about 540 steps a second per game.

If a player still stalls, dies or falls out of step, the env ends the game, starts a new one and reports
the cut episode as truncated, so a run never hangs on one game.

A dead player is respawned by pressing USE during its next step; that step is inactive (`is_active:
False`), since its action does nothing.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import time
from multiprocessing.connection import Connection, wait
from typing import Any

import numpy as np
import psutil

from algos.spaces import ActionSpec, ObsSpec
from sampler.envs.contract import Obs
from sampler.envs.families.doom.bots import (
    COMPONENTS,
    VARIABLES,
    Scoreboard,
    cig_game,
    host_args,
    read_variables,
    reserve_port,
)
from sampler.envs.families.doom.engine import SCREEN_H, SCREEN_W, ButtonActions, DoomSettings, _vizdoom, init_slot
from sampler.envs.families.imaging import AreaResize
from sampler.processes import kill_tree

PLAYERS = 2
START_TIMEOUT = 60.0  # a player's engine start, network handshake included
STEP_TIMEOUT = 30.0  # any one reply: generous, since a busy 2-core machine can pause a process for seconds
TIC, GO = "tic", "go"


class GameStalled(Exception):
    pass


# ---- the player process ---------------------------------------------------------------------------


def _die_with_parent(parent: int) -> None:
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass  # not Linux: the closed socket still ends the player
    if os.getppid() != parent:
        os._exit(1)


def _quiet_engine(start) -> None:
    """Start the engine with its standard error (the netgame handshake's chatter) on /dev/null; ours stays."""
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        start()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def player_main(fd: int, spec: dict) -> None:
    _die_with_parent(spec["parent"])
    os.set_inheritable(fd, False)  # the engine must not hold our socket open: the env watches it for our exit
    conn = Connection(fd)
    vzd = _vizdoom()
    settings = DoomSettings(**spec["doom"])
    if spec["seat"] == 0:
        role = host_args(spec["port"], PLAYERS, settings)
    else:
        role = f"-join 127.0.0.1:{spec['port']} +name p{spec['seat']} +colorset {3 * spec['seat']}"
    game = cig_game(vzd, settings, role, spec["seed"])
    game.set_episode_timeout(0)
    _quiet_engine(game.init)
    try:
        buttons = [b.name for b in game.get_available_buttons()]
        actions = ButtonActions(buttons, "heads")
        use = buttons.index("USE") if "USE" in buttons else None
        variables = [getattr(vzd.GameVariable, name) for name in VARIABLES]
        resize = AreaResize(SCREEN_H, SCREEN_W, spec["res_h"], spec["res_w"])
        board = Scoreboard(read_variables(game, variables))

        def observe() -> dict:
            state = game.get_state()
            return {"obs": resize.resize(state.screen_buffer),
                    "measurements": board.measurements(np.asarray(state.game_variables, np.float64))}

        engines = [child.pid for child in psutil.Process().children()]
        conn.send(("ready", actions.spec.nvec, engines))
        while True:
            message = conn.recv()
            if message[0] == "close":
                return
            if message[0] == "reset":
                game.new_episode()
                board.start(read_variables(game, variables))
                conn.send(("obs", observe()))
                continue
            _, action, tics = message
            dead = game.is_player_dead()
            pressed = actions.buttons(action)
            if dead and use is not None:
                pressed[use] = 1.0  # respawn
            game.set_action(pressed)
            for tic in range(tics):
                if tic:
                    conn.send((TIC,))
                    if conn.recv()[0] != GO:
                        return
                game.advance_action(1, tic == tics - 1)
                if game.is_episode_finished():
                    break
            now = read_variables(game, variables)
            score, components = board.step(now, respawned=dead)
            result: dict = {"score": score, "components": components, "active": not dead}
            if game.is_episode_finished():  # the deathmatch time limit, the same for both players
                result.update(board.episode_end(now))
                game.new_episode()
                board.start(read_variables(game, variables))
            result.update(observe())
            conn.send(("step", result))
    except (EOFError, BrokenPipeError, ConnectionResetError):
        return
    finally:
        game.close()


# ---- the env, in the rollout worker ---------------------------------------------------------------


class Player:
    def __init__(self, spec: dict):
        parent_end, child_end = socket.socketpair()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sampler.envs.families.doom.duel", str(child_end.fileno()), json.dumps(spec)],
            pass_fds=[child_end.fileno()], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        )
        child_end.close()
        self.conn = Connection(parent_end.detach())
        self.engines: list[int] = []  # the player's engine, once it has started

    def send(self, message: tuple) -> None:
        try:
            self.conn.send(message)
        except OSError as e:
            raise GameStalled(f"player {self.proc.pid} is gone ({e})") from None

    def kill(self) -> None:
        """The player and its engine, at once (an engine left waiting on its network peer never exits, even
        when its player is gone)."""
        kill_tree(self.proc.pid)
        self.proc.wait()
        for pid in self.engines:
            try:
                if "vizdoom" in psutil.Process(pid).name():
                    kill_tree(pid)
            except psutil.NoSuchProcess:
                pass
        self.conn.close()

    def ask_to_close(self) -> None:
        try:
            self.conn.send(("close",))
        except OSError:
            pass

    def close(self) -> None:
        self.ask_to_close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        self.kill()


def gather(players: list[Player], timeout: float) -> list[tuple]:
    """One message from each player, waiting on all at once: a player that exits is noticed at once."""
    replies: dict[int, tuple] = {}
    deadline = time.monotonic() + timeout
    waiting = {player.conn: i for i, player in enumerate(players)}
    while waiting:
        ready = wait(list(waiting), timeout=max(0.0, deadline - time.monotonic()))
        if not ready:
            pids = [players[i].proc.pid for i in waiting.values()]
            raise GameStalled(f"player(s) {pids} gave no answer in {timeout:.0f} s")
        for conn in ready:
            i = waiting.pop(conn)
            try:
                replies[i] = conn.recv()
            except (EOFError, OSError):
                proc = players[i].proc
                raise GameStalled(f"player {proc.pid} exited (code {proc.poll()})") from None
    return [replies[i] for i in range(len(players))]


class DoomDuelEnv:
    """Two learning agents in one networked deathmatch, as a two-agent MultiAgentEnv with auto-reset."""

    num_agents = PLAYERS
    reward_components = tuple(COMPONENTS)

    def __init__(self, settings, frameskip: int = 4, res_h: int = 72, res_w: int = 128, seed: int | None = None):
        self.settings, self.frameskip, self.seed = settings, frameskip, seed
        self.res_h, self.res_w = res_h, res_w
        self.players: list[Player] = []
        self.restarts = 0
        self.port, self._port_fd = -1, -1
        self.obs_specs = {"obs": ObsSpec((3, res_h, res_w), "uint8"),
                          "measurements": ObsSpec((len(VARIABLES),), "float32")}
        self._start_game()
        self.action_spec = ActionSpec(kind="multi_discrete", nvec=tuple(self._nvec))

    # -- game life --

    def _start_game(self, attempts: int = 3) -> None:
        for attempt in range(1, attempts + 1):
            port, port_fd = reserve_port()
            try:
                with init_slot(self.settings.max_concurrent_inits):  # one slot for the whole game: its players
                    self.players = [Player(self._spec(seat, port)) for seat in range(PLAYERS)]  # wait on each other
                    replies = gather(self.players, START_TIMEOUT)
            except BaseException as e:
                self._end_game()
                os.close(port_fd)
                if not isinstance(e, GameStalled) or attempt == attempts:
                    raise
                time.sleep(attempt * 0.5)
                continue
            for player, reply in zip(self.players, replies, strict=True):
                player.engines = reply[2]
            self._nvec = replies[0][1]
            self._release_port()
            self.port, self._port_fd = port, port_fd
            return

    def _spec(self, seat: int, port: int) -> dict:
        seed = None if self.seed is None else self.seed + seat
        return {"parent": os.getpid(), "seat": seat, "port": port, "seed": seed, "res_h": self.res_h,
                "res_w": self.res_w, "doom": self.settings.model_dump()}

    def _end_game(self) -> None:
        for player in self.players:
            player.kill()
        self.players = []

    def _release_port(self) -> None:
        if self._port_fd >= 0:
            os.close(self._port_fd)
            self._port_fd = -1

    def _restart(self, why: str) -> list[Obs]:
        print(f"doom_duel: {why}; starting a new game (the episode is cut)", file=sys.stderr, flush=True)
        self.restarts += 1
        self._end_game()
        self._start_game()
        return self._reset_players()

    # -- the env contract --

    def _reset_players(self) -> list[Obs]:
        for player in self.players:
            player.send(("reset",))
        return [reply[1] for reply in gather(self.players, STEP_TIMEOUT)]

    def reset(self, seed: int | None = None) -> tuple[list[Obs], list[dict]]:
        try:
            obs = self._reset_players()
        except GameStalled as e:
            obs = self._restart(str(e))
        return obs, [{} for _ in obs]

    def step(self, actions: list[Any]) -> tuple[list[Obs], list[float], list[bool], list[bool], list[dict]]:
        try:
            results = self._step_players(actions)
        except GameStalled as e:
            return self._step_cut(str(e))
        obs, rewards, truncated, infos = [], [], [], []
        for result in results:
            components = result["components"]
            info: dict = {"reward_components": components}
            if not result["active"]:
                info["is_active"] = False
            ended = "true_objective" in result
            if ended:
                info["true_objective"] = result["true_objective"]
                info["episode_extra_stats"] = result["episode_extra_stats"]
            obs.append({"obs": result["obs"], "measurements": result["measurements"]})
            rewards.append(result["score"])
            truncated.append(ended)
            infos.append(info)
        if truncated[0] and truncated[1]:
            wins = np.sign(infos[0]["true_objective"] - infos[1]["true_objective"])
            for seat, info in enumerate(infos):
                info["episode_extra_stats"]["win"] = float((wins if seat == 0 else -wins) > 0)
        elif truncated[0] != truncated[1]:
            return self._step_cut("the players' episodes ended apart")
        return obs, rewards, [False] * PLAYERS, truncated, infos

    def _step_cut(self, why: str):
        """A new game after a stall: every agent's episode is cut, and the step itself taught nothing."""
        obs = self._restart(why)
        return obs, [0.0] * PLAYERS, [False] * PLAYERS, [True] * PLAYERS, [{"is_active": False} for _ in obs]

    def _step_players(self, actions: list[Any]) -> list[dict]:
        for player, action in zip(self.players, actions, strict=True):
            player.send(("act", np.asarray(action).tolist(), self.frameskip))
        while True:
            replies = gather(self.players, STEP_TIMEOUT)
            kinds = {reply[0] for reply in replies}
            if kinds == {TIC}:  # both finished a tic: let both take the next
                for player in self.players:
                    player.send((GO,))
                continue
            if kinds == {"step"}:
                return [reply[1] for reply in replies]
            raise GameStalled(f"the players fell out of step ({sorted(kinds)})")

    def close(self) -> None:
        try:
            for player in self.players:  # both at once: each engine's shutdown takes a moment
                player.ask_to_close()
            for player in self.players:
                player.close()
        finally:
            self.players = []
            self._release_port()


if __name__ == "__main__":
    player_main(int(sys.argv[1]), json.loads(sys.argv[2]))
