"""The dashboard: one live run's throughput, policy lag, per-policy learning and worker health.

Statuses arrive on the source's thread and only replace `latest`; one timer renders the newest one
at most twice a second, updating widgets in place (the worker table's rows are updated, never rebuilt).
"""

from __future__ import annotations

import time
from collections import deque
from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Sparkline

from sampler.errors import SftuiError
from sampler.experiment.control import hyperparameter_changes
from sampler.experiment.folders import NOT_RESPONDING_AFTER_SEC as NOT_RESPONDING_SEC
from sampler.experiment.folders import derived_state
from sampler.run import stacks
from sampler.status import FINAL_STATES, LIVE_STATES, RunStatus
from sftui.app.dialogs import SetHyperparameter, TextView, confirm
from sftui.app.readouts import (
    HISTORY,
    POPULATION_COLUMNS,
    PolicyPane,
    Readout,
    duration,
    eta,
    human,
    lag_histogram,
    objective_key,
    pool_summary,
    population_row,
)
from sftui.app.sources import StatusSource

REFRESH_SEC = 0.5
WORKER_COLUMNS = ("kind", "pid", "state", "cpu %", "steps/s", "restarts", "last error")
LOG_TAIL_LINES = 6


class DashboardScreen(Screen):
    BINDINGS = [
        Binding("p", "toggle_pause", "Pause/Resume", id="pause"),
        Binding("s", "save", "Save", id="save"),
        Binding("x", "stop_run", "Stop run", id="stop"),
        Binding("e", "enjoy", "Enjoy", id="enjoy"),
        Binding("h", "set_hyperparameter", "Set hparam", id="set"),
    ]

    DEFAULT_CSS = """
    DashboardScreen #top { height: 9; }
    DashboardScreen #fps-plot { height: 1fr; }
    DashboardScreen #throughput, DashboardScreen #lag { width: 1fr; border: round $primary-darken-2; padding: 0 1; }
    DashboardScreen #lag Sparkline { height: 2; }
    DashboardScreen #body { height: 1fr; }
    DashboardScreen #policies { width: 3fr; }
    DashboardScreen #side { width: 2fr; }
    DashboardScreen #workers { height: auto; max-height: 20; }
    DashboardScreen #population { height: auto; max-height: 12; border: round $primary-darken-2; display: none; }
    DashboardScreen #events { height: auto; border: round $primary-darken-2; padding: 0 1; }
    DashboardScreen #banner { height: auto; padding: 0 1; }
    DashboardScreen #banner.failed { background: $error 30%; }
    DashboardScreen #banner.paused { background: $warning 30%; }
    """

    def __init__(self, source: StatusSource, experiment: str):
        super().__init__(name="dashboard")
        self.source = source
        self.experiment = experiment
        self.latest: RunStatus | None = None
        self.shown: RunStatus | None = None
        self.lost: str | None = None
        self.last_status_at: float | None = None
        self.fps_history: deque[float] = deque(maxlen=HISTORY)
        self.lag_history: deque[float] = deque(maxlen=HISTORY)
        self.busy = False
        self._population_rows: list[tuple[str, ...]] | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Readout(id="banner", markup=False)  # run errors and lost-connection reasons, shown as they are
        with Horizontal(id="top"):
            with Vertical(id="throughput"):
                yield Readout(id="fps")
                yield Sparkline([], id="fps-plot")
            with Vertical(id="lag"):
                yield Readout(id="lag-now")
                yield Sparkline([], id="lag-plot")
                yield Readout(id="lag-hist")
        with Horizontal(id="body"):
            yield VerticalScroll(id="policies")
            with Vertical(id="side"):
                yield DataTable(id="population", cursor_type="row", zebra_stripes=True)
                yield DataTable(id="workers", cursor_type="row", zebra_stripes=True)
                yield Readout(id="events")
        yield Footer()

    def on_mount(self) -> None:
        self.title = f"sftui · {self.experiment}"
        self.sub_title = "connecting"
        table = self.query_one("#workers", DataTable)
        table.add_column("worker", key="worker")
        for column in WORKER_COLUMNS:
            table.add_column(column, key=column)
        population = self.query_one("#population", DataTable)
        for column in POPULATION_COLUMNS:
            population.add_column(column, key=column)
        population.border_title = "population, best first"
        self.query_one("#throughput").border_title = "throughput"
        self.query_one("#lag").border_title = "policy lag"
        self.query_one("#events").border_title = "events and log"
        self.source.start(self._receive, self._lose)
        self.set_interval(REFRESH_SEC, self.render_latest)

    # Called on the source's thread: only hand the newest status over.
    def _receive(self, status: RunStatus) -> None:
        self.latest = status
        self.last_status_at = time.monotonic()
        self.lost = None

    def _lose(self, reason: str) -> None:
        self.lost = reason

    # ---- rendering --------------------------------------------------------------------------------

    def render_latest(self) -> None:
        if not self.query("#banner"):  # the timer fired while the screen is being closed: its widgets are gone
            return
        status = self.latest
        if status is not None and status is not self.shown:
            self.shown = status
            self.fps_history.append(0.0 if status.state == "paused" else status.fps.get("10", 0.0))
            if status.policies:
                self.lag_history.append(max(p.lag.avg for p in status.policies))
            self._show(status)
        self._show_banner()

    def _show(self, s: RunStatus) -> None:
        self.sub_title = s.state
        budget = "" if s.budget_env_frames >= 10**15 else f" of {human(s.budget_env_frames)}"
        fps = s.fps
        now = 0.0 if s.state == "paused" else fps.get("10", 0)  # the 10 s window would take 10 s to empty
        self.query_one("#fps", Readout).show(
            f"[b]{human(now)}[/b] fps  "
            f"(60 s {human(fps.get('60', 0))}, 300 s {human(fps.get('300', 0))})\n"
            f"frames {human(s.env_frames)}{budget}   elapsed {duration(s.elapsed_sec)}   ETA {eta(s)}"
        )
        self.query_one("#fps-plot", Sparkline).data = list(self.fps_history)
        if s.policies:
            worst = max(s.policies, key=lambda p: p.lag.max)
            lags = "  ".join(f"p{p.policy_id} {p.lag.min:.0f}/{p.lag.avg:.1f}/{p.lag.max:.0f}" for p in s.policies)
            self.query_one("#lag-now", Readout).show(f"min/avg/max  {lags}")
            self.query_one("#lag-hist", Readout).show(lag_histogram(worst.lag.histogram))
        self.query_one("#lag-plot", Sparkline).data = list(self.lag_history)
        self._show_policies(s)
        self._show_population(s)
        self._show_workers(s)
        self._show_events(s)

    def _show_policies(self, s: RunStatus) -> None:
        container = self.query_one("#policies", VerticalScroll)
        panes = {pane.policy_id: pane for pane in container.query(PolicyPane)}
        for policy in s.policies:
            pane = panes.get(policy.policy_id)
            if pane is None:
                pane = PolicyPane(policy.policy_id)
                container.mount(pane)
                pane.show(policy)  # kept until its children exist when they do not yet
            else:
                pane.show(policy)

    def _show_population(self, s: RunStatus) -> None:
        """With several policies: one row each, ranked by objective (the true objective where the env reports
        one, else the return), with their hyperparameters and PBT's last replacement of them."""
        table = self.query_one("#population", DataTable)
        table.display = len(s.policies) > 1 or s.pool is not None
        if not table.display:
            return
        table.border_subtitle = Text(pool_summary(s.pool))
        rows = [population_row(p) for p in sorted(s.policies, key=objective_key)]
        if rows != self._population_rows:
            self._population_rows = rows
            table.clear()
            for row in rows:
                table.add_row(*map(Text, row))

    def _show_workers(self, s: RunStatus) -> None:
        table = self.query_one("#workers", DataTable)
        for w in s.workers:
            state = Text(w.state, style="bold red" if w.state in ("stalled", "dead") else "")
            cells = {
                "kind": w.kind,
                "pid": str(w.pid or "-"),
                "state": state,
                "cpu %": f"{w.cpu_percent:.0f}",
                "steps/s": human(w.steps_per_sec),
                "restarts": str(w.restarts),
                "last error": Text(w.last_error or "", style="red"),
            }
            if w.name in table.rows:
                for column, value in cells.items():
                    if table.get_cell(w.name, column) != value:
                        table.update_cell(w.name, column, value)
            else:
                table.add_row(w.name, *cells.values(), key=w.name)

    def _show_events(self, s: RunStatus) -> None:
        lines = [f"{time.strftime('%H:%M:%S', time.localtime(e.time))} {e.kind}: {e.message}" for e in s.events[-8:]]
        tail = self._log_tail()
        text = Text("\n".join(lines) or "no events yet")
        if tail:
            text.append("\n── log ──\n" + "\n".join(tail), style="dim")
        self.query_one("#events", Readout).show(text)

    def _log_tail(self) -> list[str]:
        folder = self.source.folder
        if folder is None:
            return []
        try:
            with open(Path(folder) / "log.txt", "rb") as f:
                f.seek(0, 2)
                f.seek(max(0, f.tell() - 4096))
                return f.read().decode(errors="replace").splitlines()[-LOG_TAIL_LINES:]
        except OSError:
            return []

    def _show_banner(self) -> None:
        text, style = self._banner()
        banner = self.query_one("#banner", Readout)
        banner.set_class(style == "failed", "failed")
        banner.set_class(style == "paused", "paused")
        banner.show(text)

    def _banner(self) -> tuple[str, str | None]:
        """The banner's text and style class: failures, silence, pause, or nothing."""
        s = self.shown
        if self.lost is not None:
            final = s.state if s is not None and s.state in FINAL_STATES else self._final_state_on_disk()
            if final is not None:
                self.sub_title = final
            error = s.error if s is not None else None
            if final == "failed" or error:
                return f"run failed: {error or self.lost}", "failed"
            if final is not None:
                return f"run {final}; the dashboard shows its last status", None
            since = ""
            if self.last_status_at is not None:
                since = f" (last status {time.monotonic() - self.last_status_at:.0f} s ago)"
            return f"not responding: {self.lost}{since}", "failed"
        silent = None if self.last_status_at is None else time.monotonic() - self.last_status_at
        if silent is not None and silent > NOT_RESPONDING_SEC and (s is None or s.state in LIVE_STATES):
            return f"not_responding: no status for {silent:.0f} s", "failed"
        if s is None:
            return "waiting for the run's first status ...", None
        if s.state == "paused":
            return "paused: p resumes", "paused"
        if s.error:
            return f"{s.state}: {s.error}", "failed"
        if s.warning:
            return f"warning: {s.warning}", "paused"
        return "", None

    def _final_state_on_disk(self) -> str | None:
        """After the socket closed: the state the run wrote last, if it ended (stopped, finished, failed)."""
        if self.source.folder is None:
            return None
        state, _ = derived_state(Path(self.source.folder))
        return state if state in FINAL_STATES else None

    # ---- actions ---------------------------------------------------------------------------------

    def _run_command(self, cmd: str, done: str, args: dict | None = None) -> None:
        if self.busy:
            self.notify("a command is already under way", severity="warning")
            return
        self.busy = True

        def work() -> None:
            try:
                result = self.source.command(cmd, args)
            except Exception as e:  # noqa: BLE001 - shown to the user, never raised
                self.app.call_from_thread(self.notify, f"{cmd} failed: {e}", severity="error", markup=False)
            else:
                message = done if not isinstance(result, list) else done + ": " + ", ".join(map(str, result))
                self.app.call_from_thread(self.notify, message, markup=False)
            finally:
                self.busy = False

        self.run_worker(work, thread=True, exclusive=False, group="commands")

    def action_toggle_pause(self) -> None:
        paused = self.shown is not None and self.shown.state == "paused"
        self._run_command("resume" if paused else "pause", "resumed" if paused else "paused")

    def action_save(self) -> None:
        self._run_command("save", "saved")

    def action_set_hyperparameter(self) -> None:
        """A dialog for `set`: one policy or all, and KEY=VALUE; the run answers, and errors are shown."""
        if self.shown is None or not self.shown.policies:
            self.notify("no status from the run yet", severity="warning")
            return

        def answered(answer: tuple[int | None, str] | None) -> None:
            if answer is None:
                return
            policy, item = answer
            try:
                args: dict = {"hyperparameters": hyperparameter_changes([item])}
            except SftuiError as e:
                self.notify(str(e), severity="error", markup=False)
                return
            if policy is not None:
                args["policy"] = policy
            who = "all policies" if policy is None else f"policy {policy}"
            self._run_command("set", f"set {item} for {who}", args)

        first = self.shown.policies[0]
        self.app.push_screen(SetHyperparameter(len(self.shown.policies), first.hyperparameters), answered)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        """Enter on a worker: where it is now (its stack, asked for) and where it was when it last stalled."""
        if event.data_table.id != "workers" or self.shown is None or self.source.folder is None:
            return
        name = event.row_key.value
        worker = next((w for w in self.shown.workers if w.name == name), None)
        if worker is None:
            return
        folder, live = Path(self.source.folder), self.shown.state in LIVE_STATES

        def work() -> None:
            text = stacks.describe(folder, {"name": worker.name, "pid": worker.pid, "state": worker.state}, live)
            text = text or f"{name}: no stack to show (not running, and it never stalled)"
            self.app.call_from_thread(self.app.push_screen, TextView(f"{name}: Python stack", text))

        self.run_worker(work, thread=True, exclusive=False, group="stacks")

    def action_enjoy(self) -> None:
        if self.source.folder is not None:
            self.app.enjoy(Path(self.source.folder), self.experiment)

    def action_stop_run(self) -> None:
        def answered(answer: str | None) -> None:
            if answer == "yes":
                self._run_command("stop", "stopping: the run saves a checkpoint, then exits")

        self.app.push_screen(confirm(f"Stop {self.experiment}? It saves a checkpoint and can be resumed."), answered)

    def on_unmount(self) -> None:
        self.source.close()
