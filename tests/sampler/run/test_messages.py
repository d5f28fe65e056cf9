"""Every report a worker can send has one handler in the supervisor, and messages cross a pipe whole."""

from __future__ import annotations

import pickle
from typing import get_args

from sampler.run.messages import Command, Heartbeat, Report, Save
from sampler.run.reports import RunReports


def test_every_report_type_has_a_handler():
    assert set(RunReports().report_handlers) == set(get_args(Report))


def test_messages_pickle_with_their_fields():
    beat = Heartbeat(steps=3, paused=False, episodes=[(0, 1.0, 10, None, {}, None)], mean_batch=2.5)
    assert pickle.loads(pickle.dumps(beat)) == beat
    save = Save(request=7, env_frames=100, elapsed_sec=1.5, best=True)
    assert pickle.loads(pickle.dumps(save)) == save and isinstance(save, get_args(Command))
