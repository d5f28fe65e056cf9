"""Running a sweep on this machine: up to N experiments at once, each one detached supervisor process.

Each experiment is prepared as `sftui run` would (its cfg.json written, a resume when its folder exists) and
supervised in its own session, logging to its folder's log.txt, so that it outlives nothing and nothing of
it depends on this process. Finished experiments are skipped; stopped, crashed and failed ones resume from
their checkpoints. Ctrl+C (or `sftui sweep stop`) stops the live ones, which saves them as `stopped`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from sampler.errors import SftuiError
from sampler.experiment.control import ControlClient
from sampler.experiment.folders import derived_state, is_live
from sampler.experiment.prepare import prepare
from sampler.sweeps.spec import Sweep, check, summarize, to_run, write_marker

POLL_SEC = 0.5
STOP_TIMEOUT_SEC = 90.0


def experiment_folder(sweep: Sweep, train_dir: Path, name: str) -> Path:
    return train_dir / sweep.name / name


def live_folders(sweep: Sweep, train_dir: Path) -> list[Path]:
    return [f for e in sweep.experiments if is_live(f := experiment_folder(sweep, train_dir, e.name))]


def stop_live(folders: list[Path], echo: Callable[[str], None]) -> None:
    for folder in folders:
        try:
            with ControlClient.for_experiment(folder) as client:
                client.call("stop")
            echo(f"{folder.name}: stopping")
        except SftuiError as e:
            echo(f"{folder.name}: not stopped ({e})")


class ProcessesBackend:
    def __init__(self, sweep: Sweep, train_dir: Path, max_parallel: int, num_gpus: int = 0,
                 experiments_per_gpu: int = 1, echo: Callable[[str], None] = print):
        self.sweep, self.train_dir = sweep, Path(train_dir)
        self.max_parallel = max_parallel
        self.num_gpus, self.experiments_per_gpu = num_gpus, experiments_per_gpu
        self.echo = echo
        self.live: dict[str, tuple[subprocess.Popen, Path, int | None]] = {}

    def run(self) -> int:
        check(self.sweep)  # every config, before anything starts
        write_marker(self.sweep, self.train_dir)
        queue = [self.sweep.experiments[i] for i in to_run(self.sweep, self.train_dir, self.echo)]
        try:
            while queue or self.live:
                while queue and len(self.live) < self.max_parallel:
                    self._start(queue.pop(0))
                self._reap()
                time.sleep(POLL_SEC)
        except KeyboardInterrupt:
            self.echo("interrupted: stopping the sweep's live runs (a later `sweep run` resumes them)")
            self.stop()
            return 130
        return self._summary()

    def _gpu(self) -> int | None:
        if not self.num_gpus:
            return None
        used = [gpu for _, _, gpu in self.live.values()]
        for gpu in range(self.num_gpus):
            if used.count(gpu) < self.experiments_per_gpu:
                return gpu
        return min(range(self.num_gpus), key=used.count)

    def _start(self, experiment) -> None:
        prepared = prepare(experiment.raw, [], train_dir=str(self.train_dir),
                           experiment_default=f"{self.sweep.name}/{experiment.name}")
        if prepared.already_finished:
            self.echo(f"{experiment.name}: {prepared.already_finished}")
            return
        folder = prepared.folder
        env = dict(os.environ)
        gpu = self._gpu()
        if gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = str(gpu)
        with open(folder / "log.txt", "a") as log:
            process = subprocess.Popen([sys.executable, "-m", "sftui", "supervise", str(folder)], env=env,
                                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
                                       start_new_session=True)
        self.live[experiment.name] = (process, folder, gpu)
        where = f" on GPU {gpu}" if gpu is not None else ""
        self.echo(f"{experiment.name}: {'resumed' if prepared.resumed else 'started'}{where} (pid {process.pid})")

    def _reap(self) -> None:
        for name, (process, folder, _) in list(self.live.items()):
            if process.poll() is None:
                continue
            del self.live[name]
            state, summary = derived_state(folder)
            error = f": {summary['error']}" if summary.get("error") else ""
            frames = int(summary.get("env_frames", 0))
            self.echo(f"{name}: {state} at {frames:,} env frames{error}")

    def stop(self) -> None:
        stop_live([folder for _, folder, _ in self.live.values() if is_live(folder)], self.echo)
        deadline = time.monotonic() + STOP_TIMEOUT_SEC
        for process, _, _ in self.live.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
        self._reap()

    def _summary(self) -> int:
        return summarize(self.sweep, self.train_dir, self.echo)
