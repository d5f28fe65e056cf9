"""The ViZDoom engine as every Doom family uses it: the import, the settings, button heads, and a start-up throttle.

Many engines starting at once can time out, so game inits take one of a few machine-wide slots.
"""

from __future__ import annotations

import fcntl
import os
import random
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from algos.spaces import ActionSpec
from sampler.errors import MissingDependencyError

TICS_PER_SECOND = 35
SCREEN_H, SCREEN_W = 120, 160  # RES_160X120: small enough to render fast, large enough to resize down
MEASUREMENT_SCALE = 0.01


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

