"""The supervisor: one asyncio loop that owns a run's process tree, its shared memory and its folder.

It spawns the workers, watches their pipes and sentinels, folds their reports into a RunStatus
twice a second, serves the control socket, and stops the run cleanly on budget, signal or command.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import multiprocessing as mp
import os
import signal
import socket
import time
from pathlib import Path

import torch

from algos.models import make_actor_critic
from algos.spaces import obs_specs_to_dict
from sampler import processes
from sampler.config.build import config_to_dict
from sampler.config.derived import resolved_device, uses_local_inference
from sampler.envs.contract import EnvFacts
from sampler.envs.families.registry import make_probe_env
from sampler.errors import ControlError, ExperimentError
from sampler.experiment.control import ControlServer, socket_path_for
from sampler.experiment.folders import ExperimentLock, write_json_atomic
from sampler.run import janitor
from sampler.run.commands import RunCommands
from sampler.run.handles import WorkerHandle
from sampler.run.publish import StatusSinks
from sampler.run.stats import StatsBoard
from sampler.run.tensorboard import TensorboardWriter
from sampler.run.workers.batched import batched_rollout_main
from sampler.run.workers.inference import inference_main
from sampler.run.workers.learner import learner_main
from sampler.run.workers.rollout import rollout_main
from sampler.shm.buffers import BufferLayout, LearnerExchange, SharedWeights, TrajectoryBuffers
from sampler.shm.channels import MessageChannel, ReplyChannel
from sampler.status import RunStatus

log = logging.getLogger("sftui")

TICK_SEC = 0.5
BEST_CHECK_EVERY_SEC = 5.0
POOL_WRITE_EVERY_SEC = 10.0  # ratings change with every game: pool.json is rewritten at most this often
MIN_EPISODES_FOR_BEST = 10
EXIT_CODES = {"finished": 0, "stopped": 0, "failed": 1}


class WorkerDied(RuntimeError):
    """A worker the run was waiting on exited."""


class Supervisor(RunCommands):
    def __init__(self, cfg, folder: Path, listeners=(), log_to_stderr: bool = True, env: EnvFacts | None = None):
        self.cfg = cfg
        self.env = env  # from the env `prepare` built to check the config; else the supervisor builds one
        self.folder = Path(folder)
        self.sinks = StatusSinks(self.folder, listeners)
        self.log_to_stderr = log_to_stderr
        self.ctx = mp.get_context("spawn")
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
        self.running_since: float | None = None
        self._stop = asyncio.Event()
        self._waiters: dict[str, asyncio.Future] = {}
        self._request_ids = 0
        self._last_save = self._last_best_check = time.monotonic()
        self.server: ControlServer | None = None
        self.population = None  # the PBT worker, with pbt.with_pbt
        self.pool = None  # the self-play opponent pool, with pool settings
        self._last_pool_write = time.monotonic()

    # ---- entry ----------------------------------------------------------------------------------

    def run(self) -> int:
        processes.become_subreaper()
        if not self.lock.acquire():
            raise ExperimentError(f"{self.folder} is live: another run holds its lock")
        try:
            self._setup_logging()
            return asyncio.run(self._main())
        finally:
            (self.folder / "run.json").unlink(missing_ok=True)
            self.lock.release()

    async def _main(self) -> int:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(
            lambda _, context: log.error("%s", context.get("message"), exc_info=context.get("exception")))
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.request_stop, "stopped", f"received {signal.Signals(sig).name}")
        ticker = None
        try:
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
            await self._shutdown()
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

    # ---- start ----------------------------------------------------------------------------------

    async def _start(self) -> None:
        cfg = self.cfg
        torch.set_num_threads(1)
        self._publish(persist=True)
        batched = cfg.sampler.batched_sampling
        if self.env is None:
            probe = make_probe_env(cfg)
            self.env = EnvFacts.of(probe, batched)
            probe.close()
        obs_specs, action_spec = self.env.obs_specs, self.env.action_spec
        num_agents, vector_envs, components = self.env.num_agents, self.env.num_envs, self.env.reward_components
        self.device = resolved_device(cfg)

        model_factory = functools.partial(make_actor_critic, cfg.model, obs_specs, action_spec)
        initial = []
        for policy in range(cfg.sampler.num_policies):
            torch.manual_seed(cfg.run.seed + policy)
            model = model_factory()
            initial.append(model.state_dict())
        self.layout = BufferLayout.for_run(cfg, num_agents, vector_envs)
        self.buffers = TrajectoryBuffers(self.layout, obs_specs, action_spec, rnn_state_size=model.rnn_state_size,
                                         poison=cfg.run.debug_poison, reward_components=components,
                                         num_policies=cfg.sampler.num_policies)
        self.weights = SharedWeights(initial, self.ctx)
        self.exchange = None
        if cfg.pbt.with_pbt:
            from sampler.selfplay.pbt import Population

            self.exchange = LearnerExchange(cfg.sampler.num_policies, LearnerExchange.capacity_for(model))
            self.population = Population(cfg.pbt, self.folder, cfg.run.seed)
        num_policies = cfg.sampler.num_policies
        shared = cfg.sampler.policy_workers_per_policy > 1
        self.request_queues = [MessageChannel(self.ctx, shared_readers=shared) for _ in range(num_policies)]
        self.learner_queues = [MessageChannel(self.ctx) for _ in range(num_policies)]
        self.reply_queues = [ReplyChannel(self.ctx) for _ in range(cfg.sampler.num_workers)]
        self.consumers_lock = self.ctx.Lock()
        self.model_factory = model_factory
        self.cfg_dict = config_to_dict(cfg)
        self.spec_dicts = {
            "obs": obs_specs_to_dict(obs_specs),
            "action": action_spec.to_dict(),
            "model": cfg.model.model_dump(mode="json"),
        }

        if cfg.pool.enabled:
            from sampler.selfplay.pool import OpponentPool, check_checkpoints

            self.pool = OpponentPool(cfg, self.folder, num_policies, check_checkpoints(cfg, self.spec_dicts))

        self.server = ControlServer(socket_path_for(self.folder), self.handle_command, cfg.run.experiment)
        await self.server.start()
        self.janitor = janitor.start(self.server.path)
        write_json_atomic(self.folder / "run.json", {
            "pid": os.getpid(), "hostname": socket.gethostname(), "socket": str(self.server.path),
            "started_at": time.time(),
        })
        self.sinks.server = self.server
        self.sinks.tb = TensorboardWriter(self.folder / "tb", num_policies)
        envs = vector_envs or cfg.sampler.num_envs_per_worker
        log.info("starting %s: %s, %d worker(s) x %d env(s)%s, %d polic%s, device %s", cfg.run.experiment, cfg.env.name,
                 cfg.sampler.num_workers, envs, " (batched)" if batched else "", num_policies,
                 "y" if num_policies == 1 else "ies", self.device)

        learners = [self._spawn_learner(p) for p in range(num_policies)]
        readies = await asyncio.gather(*(self._expect(h, "ready") for h in learners))
        self.elapsed_before = max(r["elapsed_sec"] for r in readies)
        for handle, ready in zip(learners, readies, strict=True):
            policy = self.board.policies[handle.policy].status
            policy.version, policy.env_frames = ready["version"], ready["env_frames"]
            policy.hyperparameters = ready["hyperparameters"]
        for ready in readies:
            log.info("policy %d learner: %s, %d torch thread(s), device %s", ready["policy"], ready["precision"],
                     ready["threads"], self.device)
            for skipped in ready["skipped"]:
                log.warning("policy %d: %s", ready["policy"], skipped)
                self.board.event("checkpoint", f"p{ready['policy']}: {skipped}")
            if ready.get("checkpoint"):
                log.info("policy %d restored from %s (state digest %s)", ready["policy"], ready["checkpoint"],
                         ready["digest"])
        if self.board.env_frames:
            log.info("resuming at %s env frames, %.0f s trained", f"{self.board.env_frames:,}", self.elapsed_before)
        self.local_inference = uses_local_inference(cfg)
        if not self.local_inference:
            for policy in range(num_policies):
                for i in range(cfg.sampler.policy_workers_per_policy):
                    self._spawn_inference(policy, i)
        for index in range(cfg.sampler.num_workers):
            self._spawn_rollout(index)
        await asyncio.gather(*(self._expect(h, "heartbeat") for h in self.handles if h.kind == "rollout"))
        self._set_state("running")
        self._check_budget()

    def _spawn(self, handle: WorkerHandle, target, *args) -> WorkerHandle:
        parent, child = self.ctx.Pipe(duplex=True)
        handle.conn = parent
        handle.process = self.ctx.Process(target=target, args=(child, *args), name=handle.name, daemon=False)
        handle.process.start()
        child.close()
        handle.started()
        loop = asyncio.get_running_loop()
        loop.add_reader(parent.fileno(), self._on_message, handle)
        loop.add_reader(handle.process.sentinel, self._on_exit, handle)
        if handle not in self.handles:
            self.handles.append(handle)
        return handle

    def _spawn_learner(self, policy: int) -> WorkerHandle:
        handle = WorkerHandle(f"learner_p{policy}", "learner", policy=policy)
        return self._spawn(handle, learner_main, policy, self.cfg_dict, self.buffers, self.layout, self.weights,
                           self.model_factory, self.learner_queues[policy], self.reply_queues,
                           self.consumers_lock, str(self.folder), self.spec_dicts, self.device, self.exchange)

    def _spawn_inference(self, policy: int, index: int) -> WorkerHandle:
        handle = WorkerHandle(f"inference_p{policy}_{index}", "inference", policy=policy)
        return self._spawn(handle, inference_main, handle.name, policy, self.cfg_dict, self.buffers, self.weights,
                           self.model_factory, self.request_queues[policy], self.reply_queues, self.device)

    def _spawn_rollout(self, index: int, handle: WorkerHandle | None = None) -> WorkerHandle:
        handle = handle or WorkerHandle(f"rollout_{index}", "rollout", index=index)
        local = (self.model_factory, self.weights) if self.local_inference else None
        pool = (self.model_factory, str(self.folder)) if self.pool is not None else None
        target = batched_rollout_main if self.cfg.sampler.batched_sampling else rollout_main
        return self._spawn(handle, target, index, handle.incarnation, self.cfg_dict, self.buffers, self.layout,
                           self.request_queues, self.reply_queues[index], self.learner_queues, local, pool)

    async def _expect(self, handle: WorkerHandle, kind: str) -> dict:
        future = asyncio.get_running_loop().create_future()
        handle.expecting[kind] = future
        return await future

    # ---- worker reports -------------------------------------------------------------------------

    def _on_message(self, handle: WorkerHandle) -> None:
        try:
            while handle.conn.poll():
                kind, payload = handle.conn.recv()
                self._handle_report(handle, kind, payload)
        except (EOFError, OSError):
            asyncio.get_running_loop().remove_reader(handle.conn.fileno())

    def _handle_report(self, handle: WorkerHandle, kind: str, payload: dict) -> None:
        handle.beat(kind, payload)
        future = handle.expecting.pop(kind, None)
        if future is not None and not future.done():
            future.set_result(payload)
        if kind == "heartbeat" and handle.kind == "rollout":
            for policy, ret, length, objective, extra, shaped in payload.get("episodes", ()):
                self.board.policies[policy].add_episode(ret, length, objective, extra, shaped)
            if self.pool is not None:
                for game in payload.get("games", ()):
                    self.pool.record(game)
                self.pool.count_seats(*payload.get("seats", (0, 0)))
        elif kind == "train":
            self.board.policies[handle.policy].add_training(payload)
        elif kind == "threads":
            log.info("policy %d learner: %s", handle.policy, payload["message"])
            self.board.event("learner", f"p{handle.policy} learner: {payload['message']}")
        elif kind == "hyperparameters":
            self.board.policies[handle.policy].status.hyperparameters = payload["hyperparameters"]
        elif kind == "paused":
            self._resolve_when("paused", all(h.paused for h in self._alive()))
        elif kind in ("pbt_published", "pbt_copied", "pool_saved"):
            waiter = self._waiters.pop(f"{kind}-{payload.get('request')}", None)
            if waiter is not None and not waiter.done():
                waiter.set_result(payload)
        elif kind == "saved":
            self.board.event("checkpoint", f"saved {Path(payload['path']).relative_to(self.folder)}")
            waiter = self._waiters.pop(f"saved-{payload.get('request')}", None)
            if waiter is not None and not waiter.done():
                waiter.set_result(payload["path"])
        elif kind == "error":
            handle.last_error = payload["error"]
            detail = payload["traceback"]
            log.error("%s failed: %s%s", handle.name, payload["error"], "\n" + detail if detail else "")

    def _on_exit(self, handle: WorkerHandle) -> None:
        loop = asyncio.get_running_loop()
        loop.remove_reader(handle.process.sentinel)
        if handle.conn is not None and not handle.conn.closed:
            self._on_message(handle)
            loop.remove_reader(handle.conn.fileno())
        handle.process.join(timeout=1)
        handle.exited()
        if self.state in ("stopping",) or handle.expected_exit:
            return
        self._kill_orphans()
        reason = handle.last_error or processes.describe_exit(handle.process.exitcode)
        log.error("%s (pid %s) died: %s", handle.name, handle.pid, reason)
        self.board.event("worker_died", f"{handle.name} died: {reason}")
        if handle.kind == "rollout" and handle.restarts < self.cfg.run.max_worker_restarts:
            handle.restarts += 1
            handle.incarnation += 1
            handle.last_error = reason
            self.board.event("worker_restarted", f"{handle.name} restarted ({handle.restarts} so far)")
            log.info("restarting %s (%d of %d allowed)", handle.name, handle.restarts,
                     self.cfg.run.max_worker_restarts)
            self._spawn_rollout(handle.index, handle)
            if self.state == "paused":
                handle.send("pause")
            return
        self.request_stop("failed", f"{handle.name} died: {reason}")
        for future in handle.expecting.values():
            if not future.done():
                future.set_exception(WorkerDied(f"{handle.name} died: {reason}"))

    def _alive(self) -> list[WorkerHandle]:
        return [h for h in self.handles if h.alive]

    def _resolve_when(self, key: str, condition: bool) -> None:
        waiter = self._waiters.get(key)
        if condition and waiter is not None and not waiter.done():
            waiter.set_result(True)

    # ---- stop requests ---------------------------------------------------------------------------

    def request_stop(self, final_state: str, reason: str) -> None:
        if self._stop.is_set():
            return
        log.info("stopping (%s)", reason)
        self.final_state = final_state
        if final_state == "failed":
            self.error = reason
        self._stop.set()

    # ---- periodic work --------------------------------------------------------------------------

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

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(TICK_SEC)
            try:
                await self._tick()
            except Exception:  # noqa: BLE001 - a reporting error must not kill the run
                log.exception("status tick failed")

    async def _tick(self) -> None:
        now = time.monotonic()
        for handle in self._alive():
            if not handle.process.is_alive():  # a death whose sentinel something else still holds open
                self._on_exit(handle)
                continue
            if handle.check_stall(now, self.cfg.run.stall_timeout_sec):
                self.board.event("worker_stalled", f"{handle.name} silent for {self.cfg.run.stall_timeout_sec:.0f} s")
                log.warning("%s stalled", handle.name)
        self._publish()
        if self.state != "running":
            return
        self._check_budget()
        if self.population is not None and self.population.due(self.board.env_frames):
            self.population.busy = True
            asyncio.create_task(self._population_update())
        if self.pool is not None:
            if self.pool.due(self.board.env_frames):
                self.pool.busy = True
                asyncio.create_task(self._pool_snapshot())
            if self.pool.dirty and now - self._last_pool_write >= POOL_WRITE_EVERY_SEC:
                self._last_pool_write = now
                self.pool.write()
        if now - self._last_save >= self.cfg.run.save_every_sec:
            self._last_save = now
            asyncio.create_task(self._save_quietly())
        if now - self._last_best_check >= BEST_CHECK_EVERY_SEC:
            self._last_best_check = now
            self._check_best()

    async def _save_quietly(self, best_policy: int | None = None) -> None:
        try:
            await self.save_all(best_policy)
        except ControlError as e:
            log.warning("checkpoint not saved: %s", e)

    async def _population_update(self) -> None:
        try:
            await self.population.update(self, self.board.env_frames)
        except Exception as e:  # noqa: BLE001 - a failed update is reported; training goes on
            self.board.event("pbt", f"update failed: {e}")
            log.exception("pbt update failed")

    async def _pool_snapshot(self) -> None:
        try:
            added = await self.pool.snapshot(self, self.board.env_frames)
        except Exception as e:  # noqa: BLE001 - a failed snapshot is reported; training goes on
            self.board.event("pool", f"snapshot failed: {e}")
            log.exception("pool snapshot failed")
            return
        text = f"snapshot {', '.join(added)} joined the pool ({len(self.pool.members)} members)"
        self.board.event("pool", text)
        log.info("pool: %s", text)

    def _check_budget(self) -> None:
        if self.board.env_frames >= self.cfg.run.train_for_env_steps:
            self.request_stop("finished", f"reached {self.board.env_frames:,} env frames")
        elif self.elapsed_sec() >= self.cfg.run.train_for_seconds:
            self.request_stop("finished", f"trained for {self.elapsed_sec():.0f} s")

    def _check_best(self) -> None:
        if self.board.env_frames < self.cfg.run.save_best_after_env_steps:
            return
        for policy in self.board.policies:
            s = policy.status
            if len(policy.returns) < MIN_EPISODES_FOR_BEST or s.episode_return is None:
                continue
            if s.best_return is None or s.episode_return > s.best_return + 1e-3:
                s.best_return = s.episode_return
                asyncio.create_task(self._save_quietly(best_policy=s.policy_id))

    def _status(self) -> RunStatus:
        workers = [h.status() for h in self.handles]
        status = self.board.status(self.state, self.elapsed_sec(), workers, self.error)
        if self.pool is not None:
            status.pool = self.pool.status()
            for policy in status.policies:
                policy.rating = round(self.pool.rating(policy.policy_id), 1)
        return status

    def _publish(self, persist: bool | None = None) -> None:
        self.sinks.publish(self._status(), persist)

    # ---- stop -----------------------------------------------------------------------------------

    async def _shutdown(self) -> None:
        self.state = "stopping"
        self._publish(persist=True)
        for handle in self._alive():
            if handle.kind == "rollout":
                handle.send("stop")
        if any(h.kind == "learner" for h in self._alive()):
            try:
                paths = await self.save_all()
                log.info("saved %s", ", ".join(str(Path(p).relative_to(self.folder)) for p in paths))
            except (ControlError, RuntimeError) as e:
                log.error("final checkpoint not saved: %s", e)
        for handle in self._alive():
            handle.send("stop")
        await self._join_all()
        if self.pool is not None:
            self.pool.write()
        if self.server is not None:
            await self.server.close()
            self.janitor.stdin.close()
            self.janitor.wait(timeout=10)
        self.state = self.final_state
        self.board.event("state", self.state)
        self._publish(persist=True)
        self.sinks.close()
        log.info("%s at %s env frames", self.state, f"{self.board.env_frames:,}")

    async def _join_all(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        for handle in self.handles:
            handle.expected_exit = True
        while any(h.process.is_alive() for h in self.handles) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for handle in self.handles:
            if handle.process.is_alive():
                log.warning("%s did not exit; killing it", handle.name)
                processes.kill_tree(handle.process.pid)
            handle.process.join(timeout=5)
        self._kill_orphans()

    def _kill_orphans(self) -> None:
        """Kills processes a dead worker left behind (an env engine), which were re-parented to us."""
        ours = {h.pid for h in self.handles if h.alive}
        if getattr(self, "janitor", None) is not None:
            ours.add(self.janitor.pid)
        for pid, name in processes.kill_adopted_orphans(ours):
            log.warning("killed %s (pid %d), left behind by a dead worker", name, pid)
