"""The app end to end: launch a real CartPole run from the launcher, watch, pause, resume and stop it."""

from __future__ import annotations

import re
import time

import psutil

from sampler.experiment.folders import derived_state
from sftui.app.app import SftuiApp
from sftui.app.dashboard import DashboardScreen
from sftui.app.dialogs import Choice
from tests.sftui.test_dashboard import settle, sync
from tests.sftui.test_launcher import field, open_launcher
from tests.support import all_gone, process_tree, shm_entries, shm_left_behind, supervisor_pid


def shown_frames(screen: DashboardScreen) -> int | None:
    match = re.search(r"frames ([\d,]+)", str(screen.query_one("#fps").render()))
    return int(match.group(1).replace(",", "")) if match else None


async def wait_for(pilot, predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        await pilot.pause(0.25)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@sync
async def test_launch_watch_pause_resume_and_stop_a_real_run(tmp_path):
    app = SftuiApp(None, None, tmp_path)
    folder = tmp_path / "e2e"
    shm_before = shm_entries()
    tree = []
    try:
        async with app.run_test(size=(160, 48)) as pilot:
            launcher = await open_launcher(pilot, app, "gym_CartPole-v1")
            launcher.query_one("#experiment").value = "e2e"
            field(launcher, "sampler.num_workers").value = "1"
            await settle(pilot)
            await pilot.click("#launch")

            # The launcher runs `sftui run --headless --detach` and switches to the run's dashboard.
            screen = await wait_for(pilot, lambda: isinstance(app.screen, DashboardScreen) and app.screen,
                                    60, "the dashboard")
            first = await wait_for(pilot, lambda: shown_frames(screen), 60, "the first frames")
            tree = process_tree(supervisor_pid(folder))
            later = await wait_for(pilot, lambda: (shown_frames(screen) or 0) > first and shown_frames(screen),
                                   30, "frames to rise")
            assert later > first

            await pilot.press("p")
            await wait_for(pilot, lambda: "paused" in str(screen.query_one("#banner").render()), 20, "paused")
            frozen = shown_frames(screen)
            await pilot.pause(1.5)  # three status ticks
            assert shown_frames(screen) == frozen

            await pilot.press("p")
            await wait_for(pilot, lambda: (shown_frames(screen) or 0) > frozen, 30, "frames to rise after resume")

            await pilot.press("x")
            await wait_for(pilot, lambda: isinstance(app.screen, Choice), 10, "the stop confirmation")
            await pilot.click("#yes")
            await wait_for(pilot, lambda: derived_state(folder)[0] == "stopped", 60, "the run to stop")
            await wait_for(pilot, lambda: "stopped" in str(screen.query_one("#banner").render()), 10,
                           "the dashboard to show the run stopped")
    finally:
        for proc in tree:
            if proc.is_running():
                proc.kill()
    psutil.wait_procs(tree, timeout=15)
    assert all_gone(tree), "processes of the run outlived it"
    # Stopped with the dashboard subscribed: the shutdown logs no traceback (the log tail is on screen).
    assert "Traceback" not in (folder / "log.txt").read_text()
    assert not shm_left_behind(shm_before)
