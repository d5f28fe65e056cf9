"""The supervisor: one asyncio loop that owns a run's process tree, its shared memory and its folder.

It spawns the workers, watches their pipes and sentinels, folds their reports into a RunStatus
twice a second, serves the control socket, and stops the run cleanly on budget, signal or command.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import torch

from algos.models import make_actor_critic
from sampler import processes
from sampler.config.schema import ExperimentConfig
from sampler.envs.contract import EnvFacts
from sampler.envs.families.registry import make_probe_env
from sampler.errors import ControlError, ExperimentError
from sampler.experiment import checkpoints
from sampler.experiment.control import ControlServer, socket_path_for
from sampler.experiment.folders import ExperimentLock, read_json, write_json_atomic
from sampler.run import interrupts, janitor
from sampler.run.clock import RunClock
from sampler.run.commands import RunCommands
from sampler.run.evaluation import Evaluator
from sampler.run.exits import RunExits, WorkerDied
from sampler.run.forkserver import WorkerStarter
from sampler.run.handles import WorkerHandle
from sampler.run.messages import Heartbeat, Ready, Report, Stop
from sampler.run.plan import RunPlan
from sampler.run.publish import StatusSinks
from sampler.run.reports import RunReports
from sampler.run.stats import StatsBoard
from sampler.run.tensorboard import TensorboardWriter
from sampler.run.workers.batched import batched_rollout_main
from sampler.run.workers.inference import inference_main
from sampler.run.workers.learner import learner_main
from sampler.run.workers.rollout import rollout_main
from sampler.selfplay.pbt import Population
from sampler.selfplay.pool import OpponentPool, check_checkpoints
from sampler.shm.buffers import LearnerExchange

log = logging.getLogger("sftui")

EXIT_CODES = {"finished": 0, "stopped": 0, "failed": 1}


class Supervisor(RunCommands, RunReports, RunClock, RunExits):
    def __init__(self, cfg: ExperimentConfig, folder: Path, listeners=(), log_to_stderr: bool = True,
                 env: EnvFacts | None = None, starter: WorkerStarter | None = None):
        self.cfg = cfg
        self.env = env  # from the env `prepare` built to check the config; else the supervisor builds one
        self.folder = Path(folder)
        self.sinks = StatusSinks(self.folder, listeners, cfg.run.status_every_sec)
        self.log_to_stderr = log_to_stderr
        # The caller may have begun the run's processes early, to overlap the fork server's imports with its own.
        self.starter = starter
        self.ctx = None  # the starter's, from run()
        # A learner with several torch threads shares the cores with rollout workers: OpenMP threads that spin while
        # they wait take the time those workers need. Sleeping waits trained CartPole batched with 2 learner threads
        # at 73,400 FPS against 56,100 spinning. Read when a child loads torch, so it is set before any is spawned.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        self.state = "starting"
        self.error: str | None = None
        self.final_state = "stopped"
        self.handles: list[WorkerHandle] = []
        self.board = StatsBoard(cfg.run.experiment, cfg.sampler.num_policies,
                                cfg.run.train_for_env_steps, cfg.run.train_for_seconds)
        self.lock = ExperimentLock(self.folder)
        self.elapsed_before = 0.0
        # where the last run of this experiment got to (summary.json), to say how far back a resume starts
        self.reached_before = int((read_json(self.folder / "summary.json") or {}).get("env_frames", 0) or 0)
        self.running_since: float | None = None
        self._stop = asyncio.Event()
        self._replies: dict[int, asyncio.Future] = {}  # request id -> the future its reply resolves
        self._request_ids = 0
        self._all_paused: asyncio.Future | None = None  # while a pause waits for every worker to be idle
        self._last_save = self._last_best_check = time.monotonic()
        self.server: ControlServer | None = None
        self.population = None  # the PBT worker, with pbt.with_pbt
        self.pool = None  # the self-play opponent pool, with pool settings
        self.evaluator = Evaluator(self)
        self._last_pool_write = time.monotonic()

    # ---- entry ----------------------------------------------------------------------------------

    def run(self) -> int:
        processes.become_subreaper()
        self.starter = self.starter or WorkerStarter.begin()
        self.ctx = self.starter.ctx
        if not self.lock.acquire():
            self.starter.end()
            raise ExperimentError(f"{self.folder} is live: another run holds its lock")
        try:
            self._setup_logging()
            return asyncio.run(self._main())
        finally:
            self.starter.end()
            (self.folder / "run.json").unlink(missing_ok=True)
            self.lock.release()

    async def _main(self) -> int:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(
            lambda _, context: log.error("%s", context.get("message"), exc_info=context.get("exception")))
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.request_stop, "stopped", f"received {signal.Signals(sig).name}")
        if interrupts.take():  # a Ctrl+C the command held while it started (sftui.__main__)
            self.request_stop("stopped", "received SIGINT")
        ticker = None
        try:
            if not self._stop.is_set():  # a Ctrl+C noted while the command started: nothing to start
                await self._start()
                ticker = asyncio.create_task(self._tick_forever())
            await self._stop.wait()
        except WorkerDied as e:  # its error is in the log already
            self.final_state, self.error = "failed", str(e)
        except Exception as e:  # noqa: BLE001 - a failed start is reported, then cleaned up
            log.exception("run failed")
            self.final_state, self.error = "failed", f"{type(e).__name__}: {e}"
        finally:
            if ticker is not None:
                ticker.cancel()
            try:
                await self._shutdown()
            except Exception:  # noqa: BLE001 - said in the log, with what was saved before it
                log.exception("stopping failed after %s", self.final_state)
                return EXIT_CODES["failed"]
        return EXIT_CODES[self.final_state]

    def _setup_logging(self) -> None:
        log.setLevel(logging.INFO)
        log.handlers.clear()
        file_handler = logging.FileHandler(self.folder / "log.txt")
        file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        log.addHandler(file_handler)
        if self.log_to_stderr:
            stream = logging.StreamHandler()
            stream.setFormatter(logging.Formatter("[sftui] %(message)s"))
            log.addHandler(stream)
        log.propagate = False
        # A line log.txt cannot take (a full disk) is dropped; the stderr handler still shows it, and nothing
        # prints a logging traceback per line.
        logging.raiseExceptions = False
        # A library's background thread that dies (TensorBoard's writer on a full disk) gets one log line, not a
        # traceback on the run's stderr; what it served is reopened where it is used.
        threading.excepthook = lambda args: log.warning("background thread %s failed: %s: %s", args.thread.name,
                                                        args.exc_type.__name__, args.exc_value)

    # ---- start ----------------------------------------------------------------------------------

    async def _start(self) -> None:
        cfg = self.cfg
        torch.set_num_threads(1)
        self._publish(persist=True)
        if self.env is None:
            probe = make_probe_env(cfg)
            self.env = EnvFacts.of(probe, cfg.sampler.batched_sampling)
            probe.close()
        self.plan = plan = self._plan()
        plan.stacks_dir = str(self.folder / "stacks")
        self.device = plan.placement.device
        num_policies = cfg.sampler.num_policies
        if cfg.pbt.with_pbt:
            self.population = Population(cfg.pbt, self.folder, cfg.run.seed)
        if cfg.pool.enabled:
            self.pool = OpponentPool(cfg, self.folder, num_policies, check_checkpoints(cfg, plan.spec_dicts))

        self.server = ControlServer(socket_path_for(self.folder), self.handle_command, cfg.run.experiment)
        await self.server.start()
        self.janitor = janitor.start(self.server.path, self.starter.token)
        write_json_atomic(self.folder / "run.json", {
            "pid": os.getpid(), "hostname": socket.gethostname(), "socket": str(self.server.path),
            "started_at": time.time(),
        })
        self.sinks.server = self.server
        self.sinks.tb = TensorboardWriter(self.folder / "tb", num_policies)
        batched = cfg.sampler.batched_sampling
        envs = plan.placement.envs_per_worker
        log.info("starting %s: %s, %d worker(s) x %d env(s)%s, %d polic%s, device %s", cfg.run.experiment, cfg.env.name,
                 cfg.sampler.num_workers, envs, " (batched)" if batched else "", num_policies,
                 "y" if num_policies == 1 else "ies", self.device)

        learners = [self._spawn_learner(p) for p in range(num_policies)]
        readies: list[Ready] = await asyncio.gather(*(self._expect(h, Ready) for h in learners))
        self.elapsed_before = max(r.elapsed_sec for r in readies)
        for ready in readies:
            policy = self.board.policies[ready.policy].status
            policy.version, policy.env_frames = ready.version, ready.env_frames
            policy.hyperparameters = ready.hyperparameters
            policy.learning_rate = float(ready.hyperparameters.get("learning_rate", 0.0))  # until its first step
            policy.best_return = checkpoints.read_best_return(self.folder, ready.policy)  # a resumed best.pt's
            log.info("policy %d learner: %s, %d torch thread(s), device %s", ready.policy, ready.precision,
                     ready.threads, self.device)
            for skipped in ready.skipped:
                log.warning("policy %d: %s", ready.policy, skipped)
                self.board.event("checkpoint", f"p{ready.policy}: {skipped}")
            if ready.checkpoint:
                log.info("policy %d restored from %s (state digest %s)", ready.policy, ready.checkpoint, ready.digest)
        self.evaluator.resume_at(self.board.env_frames)
        if self.board.env_frames:
            log.info("resuming at %s env frames, %.0f s trained", f"{self.board.env_frames:,}", self.elapsed_before)
        behind = self.reached_before - self.board.env_frames
        if behind > 0 and self.board.env_frames == 0:
            message = (f"the last run reached {self.reached_before:,} env frames but saved no checkpoint: "
                       "this run starts over from 0")
        elif behind > 0:
            message = (f"resuming {behind:,} env frames behind where the last run reached "
                       f"({self.reached_before:,}): they were trained after the checkpoint it resumes from")
        if behind > 0:
            log.warning("%s", message)
            self.board.event("checkpoint", message)
        for spec in plan.inference_specs():
            self._spawn(WorkerHandle(spec.name, "inference", policy=spec.policy, index=spec.index), inference_main,
                        spec)
        for index in range(cfg.sampler.num_workers):
            self._spawn_rollout(index)
        await asyncio.gather(*(self._expect(h, Heartbeat) for h in self.handles if h.kind == "rollout"))
        self._set_state("running")
        self._check_budget()

    def _plan(self) -> RunPlan:
        """The run's layout, with each policy's initial weights (seeded per policy) published before any worker
        starts."""
        cfg, env = self.cfg, self.env
        model = functools.partial(make_actor_critic, cfg.model, env.obs_specs, env.action_spec)
        initial = []
        for policy in range(cfg.sampler.num_policies):
            torch.manual_seed(cfg.run.seed + policy)
            initial.append(model().state_dict())
        probe = model()
        exchange = None
        if cfg.pbt.with_pbt:
            exchange = LearnerExchange(cfg.sampler.num_policies, LearnerExchange.capacity_for(probe))
        return RunPlan.build(cfg, env, model, self.ctx, initial_weights=initial, rnn_state_size=probe.rnn_state_size,
                             exchange=exchange)

    def _spawn(self, handle: WorkerHandle, target, spec) -> WorkerHandle:
        parent, child = self.ctx.Pipe(duplex=True)
        handle.conn = parent
        handle.process = self.ctx.Process(target=target, args=(child, spec), name=handle.name, daemon=False)
        handle.process.start()
        child.close()
        handle.started()
        loop = asyncio.get_running_loop()
        loop.add_reader(parent.fileno(), self._on_message, handle)
        loop.add_reader(handle.process.sentinel, self._on_exit, handle)
        if handle not in self.handles:
            self.handles.append(handle)
        return handle

    def _spawn_learner(self, policy: int, handle: WorkerHandle | None = None) -> WorkerHandle:
        spec = self.plan.learner_spec(policy, str(self.folder), restarted=handle is not None)
        return self._spawn(handle or WorkerHandle(spec.name, "learner", policy=policy), learner_main, spec)

    def _spawn_rollout(self, index: int, handle: WorkerHandle | None = None) -> WorkerHandle:
        handle = handle or WorkerHandle(f"rollout_{index}", "rollout", index=index)
        spec = self.plan.rollout_spec(index, handle.incarnation,
                                      pool_folder=str(self.folder) if self.pool is not None else None)
        target = batched_rollout_main if self.cfg.sampler.batched_sampling else rollout_main
        return self._spawn(handle, target, spec)

    async def _expect(self, handle: WorkerHandle, report_type: type) -> Report:
        """The next report of `report_type` from `handle` (its death raises WorkerDied instead)."""
        future = asyncio.get_running_loop().create_future()
        handle.expecting[report_type] = future
        return await future

    # ---- stop requests ---------------------------------------------------------------------------

    def request_stop(self, final_state: str, reason: str) -> None:
        if self._stop.is_set():
            self.evaluator.cut_short()
            return
        log.info("stopping (%s)", reason)
        self.final_state = final_state
        if final_state == "failed":
            self.error = reason
        self._stop.set()

    # ---- state ----------------------------------------------------------------------------------

    def elapsed_sec(self) -> float:
        running = time.monotonic() - self.running_since if self.running_since is not None else 0.0
        return self.elapsed_before + running

    def _set_state(self, state: str) -> None:
        if state == "running" and self.running_since is None:
            self.running_since = time.monotonic()
            self.board.frames_history.clear()  # rates count from here, not from the resumed total
        elif state != "running" and self.running_since is not None:
            self.elapsed_before = self.elapsed_sec()
            self.running_since = None
        self.state = state
        self.board.event("state", state)
        log.info("state: %s", state)
        self._publish(persist=True)

    # ---- stop -----------------------------------------------------------------------------------

    async def _step(self, what: str, step) -> None:
        try:
            result = step()
            if asyncio.iscoroutine(result):
                await result
        except Exception:  # noqa: BLE001 - one step's failure must not leave the others undone
            log.exception("stopping: %s failed", what)
            self.board.event("error", f"stopping: {what} failed (see log.txt)")

    async def _save_final(self) -> None:
        try:
            self._status()  # the policies' returns as they are now, for the last best.pt check
            for policy in self._improved():
                await self.save_all(best_policy=policy)
            paths = await self.save_all()
        except (ControlError, RuntimeError) as e:
            log.error("final checkpoint not saved: %s", e)
            return
        log.info("saved %s", ", ".join(str(Path(p).relative_to(self.folder)) for p in paths))
        if self.final_state == "finished":
            await self.evaluator.final(paths)

    def _end_janitor(self) -> None:
        self.janitor.stdin.close()
        try:
            self.janitor.wait(timeout=10)
        except subprocess.TimeoutExpired:
            log.warning("the janitor is still cleaning up after 10 s; it finishes on its own")

    async def _shutdown(self) -> None:
        """Saves, stops every process and cleans up. Each step goes on after another's error (logged with its
        traceback), so a stop always reaches its final state and leaves nothing running."""
        if self.running_since is not None:  # elapsed_sec is training time: the final saves and evaluation are not
            self.elapsed_before, self.running_since = self.elapsed_sec(), None
        self.state = "stopping"
        self._publish(persist=True)
        for handle in self._alive():
            if handle.kind == "rollout":
                handle.send(Stop())
        if any(h.kind == "learner" for h in self._alive()):
            await self._step("the final checkpoint", self._save_final)
        await self._step("stopping the evaluation", self.evaluator.stop)
        for handle in self._alive():
            handle.send(Stop())
        await self._step("joining the workers", self._join_all)
        await self._step("ending the fork server", self.starter.end)  # before the janitor looks for what is left
        if self.pool is not None:
            await self._step("writing the opponent pool", self.pool.write)
        if self.server is not None:
            await self._step("closing the control socket", self.server.close)
            await self._step("ending the janitor", self._end_janitor)
        self.state = self.final_state
        self.board.event("state", self.state)
        self._publish(persist=True)
        self.sinks.close()
        log.info("%s at %s env frames", self.state, f"{self.board.env_frames:,}")
