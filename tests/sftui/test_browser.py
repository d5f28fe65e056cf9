"""Pilot tests of the experiment browser over a train_dir built by hand, corrupt folders included."""

from __future__ import annotations

import json

from sftui.app.app import SftuiApp
from sftui.app.browser import BrowserScreen
from sftui.app.sources import FakeSource
from tests.sftui.test_dashboard import settle, sync


def make_experiment(root, name, state="stopped", summary_text=None, cfg_text=None, checkpoints=()):
    folder = root / name
    (folder / "checkpoints" / "p0").mkdir(parents=True)
    (folder / "cfg.json").write_text(cfg_text or json.dumps({"env": {"name": "gym_CartPole-v1"},
                                                             "run": {"experiment": name}}))
    summary = {"state": state, "env_frames": 12_345,
               "policies": [{"episode_return": 42.5, "best_return": 50.0}]}
    (folder / "summary.json").write_text(summary_text if summary_text is not None else json.dumps(summary))
    lines = [json.dumps({"env_frames": i * 1000, "fps": {"10": 1000.0 + i},
                         "policies": [{"episode_return": float(i)}]}) for i in range(20)]
    (folder / "status.jsonl").write_text("\n".join(lines) + "\n{torn line")
    for ckpt in checkpoints:
        (folder / "checkpoints" / "p0" / ckpt).write_bytes(b"")
    return folder


def browser_app(root) -> SftuiApp:
    """The app watching a (fake) run, from whose dashboard the tests open the browser. Started with no run it
    would open on the launcher first, whose form of every setting takes about 2 s to build."""
    return SftuiApp(FakeSource(), "exp", root)


@sync
async def test_browser_lists_states_and_survives_corrupt_folders(tmp_path):
    make_experiment(tmp_path, "good", checkpoints=["ckpt_000000001_1000.pt"])
    make_experiment(tmp_path, "corrupt", summary_text="{not json")
    make_experiment(tmp_path, "badcfg", cfg_text="{oops")
    make_experiment(tmp_path, "sweep/inner", state="finished")
    make_experiment(tmp_path, "ghost", state="running")  # no lock held: it crashed
    app = browser_app(tmp_path)
    async with app.run_test(size=(160, 48)) as pilot:
        app.action_experiments()
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, BrowserScreen)
        table = screen.query_one("#experiments")
        states = {key.value: str(table.get_cell(key, "state")) for key in table.rows}
        assert states == {"good": "stopped", "corrupt": "unreadable", "badcfg": "unreadable",
                          "sweep/inner": "finished", "ghost": "crashed"}
        assert table.get_cell("good", "best") == "50.00" and table.get_cell("good", "frames") == "12,345"
        table.move_cursor(row=table.get_row_index("good"))
        await settle(pilot)
        assert "ckpt_000000001_1000.pt" in str(screen.query_one("#checkpoints").render())
        assert screen.query_one("#return-curve").data == [float(i) for i in range(20)]
        assert "r resume" in str(screen.query_one("#info").render())
        table.move_cursor(row=table.get_row_index("corrupt"))
        await settle(pilot)
        assert "summary.json holds no valid JSON object" in str(screen.query_one("#info").render())


@sync
async def test_delete_asks_first_and_removes_the_folder(tmp_path):
    folder = make_experiment(tmp_path, "old")
    app = browser_app(tmp_path)
    async with app.run_test(size=(160, 48)) as pilot:
        app.action_experiments()
        await settle(pilot)
        await pilot.press("delete")
        await pilot.pause()
        await pilot.click("#no")
        await pilot.pause()
        assert folder.exists()
        await pilot.press("delete")
        await pilot.pause()
        await pilot.click("#yes")
        await settle(pilot)
        assert not folder.exists()
        assert app.screen.query_one("#experiments").row_count == 0


@sync
async def test_a_live_experiment_is_never_deleted(tmp_path):
    from sampler.experiment.folders import ExperimentLock

    folder = make_experiment(tmp_path, "live", state="running")
    lock = ExperimentLock(folder)
    assert lock.acquire()
    try:
        app = browser_app(tmp_path)
        async with app.run_test(size=(160, 48)) as pilot:
            app.action_experiments()
            await settle(pilot)
            await pilot.press("delete")
            await settle(pilot)
            assert isinstance(app.screen, BrowserScreen)  # no confirmation was offered
        assert folder.exists()
    finally:
        lock.release()


@sync
async def test_a_sweep_is_grouped_ranked_and_shown_with_its_curves_and_differing_overrides(tmp_path):
    experiments = {"seed_0__learning_rate_0.0001": (0, 1e-4, 30.0), "seed_0__learning_rate_0.0003": (0, 3e-4, 80.0),
                   "seed_1__learning_rate_0.0001": (1, 1e-4, 55.0)}
    (tmp_path / "lr").mkdir()
    (tmp_path / "lr" / "sweep.json").write_text(json.dumps({
        "name": "lr", "env": "gym_CartPole-v1", "source": "lr.toml",
        "experiments": [{"name": n, "overrides": {"run.seed": s, "appo.learning_rate": lr}}
                        for n, (s, lr, _) in experiments.items()]}))
    for name, (_, _, best) in experiments.items():
        folder = make_experiment(tmp_path, f"lr/{name}", state="finished")
        (folder / "summary.json").write_text(json.dumps({"state": "finished", "env_frames": 1000, "policies": [
            {"episode_return": best - 1, "best_return": best}]}))
    make_experiment(tmp_path, "alone")
    app = browser_app(tmp_path)
    async with app.run_test(size=(180, 60)) as pilot:
        app.action_experiments()
        await settle(pilot)
        screen = app.screen
        table = screen.query_one("#experiments")
        keys = [key.value for key in table.rows]
        assert keys == ["sweep:lr", "lr/seed_0__learning_rate_0.0003", "lr/seed_1__learning_rate_0.0001",
                        "lr/seed_0__learning_rate_0.0001", "alone"]  # the sweep's experiments best first
        assert str(table.get_cell("sweep:lr", "state")) == "3 finished"
        assert table.get_cell("sweep:lr", "best") == "80.00"
        table.move_cursor(row=0)
        await settle(pilot)
        view = str(screen.query_one("#sweep").render())
        assert " 1. seed_0__learning_rate_0.0003  79.00  finished" in view
        assert "appo.learning_rate: 0.0001, 0.0003" in view and "run.seed: 0, 1" in view
        assert view.count("•") > 20  # three curves of 20 points, overlaid
        assert screen.query_one("#details").has_class("sweep")
        table.move_cursor(row=4)
        await settle(pilot)
        assert not screen.query_one("#details").has_class("sweep")
