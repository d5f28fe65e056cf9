"""Fault injection: real short runs, each hit by one fault at a random moment, and what became of them.

    python bench/faults.py                          # every fault, 10 trials each
    python bench/faults.py --trials 3 --faults kill_learner env_hang

Each trial trains CartPole through the real CLI (2 workers x 8 envs), injects its fault a random 1-4 s
into training, and records: whether the run survived (kept training, or stopped and resumed as designed),
the env frames lost, the seconds until it trained again, and what was left behind once it ended (processes
of its tree, /dev/shm files no live process maps, its control socket). One table at the end; the JSON goes
to bench/results/faults.json. Not a test: timings depend on the machine's load.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sampler.experiment import checkpoints  # noqa: E402
from tests.support import shm_entries, shm_left_behind  # noqa: E402

RESULTS = ROOT / "bench" / "results"
SMALL = ["--set", "sampler.num_workers=2", "--set", "sampler.num_envs_per_worker=8",
         "--set", "run.status_every_sec=0.5", "--set", "run.report_interval_sec=1"]
FAULTY = ["--set", 'run.imports=["tests.faulty_envs"]']
STALL = ["--set", "run.stall_timeout_sec=10", "--set", "run.kill_stalled_after_sec=20"]


@dataclass
class Outcome:
    survived: bool
    lost_frames: int | None = None  # env frames the run had and lost
    recover_sec: float | None = None  # from the fault to training again
    left: str = ""  # what outlived the run
    note: str = ""


# ---- helpers -------------------------------------------------------------------------------------------

def summary(folder: Path) -> dict:
    try:
        return json.loads((folder / "summary.json").read_text())
    except (OSError, ValueError):
        return {}


def wait_for(predicate: Callable[[], object], timeout: float) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    return None


def start(work: Path, name: str, *extra: str, env_name: str = "gym_CartPole-v1", env: dict | None = None,
          frames: int = 100_000_000) -> subprocess.Popen:
    command = [sys.executable, "-m", "sftui", "train", env_name, "-e", name, "--train-dir", str(work), *SMALL,
               "--set", f"run.train_for_env_steps={frames}", *extra]
    return subprocess.Popen(command, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def live(folder: Path) -> dict:
    """The run's status through its control socket (summary.json cannot be written on a full disk)."""
    from sampler.errors import ControlError
    from sampler.experiment.control import ControlClient

    try:
        with ControlClient.for_experiment(folder) as client:
            return next(client.subscribe())
    except (ControlError, OSError, StopIteration):
        return {}


def training(folder: Path, above: int = 0) -> bool:
    s = summary(folder)
    return s.get("state") == "running" and s.get("env_frames", 0) > above


def frames(folder: Path) -> int:
    return int(summary(folder).get("env_frames", 0))


def worker(folder: Path, name: str) -> dict:
    return next((w for w in summary(folder).get("workers", []) if w["name"] == name), {})


def tree(pid: int) -> list[psutil.Process]:
    try:
        parent = psutil.Process(pid)
        return [parent, *parent.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def alive(processes: list[psutil.Process]) -> list[psutil.Process]:
    out = []
    for proc in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                out.append(proc)
    return out


class Run:
    """One trial's run: started, trained a random moment, then ended; knows what to check was left behind."""

    def __init__(self, work: Path, name: str, rng: random.Random, *extra: str, **kwargs):
        self.work, self.name, self.rng = work, name, rng
        self.folder = work / name
        self.shm_before = shm_entries()
        self.proc = start(work, name, *extra, **kwargs)
        self.seen: list[psutil.Process] = []
        self.socket: str | None = None
        self.output = ""  # what it printed, once stopped

    def wait_training(self, timeout: float = 90) -> bool:
        ok = bool(wait_for(lambda: training(self.folder, 0), timeout))
        with contextlib.suppress(OSError, ValueError):
            self.socket = json.loads((self.folder / "run.json").read_text())["socket"]
        self.remember()
        return ok

    def remember(self) -> None:
        known = {p.pid for p in self.seen}
        self.seen += [p for p in tree(self.proc.pid) if p.pid not in known]

    def settle(self, low: float = 1.0, high: float = 4.0) -> None:
        time.sleep(self.rng.uniform(low, high))
        self.remember()

    def stop(self, timeout: float = 60) -> int | None:
        if self.proc.poll() is None:
            self.remember()
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.output, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.output, _ = self.proc.communicate()
        return self.proc.returncode

    def left(self) -> str:
        """What outlived the run: checked once its processes had 15 s to go."""
        wait_for(lambda: not alive(self.seen), 15)
        found = [f"{len(alive(self.seen))} processes"] if alive(self.seen) else []
        shm = shm_left_behind(self.shm_before)
        if shm:
            found.append(f"{len(shm)} /dev/shm files")
        if self.socket and os.path.exists(self.socket):
            found.append("its socket")
        for proc in alive(self.seen):
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        return ", ".join(found)


def recovered(folder: Path, after: int, since: float, timeout: float = 60) -> float | None:
    """Seconds from `since` until the run trains past `after` env frames again."""
    if wait_for(lambda: training(folder, after), timeout):
        return time.monotonic() - since
    return None


# ---- the faults ----------------------------------------------------------------------------------------

def kill_rollout(work: Path, trial: int, rng: random.Random) -> Outcome:
    run = Run(work, f"kill_rollout_{trial}", rng)
    if not run.wait_training():
        return Outcome(False, note="never trained")
    run.settle()
    before, name = frames(run.folder), f"rollout_{rng.randrange(2)}"
    restarts = worker(run.folder, name).get("restarts", 0)
    t0 = time.monotonic()
    os.kill(worker(run.folder, name)["pid"], signal.SIGKILL)
    back = wait_for(lambda: worker(run.folder, name).get("restarts", 0) > restarts
                    and worker(run.folder, name).get("state") == "running"
                    and worker(run.folder, name).get("steps", 0) > 0, 30)  # the restarted worker steps again
    recover = time.monotonic() - t0 if back else None
    trains = recovered(run.folder, before, t0) is not None
    code = run.stop()
    return Outcome(bool(back) and trains and code == 0, max(0, before - frames(run.folder)), recover, run.left())


def kill_inference(work: Path, trial: int, rng: random.Random) -> Outcome:
    run = Run(work, f"kill_inference_{trial}", rng, "--set", "sampler.inference=process")
    if not run.wait_training():
        return Outcome(False, note="never trained")
    run.settle()
    before = frames(run.folder)
    t0 = time.monotonic()
    os.kill(worker(run.folder, "inference_p0_0")["pid"], signal.SIGKILL)
    back = wait_for(lambda: worker(run.folder, "inference_p0_0").get("restarts", 0) == 1, 20)
    recover = recovered(run.folder, before, t0, timeout=20) if back else None
    code = run.stop()
    state = summary(run.folder).get("state")
    return Outcome(recover is not None and code == 0, None, recover, run.left(),
                   note="" if recover is not None else f"run {state}: {summary(run.folder).get('error')}")


def kill_learner(work: Path, trial: int, rng: random.Random) -> Outcome:
    run = Run(work, f"kill_learner_{trial}", rng)
    if not run.wait_training():
        return Outcome(False, note="never trained")
    run.settle(2, 12)  # the snapshot is taken every 10 s: kill at any point of its cycle
    before = frames(run.folder)
    t0 = time.monotonic()
    os.kill(worker(run.folder, "learner_p0")["pid"], signal.SIGKILL)
    # back: the restarted learner has trained a batch (its step count starts again from 0)
    ok = wait_for(lambda: worker(run.folder, "learner_p0").get("restarts", 0) == 1
                  and worker(run.folder, "learner_p0").get("steps", 0) > 0, 60)
    recover = time.monotonic() - t0 if ok else None
    lowest = min(frames(run.folder) for _ in range(3) if not time.sleep(0.5))  # it resumed at its snapshot's
    goes_on = recovered(run.folder, before, t0) is not None
    code = run.stop()
    return Outcome(bool(ok) and goes_on and code == 0, max(0, before - lowest), recover, run.left())


def kill_supervisor(work: Path, trial: int, rng: random.Random) -> Outcome:
    run = Run(work, f"kill_supervisor_{trial}", rng, "--set", "run.save_every_sec=5")
    if not run.wait_training():
        return Outcome(False, note="never trained")
    run.settle(3, 12)
    before = frames(run.folder)
    t0 = time.monotonic()
    run.proc.send_signal(signal.SIGKILL)
    run.proc.communicate()
    left = run.left()
    first_start = summary(run.folder).get("started_at")
    again = Run(work, run.name, rng, "--set", "run.save_every_sec=5")
    resumed = wait_for(lambda: summary(again.folder).get("started_at") != first_start
                       and training(again.folder, 0), 60)
    recover = time.monotonic() - t0 if resumed else None
    start_frames = frames(again.folder)
    code = again.stop()
    return Outcome(bool(resumed) and code == 0, max(0, before - start_frames) if resumed else None, recover,
                   ", ".join(x for x in (left, again.left()) if x))


def sigstop_worker(work: Path, trial: int, rng: random.Random) -> Outcome:
    run = Run(work, f"sigstop_{trial}", rng, *STALL)
    if not run.wait_training():
        return Outcome(False, note="never trained")
    run.settle()
    pid = worker(run.folder, "rollout_0")["pid"]
    os.kill(pid, signal.SIGSTOP)
    stalled = wait_for(lambda: worker(run.folder, "rollout_0").get("state") == "stalled", 20)
    time.sleep(1)
    before = frames(run.folder)
    t0 = time.monotonic()
    os.kill(pid, signal.SIGCONT)
    running = wait_for(lambda: worker(run.folder, "rollout_0").get("state") == "running", 20)
    recover = recovered(run.folder, before, t0) if running else None
    code = run.stop()
    return Outcome(bool(stalled) and bool(running) and code == 0, 0, recover, run.left(),
                   note="" if stalled else "never shown stalled")


def corrupt_checkpoint(work: Path, trial: int, rng: random.Random) -> Outcome:
    run = Run(work, f"corrupt_{trial}", rng, "--set", "run.save_every_sec=1", "--set", "run.keep_checkpoints=3")
    if not run.wait_training():
        return Outcome(False, note="never trained")
    run.settle(3, 6)
    run.stop()
    newest = checkpoints.latest_checkpoint(run.folder, 0)
    older = checkpoints.list_checkpoints(run.folder, 0)[-2]
    data = bytearray(newest.read_bytes())
    at = rng.randrange(len(data) // 4, 3 * len(data) // 4)
    data[at:at + 64] = bytes(255 - b for b in data[at:at + 64])
    newest.write_bytes(bytes(data))
    t0 = time.monotonic()
    again = Run(work, run.name, rng)
    ok = wait_for(lambda: training(again.folder, 0), 60)
    recover = time.monotonic() - t0 if ok else None
    again.stop()
    log = (again.folder / "log.txt").read_text()
    used_older = f"restored from {older.relative_to(again.folder)}" in log
    lost = int(newest.name.split("_")[2].removesuffix(".pt")) - int(older.name.split("_")[2].removesuffix(".pt"))
    return Outcome(bool(ok) and used_older, lost, recover, ", ".join(x for x in (run.left(), again.left()) if x),
                   note="" if used_older else "did not resume from the checkpoint before")


def nonfinite_learner(work: Path, trial: int, rng: random.Random) -> Outcome:
    at = rng.randrange(20, 120)
    run = Run(work, f"nonfinite_{trial}", rng, frames=200_000, env={"SFTUI_INJECT": f"learner_nan={at}"})
    out, _ = run.proc.communicate(timeout=180)
    log = (run.folder / "log.txt").read_text() if (run.folder / "log.txt").exists() else ""
    rolled = "rolled back to the state of" in log
    saved = checkpoints.load_latest(run.folder, 0, set_aside=False)
    return Outcome(run.proc.returncode == 0 and rolled and saved is not None, None, None, run.left(),
                   note="" if rolled else "no rollback in the log")


def env_raises(work: Path, trial: int, rng: random.Random) -> Outcome:
    run = Run(work, f"env_raises_{trial}", rng, *FAULTY, env_name="gym_FlakyCartPole-v1", frames=200_000)
    run.wait_training()
    run.proc.communicate(timeout=180)
    final = summary(run.folder)
    restarts = sum(w.get("env_restarts", 0) for w in final.get("workers", []))
    return Outcome(run.proc.returncode == 0 and final.get("state") == "finished", None, None, run.left(),
                   note=f"{restarts} env restarts")


def env_hangs(work: Path, trial: int, rng: random.Random) -> Outcome:
    marker = Path(tempfile.mkdtemp(dir=work))
    run = Run(work, f"env_hangs_{trial}", rng, *FAULTY, *STALL, env_name="gym_HangingCartPole-v1",
              env={"SFTUI_HANG_MARKER": str(marker)})
    if not run.wait_training():
        return Outcome(False, note="never trained")
    hung = wait_for(lambda: (marker / "hung").exists(), 30)
    t0 = time.monotonic()

    def event() -> str | None:
        return next((e["message"] for e in summary(run.folder).get("events", []) if e["kind"] == "worker_stalled"),
                    None)

    message = wait_for(event, 30)
    named = bool(message) and "hang_in_step" in message
    restarted = wait_for(lambda: any(w.get("restarts", 0) == 1 and w.get("state") == "running"
                                     for w in summary(run.folder).get("workers", [])), 40)
    recover = time.monotonic() - t0 if restarted else None
    run.stop()
    return Outcome(bool(hung) and named and bool(restarted), None, recover, run.left(),
                   note="" if named else f"stall event: {message}")


def disk_full(work: Path, trial: int, rng: random.Random) -> Outcome:
    """A 64 MB tmpfs as the train dir, filled up while the run trains: saves fail with a clear line, training
    goes on, and once space is back a save succeeds; every checkpoint on disk loads."""
    mount = Path(tempfile.mkdtemp(dir=work))
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount)],
                      capture_output=True).returncode != 0:
        return Outcome(False, note="cannot mount a tmpfs here (needs root)")
    try:
        run = Run(mount, f"disk_full_{trial}", rng, "--set", "run.save_every_sec=2")
        if not run.wait_training():
            return Outcome(False, note="never trained")
        run.settle()
        filler = mount / "filler"
        with open(filler, "wb") as f, contextlib.suppress(OSError):
            while True:
                f.write(b"\0" * 2**20)
        t0 = time.monotonic()
        said = wait_for(lambda: "no space left on device" in (live(run.folder).get("warning") or ""), 30)
        before = live(run.folder).get("env_frames", 0)
        went_on = wait_for(lambda: live(run.folder).get("env_frames", 0) > before + 5000, 30)
        filler.unlink()
        saved_again = wait_for(lambda: not live(run.folder).get("warning"), 90)
        recover = time.monotonic() - t0 if saved_again else None
        run.stop()
        readable = all(checkpoints.load(p) for p in checkpoints.list_checkpoints(run.folder, 0))
        ok = bool(said) and bool(went_on) and bool(saved_again) and readable and run.proc.returncode == 0
        return Outcome(ok, 0, recover, run.left(), note="" if said else "no 'no space left' warning")
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def small_shm(work: Path, trial: int, rng: random.Random) -> Outcome:
    """/dev/shm of 64 MB for a run that needs more: refused in one line before anything is created."""
    command = (f"mount -t tmpfs -o size=64m tmpfs /dev/shm && exec {sys.executable} -m sftui train atari_pong "
               f"-e small_shm_{trial} --train-dir {work} --set run.train_for_env_steps=100000")
    result = subprocess.run(["unshare", "-m", "sh", "-c", command], cwd=ROOT, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    lines = [line for line in result.stderr.splitlines() if line.startswith("sftui:")]
    ok = result.returncode == 2 and len(lines) == 1 and "/dev/shm" in lines[0] and \
        not (work / f"small_shm_{trial}").exists()
    return Outcome(ok, None, None, "", note="" if ok else (result.stderr.strip().splitlines() or ["?"])[-1][:80])


def start_stop_cycles(work: Path, trial: int, rng: random.Random) -> Outcome:
    """20 start / train / SIGTERM cycles of one experiment: each resumes exactly where the last stopped."""
    name, lost = f"cycles_{trial}", 0
    for _ in range(20):
        run = Run(work, name, rng)
        if not run.wait_training():
            return Outcome(False, note="never trained")
        run.settle(0.2, 1.5)
        if run.stop() != 0:
            return Outcome(False, note=f"exit {run.proc.returncode}: {run.output[-300:]!r}")
        stopped = frames(run.folder)
        left = run.left()
        if left:
            return Outcome(False, left=left)
        saved = checkpoints.latest_checkpoint(run.folder, 0)
        lost += max(0, stopped - int(saved.name.split("_")[2].removesuffix(".pt")))
    return Outcome(True, lost, None, "")


def ctrl_c_at_start(work: Path, trial: int, rng: random.Random) -> Outcome:
    """20 starts, each interrupted by Ctrl+C (SIGINT) a random 0-5 s in: each exits as a stop (0 or 130, or
    a Ctrl+C in Python's own start-up, see python_starting), with no traceback and the run never marked failed."""
    before_sftui = 0
    for i in range(20):
        run = Run(work, f"ctrl_c_{trial}_{i}", rng)
        time.sleep(rng.uniform(0.0, 5.0))
        run.remember()
        run.proc.send_signal(signal.SIGINT)
        try:
            out, _ = run.proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:  # the Ctrl+C was lost: the run trains on
            run.stop()
            return Outcome(False, left=run.left(), note=f"Ctrl+C {i + 1} of 20 ignored: the run trained on")
        state = summary(run.folder).get("state")
        left = run.left()
        if python_starting(run.proc.returncode, out):
            before_sftui += 1
        elif run.proc.returncode not in (0, 130) or "Traceback" in out or state == "failed" or left:
            return Outcome(False, left=left, note=f"exit {run.proc.returncode}, state {state}: {out[-300:]!r}")
    return Outcome(True, note=f"{before_sftui} in Python's own start-up" if before_sftui else "")


def python_starting(code: int | None, out: str) -> bool:
    """A Ctrl+C in the interpreter's first tens of milliseconds, before sftui's first line runs: killed by the
    signal before Python set its handler (a shell shows 130), or interrupted while Python imported its `site`
    module (Python's own fatal error, exit 1)."""
    return (code == -2 and not out.strip()) or (code == 1 and "Fatal Python error: init_import_site" in out)


FAULTS: dict[str, Callable[[Path, int, random.Random], Outcome]] = {
    "kill_rollout": kill_rollout, "kill_inference": kill_inference, "kill_learner": kill_learner,
    "kill_supervisor": kill_supervisor, "sigstop_worker": sigstop_worker, "corrupt_checkpoint": corrupt_checkpoint,
    "nonfinite_learner": nonfinite_learner, "env_raises": env_raises, "env_hangs": env_hangs,
    "disk_full": disk_full, "small_shm": small_shm, "start_stop_x20": start_stop_cycles,
    "ctrl_c_at_start_x20": ctrl_c_at_start,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--faults", nargs="+", choices=sorted(FAULTS), default=list(FAULTS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS / "faults.json")
    args = parser.parse_args()
    # The runs start as a terminal's foreground job does, with SIGINT at its default. Started from a shell's
    # background job (`bench/faults.py &`), this process ignores SIGINT and its children would inherit that:
    # a Ctrl+C sent before a run's first line of Python would be dropped by the kernel, which no terminal does.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    rng = random.Random(args.seed)
    rows = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="sftui-faults-") as tmp:
        for fault in args.faults:
            outcomes = []
            for trial in range(args.trials):
                try:
                    outcome = FAULTS[fault](Path(tmp), trial, rng)
                except Exception as e:  # noqa: BLE001 - a trial that breaks the bench counts as not survived
                    outcome = Outcome(False, note=f"{type(e).__name__}: {e}"[:120])
                outcomes.append(outcome)
                print(f"{fault:<20} trial {trial + 1}: {'survived' if outcome.survived else 'LOST'}"
                      f"{'  ' + outcome.note if outcome.note else ''}", flush=True)
            rows.append(summarize(fault, outcomes))
            args.out.parent.mkdir(parents=True, exist_ok=True)  # after each fault: a stopped suite keeps its rows
            args.out.write_text(json.dumps({"trials": args.trials, "cores": os.cpu_count(), "rows": rows}, indent=1)
                                + "\n")
    print()
    print_table(rows)
    print(f"\n{time.monotonic() - started:.0f} s in all")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"trials": args.trials, "cores": os.cpu_count(), "rows": rows}, indent=1) + "\n")
    return 0 if all(r["survived"] == r["trials"] for r in rows) else 1


def summarize(fault: str, outcomes: list[Outcome]) -> dict:
    lost = [o.lost_frames for o in outcomes if o.lost_frames is not None]
    recover = [o.recover_sec for o in outcomes if o.recover_sec is not None]
    left = [o.left for o in outcomes if o.left]
    notes = sorted({o.note for o in outcomes if o.note})
    return {
        "fault": fault, "trials": len(outcomes), "survived": sum(o.survived for o in outcomes),
        "lost_frames": f"{statistics.fmean(lost):,.0f} (max {max(lost):,})" if lost else "-",
        "recover_sec": f"{statistics.fmean(recover):.1f} (max {max(recover):.1f})" if recover else "-",
        "left_behind": f"{len(left)} trials: {left[0]}" if left else "nothing",
        "notes": "; ".join(notes)[:100], "outcomes": [asdict(o) for o in outcomes],
    }


def print_table(rows: list[dict]) -> None:
    headers = ["fault", "survived", "frames lost, mean", "recovery s, mean", "left behind", "notes"]
    cells = [[r["fault"], f"{r['survived']}/{r['trials']}", r["lost_frames"], r["recover_sec"], r["left_behind"],
              r["notes"]] for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for c in cells:
        print("  ".join(v.ljust(w) for v, w in zip(c, widths, strict=True)))


if __name__ == "__main__":
    sys.exit(main())
