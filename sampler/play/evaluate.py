"""The run's evaluation process: each policy's newest weights play `run.eval_episodes` episodes, at low priority.

With `run.eval_every_env_steps`, the supervisor (`sampler.run.evaluation`) starts one such process for the run and
sends it (policy, checkpoint) whenever an evaluation is due; it answers with the episodes' returns. It plays
through `Player`, as `sftui enjoy` does, without frames and as fast as it can, in `run.eval_env` (the training
env by default), at nice EVAL_NICE so that training keeps the cores it needs. Up to EVAL_ENVS envs play side by
side, each a fixed share of the episodes, with one batched forward pass a step (one env at a time, a CartPole
evaluation took 6 of the 7.5 s that training takes between two marks). Each policy's players are kept across
evaluations: the envs are built once, and each evaluation only loads the new weights.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

from sampler.errors import SftuiError
from sampler.experiment import checkpoints
from sampler.play.player import Player, play_episodes
from sampler.run.workers.base import SupervisorGone, die_with_parent

# On a busy machine the evaluation runs in the time training leaves over. At nice 10 its time slices stalled the
# training processes that wait on each other through pipes (CartPole 1M: 21% slower with evaluations that used 3%
# of its CPU time); at 19, no slower within the noise (-7.7%), and every mark is still evaluated, where SCHED_IDLE
# skipped half of them (17-26 s for 1 s of CPU).
EVAL_NICE = 19
EVAL_ENVS = 8  # envs played side by side, their observations batched into one forward pass


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
    cpu_seconds: float  # the evaluation process's CPU time for it: what it took from training
    error: str | None = None  # the evaluation failed (returns is empty): why, in one line


def evaluate_main(conn: Connection, spec: EvalSpec) -> None:
    die_with_parent()
    os.nice(EVAL_NICE)  # Player sets one torch thread
    groups: dict[int, list[Player]] = {}
    try:
        while (message := conn.recv()) is not None:
            policy, path = message
            conn.send(evaluate(groups, spec, policy, Path(path)))
    except (SupervisorGone, EOFError, BrokenPipeError, KeyboardInterrupt):
        pass
    finally:
        for group in groups.values():
            _close(group)


def evaluate(groups: dict[int, list[Player]], spec: EvalSpec, policy: int, path: Path) -> Evaluated:
    started, cpu = time.monotonic(), time.process_time()
    try:
        group = groups.get(policy)
        if group is None:
            group = groups[policy] = _players(spec, policy, path)
        else:
            payload = checkpoints.load(path)
            for player in group:
                player.reload(path, payload)
        returns = play_episodes(group, spec.episodes)
        return Evaluated(policy, group[0].version, group[0].env_frames, returns, time.monotonic() - started,
                         time.process_time() - cpu)
    except (SftuiError, OSError, RuntimeError, KeyError, ValueError) as e:
        _close(groups.pop(policy, []))
        return Evaluated(policy, 0, 0, [], time.monotonic() - started, time.process_time() - cpu,
                         error=f"{type(e).__name__}: {e}")


def _players(spec: EvalSpec, policy: int, path: Path) -> list[Player]:
    """min(episodes, EVAL_ENVS) players of one policy, each in its own env with its own seed."""
    players: list[Player] = []
    try:
        for i in range(min(spec.episodes, EVAL_ENVS)):
            players.append(Player(Path(spec.folder), policy=policy, checkpoint=str(path),
                                  deterministic=spec.deterministic, seed=spec.seed + policy + 1000 * i,
                                  frames=False, env_name=spec.env_name))
    except BaseException:
        _close(players)
        raise
    return players


def _close(players: list[Player]) -> None:
    for player in players:
        player.close()
