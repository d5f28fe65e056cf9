"""Mean episode return at chosen env-frame marks, and the wall time to get there, for any env.

    python bench/learning_curve.py doom_basic doom_defend_the_center --frames 1000000 --marks 400000 1000000
    python bench/learning_curve.py doom_basic --variants appo.precision=fp32 appo.precision=bf16

Each env trains once with its family defaults through the real process tree; the table is read from
the run's status.jsonl. Not a test: compare figures taken in one run of this script.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path


def train(env: str, frames: int, train_dir: str, variant: str | None) -> list[dict]:
    name = f"{env}-{len(list(Path(train_dir).iterdir()))}"
    command = [sys.executable, "-m", "sftui", "train", env, "-e", name, "--train-dir", train_dir,
               "--set", f"run.train_for_env_steps={frames}", "--set", "run.seed=0"]
    if variant:
        command += ["--set", variant]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    lines = (Path(train_dir) / name / "status.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def at_mark(statuses: list[dict], mark: int) -> dict | None:
    return next((s for s in statuses if s["env_frames"] >= mark), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("envs", nargs="+")
    parser.add_argument("--frames", type=int, default=1_000_000)
    parser.add_argument("--marks", type=int, nargs="+", default=[400_000, 1_000_000])
    parser.add_argument("--variants", nargs="+", default=[None], metavar="SECTION.KEY=VALUE",
                        help="train each env once per override, e.g. appo.precision=fp32 appo.precision=bf16")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as train_dir:
        for env in args.envs:
            for variant in args.variants:
                statuses = train(env, args.frames, train_dir, variant)
                for mark in args.marks:
                    status = at_mark(statuses, mark)
                    if status is None:
                        rows.append((env, variant or "defaults", f"{mark:,}", "not reached", "-", "-"))
                        continue
                    ret = status["policies"][0]["episode_return"]
                    fps = status["env_frames"] / status["elapsed_sec"] if status["elapsed_sec"] else 0.0
                    rows.append((env, variant or "defaults", f"{mark:,}", "-" if ret is None else f"{ret:.1f}",
                                 f"{status['elapsed_sec']:.0f} s", f"{fps:,.0f}"))
    header = ("env", "settings", "env frames", "mean return", "wall time", "FPS")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)))


if __name__ == "__main__":
    main()
