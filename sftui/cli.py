"""The `sftui` command line. Headless paths import nothing from textual.

Spawned workers re-import the main module, so this module keeps its top-level imports small and
imports the engine inside the commands.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from sampler.run import interrupts
from sftui.control_cli import control_app
from sftui.options import DetachOpt, ExperimentArg, RestartOpt, SetOpt, TrainDirOpt
from sftui.sweep_cli import sweep_app

app = typer.Typer(
    add_completion=False, help="Asynchronous APPO training you can watch and steer. With no command: the app."
)



@app.command()
def run(
    cfg: Annotated[Path, typer.Argument(help="A cfg.json (`sftui config ENV` writes one).")],
    headless: Annotated[bool, typer.Option("--headless", help="Train in this terminal with progress lines.")] = False,
    set_: SetOpt = None,
    train_dir: TrainDirOpt = None,
    restart: RestartOpt = False,
    detach: DetachOpt = False,
) -> None:
    """Run the experiment a cfg.json describes (resumes it when its folder exists)."""
    from sampler.config.build import read_cfg_file

    raw = read_cfg_file(cfg)
    attach = not headless and not detach and sys.stdin.isatty() and sys.stdout.isatty()
    if not headless and not detach and not attach:
        typer.echo("Not a terminal: training headless.", err=True)
    _train(raw, set_ or [], train_dir, restart, detach or attach, experiment_default=cfg.stem, attach=attach)


@app.command()
def train(
    env: Annotated[str, typer.Argument(help="Env name, e.g. gym_CartPole-v1.")] = "gym_CartPole-v1",
    experiment: Annotated[str | None, typer.Option("--experiment", "-e", help="Experiment id.")] = None,
    set_: SetOpt = None,
    train_dir: TrainDirOpt = None,
    restart: RestartOpt = False,
    detach: DetachOpt = False,
) -> None:
    """Train ENV headless from its family's defaults."""
    raw = {"env": {"name": env}}
    if experiment is not None:
        raw["run"] = {"experiment": experiment}
    _train(raw, set_ or [], train_dir, restart, detach, experiment_default=env)


def _train(raw: dict, set_items: list[str], train_dir, restart: bool, detach: bool, experiment_default: str,
           attach: bool = False) -> None:
    from sampler.run.forkserver import WorkerStarter

    # Training here: the run's fork server imports torch on the other core while this process prepares.
    starter = None if detach else WorkerStarter.begin()
    with starter.ended_on_error() if starter else contextlib.nullcontext():
        from sampler.experiment.prepare import prepare

        prepared = prepare(raw, set_items, train_dir=train_dir, restart=restart, experiment_default=experiment_default)
        if detach:
            interrupts.release()  # the detached run and the app handle their own
        else:
            interrupts.raise_if_noted()  # else the supervisor stops at once on one noted from here on
    if prepared.already_finished:
        if starter is not None:
            starter.end()
        typer.echo(prepared.already_finished)
        raise typer.Exit(0)
    if prepared.archived:
        typer.echo(f"archived the old experiment as {prepared.archived}")
    if prepared.resumed:
        typer.echo(f"resuming {prepared.folder}")
    for change in prepared.changes:
        typer.echo(f"  changed {change}")
    if detach:
        from sftui.detach import start_detached

        code = start_detached(prepared.folder)
        if code == 0 and attach:
            _open_app(prepared.folder, prepared.cfg.run.experiment, prepared.folder.parent)
        raise typer.Exit(code)
    raise typer.Exit(_supervise(prepared.cfg, prepared.folder, foreground=True, env=prepared.env, starter=starter))


def _supervise(cfg, folder: Path, foreground: bool, env=None, starter=None) -> int:
    from sampler.run.supervisor import Supervisor
    from sftui.report import HeadlessReporter

    listeners = []
    if foreground:
        typer.echo(f"experiment: {folder}")
        listeners.append(HeadlessReporter(cfg.run.report_interval_sec))
    return Supervisor(cfg, folder, listeners=listeners, log_to_stderr=foreground, env=env, starter=starter).run()


@app.command("supervise", hidden=True)
def supervise(folder: Path) -> None:
    """Run the supervisor of an already prepared experiment folder (used by --detach)."""
    from sampler.run.forkserver import WorkerStarter

    with WorkerStarter.begin().ended_on_error() as starter:  # its imports overlap with reading the config
        from sampler.config.build import build_config, read_cfg_file

        cfg = build_config(read_cfg_file(folder / "cfg.json"))
        interrupts.raise_if_noted()
    raise typer.Exit(_supervise(cfg, folder.absolute(), foreground=False, starter=starter))


ImportOpt = Annotated[
    list[str] | None, typer.Option("--import", "-i", help="Module registering custom env families or models.")
]


@app.command()
def config(env: Annotated[str, typer.Argument(help="Env name, e.g. gym_CartPole-v1.")],
           imports: ImportOpt = None) -> None:
    """Print the complete default config for ENV as JSON: the starting point of a cfg.json."""
    from sampler.config.build import build_config, config_to_dict

    raw = {"env": {"name": env}, "run": {"imports": imports or []}}
    typer.echo(json.dumps(config_to_dict(build_config(raw)), indent=2))


@app.command()
def settings(env: Annotated[str | None, typer.Argument(help="Show ENV's family defaults.")] = None,
             imports: ImportOpt = None) -> None:
    """List every setting with its type, default and description, and the env families."""
    from sampler.config.build import import_modules
    from sampler.config.settings import describe_settings

    import_modules(imports or [])
    rows = describe_settings(env)
    width = max(len(path) for path, *_ in rows)
    for path, kind, default, description in rows:
        typer.echo(f"{path:<{width}}  {kind:<18} {json.dumps(default):<14} {description}")
    from sampler.envs.families.registry import families

    found = families()
    names = [f"{family.prefix}_<id>" for family in found]
    name_width = max(len(n) for n in names)
    example_width = max(len("EXAMPLE"), *(len(family.example) for family in found))
    typer.echo(f"\nEnv families:\n  {'NAMES':<{name_width}}  {'EXAMPLE':<{example_width}}  DESCRIPTION")
    for name, family in zip(names, found, strict=True):
        typer.echo(f"  {name:<{name_width}}  {family.example or '-':<{example_width}}  {family.description}")


@app.command()
def sample(
    env: Annotated[str, typer.Argument(help="Env name, e.g. doom_basic.")],
    set_: SetOpt = None,
    seconds: Annotated[float, typer.Option("--seconds", min=1.0, help="Measured seconds, after the warm-up.")] = 20.0,
    warmup: Annotated[float, typer.Option("--warmup", min=0.0, help="Seconds run before measuring.")] = 5.0,
) -> None:
    """Measure the sampler alone (random actions, no learner): the most frames/s any training can reach."""
    from sampler.run.forkserver import WorkerStarter

    with WorkerStarter.begin().ended_on_error() as starter:  # it imports while we build the config
        from sampler.config.build import build_config
        from sampler.config.derived import Placement
        from sampler.config.keys import parse_overrides
        from sampler.run.sample import measure

        cfg = build_config({"env": {"name": env}}, parse_overrides(set_ or []))
    s, placement = cfg.sampler, Placement.of(cfg)
    where = "local" if placement.local_inference else "process"
    layout = f"{s.num_workers} workers x {placement.envs_per_worker} envs, " + (
        "batched" if s.batched_sampling else f"{placement.worker_splits} split(s)")
    typer.echo(f"sampling {env}: {layout}, {where} inference, rollout {cfg.appo.rollout}; {warmup:g} s warm-up, "
               f"{seconds:g} s measured")
    try:
        report = measure(cfg, seconds=seconds, warmup=warmup, starter=starter)
    except KeyboardInterrupt:
        typer.echo("sftui: sample interrupted; nothing measured", err=True)
        raise typer.Exit(130) from None
    typer.echo(f"{report.fps:,.0f} env frames/s ({report.env_frames:,} frames in {report.seconds:.1f} s)")


@app.command("ls")
def list_experiments(train_dir: TrainDirOpt = None) -> None:
    """List the experiments in train_dir with their state, env, frames and last return."""
    from sampler.errors import ExperimentError
    from sampler.experiment.folders import list_experiments as find_all
    from sampler.experiment.folders import resolve_train_dir

    root = resolve_train_dir(train_dir)
    if root.exists() and not root.is_dir():
        raise ExperimentError(f"{root}: not a folder; --train-dir (or $SFTUI_TRAIN_DIR) names the experiments folder")
    found = find_all(root)
    if not found:
        typer.echo(f"no experiments in {root}")
        return
    width = max(len("EXPERIMENT"), *(len(e.id) for e in found))
    env_width = max(len("ENV"), *(len(e.env) for e in found))
    typer.echo(f"{'EXPERIMENT':<{width}}  {'STATE':<14} {'ENV':<{env_width}} {'FRAMES':>14}  RETURN")
    for e in found:
        ret = "-" if e.last_return is None else f"{e.last_return:.2f}"
        typer.echo(f"{e.id:<{width}}  {e.state:<14} {e.env:<{env_width}} {e.env_frames:>14,}  {ret}")


def _open_app(folder: Path | None, experiment: str | None, train_dir: Path) -> None:
    from sftui.app.app import run_app

    message = run_app(folder, experiment, train_dir)
    if message:
        typer.echo(message)


# These hold Ctrl+C through their start (`_train`); every other command gets it back before it runs.
TRAINING_COMMANDS = ("run", "train", "supervise")


@app.callback(invoke_without_command=True)
def _no_command(ctx: typer.Context, train_dir: TrainDirOpt = None) -> None:
    """With no command, open the app on the most recent live run (else on the experiment browser)."""
    if ctx.invoked_subcommand not in TRAINING_COMMANDS:
        interrupts.release()  # Ctrl+C is Python's again; training holds it until its supervisor takes it over
    if ctx.invoked_subcommand is not None:
        if train_dir:  # `sftui --train-dir D attach X`: D is the default of the command's own --train-dir
            os.environ["SFTUI_TRAIN_DIR"] = train_dir
        return
    from sampler.experiment.folders import resolve_train_dir
    from sftui.app.app import most_recent_live

    root = resolve_train_dir(train_dir)
    folder = most_recent_live(root)
    _open_app(folder, str(folder.relative_to(root)) if folder is not None else None, root)


@app.command()
def attach(experiment: ExperimentArg, train_dir: TrainDirOpt = None) -> None:
    """Open the live dashboard of a running experiment."""
    from sampler.errors import ExperimentError
    from sampler.experiment.folders import derived_state, find_experiment, resolve_train_dir
    from sampler.status import LIVE_STATES

    folder = find_experiment(experiment, resolve_train_dir(train_dir))
    state, _ = derived_state(folder)
    if state not in (*LIVE_STATES, "not_responding"):
        raise ExperimentError(f"{experiment} is {state}, not live; `sftui run` its cfg.json to resume it")
    _open_app(folder, experiment, resolve_train_dir(train_dir))


def _video_path(video: Path | None) -> Path | None:
    """--video, checked before a checkpoint loads: an .mp4 name in a folder that takes a new file."""
    import tempfile

    if video is None:
        return None
    folder = video.parent
    if video.suffix.lower() != ".mp4":
        raise typer.BadParameter(f"{video}: the video is written as MP4; name it something.mp4")
    if not folder.exists():
        raise typer.BadParameter(f"{folder}: no such folder")
    if not folder.is_dir():
        raise typer.BadParameter(f"{folder} is a file, not a folder")
    if video.is_dir():
        raise typer.BadParameter(f"{video} is a folder; name a file in it")
    try:
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as e:
        raise typer.BadParameter(f"cannot write in {folder} ({e.strerror or e})") from None
    return video


@app.command()
def enjoy(
    experiment: Annotated[str, typer.Argument(help="Experiment id (relative to train_dir) or folder.")],
    train_dir: TrainDirOpt = None,
    checkpoint: Annotated[str, typer.Option("--checkpoint", "-c", help="latest, best, or a file.")] = "latest",
    policy: Annotated[int, typer.Option("--policy", min=0, help="Which policy plays.")] = 0,
    agent: Annotated[int, typer.Option("--agent", min=0, help="Which seat to watch in a multi-agent env.")] = 0,
    env: Annotated[str | None, typer.Option("--env", help="Play another env of the experiment's family, e.g. a "
                                            "scripted opponent's (default: the one it trained in).")] = None,
    episodes: Annotated[int, typer.Option("--episodes", "-n", min=0, help="Episodes to play; 0 plays on.")] = 5,
    deterministic: Annotated[bool, typer.Option("--deterministic", help="Take the most likely action.")] = False,
    video: Annotated[Path | None, typer.Option("--video", callback=_video_path,
                                               help="Write the episodes to this MP4 file.")] = None,
    fps: Annotated[float | None, typer.Option("--fps", min=1.0, help="Frames a second to play and record at "
                                              "(default: the env's real time, 35 for Doom).")] = None,
    no_render: Annotated[bool, typer.Option("--no-render", help="Do not draw frames; play as fast as it can.")] = False,
) -> None:
    """Play a checkpoint: print each episode's return, draw its frames here, optionally record an MP4."""
    from sampler.experiment.folders import find_experiment, resolve_train_dir
    from sftui.watch import enjoy as play

    folder = find_experiment(experiment, resolve_train_dir(train_dir))
    render = not no_render and sys.stdout.isatty()
    try:
        play(folder, policy=policy, checkpoint=checkpoint, episodes=episodes, deterministic=deterministic,
             video=video, fps=fps, render=render, echo=typer.echo, agent=agent, env=env)
    except KeyboardInterrupt:  # during start-up; the play loop handles its own
        raise typer.Exit(130) from None
    except OSError as e:  # e.g. the video's disk filled up while playing
        typer.echo(f"sftui: enjoy stopped: {e.filename + ': ' if e.filename else ''}{e.strerror or e}", err=True)
        raise typer.Exit(2) from None


@app.command()
def serve(
    train_dir: TrainDirOpt = None,
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Local port to listen on.")] = 8765,
) -> None:
    """Serve the app in a browser on localhost; prints a URL with a random token."""
    from sampler.experiment.folders import resolve_train_dir
    from sftui.app.serve import serve as serve_app

    serve_app(resolve_train_dir(train_dir), port)


app.add_typer(control_app)
app.add_typer(sweep_app, name="sweep")


@app.command("tb")
def tensorboard(
    patterns: Annotated[list[str], typer.Argument(help="Experiment ids or wildcards, e.g. 'cartpole_lr/*seed_1*'.")],
    train_dir: TrainDirOpt = None,
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="TensorBoard's port (localhost only).")]
    = 6006,
) -> None:
    """TensorBoard, bound to localhost, over the experiments whose ids match the patterns."""
    import fnmatch
    import subprocess

    from sampler.experiment.folders import list_experiments, resolve_train_dir

    root = resolve_train_dir(train_dir)
    chosen = [e for e in list_experiments(root) if any(fnmatch.fnmatch(e.id, p) for p in patterns)
              and (e.path / "tb").is_dir()]
    if not chosen:
        typer.echo(f"sftui: no experiment with TensorBoard logs under {root} matches {' '.join(patterns)}; "
                   "`sftui ls` lists them", err=True)
        raise typer.Exit(2)
    spec = ",".join(f"{e.id}:{e.path / 'tb'}" for e in chosen)
    typer.echo(f"TensorBoard over {len(chosen)} experiment(s): http://127.0.0.1:{port}/")
    code = subprocess.call([sys.executable, "-m", "tensorboard.main", "--logdir_spec", spec, "--host", "127.0.0.1",
                            "--port", str(port)])
    raise typer.Exit(code)


def _command_path(args: list[str]) -> str:
    """`sftui sweep run`: the deepest command args name, for the errors click raises without a context."""
    command, path = typer.main.get_command(app), ["sftui"]
    for arg in args:
        if arg.startswith("-"):
            continue
        command = getattr(command, "commands", {}).get(arg)
        if command is None:
            break
        path.append(arg)
    return " ".join(path)


def main() -> None:
    """Runs the CLI; a usage mistake or a user-facing error is one line on stderr and its exit code."""
    from sampler.errors import SftuiError

    try:
        # `sftui` in messages and help also under `python -m sftui`; typer.Exit comes back as its code, Ctrl+C as 130
        code = app(prog_name="sftui", standalone_mode=False)
    except SftuiError as e:
        typer.echo(f"sftui: {e}", err=True)
        sys.exit(e.exit_code)
    except typer.TyperException as e:  # click's usage errors (missing argument, bad value, unknown command)
        ctx = getattr(e, "ctx", None)
        where = ctx.command_path if ctx is not None else _command_path(sys.argv[1:])
        typer.echo(f"{where}: {e.format_message()} (see {where} --help)", err=True)
        sys.exit(e.exit_code)
    except typer.Abort:
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
