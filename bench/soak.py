"""A soak: what a long training run grows, on disk and in each of its processes.

    python bench/soak.py                                  # doom_basic, 60 minutes
    python bench/soak.py --env gym_CartPole-v1 --minutes 5

Trains ENV through the real CLI with its family defaults for --minutes, measuring every 30 s
- the experiment folder, file by file: its size at the end, its growth per hour over the second half of the
  run (start-up files and the first checkpoints left out), and whether it is bounded (a size that stops
  growing: checkpoints rotate, status.jsonl and tb/ thin their history) or grows with the run;
- each process of the run (supervisor, fork server, each worker by name, across restarts): resident memory,
  open files and the /dev/shm it maps, at the end of the first sixth of the run (after the warm-up) and at
  its end, with the growth per hour between the two; and /dev/shm as a whole.
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

import psutil

ROOT = Path(__file__).resolve().parents[1]
PARTS = ["status.jsonl", "summary.json", "log.txt", "tb", "checkpoints", "stacks", "policies", "pool"]
BOUNDED = {
    "status.jsonl": "under 16 MB: past it, every other line older than the last hour is dropped",
    "summary.json": "one status, rewritten",
    "tb": "about 32 MB a policy plus its last two hours: older event files thinned by half past 32 MB",
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


def shm_mapped(pid: int) -> int:
    """Bytes of the distinct /dev/shm files a process maps (also those already unlinked), by mapping size."""
    sizes: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/maps") as maps:
            for line in maps:
                fields = line.split(maxsplit=5)
                if len(fields) == 6 and fields[5].startswith("/dev/shm/"):
                    start, end = (int(x, 16) for x in fields[0].split("-"))
                    path = fields[5].strip()
                    sizes[path] = sizes.get(path, 0) + end - start
    except OSError:
        return 0
    return sum(sizes.values())


def processes(supervisor: int, folder: Path) -> dict[str, tuple[int, int, int]]:
    """Each process of the run by name, those sharing a name summed: (resident bytes, open files, /dev/shm bytes
    mapped)."""
    try:
        workers = {w["pid"]: w["name"] for w in json.loads((folder / "summary.json").read_text())["workers"]}
    except (OSError, ValueError, KeyError):
        workers = {}
    found = {}
    try:
        tree = [psutil.Process(supervisor), *psutil.Process(supervisor).children(recursive=True)]
    except psutil.NoSuchProcess:
        return found
    for proc in tree:
        try:
            name = "supervisor" if proc.pid == supervisor else workers.get(proc.pid) or proc_role(proc)
            measured = (proc.memory_info().rss, proc.num_fds(), shm_mapped(proc.pid))
            # several processes of one role (an env's engines): summed, not the last one alone
            found[name] = tuple(a + b for a, b in zip(found.get(name, (0, 0, 0)), measured, strict=True))
        except psutil.NoSuchProcess:
            pass
    return found


def proc_role(proc: psutil.Process) -> str:
    command = " ".join(proc.cmdline())
    if "forkserver" in command:
        return "fork server"
    if "resource_tracker" in command:
        return "resource tracker"
    if "janitor" in command:
        return "janitor"
    return f"other ({proc.name()})"


def shm_total() -> int:
    return sum(e.stat().st_size for e in os.scandir("/dev/shm") if e.is_file()) if os.path.isdir("/dev/shm") else 0


def print_table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for i, row in enumerate(rows):
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
        if i == 0:
            print("  ".join("-" * w for w in widths))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="doom_basic")
    parser.add_argument("--minutes", type=float, default=60.0)
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
                samples.append((summary["elapsed_sec"], summary["env_frames"], {p: size(folder / p) for p in PARTS},
                                processes(proc.pid, folder), shm_total()))
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=120)
    half = samples[len(samples) // 2]
    last = samples[-1]
    hours = (last[0] - half[0]) / 3600
    frames_per_hour = (last[1] - half[1]) / hours
    print(f"{args.env}: {args.minutes:.0f} min, {last[1]:,} env frames, {frames_per_hour:,.0f} frames per hour of "
          "training; growth measured over the second half\n")
    rows: list[tuple[str, ...]] = [("file", "size at end", "MB per hour", "a day", "bounded")]
    for part in PARTS:
        grown = (last[2][part] - half[2][part]) / hours / 2**20
        day = "-" if part in BOUNDED else f"{grown * 24:,.0f} MB"
        rows.append((part, f"{last[2][part] / 2**20:,.2f} MB", f"{grown:,.2f}", day,
                     BOUNDED.get(part, "no: grows with the run")))
    print_table(rows)

    early = samples[max(0, len(samples) // 6 - 1)]
    hours = (last[0] - early[0]) / 3600
    print(f"\nprocesses: from {early[0] / 60:.0f} min (after the warm-up) to {last[0] / 60:.0f} min of training\n")
    rows = [("process", "memory MB", "per hour", "open files", "/dev/shm mapped MB")]
    mb = 2**20
    for name in sorted(set(early[3]) | set(last[3])):
        rss0, fds0, shm0 = early[3].get(name, (0, 0, 0))
        rss1, fds1, shm1 = last[3].get(name, (0, 0, 0))
        rows.append((name, f"{rss0 / mb:,.0f} -> {rss1 / mb:,.0f}", f"{(rss1 - rss0) / mb / hours:+,.1f}",
                     f"{fds0} -> {fds1}", f"{shm0 / mb:,.1f} -> {shm1 / mb:,.1f}"))
    rows.append(("/dev/shm in all", "", "", "", f"{early[4] / mb:,.1f} -> {last[4] / mb:,.1f}"))
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
