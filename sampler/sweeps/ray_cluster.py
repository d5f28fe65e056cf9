"""Running a sweep on a Ray cluster: one Ray task per experiment, each supervising one run.

The cluster is `--ray-address`, else $RAY_ADDRESS; with neither, a local Ray instance is started for the
sweep and shut down after it. Each experiment asks Ray for the CPUs its config uses (its rollout, inference
and learner processes) and a GPU share; a request larger than the largest node could never be placed, so it
is capped at that node's CPUs with a warning, unless `--cpus-per-experiment` sets it.

Every task writes into the same train_dir, so on a real cluster that folder must be on a filesystem all nodes
share (NFS or the like); on one machine it is simply local. Finished experiments are skipped and the others
resume, as with local processes. Ctrl+C cancels the tasks, and each one stops its run with a checkpoint.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from sampler.config.derived import uses_local_inference
from sampler.errors import MissingDependencyError, SftuiError
from sampler.experiment.folders import derived_state
from sampler.experiment.prepare import prepare
from sampler.sweeps.spec import Sweep, check, summarize, to_run, write_marker

WAIT_SEC = 1.0
CONNECT_TIMEOUT_SEC = 5.0


def _ray():
    try:
        import ray
    except ImportError:
        raise MissingDependencyError("--backend ray needs Ray: pip install -c constraints.txt -e '.[ray]'") from None
    return ray


def cpus_for(cfg) -> int:
    """The processes a run keeps busy: its rollout workers, its learners, and its inference workers if any."""
    inference = 0 if uses_local_inference(cfg) else cfg.sampler.num_policies * cfg.sampler.policy_workers_per_policy
    return cfg.sampler.num_workers + cfg.sampler.num_policies + inference


def run_experiment(raw: dict, train_dir: str, name: str) -> dict:
    """The Ray task: prepare the experiment (a resume when its folder exists) and supervise it to its end.
    A cancelled task (Ctrl+C on the sweep) stops the run first, so that it saves a checkpoint."""
    prepared = prepare(raw, [], train_dir=train_dir, experiment_default=name)
    folder = prepared.folder
    if prepared.already_finished is None:
        with open(folder / "log.txt", "a") as log:
            process = subprocess.Popen([sys.executable, "-m", "sftui", "supervise", str(folder)],
                                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log)
        try:
            process.wait()
        except KeyboardInterrupt:  # ray.cancel
            process.send_signal(signal.SIGTERM)
            process.wait()
    state, summary = derived_state(folder)
    return {"state": state, "env_frames": int(summary.get("env_frames", 0)), "error": summary.get("error"),
            "host": os.uname().nodename}


class RayBackend:
    def __init__(self, sweep: Sweep, train_dir: Path, address: str | None, max_parallel: int | None,
                 cpus_per_experiment: float | None, experiments_per_gpu: int = 1,
                 echo: Callable[[str], None] = print, local_cpus: int | None = None):
        self.sweep, self.train_dir = sweep, Path(train_dir)
        self.address = address or os.environ.get("RAY_ADDRESS") or None
        self.max_parallel = max_parallel
        self.cpus_per_experiment = cpus_per_experiment
        self.experiments_per_gpu = experiments_per_gpu
        self.echo = echo
        self.local_cpus = local_cpus

    def run(self) -> int:
        ray = _ray()
        configs = check(self.sweep)
        self._connect(ray)
        write_marker(self.sweep, self.train_dir)
        try:
            return self._run(ray, configs)
        finally:
            ray.shutdown()

    def _reachable(self) -> None:
        """A TCP look at the head's address first: ray.init itself retries an unreachable one for minutes."""
        target = self.address.split("://", 1)[-1]
        if target == "auto":
            return
        host, _, port = target.rpartition(":")
        try:
            with socket.create_connection((host or "127.0.0.1", int(port)), timeout=CONNECT_TIMEOUT_SEC):
                pass
        except (OSError, ValueError) as e:
            reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e) or type(e).__name__
            raise SftuiError(f"--ray-address {self.address}: cannot connect ({reason}); check the address (`ray "
                             "status` on the head node), or leave --ray-address and RAY_ADDRESS out for a local "
                             "instance") from None

    def _connect(self, ray) -> None:
        if self.address:
            self._reachable()
        kwargs = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
        try:
            if self.address:
                ray.init(address=self.address, **kwargs)
            else:
                ray.init(num_cpus=self.local_cpus or os.cpu_count(), **kwargs)
        except (ConnectionError, RuntimeError, ValueError) as e:
            where = f"--ray-address {self.address}" if self.address else "a local Ray instance"
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise SftuiError(f"{where}: cannot connect ({first}); check the address (`ray status` on the head "
                             "node), or leave --ray-address and RAY_ADDRESS out for a local instance") from None
        where = self.address or "a local Ray instance"
        self.echo(f"ray: {where}, {ray.cluster_resources().get('CPU', 0):.0f} CPUs, "
                  f"{ray.cluster_resources().get('GPU', 0):.0f} GPUs")

    def _request(self, ray, cfg) -> tuple[float, float]:
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        largest = max((n["Resources"].get("CPU", 0) for n in nodes), default=1) or 1
        cpus = self.cpus_per_experiment
        if cpus is None:
            cpus = cpus_for(cfg)
            if cpus > largest:
                self.echo(f"warning: {cfg.run.experiment} would use {cpus} CPUs, more than the largest node's "
                          f"{largest:.0f}; asking for {largest:.0f} (set --cpus-per-experiment to choose)")
                cpus = largest
        gpus = 0.0
        if ray.cluster_resources().get("GPU", 0) and cfg.run.device != "cpu":
            gpus = 1.0 / self.experiments_per_gpu
        return float(cpus), gpus

    def _run(self, ray, configs) -> int:
        task = ray.remote(run_experiment)
        queue = [(self.sweep.experiments[i], configs[i]) for i in to_run(self.sweep, self.train_dir, self.echo)]
        running: dict = {}
        try:
            while queue or running:
                while queue and (self.max_parallel is None or len(running) < self.max_parallel):
                    experiment, cfg = queue.pop(0)
                    cpus, gpus = self._request(ray, cfg)
                    ref = task.options(num_cpus=cpus, num_gpus=gpus, max_retries=0).remote(
                        experiment.raw, str(self.train_dir), f"{self.sweep.name}/{experiment.name}")
                    running[ref] = experiment.name
                    self.echo(f"{experiment.name}: submitted ({cpus:g} CPUs{f', {gpus:g} GPU' if gpus else ''})")
                done, _ = ray.wait(list(running), num_returns=1, timeout=WAIT_SEC)
                for ref in done:
                    name = running.pop(ref)
                    try:
                        result = ray.get(ref)
                    except Exception as e:  # noqa: BLE001 - a failed task is reported, the sweep goes on
                        self.echo(f"{name}: failed in Ray: {type(e).__name__}: {str(e).splitlines()[0]}")
                        continue
                    error = f": {result['error']}" if result.get("error") else ""
                    self.echo(f"{name}: {result['state']} at {result['env_frames']:,} env frames on "
                              f"{result['host']}{error}")
        except KeyboardInterrupt:
            self.echo("interrupted: stopping the sweep's runs (a later `sweep run` resumes them)")
            for ref in running:
                ray.cancel(ref, force=False)
            for ref in running:
                try:
                    ray.get(ref, timeout=120)
                except Exception:  # noqa: BLE001, S110 - cancelled tasks raise; the state is read below
                    pass
            return 130
        return summarize(self.sweep, self.train_dir, self.echo)
