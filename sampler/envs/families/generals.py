"""`generals_<mode>`: Generals.io 1v1 through the generals-bots package (its numpy line, 2.5.x).

- `generals_duel`: both generals are learning agents (two seats, e.g. p0 against p1, or self-play with an
  opponent pool);
- `generals_vs_random`, `generals_vs_expander`: one learning agent against the package's scripted agent.

Each game is on a fresh random map of `env.generals.grid_min`..`grid_max` cells a side, padded with mountains
to `grid_max`. An agent sees `grid`, float32 [9, S, S]: log(1 + armies), generals, cities, mountains, neutral,
owned, opponent, fog and structures in fog, as the game shows them through its fog of war; and `stats`:
log(1 + land and army of both sides) and the game's progress. Rewards: +1 for taking the enemy general, -1 for
losing one's own. The game is cut (truncated, a draw) after `env.generals.max_turns` turns.

One action is one head over the whole board: pass, or move (or split-move, half the army) from (row, col) in
one of 4 directions, i.e. 1 + 2 x S x S x 4 choices. Which moves are legal depends on the row, the column and
the direction together (a cell one owns with 2 armies or more, toward a passable cell on the board), so the
env gives a joint action mask over that flattened head; a mask per row, column and direction head could not
say it.

Each step also reports raw reward components: the change of land, army and cities held. Each policy weights
them with its own coefficients (env.reward_shaping, mutable by PBT). The true objective is +1 for a win,
-1 for a loss and 0 for a draw.

generals-bots needs pygame and a numba that needs numpy < 2.3, while vizdoom needs pygame-ce: it is not in
the default environment. `.ci/generals-env` builds one of its own (see README).
"""

from __future__ import annotations

import math

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from algos.spaces import ActionSpec, ObsSpec
from sampler.envs.contract import EnvContext, Obs
from sampler.envs.families.registry import EnvFamily, register_family
from sampler.errors import ConfigError, MissingDependencyError

MODES = {"duel": None, "vs_random": "random", "vs_expander": "expander"}
SEATS = ("red", "blue")
GRID_CHANNELS = ("armies", "generals", "cities", "mountains", "neutral_cells", "owned_cells", "opponent_cells",
                 "fog_cells", "structures_in_fog")
COMPONENTS = ("land", "army", "cities")
DIRECTIONS = 4


class GeneralsSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    grid_min: int = Field(10, ge=4, le=32, description="Smallest map side of a game (cells).")
    grid_max: int = Field(10, ge=4, le=32, description="Largest map side; every map is padded to it.")
    mountain_density: float = Field(0.2, ge=0.0, le=0.6, description="Chance that a cell is a mountain.")
    city_density: float = Field(0.05, ge=0.0, le=0.3, description="Chance that a cell is a city.")
    max_turns: int = Field(500, ge=10, description="Turns before a game is cut, as a draw.")

    @model_validator(mode="after")
    def _check(self) -> GeneralsSettings:
        if self.grid_min > self.grid_max:
            raise ValueError(f"grid_min ({self.grid_min}) is above grid_max ({self.grid_max})")
        if self.mountain_density + self.city_density > 0.8:
            raise ValueError("mountain_density + city_density leave too few passable cells (keep them <= 0.8)")
        return self


def mode_of(env_name: str) -> str:
    return env_name.split("_", 1)[1]


def validate_name(env_name: str) -> None:
    mode = mode_of(env_name)
    if mode not in MODES:
        raise ConfigError(f"env.name: unknown Generals mode {mode!r}; known: "
                          + ", ".join(f"generals_{m}" for m in MODES))


def _import():
    try:
        from generals.agents import ExpanderAgent, RandomAgent
        from generals.core.action import Action, compute_valid_move_mask
        from generals.core.game import Game
        from generals.core.grid import GridFactory
    except ImportError:
        raise MissingDependencyError(
            "generals_* envs need generals-bots 2.5, which conflicts with vizdoom's pygame-ce: run "
            "`.ci/generals-env` for an environment of its own (.venv-generals)") from None
    return Action, compute_valid_move_mask, Game, GridFactory, {"random": RandomAgent, "expander": ExpanderAgent}


def encode_move(size: int, row: int, col: int, direction: int, split: bool) -> int:
    """The flat action index of a move (0 is pass)."""
    return 1 + int(split) * size * size * DIRECTIONS + (row * size + col) * DIRECTIONS + direction


def decode_action(size: int, index: int) -> tuple[bool, int, int, int, bool]:
    """(pass, row, col, direction, split) of a flat action index."""
    if index == 0:
        return True, 0, 0, 0, False
    index -= 1
    moves = size * size * DIRECTIONS
    split, index = divmod(index, moves)
    cell, direction = divmod(index, DIRECTIONS)
    row, col = divmod(cell, size)
    return False, row, col, direction, bool(split)


def joint_mask(size: int, moves: np.ndarray) -> np.ndarray:
    """The flat action mask from the game's [h, w, 4] legal-move mask: pass is always legal, and a move is
    legal as a full or a split move alike."""
    padded = np.zeros((size, size, DIRECTIONS), np.int8)
    padded[:moves.shape[0], :moves.shape[1]] = moves
    flat = padded.reshape(-1)
    return np.concatenate([np.ones(1, np.int8), flat, flat])


class GeneralsEnv:
    def __init__(self, settings: GeneralsSettings, mode: str, seed: int | None):
        self.Action, self._legal, self._Game, GridFactory, scripted = _import()
        self.settings = settings
        self.size = size = settings.grid_max
        self.rng = np.random.default_rng(seed)
        self.factory = GridFactory(mode="uniform", min_grid_dims=(settings.grid_min, settings.grid_min),
                                   max_grid_dims=(settings.grid_max, settings.grid_max),
                                   mountain_density=settings.mountain_density, city_density=settings.city_density)
        opponent = MODES[mode]
        self.opponent = scripted[opponent]() if opponent else None
        self.num_agents = 1 if self.opponent else 2
        self.obs_specs = {"grid": ObsSpec((len(GRID_CHANNELS), size, size), "float32"),
                          "stats": ObsSpec((5,), "float32")}
        self.action_spec = ActionSpec(kind="discrete", n=1 + 2 * size * size * DIRECTIONS)
        self.reward_components = COMPONENTS
        self.game = None
        self._held: dict[str, np.ndarray] = {}

    # ---- observing --------------------------------------------------------------------------------

    def _observe(self, seat: str):
        raw = self.game.agent_observation(seat)
        mask = joint_mask(self.size, self._legal(raw))
        if raw.armies.shape != (self.size, self.size):
            raw.pad_observation(self.size)  # mountains beyond the map's edge
        grid = np.stack([np.log1p(raw.armies) if name == "armies" else getattr(raw, name)
                         for name in GRID_CHANNELS]).astype(np.float32)
        stats = np.array([math.log1p(raw.owned_land_count), math.log1p(raw.owned_army_count),
                          math.log1p(raw.opponent_land_count), math.log1p(raw.opponent_army_count),
                          raw.timestep / self.settings.max_turns], np.float32)
        return raw, {"grid": grid, "stats": stats}, mask

    def _holdings(self, seat: str) -> np.ndarray:
        channels = self.game.channels
        owned = channels.ownership[seat]
        return np.array([owned.sum(), (channels.armies * owned).sum(), (channels.cities * owned).sum()], np.float32)

    def _start(self) -> tuple[list[Obs], list[dict]]:
        self.factory.set_rng(np.random.default_rng(int(self.rng.integers(2**63))))
        self.game = self._Game(self.factory.generate(), list(SEATS))
        if self.opponent is not None:
            self.opponent.reset()
        self._held = {seat: self._holdings(seat) for seat in SEATS}
        return self._observations()

    def _observations(self) -> tuple[list[Obs], list[dict]]:
        obs, infos = [], []
        self._raw = {}
        for seat in SEATS:
            raw, o, mask = self._observe(seat)
            self._raw[seat] = raw
            if seat == SEATS[0] or self.opponent is None:
                obs.append(o)
                infos.append({"action_mask": mask})
        return obs, infos

    # ---- the env contract -------------------------------------------------------------------------

    def reset(self, seed: int | None = None):
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        return self._start()

    def _action(self, index) -> object:
        passes, row, col, direction, split = decode_action(self.size, int(index))
        return self.Action(to_pass=passes, row=row, col=col, direction=direction, to_split=split)

    def step(self, actions: list):
        learning = SEATS[:self.num_agents]
        moves = {seat: self._action(a) for seat, a in zip(learning, actions, strict=True)}
        if self.opponent is not None:
            moves[SEATS[1]] = self.opponent.act(self._raw[SEATS[1]])
        self.game.step(moves)
        done = self.game.is_done()
        truncated = not done and self.game.time >= self.settings.max_turns
        rewards, infos = [], []
        for seat in learning:
            held = self._holdings(seat)
            change = held - self._held[seat]
            self._held[seat] = held
            info: dict = {"reward_components": dict(zip(COMPONENTS, change.tolist(), strict=True))}
            outcome = 0.0
            if done:
                outcome = 1.0 if self.game.winner == seat else -1.0
            if done or truncated:
                info["true_objective"] = outcome
                info["episode_extra_stats"] = {"win": float(outcome > 0), "land": float(held[0]),
                                               "army": float(held[1]), "turns": float(self.game.time)}
            rewards.append(outcome)
            infos.append(info)
        if done or truncated:
            obs, starts = self._start()
        else:
            obs, starts = self._observations()
        for info, start in zip(infos, starts, strict=True):
            info["action_mask"] = start["action_mask"]
        n = self.num_agents
        return obs, rewards, [done] * n, [truncated] * n, infos

    def render(self):
        raise NotImplementedError("generals_* envs draw no frames")

    def close(self) -> None:
        self.game = None


def make(cfg, context: EnvContext) -> GeneralsEnv:
    return GeneralsEnv(cfg.env.generals, mode_of(cfg.env.name), context.seed)


register_family(
    EnvFamily(
        prefix="generals",
        description="Generals.io 1v1 (generals-bots 2.5): generals_duel, generals_vs_random, generals_vs_expander",
        make=make,
        example="generals_vs_expander",
        defaults={
            "sampler": {"num_envs_per_worker": 8},
            "env": {"reward_shaping": {"land": 0.02, "army": 0.0, "cities": 0.1}},
            "model": {"encoder_mlp_layers": [256, 256]},
        },
        settings_model=GeneralsSettings,
        validate_name=validate_name,
    )
)
