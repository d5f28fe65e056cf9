"""Framework-neutral descriptions of observation and action spaces.

The sampler translates gymnasium spaces into these so that `algos` never depends
on an environment library, and so that specs can be stored in JSON checkpoints.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
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
    """One action space.

    Action masks (discrete kinds only) have num_dist_params() entries: for multi_discrete
    the per-head masks are concatenated in head order.
    """

    kind: Literal["discrete", "multi_discrete", "box"]
    n: int = 0  # discrete: number of actions
    shape: tuple[int, ...] = ()  # box: action shape
    low: tuple[float, ...] = ()  # box bounds, flattened
    high: tuple[float, ...] = ()
    # Last, so positional construction of the older fields keeps working.
    nvec: tuple[int, ...] = ()  # multi_discrete: number of actions of each head

    def __post_init__(self) -> None:
        if self.kind not in ("discrete", "multi_discrete", "box"):
            raise ValueError(f"unknown action space kind {self.kind!r}")
        if self.kind == "discrete" and self.n < 1:
            raise ValueError(f"discrete action space needs n >= 1, got {self.n}")
        if self.kind == "multi_discrete" and (not self.nvec or min(self.nvec) < 1):
            raise ValueError(f"multi_discrete action space needs a non-empty nvec, each entry >= 1; got {self.nvec}")
        if self.kind == "box" and not self.shape:
            raise ValueError("box action space needs a non-empty shape")

    def num_dist_params(self) -> int:
        if self.kind == "discrete":
            return self.n
        if self.kind == "multi_discrete":
            return sum(self.nvec)
        return 2 * math.prod(self.shape)  # mean and log_std per dimension

    def action_shape(self) -> tuple[int, ...]:
        if self.kind == "discrete":
            return ()
        if self.kind == "multi_discrete":
            return (len(self.nvec),)
        return self.shape

    def action_dtype(self) -> torch.dtype:
        import torch  # not at the top: env processes that never touch tensors start faster without it

        return torch.float32 if self.kind == "box" else torch.int64

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "n": self.n,
            "nvec": list(self.nvec),
            "shape": list(self.shape),
            "low": list(self.low),
            "high": list(self.high),
        }

    @staticmethod
    def from_dict(d: dict) -> ActionSpec:
        return ActionSpec(
            kind=d["kind"],
            n=int(d.get("n", 0)),
            nvec=tuple(int(v) for v in d.get("nvec", ())),
            shape=tuple(int(s) for s in d.get("shape", ())),
            low=tuple(float(v) for v in d.get("low", ())),
            high=tuple(float(v) for v in d.get("high", ())),
        )


def obs_specs_to_dict(specs: dict[str, ObsSpec]) -> dict:
    return {key: spec.to_dict() for key, spec in specs.items()}


def obs_specs_from_dict(d: dict) -> dict[str, ObsSpec]:
    return {key: ObsSpec.from_dict(spec) for key, spec in d.items()}
