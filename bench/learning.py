"""Learning across env families and seeds: sftui's defaults, side by side with Sample Factory 2.1.1.

    python bench/learning.py --tier ci                     # 1 seed, sftui only, about 5 minutes (CI's slow checks)
    python bench/learning.py --tier quick                  # 3 seeds, both systems, about an hour
    python bench/learning.py --tier full --resume          # 1 seed, the long rows; runs in parts
    python bench/learning.py --tier quick --rows gym_CartPole-v1 --seeds 1 2 --systems sftui

Every run goes through the real CLI (`sftui train`; Sample Factory's own training entry points), one at a time.
Curves are read from each run's TensorBoard scalars (sftui: reward/episode_return, Sample Factory:
reward/reward), both the mean return of recent episodes, against env frames and wall time since the run's
command started. Sample Factory runs from a venv of its own (`--sf-python`, default ../sfvenv/bin/python next to
the repository; `pip install sample-factory==2.1.1` there), never from this project's environment.

Per row and system: the seeds that reached the threshold, the frames and seconds to it (mean +- std over
those seeds), the return at the budget, the mean of the last 20% of the run, and the wall time; with both
systems, the return each had at the same wall time (the shorter system's mean wall time). The table is printed;
bench/results/learning-<tier>.json keeps it with every run's curve and commit, and learning-<tier>.png draws
the curves (mean and min..max over seeds, frames on x; needs the `bench` extra, matplotlib).
Not a test: these machines are noisy, so compare wall times taken in one run of this script.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


@dataclass(frozen=True)
class Row:
    name: str  # the row's label: the env, or env@variant
    env: str  # sftui's env name
    tier: str  # ci rows are in every tier; quick rows in quick and full; full rows only in full
    frames: int
    threshold: float | None  # None: Sample Factory's return at the budget, measured in the same run
    sustain: bool = False  # the last 20% of the run must average the threshold too
    sets: tuple[str, ...] = ()  # sftui settings of the row (beyond the family defaults)
    sf: tuple[str, ...] | None = None  # Sample Factory: (entry, *args); None: sftui only
    sf_reward_scale: float = 1.0  # Sample Factory's env scales this env's rewards: its curve is divided back


# Sample Factory with its own defaults for each env, at sftui's workers x envs. Its classic-control settings are
# the ones its gym example documents for CartPole; its continuous-control ones are its MuJoCo defaults.
SF_CLASSIC = ("--use_rnn=False", "--policy_workers_per_policy=2", "--recurrence=1", "--with_vtrace=False",
              "--batch_size=512", "--reward_scale=0.1")
SF_GYM_2x16 = ("--num_workers=2", "--num_envs_per_worker=16")

ROWS = [
    Row("gym_CartPole-v1", "gym_CartPole-v1", "ci", 1_000_000, 475, sustain=True,
        sf=("classic:CartPole-v1", *SF_CLASSIC, *SF_GYM_2x16)),
    Row("doom_basic", "doom_basic", "ci", 400_000, 60,
        sf=("sf_examples.vizdoom.train_vizdoom", "--env=doom_basic", "--num_workers=2", "--num_envs_per_worker=8"),
        sf_reward_scale=0.01),
    # Sample Factory's doom_basic settings where they differ from sftui's: rollout, recurrence, batch, and its
    # normalize_input, which for Doom normalizes every pixel with running statistics (model.normalize_images)
    Row("doom_basic@sf-settings", "doom_basic", "quick", 400_000, 60,
        sets=("appo.rollout=32", "appo.recurrence=32", "appo.batch_size=1024", "model.normalize_images=true")),
    Row("gym_Acrobot-v1", "gym_Acrobot-v1", "quick", 500_000, -100,
        sf=("classic:Acrobot-v1", *SF_CLASSIC, *SF_GYM_2x16)),
    Row("gym_Pendulum-v1", "gym_Pendulum-v1", "quick", 1_000_000, -250,
        sf=("mujoco:Pendulum-v1", *SF_GYM_2x16, "--worker_num_splits=1")),
    Row("gym_Hopper-v4", "gym_Hopper-v4", "full", 1_000_000, None,
        sf=("sf_examples.mujoco.train_mujoco", "--env=mujoco_hopper", *SF_GYM_2x16, "--worker_num_splits=1")),
    Row("gym_Walker2d-v4", "gym_Walker2d-v4", "full", 1_000_000, None,
        sf=("sf_examples.mujoco.train_mujoco", "--env=mujoco_walker", *SF_GYM_2x16, "--worker_num_splits=1")),
    Row("doom_defend_the_center", "doom_defend_the_center", "full", 1_000_000, None,
        sf=("sf_examples.vizdoom.train_vizdoom", "--env=doom_defend_the_center", "--num_workers=2",
            "--num_envs_per_worker=8")),
    Row("doom_health_gathering_supreme", "doom_health_gathering_supreme", "full", 5_000_000, None),
    Row("atari_pong", "atari_pong", "full", 10_000_000, 18),
]
TIERS = {"ci": ("ci",), "quick": ("ci", "quick"), "full": ("full",)}
SEEDS = {"ci": [1], "quick": [1, 2, 3], "full": [1]}
SF_MAX_FRAMES_FULL = 1_000_000  # the full tier runs Sample Factory only on rows up to this budget

@dataclass
class Run:
    system: str  # sftui | sample-factory
    row: str
    seed: int
    frames: int
    command: list[str]
    commit: str
    wall_sec: float = 0.0
    returncode: int = 0
    curve: list[tuple[int, float, float]] = field(default_factory=list)  # (env frames, seconds, mean return)

    def to_dict(self) -> dict:
        return self.__dict__


def commit() -> str:
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True,
                           text=True).stdout.strip()
    return head.stdout.strip() + ("+dirty" if dirty else "")


PAUSE_GAP_SEC = 120.0  # a gap this long between two points of one curve is a run stopped and resumed later


def read_curve(tb_dir: Path, tag: str, started: float) -> tuple[list[tuple[int, float, float]], float]:
    """(frames, seconds since `started`, return) per point, and the seconds left out: a run trained in parts
    (stopped, then resumed by a later --resume) has a gap between its parts, which is not training time."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    if not tb_dir.is_dir():
        return [], 0.0
    events = EventAccumulator(str(tb_dir), size_guidance={"scalars": 0})
    events.Reload()
    if tag not in events.Tags().get("scalars", []):
        return [], 0.0
    points = sorted(events.Scalars(tag), key=lambda e: e.wall_time)
    curve, paused, previous = [], 0.0, started
    for e in points:
        if e.wall_time - previous > PAUSE_GAP_SEC and curve:
            paused += e.wall_time - previous
        previous = e.wall_time
        curve.append((int(e.step), round(e.wall_time - started - paused, 2), float(e.value)))
    return curve, paused


def interrupted(train_dir: Path, name: str) -> bool:
    """Whether sftui's run of this name was stopped before its budget (Ctrl+C, SIGTERM): --resume goes on
    with it rather than starting over."""
    summary = train_dir / name / "summary.json"
    try:
        return json.loads(summary.read_text()).get("state") in ("stopped", "crashed")
    except (OSError, ValueError):
        return False


def train(system: str, row: Row, seed: int, work: Path, sf_python: str, resume: bool = False) -> Run | None:
    """One run; None where an sftui run was stopped before its budget (its folder stays, for --resume)."""
    name = f"{row.name.replace('@', '-')}-s{seed}"
    train_dir = work / system
    parts = work / f"{system}-{name}.started"  # when the first part of a run trained in parts began
    if system == "sftui":
        going_on = resume and interrupted(train_dir, name) and parts.exists()
        command = [sys.executable, "-m", "sftui", "train", row.env, "-e", name, "--train-dir", str(train_dir),
                   *([] if going_on else ["--restart"]),
                   "--set", f"run.train_for_env_steps={row.frames}", "--set", f"run.seed={seed}"]
        for setting in row.sets:
            command += ["--set", setting]
        tb, tag = train_dir / name / "tb" / "p0", "reward/episode_return"
    else:
        entry, *args = row.sf
        launch = [str(ROOT / "bench" / "sf_gym.py"), entry] if ":" in entry else ["-m", entry]
        command = [sf_python, *launch, *args, f"--experiment={name}", f"--train_dir={train_dir}", f"--seed={seed}",
                   f"--train_for_env_steps={row.frames}", "--device=cpu", "--experiment_summaries_interval=2",
                   "--restart_behavior=overwrite"]
        tb, tag = train_dir / name / ".summary" / "0", "reward/reward"
    run = Run(system, row.name, seed, row.frames, command, commit())
    log = work / f"{system}-{name}.log"
    started = time.time()
    if system == "sftui" and command.count("--restart") == 0:
        started, before = json.loads(parts.read_text())
        print(f"  going on with {name}, stopped after {before:.0f} s of training", flush=True)
    elif system == "sftui":
        parts.write_text(json.dumps([started, 0.0]))
    env = {**os.environ, "PYTHONPATH": str(ROOT)} if system == "sftui" else None  # this checkout's sftui
    with open(log, "a" if system == "sftui" and "--restart" not in command else "w") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            run.returncode = process.wait()
        except KeyboardInterrupt:  # Ctrl+C reached the run too: let it save its checkpoint
            run.returncode = process.wait()
    if system == "sftui" and interrupted(train_dir, name):
        trained = json.loads((train_dir / name / "summary.json").read_text()).get("elapsed_sec", 0.0)
        parts.write_text(json.dumps([started, trained]))
        print(f"  {name} stopped after {trained:.0f} s of training; `--resume` goes on with it", file=sys.stderr)
        return None
    parts.unlink(missing_ok=True)
    run.curve, paused = read_curve(tb, tag, started)
    run.wall_sec = round(time.time() - started - paused, 1)
    if system == "sample-factory" and row.sf_reward_scale != 1.0:
        run.curve = [(f, t, round(r / row.sf_reward_scale, 3)) for f, t, r in run.curve]
    if run.returncode != 0 or not run.curve:
        print(f"  {system} {name}: exit {run.returncode}, {len(run.curve)} points; see {log}", file=sys.stderr)
    return run


# ---- what a run shows ------------------------------------------------------------------------------------------

def first_reach(run: Run, threshold: float) -> tuple[int, float] | None:
    return next(((f, t) for f, t, r in run.curve if f <= run.frames and r >= threshold), None)


def at_budget(run: Run) -> float | None:
    within = [r for f, _, r in run.curve if f <= run.frames * 1.02]  # the last report may pass the budget a little
    return within[-1] if within else None


def last_fifth(run: Run) -> float | None:
    tail = [r for f, _, r in run.curve if run.frames * 0.8 <= f <= run.frames * 1.02]
    return statistics.fmean(tail) if tail else None


def at_time(run: Run, seconds: float) -> float | None:
    before = [r for _, t, r in run.curve if t <= seconds]
    return before[-1] if before else None


def meets(run: Run, row: Row, threshold: float | None) -> bool:
    if threshold is None or first_reach(run, threshold) is None:
        return False
    return not row.sustain or (last_fifth(run) or float("-inf")) >= threshold


def spread(values: list[float | None], digits: int = 1) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    mean = statistics.fmean(values)
    std = statistics.pstdev(values) if len(values) > 1 else 0.0
    return f"{mean:,.{digits}f} ± {std:,.{digits}f}" if len(values) > 1 else f"{mean:,.{digits}f}"


def row_threshold(row: Row, runs: list[Run]) -> float | None:
    if row.threshold is not None:
        return row.threshold
    sf = [at_budget(r) for r in runs if r.system == "sample-factory" and at_budget(r) is not None]
    return statistics.fmean(sf) if sf else None


def summarize(row: Row, runs: list[Run]) -> list[dict]:
    threshold = row_threshold(row, runs)
    systems = [s for s in ("sftui", "sample-factory") if any(r.system == s for r in runs)]
    wall = {s: statistics.fmean(r.wall_sec for r in runs if r.system == s) for s in systems}
    equal_time = min(wall.values()) if len(systems) > 1 else None
    lines = []
    for system in systems:
        mine = [r for r in runs if r.system == system]
        reached = [first_reach(r, threshold) for r in mine] if threshold is not None else []
        reached = [x for x in reached if x is not None]
        lines.append({
            "row": row.name, "system": system, "budget": row.frames, "threshold": threshold,
            "met": sum(meets(r, row, threshold) for r in mine), "seeds": len(mine),
            "frames_to_threshold": spread([f for f, _ in reached], 0),
            "seconds_to_threshold": spread([t for _, t in reached]),
            "at_budget": spread([at_budget(r) for r in mine]),
            "last_20pct": spread([last_fifth(r) for r in mine]),
            "last_20pct_per_seed": [None if last_fifth(r) is None else round(last_fifth(r), 1) for r in mine],
            "wall_sec": spread([r.wall_sec for r in mine], 0),
            "equal_time_sec": equal_time,
            "at_equal_time": spread([at_time(r, equal_time) for r in mine]) if equal_time else "-",
            "settings": " ".join(row.sets) if system == "sftui" else " ".join(row.sf[1:]),
        })
    return lines


def print_table(lines: list[dict]) -> None:
    header = ("row", "system", "budget", "threshold", "met", "frames to thr", "s to thr", "at budget",
              "last 20%", "per seed", "wall s", "at equal time")
    rows = [(x["row"], x["system"], f"{x['budget']:,}", "-" if x["threshold"] is None else f"{x['threshold']:g}",
             f"{x['met']}/{x['seeds']}", x["frames_to_threshold"], x["seconds_to_threshold"], x["at_budget"],
             x["last_20pct"], " ".join("-" if v is None else f"{v:g}" for v in x["last_20pct_per_seed"]),
             x["wall_sec"], f"{x['at_equal_time']} @ {x['equal_time_sec']:.0f} s" if x["equal_time_sec"] else "-")
            for x in lines]
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)))
    for x in lines:
        if x["settings"]:
            print(f"{x['row']} / {x['system']}: {x['settings']}")


def plot(rows: list[Row], runs: list[Run], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import numpy as np
    except ImportError:
        print("no PNG: matplotlib is missing (pip install -e '.[bench]')", file=sys.stderr)
        return
    shown = [row for row in rows if any(r.row == row.name and r.curve for r in runs)]
    if not shown:
        return
    columns = min(3, len(shown))
    lines = (len(shown) + columns - 1) // columns
    figure, axes = plt.subplots(lines, columns, figsize=(5 * columns, 3.6 * lines), squeeze=False)
    for ax, row in zip(axes.flat, shown, strict=False):
        for system, color in (("sftui", "tab:blue"), ("sample-factory", "tab:orange")):
            curves = [r.curve for r in runs if r.row == row.name and r.system == system and r.curve]
            if not curves:
                continue
            grid = np.linspace(0, row.frames, 101)
            ys = np.array([np.interp(grid, [c[0] for c in curve], [c[2] for c in curve], left=np.nan)
                           for curve in curves])
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # grid points before a seed's first report
                mean, low, high = np.nanmean(ys, axis=0), np.nanmin(ys, axis=0), np.nanmax(ys, axis=0)
            ax.plot(grid, mean, color=color, label=f"{system} ({len(curves)} seed{'s' * (len(curves) > 1)})")
            if len(curves) > 1:
                ax.fill_between(grid, low, high, color=color, alpha=0.2)
        threshold = row_threshold(row, [r for r in runs if r.row == row.name])
        if threshold is not None:
            ax.axhline(threshold, color="gray", linestyle=":", linewidth=1)
        ax.set_title(row.name, fontsize=10)
        ax.set_xlabel("env frames")
        ax.xaxis.set_major_formatter(lambda x, _: f"{x / 1e6:g}M" if x >= 1e6 else f"{x / 1e3:g}k")
        ax.set_ylabel("mean episode return")
        ax.legend(fontsize=8, loc="lower right")
    for ax in list(axes.flat)[len(shown):]:
        ax.axis("off")
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    print(f"curves: {path}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tier", choices=sorted(TIERS), default="quick")
    parser.add_argument("--rows", nargs="+", help="only these rows (by name)")
    parser.add_argument("--seeds", nargs="+", type=int, help="default: ci 1 seed, quick 3, full 1")
    parser.add_argument("--systems", nargs="+", choices=["sftui", "sample-factory"],
                        help="default: sftui only for ci, both otherwise")
    parser.add_argument("--sf-python", default=str(ROOT.parent / "sfvenv" / "bin" / "python"),
                        help="the Python of a venv with sample-factory==2.1.1")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the JSON and PNG go")
    parser.add_argument("--work", type=Path, help="where the runs train (default: <out>/runs-<tier>)")
    parser.add_argument("--frames", type=int, help="every row's budget (a smoke run); thresholds stay")
    parser.add_argument("--resume", action="store_true", help="reuse the runs of an earlier call with these settings")
    args = parser.parse_args()

    rows = [r for r in ROWS if r.tier in TIERS[args.tier] and (not args.rows or r.name in args.rows)]
    if not rows:
        parser.error(f"no row of tier {args.tier} is named {' '.join(args.rows)}")
    if args.frames:
        rows = [dataclasses.replace(r, frames=args.frames) for r in rows]
    seeds = args.seeds or SEEDS[args.tier]
    systems = args.systems or (["sftui"] if args.tier == "ci" else ["sftui", "sample-factory"])
    if "sample-factory" in systems and not Path(args.sf_python).exists():
        parser.error(f"--sf-python {args.sf_python}: no such Python; make a venv with sample-factory==2.1.1 there, "
                     "or pass --systems sftui")
    work = args.work or args.out / f"runs-{args.tier}"
    work.mkdir(parents=True, exist_ok=True)
    done_file = work / "runs.jsonl"
    done = {}
    if args.resume and done_file.exists():
        for line in done_file.read_text().splitlines():
            run = Run(**json.loads(line))
            done[(run.system, run.row, run.seed, run.frames)] = run

    runs = []
    for row in rows:
        for system in systems:
            if system == "sample-factory" and (row.sf is None or (args.tier == "full" and
                                                                  row.frames > SF_MAX_FRAMES_FULL)):
                continue
            for seed in seeds:
                key = (system, row.name, seed, row.frames)
                if key in done:
                    runs.append(done[key])
                    continue
                print(f"{system:>14}  {row.name}  seed {seed}  {row.frames:,} frames ...", flush=True)
                run = train(system, row, seed, work, args.sf_python, resume=args.resume)
                if run is None:
                    return 130  # stopped by hand; --resume goes on from here
                with open(done_file, "a") as f:
                    f.write(json.dumps(run.to_dict()) + "\n")
                runs.append(run)

    lines = [line for row in rows for line in summarize(row, [r for r in runs if r.row == row.name])]
    print()
    print_table(lines)
    args.out.mkdir(parents=True, exist_ok=True)
    result = args.out / f"learning-{args.tier}.json"
    result.write_text(json.dumps({"tier": args.tier, "commit": commit(), "cores": os.cpu_count(), "rows": lines,
                                  "runs": [r.to_dict() for r in runs]}, indent=1) + "\n")
    print(f"results: {result}")
    plot(rows, runs, args.out / f"learning-{args.tier}.png")
    # a row passes when most of its seeds meet the threshold: 1 of 1, 2 of 3
    failed = [x for x in lines if x["system"] == "sftui" and x["threshold"] is not None and x["met"] * 2 <= x["seeds"]]
    for x in failed:
        print(f"below threshold: {x['row']} met it in {x['met']} of {x['seeds']} seeds", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
