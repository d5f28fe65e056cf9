"""Framework-neutral descriptions of observation and action spaces.

The sampler translates gymnasium spaces into these so that `algos` never depends
on an environment library, and so that specs can be stored in JSON checkpoints.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch


@dataclass(frozen=True)
class ObsSpec:
    shape: tuple[int, ...]
    dtype: str  # numpy dtype name, e.g. "float32", "uint8"

    def to_dict(self) -> dict:
        return {"shape": list(self.shape), "dtype": self.dtype}

    @staticmethod
    def from_dict(d: dict) -> ObsSpec:
        return ObsSpec(shape=tuple(int(s) for s in d["shape"]), dtype=str(d["dtype"]))


@dataclass(frozen=True)
class ActionSpec:
    kind: Literal["discrete", "box"]
    n: int = 0  # discrete: number of actions
    shape: tuple[int, ...] = ()  # box: action shape
    low: tuple[float, ...] = ()  # box bounds, flattened
    high: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if self.kind == "discrete" and self.n < 1:
            raise ValueError(f"discrete action space needs n >= 1, got {self.n}")
        if self.kind == "box" and not self.shape:
            raise ValueError("box action space needs a non-empty shape")
        if self.kind not in ("discrete", "box"):
            raise ValueError(f"unknown action space kind {self.kind!r}")

    def num_dist_params(self) -> int:
        if self.kind == "discrete":
            return self.n
        return 2 * math.prod(self.shape)  # mean and log_std per dimension

    def action_shape(self) -> tuple[int, ...]:
        return () if self.kind == "discrete" else self.shape

    def action_dtype(self) -> torch.dtype:
        return torch.int64 if self.kind == "discrete" else torch.float32

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "n": self.n,
            "shape": list(self.shape),
            "low": list(self.low),
            "high": list(self.high),
        }

    @staticmethod
    def from_dict(d: dict) -> ActionSpec:
        return ActionSpec(
            kind=d["kind"],
            n=int(d.get("n", 0)),
            shape=tuple(int(s) for s in d.get("shape", ())),
            low=tuple(float(v) for v in d.get("low", ())),
            high=tuple(float(v) for v in d.get("high", ())),
        )


def obs_specs_to_dict(specs: dict[str, ObsSpec]) -> dict:
    return {key: spec.to_dict() for key, spec in specs.items()}


def obs_specs_from_dict(d: dict) -> dict[str, ObsSpec]:
    return {key: ObsSpec.from_dict(spec) for key, spec in d.items()}
