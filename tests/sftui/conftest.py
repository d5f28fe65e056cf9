from __future__ import annotations

import pytest

from sftui.app import dashboard


@pytest.fixture(autouse=True)
def quick_dashboard_refresh(monkeypatch):
    """The dashboard redraws every 0.1 s here instead of every 0.5 s, so a test waits 0.2 s, not 0.6 s, for the
    next redraw (`settle`). The redraw timer itself still runs: the tests wait for it, they do not call it."""
    monkeypatch.setattr(dashboard, "REFRESH_SEC", 0.1)
