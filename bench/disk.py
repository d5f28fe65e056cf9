"""Disk use of a training run, file by file: bytes written per hour of training, and what a day leaves on disk.

    python bench/disk.py                                  # doom_basic, 10 minutes
    python bench/disk.py --env gym_CartPole-v1 --minutes 5

Trains ENV through the real CLI with its family defaults for --minutes, measuring the experiment folder
every 30 s; prints, per file or folder, its size at the end, its growth per hour over the second half of
the run (start-up files and the first checkpoints left out), and whether it is bounded: a size that
stops growing (checkpoints rotate, status.jsonl thins itself past 16 MB) or one that grows with the run.
Not a test: the figures depend on the env's speed on this machine.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PARTS = ["status.jsonl", "summary.json", "log.txt", "tb", "checkpoints", "stacks", "policies", "pool"]
BOUNDED = {
    "status.jsonl": "under 16 MB: past it, every other line older than the last hour is dropped",
    "summary.json": "one status, rewritten",
    "checkpoints": "run.keep_checkpoints of them, plus best.pt",
    "stacks": "one small dump per worker",
    "policies": "hparams.json, and a line per hyperparameter change",
    "pool": "pool.max_members snapshots",
}


def size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="doom_basic")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--interval", type=float, default=30.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sftui-disk-") as tmp:
        folder = Path(tmp) / "disk"
        command = [sys.executable, "-m", "sftui", "train", args.env, "-e", "disk", "--train-dir", tmp,
                   "--set", "run.train_for_env_steps=10000000000"]
        proc = subprocess.Popen(command, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        samples = []
        started = time.monotonic()
        try:
            while time.monotonic() - started < args.minutes * 60:
                time.sleep(args.interval)
                summary = json.loads((folder / "summary.json").read_text())
                samples.append((summary["elapsed_sec"], summary["env_frames"], {p: size(folder / p) for p in PARTS}))
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=120)
    half = samples[len(samples) // 2]
    last = samples[-1]
    hours = (last[0] - half[0]) / 3600
    frames_per_hour = (last[1] - half[1]) / hours
    print(f"{args.env}: {args.minutes:.0f} min, {last[1]:,} env frames, {frames_per_hour:,.0f} frames per hour of "
          "training; growth measured over the second half\n")
    rows = [("file", "size at end", "MB per hour", "a day", "bounded")]
    for part in PARTS:
        grown = (last[2][part] - half[2][part]) / hours / 2**20
        day = "-" if part in BOUNDED else f"{grown * 24:,.0f} MB"
        rows.append((part, f"{last[2][part] / 2**20:,.2f} MB", f"{grown:,.2f}", day,
                     BOUNDED.get(part, "no: grows with the run")))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for i, row in enumerate(rows):
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
        if i == 0:
            print("  ".join("-" * w for w in widths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
