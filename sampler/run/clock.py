"""What a running run does on its clock, twice a second: status, stalls, the budget, checkpoints, PBT and the pool.

`RunClock` is a part of the Supervisor, kept apart because it is the run's schedule: each tick publishes the
status, marks silent workers stalled, stops the run at its budget, saves checkpoints every
`run.save_every_sec` and best.pt when a policy's return improves, and starts evaluations, PBT updates and pool snapshots
when they are due. It uses the supervisor's state, board, handles, population and pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time

from sampler.errors import ControlError
from sampler.run import stacks
from sampler.status import RunStatus

log = logging.getLogger("sftui")

TICK_SEC = 0.5
BEST_CHECK_EVERY_SEC = 5.0
POOL_WRITE_EVERY_SEC = 10.0  # ratings change with every game: pool.json is rewritten at most this often
MIN_EPISODES_FOR_BEST = 10
SAVE_RETRY_SEC = 60.0  # after a failed periodic save (a full disk), the next try comes this soon


class RunClock:
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
                asyncio.create_task(self._on_stalled(handle))
            elif (handle.state == "stalled" and handle.kind == "rollout" and not handle.killed_for_stall
                  and now - handle.last_beat > self.cfg.run.kill_stalled_after_sec):
                # a rollout worker is restarted like a crashed one; a stalled learner or inference worker is
                # only shown (killing it would end the run)
                handle.killed_for_stall = True
                handle.last_error = f"stalled for {now - handle.last_beat:.0f} s, killed"
                log.warning("%s: %s", handle.name, handle.last_error)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(handle.pid, signal.SIGKILL)  # its exit is then handled as a crash: restarted
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
        if self.evaluator.due(self.board.env_frames):
            asyncio.create_task(self.evaluator.evaluate())
        if now - self._last_save >= self.cfg.run.save_every_sec:
            self._last_save = now
            asyncio.create_task(self._save_quietly())
        if now - self._last_best_check >= BEST_CHECK_EVERY_SEC:
            self._last_best_check = now
            self._check_best()

    async def _on_stalled(self, handle) -> None:
        """A worker silent for stall_timeout_sec: its stack is asked for, kept as stacks/<worker>.stalled.txt,
        and the event names the function it is stuck in."""
        silent = f"{handle.name} silent for {self.cfg.run.stall_timeout_sec:.0f} s"
        pid, directory = handle.pid, self.folder / "stacks"
        dump = await asyncio.to_thread(stacks.request, pid, stacks.dump_path(directory, handle.name, pid))
        if not dump:
            message = f"{silent}; it gave no stack (stopped, or not started yet)"
        else:
            kept = stacks.stalled_path(directory, handle.name)
            kept.write_text(dump)
            where = stacks.innermost(dump) or "an unknown function"
            message = f"{silent}, stuck in {where}; its stack: {kept.relative_to(self.folder)}"
        self.board.event("worker_stalled", message)
        log.warning("%s", message)

    async def _save_quietly(self, best_policy: int | None = None) -> None:
        """A periodic save; one that fails (a full disk) is said in the log, the events and RunStatus.warning, and
        tried again within SAVE_RETRY_SEC while training goes on."""
        try:
            await self.save_all(best_policy)
        except ControlError as e:
            retry = min(SAVE_RETRY_SEC, self.cfg.run.save_every_sec)
            log.warning("checkpoint not saved: %s; training goes on, saving again in %.0f s", e, retry)
            self.board.event("checkpoint", f"not saved: {e}")
            self._last_save = time.monotonic() - self.cfg.run.save_every_sec + retry

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
        for policy_id in self._improved():
            asyncio.create_task(self._save_quietly(best_policy=policy_id))

    def _improved(self) -> list[int]:
        """The policies whose mean training return beats the one their best.pt holds (their best_return moves up
        to it). Checked every BEST_CHECK_EVERY_SEC and once more before the final save, so that a short run, or
        the last seconds of a long one, still writes the best.pt it earned. With evaluation on, the evaluation
        return decides instead (`sampler.run.evaluation`)."""
        if self.evaluator.enabled or self.board.env_frames < self.cfg.run.save_best_after_env_steps:
            return []
        improved = []
        for policy in self.board.policies:
            s = policy.status
            if len(policy.returns) < MIN_EPISODES_FOR_BEST or s.episode_return is None:
                continue
            if s.best_return is None or s.episode_return > s.best_return + 1e-3:
                s.best_return = s.episode_return
                improved.append(s.policy_id)
        return improved

    def _status(self) -> RunStatus:
        workers = [h.status() for h in self.handles]
        status = self.board.status(self.state, self.elapsed_sec(), workers, self.error)
        if self.sinks.write_error:
            status.warning = "; ".join(w for w in (status.warning, f"status not written: {self.sinks.write_error}")
                                       if w)
        if self.pool is not None:
            status.pool = self.pool.status()
            for policy in status.policies:
                policy.rating = round(self.pool.rating(policy.policy_id), 1)
        return status

    def _publish(self, persist: bool | None = None) -> None:
        self.sinks.publish(self._status(), persist)
