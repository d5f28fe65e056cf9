"""A stop goes through every clean-up step even when one fails: the run still reaches its final state, and its
later steps (the janitor, the status) still run. A failed step is logged and shown as an event."""

from __future__ import annotations

import asyncio
import logging

from sampler.run.supervisor import Supervisor


class Recorder:
    def __init__(self, fail: str = ""):
        self.fail, self.done, self.events, self.published = fail, [], [], []

    def step(self, name: str):
        def run():
            if name == self.fail:
                raise OSError(f"{name} broke")
            self.done.append(name)
        return run


def _supervisor(recorder: Recorder) -> Supervisor:
    supervisor = object.__new__(Supervisor)  # only what a stop reads: no run, no processes
    supervisor.running_since = None
    supervisor.final_state = "stopped"
    supervisor.handles = []
    supervisor.pool = type("Pool", (), {"write": staticmethod(recorder.step("pool"))})()
    supervisor.server = type("Server", (), {"close": staticmethod(recorder.step("server"))})()
    supervisor.evaluator = type("Evaluator", (), {"stop": staticmethod(recorder.step("evaluator"))})()
    supervisor.starter = type("Starter", (), {"end": staticmethod(recorder.step("starter"))})()
    supervisor.board = type("Board", (), {"event": staticmethod(lambda kind, message: recorder.events.append(
        (kind, message))), "env_frames": 0})()
    supervisor.sinks = type("Sinks", (), {"close": staticmethod(recorder.step("sinks"))})()
    supervisor._publish = lambda persist=False: recorder.published.append(supervisor.state)
    supervisor._end_janitor = recorder.step("janitor")

    async def join_all():
        recorder.done.append("join")
    supervisor._join_all = join_all
    return supervisor


def test_every_step_runs_after_one_fails_and_the_run_reaches_its_final_state(caplog):
    recorder = Recorder(fail="evaluator")
    supervisor = _supervisor(recorder)
    with caplog.at_level(logging.ERROR, logger="sftui"):
        asyncio.run(supervisor._shutdown())
    assert recorder.done == ["join", "starter", "pool", "server", "janitor", "sinks"]
    assert recorder.published == ["stopping", "stopped"]
    assert ("error", "stopping: stopping the evaluation failed (see log.txt)") in recorder.events
    assert "evaluator broke" in caplog.text  # with its traceback


def test_a_clean_stop_runs_every_step_once():
    recorder = Recorder()
    supervisor = _supervisor(recorder)
    asyncio.run(supervisor._shutdown())
    assert recorder.done == ["evaluator", "join", "starter", "pool", "server", "janitor", "sinks"]
    assert not [e for e in recorder.events if e[0] == "error"]
