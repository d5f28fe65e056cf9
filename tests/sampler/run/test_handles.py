"""A worker's restart budget is per time window: rare crashes over a long run never use it up."""

from sampler.run.handles import WorkerHandle


def test_restarts_are_allowed_per_window_not_per_run(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr("sampler.run.handles.time.monotonic", lambda: now[0])
    handle = WorkerHandle("rollout_0", "rollout")
    assert handle.may_restart(2, window=3600) and handle.may_restart(2, window=3600)
    assert not handle.may_restart(2, window=3600)  # a third within the hour: refused
    now[0] += 3601  # an hour later the first two no longer count
    assert handle.may_restart(2, window=3600)
    assert handle.restarts == 3  # over the run
