"""What the dashboard costs: its update time and CPU with 8 policies x 16 workers, and a real run's FPS.

    python bench/dashboard.py                 # about 5 minutes
    python bench/dashboard.py --skip-run      # the fake-stream part only

1. A fake RunStatus stream of 8 policies and 16 workers drives the dashboard at 2 updates a second
   (headless, real rendering): the time per update at the 95th percentile and the app's CPU use.
2. A real doom_basic run: training FPS in alternating spans with no dashboard and with `sftui attach`
   running in a 160x48 tmux terminal (headless in this process when there is no tmux).

Not a test: compare figures taken in one run of this script.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sampler.status import Event, Lag, PolicyStatus, RunStatus, WorkerStatus  # noqa: E402
from sftui.app.app import SftuiApp  # noqa: E402
from sftui.app.dashboard import DashboardScreen  # noqa: E402
from sftui.app.sources import FakeSource, LiveSource  # noqa: E402


def big_status(step: int, policies: int = 8, workers: int = 16) -> RunStatus:
    rng = np.random.default_rng(step)
    return RunStatus(
        experiment="bench", state="running", env_frames=step * 10_000, elapsed_sec=step * 0.5,
        fps={"10": 20_000 + rng.normal() * 500, "60": 20_000.0, "300": 19_000.0}, budget_env_frames=10**8,
        budget_seconds=1e10,
        policies=[PolicyStatus(policy_id=p, version=step, episode_return=float(rng.normal() * 10 + step),
                               episode_length=200.0, episodes=step * 3, best_return=float(step),
                               samples_per_sec=2_500.0,
                               learning_rate=1e-4, lag=Lag(0, 1.5, 4, [3, 10, 5, 2, 0, 0, 0, 0, 0, 0]),
                               losses={"policy_loss": -0.01, "value_loss": 0.3, "entropy_loss": -1.2},
                               hyperparameters={"gamma": 0.99, "learning_rate": 1e-4, "ppo_clip_ratio": 0.1},
                               metrics={"entropy": 1.1, "kl": 0.001, "grad_norm": 0.5, "episode/kills": 3.0})
                  for p in range(policies)],
        workers=[WorkerStatus(name=f"rollout_{i}", kind="rollout", pid=1000 + i, state="running",
                              cpu_percent=float(rng.uniform(40, 90)), steps=step * 100,
                              steps_per_sec=float(rng.uniform(900, 1100))) for i in range(workers)],
        events=[Event(time.time(), "checkpoint", f"saved ckpt_{step}")],
    )


async def fake_stream(seconds: float) -> tuple[float, float]:
    """(p95 ms per update, app CPU % of one core) while 2 statuses a second arrive."""
    source = FakeSource()
    app = SftuiApp(source, "bench")
    times: list[float] = []
    async with app.run_test(size=(200, 60)) as pilot:
        screen = app.screen
        assert isinstance(screen, DashboardScreen)
        original = screen.render_latest

        def timed_render() -> None:
            start = time.perf_counter()
            original()
            times.append(time.perf_counter() - start)

        screen.render_latest = timed_render
        cpu0, wall0 = time.process_time(), time.monotonic()
        step = 0
        while time.monotonic() - wall0 < seconds:
            step += 1
            source.push(big_status(step))
            timed_render()
            await pilot.pause(0.5)
        cpu = (time.process_time() - cpu0) / (time.monotonic() - wall0)
    return float(np.percentile(times, 95) * 1e3), cpu * 100


def fps_between(folder: Path, start: float, end: float) -> float:
    rows = [json.loads(line) for line in (folder / "status.jsonl").read_text().splitlines() if line.strip()]
    inside = [r for r in rows if start <= r["started_at"] + r["elapsed_sec"] <= end] or rows[-2:]
    first, last = inside[0], inside[-1]
    span = last["elapsed_sec"] - first["elapsed_sec"]
    return (last["env_frames"] - first["env_frames"]) / span if span > 0 else 0.0


async def attached_headless(folder: Path, seconds: float) -> None:
    app = SftuiApp(LiveSource(folder), "bench")
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause(seconds)


def cpu_seconds(pid: int) -> float:
    try:
        procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
        return sum(sum(p.cpu_times()[:2]) for p in procs)
    except psutil.Error:
        return 0.0


def tmux_attached(folder: Path, seconds: float, keys: tuple[str, ...] = (), settle: float = 3.0) -> float:
    """`sftui attach` on the run in a real 160x48 terminal under tmux for `seconds` (what a user runs:
    rendering, terminal output and all). `keys` are typed 3 s in; the CPU of the app and its children is
    measured from `settle` seconds after that, in % of one core."""
    session = f"sftui-bench-{os.getpid()}"
    command = shlex.join([sys.executable, "-m", "sftui", "attach", folder.name, "--train-dir", str(folder.parent)])
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "160", "-y", "48", command], check=True)
    try:
        pane = int(subprocess.run(["tmux", "display-message", "-p", "-t", session, "#{pane_pid}"],
                                  capture_output=True, text=True, check=True).stdout)
        if keys:
            time.sleep(3.0)  # the app starts
            subprocess.run(["tmux", "send-keys", "-t", session, *keys], check=True)
        time.sleep(settle)
        cpu0, wall0 = cpu_seconds(pane), time.monotonic()
        time.sleep(max(1.0, seconds - settle - (3.0 if keys else 0.0)))
        return (cpu_seconds(pane) - cpu0) / (time.monotonic() - wall0) * 100
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], stderr=subprocess.DEVNULL)


def stop_run(folder: Path) -> None:
    """`sftui stop` the benchmark's run and wait until it is gone."""
    subprocess.run([sys.executable, "-m", "sftui", "stop", folder.name, "--train-dir", str(folder.parent)], cwd=ROOT,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(120):
        if not (folder / "run.json").exists():
            break
        time.sleep(0.5)


def attached_for(folder: Path, seconds: float) -> tuple[str, float]:
    """Attach the dashboard for `seconds`: under tmux when there is one, else headless in this process.
    Returns how, and the app's CPU use in % of one core (tmux only)."""
    if shutil.which("tmux") is None:
        asyncio.run(attached_headless(folder, seconds))
        return "headless", float("nan")
    return "tmux 160x48", tmux_attached(folder, seconds)


def real_run(rounds: int, seconds: float, warmup: float) -> tuple[list[float], list[float], str, list[float]]:
    """doom_basic training FPS in alternating spans without and with the dashboard attached (ABAB..., so
    a drift of the run's own FPS, e.g. as its episodes get shorter, falls on both sides alike)."""
    with tempfile.TemporaryDirectory() as train_dir:
        folder = Path(train_dir) / "bench"
        subprocess.run([sys.executable, "-m", "sftui", "train", "doom_basic", "-e", "bench", "--train-dir", train_dir,
                        "--detach"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        without, with_app, how, cpus = [], [], "", []
        try:
            time.sleep(warmup)
            for _ in range(rounds):
                t0 = time.time()
                time.sleep(seconds)
                t1 = time.time()
                how, cpu = attached_for(folder, seconds)
                cpus.append(cpu)
                t2 = time.time()
                without.append(fps_between(folder, t0, t1))
                with_app.append(fps_between(folder, t1 + 2.0, t2))  # the app's start-up counts too, bar 2 s
            return without, with_app, how, cpus
        finally:
            stop_run(folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each span")
    parser.add_argument("--rounds", type=int, default=4, help="pairs of spans without / with the dashboard")
    parser.add_argument("--warmup", type=float, default=30.0)
    parser.add_argument("--skip-run", action="store_true")
    args = parser.parse_args()
    p95, cpu = asyncio.run(fake_stream(min(args.seconds, 30.0)))
    rows = [("fake stream, 8 policies x 16 workers", "update p95", f"{p95:.1f} ms"),
            ("", "app CPU", f"{cpu:.1f} % of one core")]
    if not args.skip_run:
        without, with_app, how, cpus = real_run(args.rounds, args.seconds, args.warmup)
        mean_without, mean_with = float(np.mean(without)), float(np.mean(with_app))
        spans = f"{args.rounds} x {args.seconds:.0f} s each"
        rows += [(f"doom_basic training ({spans})", "FPS without the dashboard",
                  f"{mean_without:,.0f}  ({' '.join(f'{x:,.0f}' for x in without)})"),
                 (f"dashboard: {how}", "FPS with the dashboard attached",
                  f"{mean_with:,.0f}  ({' '.join(f'{x:,.0f}' for x in with_app)})"),
                 ("", "app CPU while attached", f"{np.mean(cpus):.1f} % of one core"),
                 ("", "cost", f"{(1 - mean_with / mean_without):.1%}" if mean_without else "-")]
    print(f"{os.cpu_count()} cores")
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))


if __name__ == "__main__":
    main()
