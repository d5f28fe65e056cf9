"""Snapshot tests of the dashboard at 80x24 and 160x48, from a fixed fake status with a frozen clock."""

from __future__ import annotations

import time

import pytest

from sftui.app.app import SftuiApp
from sftui.app.sources import FakeSource
from tests.sftui.test_dashboard import fake_status, tmp_train_dir


@pytest.fixture(autouse=True)
def utc(monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def dashboard_app() -> SftuiApp:
    source = FakeSource()
    app = SftuiApp(source, "exp", tmp_train_dir())
    app.animation_level = "none"

    async def feed(pilot):
        source.push(fake_status(123_456))
        await pilot.pause(0.6)
        await pilot.pause()

    app.feed = feed
    return app


@pytest.mark.parametrize("size", [(80, 24), (160, 48)])
def test_dashboard_snapshot(snap_compare, size):
    app = dashboard_app()
    assert snap_compare(app, terminal_size=size, run_before=app.feed)
