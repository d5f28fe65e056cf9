"""The run's evaluation process: each policy's newest weights play `run.eval_episodes` episodes, at low priority.

With `run.eval_every_env_steps`, the supervisor (`sampler.run.evaluation`) starts one such process for the run and
sends it (policy, checkpoint) whenever an evaluation is due; it answers with the episodes' returns. It plays
through `Player`, as `sftui enjoy` does, without frames and as fast as it can, in `run.eval_env` (the training
env by default), at nice EVAL_NICE so that training keeps the cores it needs. A `Player` per policy is kept across
evaluations: the env is built once, and each evaluation only loads the new weights.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

from sampler.errors import SftuiError
from sampler.play.player import Player
from sampler.run.workers.base import SupervisorGone, die_with_parent

EVAL_NICE = 10  # on a busy machine the evaluation runs in the time training leaves over


@dataclass
class EvalSpec:
    folder: str
    episodes: int
    env_name: str | None
    deterministic: bool
    seed: int


@dataclass
class Evaluated:
    policy: int
    version: int
    env_frames: int  # the checkpoint's
    returns: list[float]
    seconds: float
    error: str | None = None  # the evaluation failed (returns is empty): why, in one line


def evaluate_main(conn: Connection, spec: EvalSpec) -> None:
    die_with_parent()
    os.nice(EVAL_NICE)
    players: dict[int, Player] = {}
    try:
        while (message := conn.recv()) is not None:
            policy, path = message
            conn.send(evaluate(players, spec, policy, Path(path)))
    except (SupervisorGone, EOFError, BrokenPipeError, KeyboardInterrupt):
        pass
    finally:
        for player in players.values():
            player.close()


def evaluate(players: dict[int, Player], spec: EvalSpec, policy: int, path: Path) -> Evaluated:
    started = time.monotonic()
    try:
        player = players.get(policy)
        if player is None:
            player = players[policy] = Player(Path(spec.folder), policy=policy, checkpoint=str(path),
                                              deterministic=spec.deterministic, seed=spec.seed + policy,
                                              frames=False, env_name=spec.env_name)
        else:
            player.reload(path)
        played = len(player.episodes)
        while len(player.episodes) < played + spec.episodes:
            player.step()
        returns = [e.episode_return for e in player.episodes[played:]]
        return Evaluated(policy, player.version, player.env_frames, returns, time.monotonic() - started)
    except (SftuiError, OSError, RuntimeError, KeyError, ValueError) as e:
        broken = players.pop(policy, None)
        if broken is not None:
            broken.close()
        return Evaluated(policy, 0, 0, [], time.monotonic() - started, error=f"{type(e).__name__}: {e}")
