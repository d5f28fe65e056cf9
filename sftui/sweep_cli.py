"""`sftui sweep run | status | stop`: many experiments from one sweep file (sampler/sweep.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from sftui.options import TrainDirOpt

sweep_app = typer.Typer(help="Sweeps: many experiments from one TOML file, run under train_dir/<sweep>/.")
SweepFile = Annotated[Path, typer.Argument(help="A sweep file (.toml, or .py with a SWEEP dict).")]


@sweep_app.command("run")
def sweep_run(
    file: SweepFile,
    train_dir: TrainDirOpt = None,
    max_parallel: Annotated[int | None, typer.Option("--max-parallel", min=1, help="Experiments running at once "
                                                     "(processes: default 1; ray: default as many as fit).")] = None,
    num_gpus: Annotated[int, typer.Option("--num-gpus", min=0, help="GPUs to share out (0: none).")] = 0,
    experiments_per_gpu: Annotated[int, typer.Option("--experiments-per-gpu", min=1,
                                                     help="Experiments sharing one GPU.")] = 1,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List the experiments and check every config.")] = False,
    backend: Annotated[str, typer.Option("--backend", help="processes (this machine) or ray (a Ray cluster).")]
    = "processes",
    ray_address: Annotated[str | None, typer.Option("--ray-address", help="The Ray cluster (default $RAY_ADDRESS; "
                                                    "neither: a local Ray instance).")] = None,
    cpus_per_experiment: Annotated[float | None, typer.Option("--cpus-per-experiment", min=0.1,
                                                              help="Ray: CPUs each experiment asks for.")] = None,
) -> None:
    """Run a sweep (finished experiments are skipped, the others start or resume)."""
    from sampler.experiment.folders import resolve_train_dir
    from sampler.sweeps import spec as sweep
    from sampler.sweeps.local import ProcessesBackend

    if backend not in ("processes", "ray"):
        typer.echo(f"sftui: --backend {backend}: use processes or ray", err=True)
        raise typer.Exit(2)
    described = sweep.load(file)
    root = resolve_train_dir(train_dir)
    if dry_run:
        sweep.check(described)
        typer.echo(f"sweep {described.name}: {len(described.experiments)} experiments of {described.env} under "
                   f"{root / described.name}; every config checked")
        for experiment in described.experiments:
            typer.echo(f"  {experiment.name}  {json.dumps(experiment.overrides)}")
        return
    import signal

    # Ctrl+C (or a SIGINT sent by hand) stops the sweep even when this process was started with SIGINT ignored,
    # as a shell does for background jobs.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if backend == "ray":
        from sampler.sweeps.ray_cluster import RayBackend

        code = RayBackend(described, root, ray_address, max_parallel, cpus_per_experiment, experiments_per_gpu,
                          echo=typer.echo).run()
    else:
        code = ProcessesBackend(described, root, max_parallel or 1, num_gpus, experiments_per_gpu,
                                echo=typer.echo).run()
    raise typer.Exit(code)


@sweep_app.command("status")
def sweep_status(file: SweepFile, train_dir: TrainDirOpt = None) -> None:
    """One row per experiment of a sweep, best first: state, env frames, last and best return, time trained."""
    from sampler.experiment.folders import resolve_train_dir
    from sampler.sweeps import spec as sweep

    described = sweep.load(file)
    rows = sweep.status_rows(described, resolve_train_dir(train_dir))
    width = max(len("experiment"), *(len(r.name) for r in rows))

    def num(value):
        return "-" if value is None else f"{value:.2f}"

    typer.echo(f"sweep {described.name} ({len(rows)} experiments, best final return first)")
    typer.echo(f"{'experiment':<{width}}  {'state':<14} {'env frames':>12}  {'last':>8}  {'best':>8}  {'time':>8}")
    for r in rows:
        error = f"  {r.error}" if r.error and r.state == "failed" else ""
        typer.echo(f"{r.name:<{width}}  {r.state:<14} {r.env_frames:>12,}  {num(r.last_return):>8}  "
                   f"{num(r.best_return):>8}  {r.elapsed_sec:>7.0f}s{error}")


@sweep_app.command("stop")
def sweep_stop(file: SweepFile, train_dir: TrainDirOpt = None) -> None:
    """Stop a sweep's live runs (each saves a checkpoint; a later `sweep run` resumes them)."""
    from sampler.experiment.folders import resolve_train_dir
    from sampler.sweeps import spec as sweep
    from sampler.sweeps.local import live_folders, stop_live

    described = sweep.load(file)
    folders = live_folders(described, resolve_train_dir(train_dir))
    if not folders:
        typer.echo(f"sweep {described.name}: nothing is running")
        return
    stop_live(folders, typer.echo)
