"""An app that crashes: `sftui` exits non-zero, says so in one line, and leaves the traceback in a log file."""

from __future__ import annotations

import sys

import pytest
from textual.app import App
from textual.binding import Binding

from sftui import cli
from sftui.app.crash import run_to_end


async def press_b(pilot) -> None:
    await pilot.press("b")


class Crashing(App):
    """Stands in for SftuiApp: it runs headless and presses b, whose action raises."""

    BINDINGS = [Binding("b", "boom", "Boom")]
    exit_message = None

    def __init__(self, *args) -> None:
        super().__init__()

    def run(self, **options):
        return super().run(headless=True, auto_pilot=options.get("auto_pilot", press_b))

    def action_boom(self) -> None:
        raise ValueError("the action failed [/b]")


def test_a_crash_exits_non_zero_with_one_line_and_the_traceback_in_the_log(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr("sftui.app.app.SftuiApp", Crashing)  # `sftui` with no command runs it through run_app
    monkeypatch.setattr(sys, "argv", ["sftui", "--train-dir", str(tmp_path / "train")])
    with pytest.raises(SystemExit) as exited:
        cli.main()
    assert exited.value.code == 1
    log = tmp_path / "cache" / "sftui" / "app-crash.log"
    last_line = capsys.readouterr().err.strip().splitlines()[-1]
    assert last_line == f"sftui: the app crashed (ValueError: the action failed [/b]); the traceback is in {log}"
    text = log.read_text()
    assert "Traceback (most recent call last)" in text and "in action_boom" in text
    assert text.rstrip().endswith("ValueError: the action failed [/b]")


def test_an_app_that_exits_normally_returns(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))

    async def quit_app(pilot) -> None:
        pilot.app.exit()

    run_to_end(Crashing(), auto_pilot=quit_app)
    assert not (tmp_path / "sftui").exists()
