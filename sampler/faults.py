"""Faults injected on purpose, for bench/faults.py and the tests, through the run's environment.

SFTUI_INJECT holds comma-separated `name=value` items, e.g. `learner_nan=3`: each learner poisons its own
weights with NaN once, right after its update to version 3. Without the variable nothing here does anything.
"""

from __future__ import annotations

import os

import torch

VARIABLE = "SFTUI_INJECT"


def injected(name: str) -> str | None:
    """The value of fault `name` in SFTUI_INJECT, or None where it is not armed."""
    for item in os.environ.get(VARIABLE, "").split(","):
        key, _, value = item.partition("=")
        if key.strip() == name:
            return value.strip()
    return None


def poison(model: torch.nn.Module) -> None:
    """A NaN in the first floating-point parameter, as a diverged update would leave it."""
    with torch.no_grad():
        next(p for p in model.parameters() if p.is_floating_point()).view(-1)[0] = float("nan")
