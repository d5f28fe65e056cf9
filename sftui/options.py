"""Options and arguments several commands share (sftui/cli.py, sftui/control_cli.py, sftui/sweep_cli.py)."""

from __future__ import annotations

from typing import Annotated

import typer

SetOpt = Annotated[list[str] | None, typer.Option("--set", "-s", help="Override a setting: section.key=value.")]
TrainDirOpt = Annotated[
    str | None, typer.Option("--train-dir", help="Experiments folder (default $SFTUI_TRAIN_DIR or ./train_dir).")
]
RestartOpt = Annotated[bool, typer.Option("--restart", help="Archive the existing experiment and start over.")]
DetachOpt = Annotated[bool, typer.Option("--detach", help="Train in the background; print the experiment path.")]
ExperimentArg = Annotated[str, typer.Argument(help="Experiment id (relative to train_dir) or folder.")]
