"""`sftui status | pause | resume | save | stop | set`: steering a live run through its control socket."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from sftui.options import ExperimentArg, TrainDirOpt

control_app = typer.Typer()


def _client(experiment: str, train_dir: str | None):
    from sampler.experiment.control import ControlClient
    from sampler.experiment.folders import find_experiment, resolve_train_dir

    return ControlClient.for_experiment(find_experiment(experiment, resolve_train_dir(train_dir)))



@control_app.command()
def status(
    experiment: ExperimentArg,
    train_dir: TrainDirOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the RunStatus as JSON.")] = False,
) -> None:
    """Show a run's status (live through its socket, else from summary.json)."""
    from sampler.errors import ControlError
    from sampler.experiment.folders import derived_state, find_experiment, resolve_train_dir

    folder = find_experiment(experiment, resolve_train_dir(train_dir))
    try:
        with _client(experiment, train_dir) as client:
            data = next(client.subscribe())
    except ControlError:
        state, data = derived_state(folder)
        if not data:
            typer.echo(f"{experiment}: {state}")
            return
        data = {**data, "state": state}
    if as_json:
        typer.echo(json.dumps(data, indent=2))
    else:
        typer.echo(_status_text(experiment, data))


def _status_text(experiment: str, data: dict) -> str:
    """The full status, or one line when summary.json holds no complete, well-typed RunStatus."""
    from sampler.status import RunStatus
    from sftui.report import status_text

    try:
        return status_text(RunStatus.from_dict(data))
    except (TypeError, ValueError, KeyError, AttributeError):
        reason = data.get("reason") or "summary.json does not hold a complete run status"
        return f"{experiment}: {data.get('state', 'unreadable')} ({reason}; `--json` shows what it holds)"


@control_app.command("set")
def set_hyperparameters(
    experiment: ExperimentArg,
    changes: Annotated[list[str], typer.Argument(
        help="KEY=VALUE: appo.learning_rate=2e-4, appo.exploration_loss_coeff=0.01, env.reward_shaping.hits=0.1, ...",
        show_default=False)],
    policy: Annotated[int | None, typer.Option("--policy", min=0, help="Only this policy (default: all).")] = None,
    train_dir: TrainDirOpt = None,
) -> None:
    """Change hyperparameters of a live run's policies; each learner applies them before its next step."""
    from sampler.experiment.control import hyperparameter_changes

    hyperparameters = hyperparameter_changes(changes)
    args: dict = {"hyperparameters": hyperparameters}
    if policy is not None:
        args["policy"] = policy
    with _client(experiment, train_dir) as client:
        result = client.call("set", args)
    shown = ", ".join(f"{k} {v}" for k, v in result["hyperparameters"].items())
    typer.echo(f"{experiment}: policies {result['policies']}: {shown} (from the next learner step)")


def _command(name: str, describe) -> None:
    def command(experiment: ExperimentArg, train_dir: TrainDirOpt = None) -> None:
        with _client(experiment, train_dir) as client:
            typer.echo(describe(experiment, client.call(name)))

    command.__doc__ = {
        "pause": "Pause a live run: no env steps and no learner updates until resume.",
        "resume": "Resume a paused run.",
        "save": "Save a checkpoint of every policy now.",
        "stop": "Stop a live run: it saves checkpoints and can be resumed later.",
    }[name]
    control_app.command(name)(command)


_command("pause", lambda e, r: f"{e}: paused at {r['env_frames']:,} env frames" if "env_frames" in r
         else f"{e}: already paused")
_command("resume", lambda e, r: f"{e}: {r['state']}")
_command("save", lambda e, r: "\n".join(f"saved {p}" for p in r))
_command("stop", lambda e, r: f"{e}: stopping (it saves a checkpoint first)")


@control_app.command()
def stacks(
    experiment: ExperimentArg,
    worker: Annotated[str | None, typer.Argument(help="One worker, e.g. rollout_0 (default: every worker).")] = None,
    train_dir: TrainDirOpt = None,
) -> None:
    """Print where each worker of a live run is now (its Python stack), and the stack kept at its last stall."""
    from sampler.errors import ExperimentError
    from sampler.experiment.folders import derived_state, find_experiment, is_live, resolve_train_dir
    from sampler.run import stacks as dumps
    from sampler.status import LIVE_STATES

    folder = find_experiment(experiment, resolve_train_dir(train_dir))
    state, data = derived_state(folder)
    workers = [w for w in data.get("workers") or [] if isinstance(w, dict) and w.get("name")]
    names = [w["name"] for w in workers]
    if worker is not None and worker not in names:
        raise ExperimentError(f"{experiment} has no worker {worker}; its workers: {', '.join(names) or 'none'}")
    live = state in LIVE_STATES and is_live(folder)
    shown = 0
    for w in workers:
        if worker is None or w["name"] == worker:
            text = dumps.describe(folder, w, live)
            if text:
                typer.echo(text)
                shown += 1
    if not shown:
        typer.echo(f"{experiment}: {state}; no live workers to ask and no stall dumps kept")
