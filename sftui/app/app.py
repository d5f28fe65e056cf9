"""The sftui app: opens on a live run's dashboard; q asks whether to stop the run or leave it training."""

from __future__ import annotations

import json
import os
from pathlib import Path

from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Center, Middle
from textual.screen import Screen
from textual.widgets import Static

from sampler.experiment.folders import LIVE_STATES, list_experiments
from sftui.app.browser import BrowserScreen
from sftui.app.crash import run_to_end
from sftui.app.dashboard import DashboardScreen
from sftui.app.dialogs import Choice
from sftui.app.enjoy import EnjoyScreen
from sftui.app.launcher import LauncherScreen
from sftui.app.sources import LiveSource, StatusSource

MIN_WIDTH, MIN_HEIGHT = 80, 24
BINDING_IDS = ("pause", "save", "stop", "enjoy", "set", "dashboard", "experiments", "launcher", "quit", "attach",
               "resume", "delete", "reload", "launch", "save_cfg")


def keys_file() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "sftui" / "keys.json"


def load_keymap(path: Path) -> tuple[dict[str, str], str | None]:
    """Binding id -> key(s), e.g. {"pause": "space"}, from keys.json.

    Returns (keymap, problem): a bad file is reported in one line and the default keys stay.
    """
    if not path.exists():
        return {}, None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        return {}, f"{path}: not valid JSON ({e}); default keys in use"
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        return {}, f'{path}: expected {{"binding": "key"}}, e.g. {{"pause": "space"}}; default keys in use'
    unknown = sorted(set(data) - set(BINDING_IDS))
    if unknown:
        return {}, f"{path}: unknown binding(s) {', '.join(unknown)}; known: {', '.join(BINDING_IDS)}"
    return data, None


class TooSmall(Screen):
    """Shown instead of a broken layout while the terminal is under 80x24."""

    DEFAULT_CSS = "TooSmall { align: center middle; }"

    def compose(self) -> ComposeResult:
        with Middle(), Center():
            yield Static(id="message")

    def on_mount(self) -> None:
        self.show_size()

    def on_resize(self) -> None:
        self.app.check_size()

    def show_size(self) -> None:
        w, h = self.app.size
        self.query_one("#message", Static).update(
            f"sftui needs a terminal of at least {MIN_WIDTH}x{MIN_HEIGHT}; this one is {w}x{h}.\nEnlarge it to go on."
        )


class SftuiApp(App):
    """Two screens: the experiment browser, always there, and the dashboard of the attached run, if any."""

    TITLE = "sftui"
    BINDINGS = [
        Binding("d", "dashboard", "Dashboard", id="dashboard"),
        Binding("b", "experiments", "Experiments", id="experiments"),
        Binding("l", "launcher", "Launcher", id="launcher"),
        Binding("q", "quit_app", "Quit", id="quit"),
    ]

    def __init__(self, source: StatusSource | None, experiment: str | None, train_dir: Path | None = None):
        super().__init__()
        self.train_dir = Path(train_dir) if train_dir is not None else Path("train_dir")
        self._initial = (source, experiment)
        self.exit_message: str | None = None

    def on_mount(self) -> None:
        keymap, problem = load_keymap(keys_file())
        if keymap:
            self.set_keymap(keymap)
        if problem:
            self.notify(problem, severity="warning", timeout=10, markup=False)
        self.install_screen(BrowserScreen(self.train_dir), "experiments")
        self.install_screen(LauncherScreen(self.train_dir), "launcher")
        source, experiment = self._initial
        if source is not None:
            self.install_screen(DashboardScreen(source, experiment or "run"), "dashboard")
            self.push_screen("dashboard")
        else:
            self.push_screen("launcher")
        self.check_size()

    @property
    def dashboard(self) -> DashboardScreen | None:
        return self.get_screen("dashboard") if self.is_screen_installed("dashboard") else None

    def attach(self, folder: Path, experiment: str) -> None:
        """Show the dashboard of the live run in `folder`, replacing any dashboard shown before."""
        old = self.dashboard
        if old is not None:
            if self.screen is old:
                self.switch_screen("experiments")
            self.uninstall_screen("dashboard")
            old.source.close()
        self.install_screen(DashboardScreen(LiveSource(folder), experiment), "dashboard")
        self.switch_screen("dashboard")

    def enjoy(self, folder: Path, experiment: str) -> None:
        """Open the Enjoy screen on the experiment's latest checkpoint (another can be picked there)."""
        if not any((Path(folder) / "checkpoints").glob("p*/*.pt")):
            self.notify(f"{experiment} has no checkpoint yet: press s to save one", severity="warning", markup=False)
            return
        self.push_screen(EnjoyScreen(Path(folder), experiment))

    def action_dashboard(self) -> None:
        if self.dashboard is None:
            self.notify("no run attached: pick a live one in the experiments (a attaches)", severity="warning")
        elif self.screen is not self.dashboard:
            self.switch_screen("dashboard")

    def action_experiments(self) -> None:
        if not isinstance(self.screen, BrowserScreen):
            self.switch_screen("experiments")

    def action_launcher(self) -> None:
        if not isinstance(self.screen, LauncherScreen):
            self.switch_screen("launcher")

    def on_resize(self) -> None:
        self.check_size()

    def check_size(self) -> None:
        """Covers the app with TooSmall while the terminal is under MIN_WIDTH x MIN_HEIGHT."""
        small = self.size.width < MIN_WIDTH or self.size.height < MIN_HEIGHT
        showing = isinstance(self.screen, TooSmall)
        if small and not showing:
            self.push_screen(TooSmall())
        elif small and showing:
            self.screen.show_size()
        elif showing:
            self.pop_screen()

    def get_system_commands(self, screen: Screen):
        yield from super().get_system_commands(screen)
        yield SystemCommand("Experiments", "key b: browse train_dir", self.action_experiments)
        yield SystemCommand("Launcher", "key l: a new run from an env family's defaults", self.action_launcher)
        if self.dashboard is not None:
            yield SystemCommand("Dashboard", "key d: the attached run", self.action_dashboard)
        if isinstance(screen, DashboardScreen):
            yield SystemCommand("Pause or resume the run", "key p", screen.action_toggle_pause)
            yield SystemCommand("Save a checkpoint now", "key s", screen.action_save)
            yield SystemCommand("Stop the run", "key x, after confirmation", screen.action_stop_run)
        if isinstance(screen, DashboardScreen | BrowserScreen):
            yield SystemCommand("Enjoy", "key e: watch a checkpoint play, while the run trains", screen.action_enjoy)
        yield SystemCommand("Quit sftui", "key q: leave the run training, or stop it", self.action_quit_app)

    def action_quit_app(self) -> None:
        dashboard = self.dashboard
        status = dashboard.shown if dashboard is not None else None
        if status is None or status.state not in LIVE_STATES or dashboard.lost is not None:
            self.exit()
            return
        name = dashboard.experiment

        def answered(choice: str | None) -> None:
            if choice == "leave":
                self.exit_message = f"{name} keeps training; `sftui attach {name}` returns to it"
                self.exit()
            elif choice == "stop":
                self._stop_and_exit(dashboard)

        self.push_screen(
            Choice(f"Quit sftui. {name} is {status.state}: leave it training, or stop it?",
                   [("leave", "Leave it training"), ("stop", "Stop the run"), ("cancel", "Cancel")]),
            answered,
        )

    def _stop_and_exit(self, dashboard: DashboardScreen) -> None:
        def work() -> None:
            try:
                dashboard.source.command("stop")
                self.exit_message = f"{dashboard.experiment}: stopping (it saves a checkpoint first)"
            except Exception as e:  # noqa: BLE001 - reported after the app closes
                self.exit_message = f"could not stop {dashboard.experiment}: {e}"
            self.call_from_thread(self.exit)

        self.notify("stopping the run ...")
        self.run_worker(work, thread=True)


def most_recent_live(train_dir: Path) -> Path | None:
    live = [e for e in list_experiments(train_dir) if e.state in LIVE_STATES]
    if not live:
        return None
    return max(live, key=lambda e: (e.path / "summary.json").stat().st_mtime if (e.path / "summary.json").exists()
               else 0.0).path


def run_app(folder: Path | None, experiment: str | None, train_dir: Path) -> str | None:
    """The app on `folder`'s dashboard, or on the launcher when folder is None; raises AppCrashed if it crashed."""
    app = SftuiApp(LiveSource(folder) if folder is not None else None, experiment, train_dir)
    run_to_end(app)
    return app.exit_message
