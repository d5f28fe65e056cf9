"""What the supervisor does with each report a worker sends up its pipe: one handler per report type.

`RunReports` is a part of the Supervisor, kept apart because it is where every worker's news arrives: episodes
and games for the status board and the opponent pool, training figures, learner choices, pause
acknowledgements, replies to requests, and errors. It uses the supervisor's board, pool, handles and pending
replies.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable
from pathlib import Path

from sampler.run.handles import WorkerHandle
from sampler.run.messages import (
    Exited,
    Heartbeat,
    HyperparametersNow,
    Notice,
    Paused,
    PbtCopied,
    PbtPublished,
    PoolSaved,
    Ready,
    Report,
    Resumed,
    Saved,
    ThreadsChosen,
    Trained,
    WorkerFailed,
)

log = logging.getLogger("sftui")
ENV_RESTART_EVENT_EVERY_SEC = 60.0


class RunReports:
    def _on_message(self, handle: WorkerHandle) -> None:
        """Reads every report waiting on a worker's pipe (called by the event loop when the pipe is readable)."""
        try:
            while handle.conn.poll():
                self.on_report(handle, handle.conn.recv())
        except (EOFError, OSError):
            asyncio.get_running_loop().remove_reader(handle.conn.fileno())

    @functools.cached_property
    def report_handlers(self) -> dict[type, Callable[[WorkerHandle, Report], None]]:
        """Report type -> what the supervisor does with it."""
        return {
            Heartbeat: self._on_heartbeat, Trained: self._on_trained, ThreadsChosen: self._on_threads,
            HyperparametersNow: self._on_hyperparameters, Paused: self._on_paused, Saved: self._on_saved,
            PbtPublished: self._on_reply, PbtCopied: self._on_reply, PoolSaved: self._on_reply,
            WorkerFailed: self._on_failed, Notice: self._on_notice,
            Ready: _nothing_more, Resumed: _nothing_more, Exited: _nothing_more,
        }

    def on_report(self, handle: WorkerHandle, report: Report) -> None:
        handle.beat(report)
        future = handle.expecting.pop(type(report), None)
        if future is not None and not future.done():
            future.set_result(report)
        self.report_handlers[type(report)](handle, report)

    def _on_heartbeat(self, handle: WorkerHandle, beat: Heartbeat) -> None:
        if handle.kind != "rollout":
            return
        if beat.env_restarts:
            self._on_env_restarts(handle, beat)
        for policy, ret, length, objective, extra, shaped in beat.episodes:
            self.board.policies[policy].add_episode(ret, length, objective, extra, shaped)
        if self.pool is not None:
            for game in beat.games:
                self.pool.record(game)
            self.pool.count_seats(*beat.seats)

    def _on_env_restarts(self, handle: WorkerHandle, beat: Heartbeat) -> None:
        """Envs that raised were rebuilt by their worker: counted always, said at most once a minute per worker
        (an env that fails in 1% of its steps would fill the events otherwise)."""
        handle.env_restarts += beat.env_restarts
        now = time.monotonic()
        if now - handle.env_error_reported >= ENV_RESTART_EVENT_EVERY_SEC:
            handle.env_error_reported = now
            message = f"{handle.name}: env rebuilt after it raised ({handle.env_restarts} so far): {beat.env_error}"
            log.warning("%s", message)
            self.board.event("env_restarted", message)

    def _on_trained(self, handle: WorkerHandle, trained: Trained) -> None:
        self.board.policies[handle.policy].add_training(trained)

    def _on_threads(self, handle: WorkerHandle, chosen: ThreadsChosen) -> None:
        log.info("policy %d learner: %s", handle.policy, chosen.message)
        self.board.event("learner", f"p{handle.policy} learner: {chosen.message}")

    def _on_hyperparameters(self, handle: WorkerHandle, now: HyperparametersNow) -> None:
        self.board.policies[handle.policy].status.hyperparameters = now.hyperparameters

    def _on_paused(self, handle: WorkerHandle, paused: Paused) -> None:
        waiter = self._all_paused
        if waiter is not None and not waiter.done() and all(h.paused for h in self._alive()):
            waiter.set_result(True)

    def _on_saved(self, handle: WorkerHandle, saved: Saved) -> None:
        if saved.path:
            self.board.event("checkpoint", f"saved {Path(saved.path).relative_to(self.folder)}")
        self._on_reply(handle, saved)

    def _on_notice(self, handle: WorkerHandle, notice: Notice) -> None:
        log.warning("%s: %s", handle.name, notice.message)
        self.board.event(notice.topic, f"{handle.name}: {notice.message}")

    def _on_reply(self, handle: WorkerHandle, reply: Saved | PbtPublished | PbtCopied | PoolSaved) -> None:
        future = self._replies.pop(reply.request, None)
        if future is not None and not future.done():
            future.set_result(reply)

    def _on_failed(self, handle: WorkerHandle, failed: WorkerFailed) -> None:
        handle.last_error = failed.error
        log.error("%s failed: %s%s", handle.name, failed.error, "\n" + failed.traceback if failed.traceback else "")


def _nothing_more(handle: WorkerHandle, report: Report) -> None:
    """Reports whose only effect is the handle's beat and the future that awaited them."""
