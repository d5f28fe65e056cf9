"""A policy's live hyperparameters on disk: `policies/p<k>/hparams.json`, and `history.jsonl` with one line per change.

hparams.json holds what the policy trains with now. It changes with `sftui set`, PBT, and an override given
when the experiment is resumed; each change appends {time, version, source, before, after} to history.jsonl.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from sampler.experiment.folders import read_json, write_json_atomic


def hparams_path(folder: Path, policy: int) -> Path:
    return Path(folder) / "policies" / f"p{policy}" / "hparams.json"


def read_hparams(folder: Path, policy: int) -> dict | None:
    """The policy's saved hyperparameters, or None before its learner first wrote them."""
    return read_json(hparams_path(folder, policy))


def write_hparams(folder: Path, policy: int, hyperparameters: dict) -> None:
    write_json_atomic(hparams_path(folder, policy), hyperparameters)


def record_change(folder: Path, policy: int, before: dict, after: dict, source: str, version: int | None) -> None:
    """Appends the change to history.jsonl, then makes `after` the policy's hyperparameters."""
    path = hparams_path(folder, policy)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.parent / "history.jsonl", "a") as history:
        history.write(json.dumps({"time": time.time(), "version": version, "source": source,
                                  "before": before, "after": after}) + "\n")
    write_hparams(folder, policy, after)
