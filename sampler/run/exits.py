"""How a running run meets the deaths of its workers: restarts within budget, locks the dead held, orphans.

`RunExits` is a part of the Supervisor, kept apart because it is the run's healing: a worker that exits
unexpectedly is reported, the locks it shared are freed, what it left behind is killed, and it is restarted
within `run.max_worker_restarts` per hour (a learner from its snapshot, an inference worker with its
unanswered requests asked again, a rollout worker reclaiming its buffers); past the budget the run fails
with the reason. It also joins every worker at the end of the run. It uses the supervisor's handles, plan,
board and state.
"""

from __future__ import annotations

import asyncio
import logging
import time

from sampler import processes
from sampler.run import forkserver
from sampler.run.handles import WorkerHandle
from sampler.run.messages import Pause, Rerequest
from sampler.run.workers.inference import inference_main

log = logging.getLogger("sftui")


class WorkerDied(RuntimeError):
    """A worker the run was waiting on exited."""


class RunExits:
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
        self._free_locks_of(handle)
        self.board.event("worker_died", f"{handle.name} died: {reason}")
        restartable = handle.kind != "learner" or self.plan.snapshots is not None
        if restartable and handle.may_restart(self.cfg.run.max_worker_restarts):
            handle.incarnation += 1
            handle.last_error = reason
            self.board.event("worker_restarted", f"{handle.name} restarted ({handle.restarts} so far)")
            log.info("restarting %s (%d in the last hour, %d allowed)", handle.name, len(handle.restart_times),
                     self.cfg.run.max_worker_restarts)
            if handle.kind == "learner":
                self._spawn_learner(handle.policy, handle)
            elif handle.kind == "inference":
                spec = next(s for s in self.plan.inference_specs() if s.name == handle.name)
                self._spawn(handle, inference_main, spec)
                for rollout in self._alive():  # what the dead one took from the queue is asked for again
                    if rollout.kind == "rollout":
                        rollout.send(Rerequest(policy=handle.policy))
            else:
                self._spawn_rollout(handle.index, handle)
            if self.state == "paused":
                handle.send(Pause())
            return
        if restartable:
            reason += f" (its {len(handle.restart_times)} restarts allowed within an hour were used)"
        self.request_stop("failed", f"{handle.name} died: {reason}")
        for future in handle.expecting.values():
            if not future.done():
                future.set_exception(WorkerDied(f"{handle.name} died: {reason}"))

    def _free_locks_of(self, handle: WorkerHandle) -> None:
        """A learner or inference worker killed inside a lock it shares with its siblings would block them forever."""
        if handle.kind == "learner":
            lock = self.plan.consumers_lock
        elif handle.kind == "inference":
            lock = self.plan.request_queues[handle.policy]
        else:
            return
        if handle.pid is not None and lock.free_for_dead(handle.pid):
            log.info("%s died holding a lock it shares with other workers: released", handle.name)

    def _alive(self) -> list[WorkerHandle]:
        return [h for h in self.handles if h.alive]

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
        ours = {h.pid for h in self.handles if h.alive} | {forkserver.server_pid(), self.evaluator.pid}
        if getattr(self, "janitor", None) is not None:
            ours.add(self.janitor.pid)
        for pid, name in processes.kill_adopted_orphans(ours):
            log.warning("killed %s (pid %d), left behind by a dead worker", name, pid)
