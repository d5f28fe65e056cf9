"""Pilot tests of the dashboard, driven by a fake RunStatus stream: no training, no sockets."""

from __future__ import annotations

import asyncio
import functools
import tempfile
from pathlib import Path

from sampler.status import Event, Lag, PolicyStatus, RunStatus, WorkerStatus
from sftui.app import dashboard
from sftui.app.app import SftuiApp, TooSmall
from sftui.app.dashboard import DashboardScreen
from sftui.app.sources import FakeSource


def fake_status(frames: int, state: str = "running", policies: int = 2, workers: int = 4, **run) -> RunStatus:
    return RunStatus(
        experiment="exp",
        state=state,
        env_frames=frames,
        fps={"10": 12_345.0, "60": 11_000.0, "300": 10_000.0},
        budget_env_frames=1_000_000,
        budget_seconds=1e10,
        elapsed_sec=42.0,
        policies=[
            PolicyStatus(policy_id=p, version=7 + p, env_frames=frames, episode_return=100.5 + p, episode_length=200,
                         true_objective=3.0,
                         episodes=30, best_return=120.0, learning_rate=1e-4, samples_per_sec=3_000,
                         lag=Lag(min=0, avg=1.5, max=3, histogram=[4, 10, 2, 0, 0, 0, 0, 0, 0, 0]),
                         losses={"policy_loss": -0.01, "value_loss": 0.5},
                         hyperparameters={"gamma": 0.99}, metrics={"entropy": 0.6, "kl": 0.002, "episode/ammo": 3.0})
            for p in range(policies)
        ],
        workers=[WorkerStatus(name=f"rollout_{i}", kind="rollout", pid=100 + i, state="running", cpu_percent=50.0,
                              steps=frames, steps_per_sec=1_000.0 + i) for i in range(workers)]
        + [WorkerStatus(name="learner_p0", kind="learner", pid=99, state="stalled", last_error="no heartbeat")],
        events=[Event(time=0.0, kind="checkpoint", message="saved checkpoints/p0/ckpt_7.pt")],
        **run,
    )


_EMPTY_TRAIN_DIR = tempfile.TemporaryDirectory(prefix="sftui-empty-train-dir-")


def tmp_train_dir() -> Path:
    """An empty train_dir: the browser behind the dashboard has nothing to list."""
    return Path(_EMPTY_TRAIN_DIR.name)


def sync(test):
    """Runs an async pilot test on a fresh event loop."""

    @functools.wraps(test)
    def run(*args, **kwargs):
        return asyncio.run(test(*args, **kwargs))

    return run


async def settle(pilot) -> None:
    await pilot.pause(dashboard.REFRESH_SEC + 0.1)  # a refresh tick (tests/sftui/conftest.py shortens it to 0.1 s)
    await pilot.pause()


@sync
async def test_dashboard_shows_the_streams_values():
    source = FakeSource()
    app = SftuiApp(source, "exp", tmp_train_dir())
    async with app.run_test(size=(160, 48)) as pilot:
        source.push(fake_status(123_456))
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, DashboardScreen)
        fps = str(screen.query_one("#fps").render())
        assert "12,345" in fps and "123,456" in fps and "1,000,000" in fps
        pane = screen.query_one("#policy-1")
        summary = str(pane.query_one("#summary").render())
        assert "101.50" in summary and "objective 3.00" in summary
        assert "gamma 0.99" in str(pane.query_one("#dicts").render())
        assert "min/avg/max" in str(screen.query_one("#lag-now").render())
        table = screen.query_one("#workers")
        assert table.row_count == 5
        assert "stalled" in str(table.get_cell("learner_p0", "state"))


@sync
async def test_the_population_view_ranks_policies_by_objective_with_their_rating_and_last_pbt_change():
    source = FakeSource()
    app = SftuiApp(source, "exp", tmp_train_dir())
    async with app.run_test(size=(160, 48)) as pilot:
        status = fake_status(1_000, policies=3)
        for p, objective in zip(status.policies, (2.0, 7.5, 4.0), strict=True):
            p.true_objective = objective
            p.hyperparameters = {"learning_rate": 1e-4 * (p.policy_id + 1), "exploration_loss_coeff": 0.003}
            p.rating = 1000.0 + 10 * p.policy_id
        status.policies[0].pbt_last = "12:00:00 <- p1: learning_rate"
        status.pool = {"members": [{"name": "p1-v40", "kind": "snapshot", "rating": 1043.4, "games": 12},
                                   {"name": "p0-v40", "kind": "snapshot", "rating": 987.0, "games": 9}],
                       "opponent_seats": 200, "pool_seats": 61, "seat_probability": 0.3}
        source.push(status)
        await settle(pilot)
        table = app.screen.query_one("#population")
        assert table.display and table.row_count == 3
        rows = [[str(cell) for cell in table.get_row_at(i)] for i in range(3)]
        assert [row[0] for row in rows] == ["p1", "p2", "p0"]  # best objective first
        assert rows[0][1:5] == ["7.5", f"{101.5:.3g}", "1010", "0.0002"]
        assert rows[2][6] == "12:00:00 <- p1: learning_rate"
        assert table.border_subtitle == "pool: 2 members, 30% of opponent seats, best p1-v40 1043"

        source.push(fake_status(2_000, policies=1))  # a single policy has no population to show
        await settle(pilot)
        assert not app.screen.query_one("#population").display

        status = fake_status(3_000, policies=1, pool={"members": [], "opponent_seats": 0, "pool_seats": 0})
        source.push(status)  # ... but a pool is shown, with the policy's rating
        await settle(pilot)
        table = app.screen.query_one("#population")
        assert table.display and table.border_subtitle == "pool: empty so far"


@sync
async def test_h_opens_a_dialog_that_sets_a_hyperparameter_of_one_policy():
    source = FakeSource()
    source.replies["set"] = {"policies": [1], "hyperparameters": {"learning_rate": 0.0002}}
    app = SftuiApp(source, "exp", tmp_train_dir())
    async with app.run_test(size=(160, 48)) as pilot:
        source.push(fake_status(1_000, policies=2))
        await settle(pilot)
        await pilot.press("h")
        await pilot.pause()
        from textual.widgets import Select

        app.screen.query_one("#policy", Select).value = 1
        await pilot.press(*"learning_rate=2e-4", "enter")
        await settle(pilot)
        assert source.commands[-1] == ("set", {"hyperparameters": {"learning_rate": 0.0002}, "policy": 1})
        assert isinstance(app.screen, DashboardScreen)

        await pilot.press("h")
        await pilot.pause()
        await pilot.press(*"nonsense", "enter")  # not KEY=VALUE: said on screen, nothing sent
        await settle(pilot)
        assert source.commands[-1][1]["policy"] == 1 and len(source.commands) == 1


@sync
async def test_worker_rows_are_updated_in_place_never_rebuilt():
    source = FakeSource()
    app = SftuiApp(source, "exp", tmp_train_dir())
    async with app.run_test(size=(160, 48)) as pilot:
        source.push(fake_status(1_000))
        await settle(pilot)
        table = app.screen.query_one("#workers")
        keys_before = list(table.rows)
        row_objects = [table.rows[k] for k in keys_before]
        source.push(fake_status(2_000))
        await settle(pilot)
        assert list(table.rows) == keys_before
        assert [table.rows[k] for k in keys_before] == row_objects
        assert table.get_cell("rollout_1", "steps/s") == "1,001"


@sync
async def test_p_pauses_and_p_again_resumes():
    source = FakeSource()
    app = SftuiApp(source, "exp", tmp_train_dir())
    async with app.run_test(size=(160, 48)) as pilot:
        source.push(fake_status(1_000))
        await settle(pilot)
        await pilot.press("p")
        await pilot.pause(0.3)
        source.push(fake_status(1_000, state="paused"))
        await settle(pilot)
        assert "paused" in str(app.screen.query_one("#banner").render())
        await pilot.press("p")
        await pilot.pause(0.3)
    assert [cmd for cmd, _ in source.commands] == ["pause", "resume"]


@sync
async def test_s_saves_and_x_stops_after_confirmation():
    source = FakeSource(replies={"save": ["checkpoints/p0/ckpt_9.pt"]})
    app = SftuiApp(source, "exp", tmp_train_dir())
    async with app.run_test(size=(160, 48)) as pilot:
        source.push(fake_status(1_000))
        await settle(pilot)
        await pilot.press("s")
        await pilot.pause(0.3)
        await pilot.press("x")
        await pilot.pause()
        await pilot.click("#no")
        await pilot.pause(0.3)
        assert [cmd for cmd, _ in source.commands] == ["save"]
        await pilot.press("x")
        await pilot.pause()
        await pilot.press("n")  # the keys answer too
        await pilot.pause(0.3)
        assert [cmd for cmd, _ in source.commands] == ["save"]
        await pilot.press("x")
        await pilot.pause()
        await pilot.press("y")
        await pilot.pause(0.3)
        assert [cmd for cmd, _ in source.commands] == ["save", "stop"]
        await pilot.press("x")
        await pilot.pause()
        await pilot.click("#yes")
        await pilot.pause(0.3)
    assert [cmd for cmd, _ in source.commands] == ["save", "stop", "stop"]


@sync
async def test_quit_can_leave_the_run_training():
    source = FakeSource()
    app = SftuiApp(source, "exp", tmp_train_dir())
    async with app.run_test(size=(160, 48)) as pilot:
        source.push(fake_status(1_000))
        await settle(pilot)
        await pilot.press("q")
        await pilot.pause()
        await pilot.click("#leave")
        await pilot.pause()
    assert source.commands == []
    assert "keeps training" in app.exit_message


@sync
async def test_a_failed_run_shows_its_error_and_a_lost_run_shows_not_responding():
    source = FakeSource()
    app = SftuiApp(source, "exp", tmp_train_dir())
    async with app.run_test(size=(160, 48)) as pilot:
        source.push(fake_status(1_000, state="failed", error="learner_p0 died: killed by SIGKILL"))
        source.lose("the run closed the connection")
        await settle(pilot)
        assert "learner_p0 died" in str(app.screen.query_one("#banner").render())

    source = FakeSource()
    app = SftuiApp(source, "exp", tmp_train_dir())
    async with app.run_test(size=(160, 48)) as pilot:
        source.push(fake_status(1_000))
        await settle(pilot)
        source.lose("the run did not answer in time")
        await settle(pilot)
        assert "not responding" in str(app.screen.query_one("#banner").render())


@sync
async def test_a_small_terminal_gets_a_message_instead_of_a_broken_layout():
    source = FakeSource()
    app = SftuiApp(source, "exp", tmp_train_dir())
    async with app.run_test(size=(60, 20)) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, TooSmall)
        assert "at least 80x24" in str(app.screen.query_one("#message").render())
        await pilot.resize_terminal(100, 30)
        await pilot.pause()
        assert isinstance(app.screen, DashboardScreen)


@sync
async def test_the_command_palette_offers_the_run_commands():
    source = FakeSource()
    app = SftuiApp(source, "exp", tmp_train_dir())
    async with app.run_test(size=(160, 48)) as pilot:
        source.push(fake_status(1_000))
        await settle(pilot)
        titles = [command.title for command in app.get_system_commands(app.screen)]
        assert {"Pause or resume the run", "Save a checkpoint now", "Stop the run", "Quit sftui"} <= set(titles)
        save = next(c for c in app.get_system_commands(app.screen) if c.title == "Save a checkpoint now")
        save.callback()
        await pilot.pause(0.3)
    assert [cmd for cmd, _ in source.commands] == ["save"]


@sync
async def test_a_silent_run_shows_not_responding_with_the_time_since_its_last_status():
    source = FakeSource()
    app = SftuiApp(source, "exp", tmp_train_dir())
    async with app.run_test(size=(160, 48)) as pilot:
        source.push(fake_status(1_000))
        await settle(pilot)
        app.screen.last_status_at -= 30  # as if the last status came 30 s ago
        await settle(pilot)
        assert "not_responding: no status for 3" in str(app.screen.query_one("#banner").render())


@sync
async def test_a_run_that_stopped_after_its_last_status_shows_stopped_from_its_folder(tmp_path):
    (tmp_path / "cfg.json").write_text("{}")
    (tmp_path / "summary.json").write_text('{"state": "stopped"}')
    source = FakeSource(folder=tmp_path)
    app = SftuiApp(source, "exp", tmp_train_dir())
    async with app.run_test(size=(160, 48)) as pilot:
        source.push(fake_status(1_000, state="stopping"))
        source.lose("the run closed the connection")
        await settle(pilot)
        assert "run stopped" in str(app.screen.query_one("#banner").render())
        assert app.screen.sub_title == "stopped"


@sync
async def test_keys_can_be_remapped_from_keys_json(tmp_path, monkeypatch):
    (tmp_path / "sftui").mkdir()
    (tmp_path / "sftui" / "keys.json").write_text('{"pause": "space"}')
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    source = FakeSource()
    app = SftuiApp(source, "exp", tmp_train_dir())
    async with app.run_test(size=(160, 48)) as pilot:
        source.push(fake_status(1_000))
        await settle(pilot)
        await pilot.press("p")
        await pilot.press("space")
        await pilot.pause(0.3)
    assert [cmd for cmd, _ in source.commands] == ["pause"]


def test_a_bad_keys_json_is_reported_in_one_line_and_ignored(tmp_path):
    from sftui.app.app import load_keymap

    bad = tmp_path / "keys.json"
    bad.write_text('{"paws": "space"}')
    keymap, problem = load_keymap(bad)
    assert keymap == {} and "unknown binding(s) paws" in problem
    bad.write_text("{not json")
    assert "not valid JSON" in load_keymap(bad)[1]


@sync
async def test_enter_on_a_worker_shows_its_stack_now_and_the_one_kept_at_its_last_stall(tmp_path):
    import faulthandler
    import os

    from sampler.run import stacks
    from sftui.app.dialogs import TextView

    stacks.arm(str(tmp_path / "stacks"), "rollout_0")  # this process plays the live worker
    (tmp_path / "stacks" / "learner_p0.stalled.txt").write_text('Current thread 0x1 (most recent call first):\n'
                                                               '  File "env.py", line 9 in hang_in_step\n')
    status = fake_status(1_000)
    status.workers[0].pid = os.getpid()
    source = FakeSource(folder=tmp_path)
    app = SftuiApp(source, "exp", tmp_train_dir())
    try:
        async with app.run_test(size=(160, 48)) as pilot:
            source.push(status)
            await settle(pilot)
            table = app.screen.query_one("#workers")
            table.focus()
            table.move_cursor(row=table.get_row_index("rollout_0"))
            await pilot.press("enter")
            await pilot.pause(1.0)
            assert isinstance(app.screen, TextView)
            text = str(app.screen.query_one("#text").render())
            assert f"== rollout_0 (pid {os.getpid()}, running) ==" in text and "File " in text
            await pilot.press("escape")
            await pilot.pause()
            table.move_cursor(row=table.get_row_index("learner_p0"))
            await pilot.press("enter")
            await pilot.pause(1.0)
            text = str(app.screen.query_one("#text").render())
            assert "its stack when it last stalled (stacks/learner_p0.stalled.txt)" in text and "hang_in_step" in text
    finally:
        faulthandler.unregister(stacks.DUMP_SIGNAL)


@sync
async def test_a_warning_of_the_run_shows_in_the_banner():
    source = FakeSource()
    app = SftuiApp(source, "exp", tmp_train_dir())
    async with app.run_test(size=(160, 48)) as pilot:
        source.push(fake_status(1_000, warning="checkpoints not saved: no space left on device: /data/exp"))
        await settle(pilot)
        banner = str(app.screen.query_one("#banner").render())
        assert "warning: checkpoints not saved: no space left on device" in banner
