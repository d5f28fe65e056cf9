"""What evaluation during training costs: training FPS with evaluation off and on, one run after the other.

    python bench/evaluation.py                                   # CartPole 1M and doom_basic 600k frames, ~8 minutes
    python bench/evaluation.py --rows doom_basic --every 200000 --episodes 10 --repeats 2

Each row trains through the real CLI with its family defaults, first without evaluation, then with
`run.eval_every_env_steps` and `run.eval_episodes`; the runs alternate `--repeats` times. FPS is the run's env
frames over its training time (summary.json: start-up and the stop left out, so the final evaluation at
the budget is not in it). The evaluations' own seconds (wall and the evaluation process's CPU), the final one
included, come from the log.
Not a test: these machines are noisy, so compare the ratios of one run of this script.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ROWS = {"gym_CartPole-v1": 1_000_000, "doom_basic": 600_000}


def train(env: str, frames: int, train_dir: Path, name: str, evaluation: list[str]) -> tuple[float, list[tuple]]:
    command = [sys.executable, "-m", "sftui", "train", env, "-e", name, "--train-dir", str(train_dir),
               "--set", f"run.train_for_env_steps={frames}", "--set", "run.seed=1", *evaluation]
    subprocess.run(command, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    summary = json.loads((train_dir / name / "summary.json").read_text())
    log = (train_dir / name / "log.txt").read_text()
    seconds = [(float(wall), float(cpu)) for wall, cpu in
               re.findall(r"evaluation of policy \d+ at .* episodes \(([\d.]+) s, ([\d.]+) s CPU\)", log)]
    return summary["env_frames"] / summary["elapsed_sec"], seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    parser.add_argument("--every", type=int, default=200_000, help="run.eval_every_env_steps")
    parser.add_argument("--episodes", type=int, default=10, help="run.eval_episodes")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    evaluation = ["--set", f"run.eval_every_env_steps={args.every}", "--set", f"run.eval_episodes={args.episodes}"]
    table = []
    with tempfile.TemporaryDirectory() as tmp:
        for env in args.rows:
            off, on, seconds = [], [], []
            for repeat in range(args.repeats):
                off.append(train(env, ROWS[env], Path(tmp), f"{env}-off-{repeat}", [])[0])
                fps, took = train(env, ROWS[env], Path(tmp), f"{env}-on-{repeat}", evaluation)
                on.append(fps)
                seconds += took
            off_fps, on_fps = statistics.fmean(off), statistics.fmean(on)
            took = (f"{len(seconds)} x {statistics.fmean(w for w, _ in seconds):.1f} s "
                    f"({statistics.fmean(c for _, c in seconds):.1f} s CPU)") if seconds else "none"
            table.append((env, f"{ROWS[env]:,}", f"{off_fps:,.0f}", f"{on_fps:,.0f}", f"{1 - on_fps / off_fps:+.1%}",
                          took))
    header = ("env", "frames", "FPS without", f"FPS with (every {args.every:,}, {args.episodes} episodes)",
              "slower by", "evaluations")
    widths = [max(len(r[i]) for r in [header, *table]) for i in range(len(header))]
    for row in [header, tuple("-" * w for w in widths), *table]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))


if __name__ == "__main__":
    main()
