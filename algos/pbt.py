"""Population-based training: settings, and the decisions as pure functions.

Every `pbt_period_env_steps` (after `pbt_start_mutation` env frames) the population is ranked by its
objective: the env's true objective where it reports one, else the mean return. Each policy in the worst
`pbt_replace_fraction` is replaced by a policy drawn from the best fraction, when the gap between them is
large enough both relatively (`pbt_replace_reward_gap` times the better objective's magnitude) and
absolutely (`pbt_replace_reward_gap_absolute`). A replaced policy takes a copy of the better one's weights
and a mutated copy of its hyperparameters: each mutable value (algos.tunables) changes with probability
`pbt_mutation_rate`, multiplied or divided by a factor drawn from [pbt_perturb_min, pbt_perturb_max], and
kept within its bounds. Gamma mutates as its horizon 1 / (1 - gamma), and only with `pbt_optimize_gamma`.

The sampler's PBT worker applies the decisions; nothing here touches processes or files.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from algos.tunables import GAMMA, TUNABLES

SHAPING_BOUND = 100.0  # a reward-shaping coefficient stays within +-this


class PbtConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    with_pbt: bool = Field(
        False, description="Train a population of policies and mutate their hyperparameters."
    )
    pbt_start_mutation: int = Field(
        20_000_000, ge=0, description="Env steps before the first hyperparameter mutation."
    )
    pbt_period_env_steps: int = Field(
        5_000_000, ge=1, description="Env steps between two population updates."
    )
    pbt_replace_fraction: float = Field(
        0.3, gt=0.0, le=0.5, description="The worst fraction of policies replaced at each update (at least one)."
    )
    pbt_mutation_rate: float = Field(
        0.15, ge=0.0, le=1.0, description="Chance that each hyperparameter of a replaced policy mutates."
    )
    pbt_replace_reward_gap: float = Field(
        0.1, ge=0.0, description="Relative objective gap a replacement needs (times the better objective's size)."
    )
    pbt_replace_reward_gap_absolute: float = Field(
        1e-6, ge=0.0, description="Absolute objective gap a replacement needs."
    )
    pbt_perturb_min: float = Field(1.1, gt=1.0, description="Smallest factor a mutation multiplies or divides by.")
    pbt_perturb_max: float = Field(1.5, gt=1.0, description="Largest factor a mutation multiplies or divides by.")
    pbt_optimize_gamma: bool = Field(False, description="Let PBT mutate the discount gamma too.")
    pbt_mutate_reward_shaping: bool = Field(True, description="Let PBT mutate each policy's reward shaping.")

    @model_validator(mode="after")
    def _perturb_order(self) -> PbtConfig:
        if self.pbt_perturb_min > self.pbt_perturb_max:
            raise ValueError(f"pbt.pbt_perturb_min ({self.pbt_perturb_min}) is above pbt.pbt_perturb_max "
                             f"({self.pbt_perturb_max})")
        return self


@dataclass(frozen=True)
class Replacement:
    policy: int  # replaced
    source: int  # whose weights and (mutated) hyperparameters it takes
    gap: float  # source's objective minus policy's


def due(env_frames: int, last_update: int, cfg: PbtConfig) -> bool:
    """Whether a population update is due at `env_frames`, the last one having been at `last_update`."""
    return env_frames >= cfg.pbt_start_mutation and env_frames - last_update >= cfg.pbt_period_env_steps


def rank(objectives: dict[int, float | None]) -> list[int]:
    """Policies best first; those without an objective yet are left out."""
    known = {p: v for p, v in objectives.items() if v is not None and math.isfinite(v)}
    return sorted(known, key=lambda p: (-known[p], p))


def replacements(objectives: dict[int, float | None], cfg: PbtConfig, rng: np.random.Generator) -> list[Replacement]:
    """Which of the worst policies take a copy of which better one. Needs both gaps; a policy is never its
    own source, and the best fraction is never replaced."""
    ranked = rank(objectives)
    count = max(1, int(len(ranked) * cfg.pbt_replace_fraction)) if len(ranked) >= 2 else 0
    best, worst = ranked[:count], ranked[len(ranked) - count:]
    out = []
    for policy in worst:
        if policy in best:
            continue
        source = int(best[rng.integers(len(best))])
        gap = objectives[source] - objectives[policy]
        if gap > cfg.pbt_replace_reward_gap * abs(objectives[source]) and gap > cfg.pbt_replace_reward_gap_absolute:
            out.append(Replacement(policy, source, float(gap)))
    return out


def _perturb(value: float, cfg: PbtConfig, rng: np.random.Generator) -> float:
    factor = float(rng.uniform(cfg.pbt_perturb_min, cfg.pbt_perturb_max))
    return value * factor if rng.random() < 0.5 else value / factor


def mutate(hyperparameters: dict, cfg: PbtConfig, rng: np.random.Generator) -> tuple[dict, dict]:
    """(a mutated copy, what changed as name -> (before, after)). Only the tunables with bounds (gamma with
    pbt_optimize_gamma) and, with pbt_mutate_reward_shaping, each reward-shaping coefficient mutate; a value
    of zero (switched off) stays zero."""
    out = dict(hyperparameters)
    changed: dict = {}
    for tunable in TUNABLES:
        name = tunable.name
        if not tunable.pbt_mutable or name not in out or (tunable is GAMMA and not cfg.pbt_optimize_gamma):
            continue
        if rng.random() >= cfg.pbt_mutation_rate:
            continue
        before = float(out[name])
        if tunable.mutates_as == "horizon":
            after = 1.0 - 1.0 / _perturb(1.0 / (1.0 - before), cfg, rng)
        elif before == 0.0:
            continue  # a value switched off (no exploration loss) stays off
        else:
            after = _perturb(before, cfg, rng)
        low, high = tunable.bounds
        after = min(max(after, low), high)
        if after != before:
            out[name] = after
            changed[name] = (before, after)
    shaping = out.get("reward_shaping")
    if cfg.pbt_mutate_reward_shaping and isinstance(shaping, dict):
        mutated = dict(shaping)
        for name, before in shaping.items():
            if before != 0.0 and rng.random() < cfg.pbt_mutation_rate:
                after = min(max(_perturb(float(before), cfg, rng), -SHAPING_BOUND), SHAPING_BOUND)
                mutated[name] = after
                changed[f"reward_shaping.{name}"] = (before, after)
        out["reward_shaping"] = mutated
    return out, changed
