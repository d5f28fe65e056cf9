"""The experiment browser: every experiment under train_dir, its details, and attach / resume / delete.

Everything here is read from the folders (summary.json, cfg.json, status.jsonl, checkpoints/); a folder
that cannot be read shows as unreadable with its reason and never stops the browser.

Sweeps (folders with a sweep.json) are grouped: a row for the sweep, then its experiments ranked by final return.
Selecting the sweep's row shows the sweep view: the ranking, the return curves overlaid, and the overrides
that differ between its experiments.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Sparkline, Static

from sampler.experiment.folders import is_resumable, list_experiments, read_json
from sampler.status import LIVE_STATES
from sftui.app.dialogs import confirm
from sftui.app.plot import overlay

COLUMNS = ("state", "env", "frames", "best", "last", "age")
STATE_STYLES = {"running": "green", "paused": "yellow", "failed": "red", "crashed": "red", "unreadable": "red",
                "not_responding": "red", "finished": "cyan"}


def age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


def read_return_curve(folder: Path, limit: int = 120) -> list[tuple[float, float]]:
    """(env frames, mean return of policy 0) over the run's status history, thinned to `limit` points."""
    points = []
    try:
        lines = (folder / "status.jsonl").read_text(errors="replace").splitlines()
    except OSError:
        return points
    for line in lines[::max(1, len(lines) // limit)]:
        try:
            status = json.loads(line)
            value = (status.get("policies") or [{}])[0].get("episode_return")
            if value is not None:
                points.append((float(status.get("env_frames", 0)), float(value)))
        except (ValueError, TypeError, AttributeError, IndexError):
            continue
    return points


def rank_key(cells: dict) -> tuple:
    """Highest final (last) return first; experiments without one last."""
    score = cells.get("_score")
    return (score is None, -(score or 0.0))


def read_curves(folder: Path, limit: int = 400) -> tuple[list[float], list[float]]:
    """(mean return of policy 0, FPS) over the run's status history, thinned to `limit` points."""
    returns, fps = [], []
    try:
        lines = (folder / "status.jsonl").read_text(errors="replace").splitlines()
    except OSError:
        return returns, fps
    step = max(1, len(lines) // limit)
    for line in lines[::step]:
        try:
            status = json.loads(line)
            policies = status.get("policies") or [{}]
            if policies[0].get("episode_return") is not None:
                returns.append(float(policies[0]["episode_return"]))
            fps.append(float((status.get("fps") or {}).get("10", 0.0)))
        except (ValueError, TypeError, AttributeError, IndexError):
            continue  # a torn or foreign line: skip it, keep the rest
    return returns, fps


class BrowserScreen(Screen):
    BINDINGS = [
        Binding("enter", "open", "Attach", show=False),
        Binding("a", "attach", "Attach", id="attach"),
        Binding("r", "resume", "Resume", id="resume"),
        Binding("e", "enjoy", "Enjoy", id="enjoy"),
        Binding("delete", "delete", "Delete", id="delete"),
        Binding("f5", "reload", "Reload", id="reload"),
    ]
    DEFAULT_CSS = """
    BrowserScreen #experiments { width: 3fr; }
    BrowserScreen #details { width: 2fr; border: round $primary-darken-2; padding: 0 1; }
    BrowserScreen #details Sparkline { height: 3; }
    BrowserScreen #sweep { display: none; }
    BrowserScreen #details.sweep #sweep { display: block; }
    BrowserScreen #details.sweep Sparkline, BrowserScreen #details.sweep .label,
    BrowserScreen #details.sweep #checkpoints, BrowserScreen #details.sweep #cfg { display: none; }
    """

    def __init__(self, train_dir: Path):
        super().__init__(name="experiments")
        self.train_dir = Path(train_dir)
        self.infos: dict[str, object] = {}
        self.sweeps: dict[str, dict] = {}  # row key "sweep:<name>" -> its sweep.json and experiments' rows
        self._curves: tuple[tuple, tuple[list[float], list[float]]] | None = None  # (file identity, curves)

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal():
            yield DataTable(id="experiments", cursor_type="row", zebra_stripes=True)
            with VerticalScroll(id="details"):
                yield Static(id="info")
                yield Static("return", classes="label")
                yield Sparkline([], id="return-curve")
                yield Static("FPS", classes="label")
                yield Sparkline([], id="fps-curve")
                yield Static(id="checkpoints")
                yield Static(id="cfg")
                yield Static(id="sweep")
        yield Footer()

    def on_mount(self) -> None:
        self.title = "sftui · experiments"
        self.sub_title = str(self.train_dir)
        table = self.query_one("#experiments", DataTable)
        table.add_column("experiment", key="experiment")
        for column in COLUMNS:
            table.add_column(column, key=column)
        self.query_one("#details").border_title = "details"
        self.action_reload()
        self.set_interval(2.0, self.reload_if_shown)

    def on_screen_resume(self) -> None:
        self.action_reload()

    def reload_if_shown(self) -> None:
        # Hidden behind the dashboard, the browser costs the run nothing; it catches up when shown.
        if self.is_current:
            self.action_reload()

    def action_reload(self) -> None:
        table = self.query_one("#experiments", DataTable)
        found = list_experiments(self.train_dir)
        now = time.time()
        rows: dict[str, dict] = {}
        for e in found:
            summary = read_json(e.path / "summary.json") or {}
            policies = [p for p in summary.get("policies", []) if isinstance(p, dict)]
            best = [p.get("best_return") for p in policies if p.get("best_return") is not None]
            try:
                mtime = max(f.stat().st_mtime for f in (e.path / "summary.json", e.path / "cfg.json") if f.exists())
            except OSError:
                mtime = now
            rows[e.id] = {
                "state": Text(e.state, style=STATE_STYLES.get(e.state, "")),
                "env": Text(e.env),
                "frames": f"{e.env_frames:,}",
                "best": f"{max(best):.2f}" if best else "-",
                "last": "-" if e.last_return is None else f"{e.last_return:.2f}",
                "age": age(now - mtime),
                "_score": e.last_return, "_best": max(best) if best else None, "_frames": e.env_frames,
                "_age": now - mtime,
            }
            self.infos[e.id] = e
        order = self._order(rows)
        keys = [key for key, _, _ in order]
        if [k.value for k in table.rows] != keys:
            selected = self._selected_key()
            table.clear()
            for key, label, cells in order:
                table.add_row(Text(label), *(cells[c] for c in COLUMNS), key=key)
            if selected in keys:
                table.move_cursor(row=keys.index(selected))
        else:
            for key, _, cells in order:
                for column in COLUMNS:
                    table.update_cell(key, column, cells[column])
        for key in [k for k in self.infos if k not in rows]:
            self.infos.pop(key, None)
        self._show_details()

    def _order(self, rows: dict[str, dict]) -> list[tuple[str, str, dict]]:
        """(row key, label, cells) in display order: each sweep's row and its experiments best first, then the
        experiments of no sweep."""
        self.sweeps = {}
        order = []
        grouped = set()
        for marker in sorted(self.train_dir.glob("*/sweep.json")):
            name = marker.parent.name
            members = sorted((k for k in rows if k.startswith(f"{name}/")), key=lambda k: rank_key(rows[k]))
            description = read_json(marker) or {}
            states: dict[str, int] = {}
            for k in members:
                states[rows[k]["state"].plain] = states.get(rows[k]["state"].plain, 0) + 1
            scores = [rows[k]["_best"] for k in members if rows[k]["_best"] is not None]
            cells = {
                "state": Text(", ".join(f"{n} {s}" for s, n in sorted(states.items())) or "pending"),
                "env": Text(str(description.get("env", "?"))),
                "frames": f"{sum(rows[k]['_frames'] for k in members):,}",
                "best": f"{max(scores):.2f}" if scores else "-",
                "last": "-",
                "age": age(min((rows[k]["_age"] for k in members), default=0.0)),
            }
            key = f"sweep:{name}"
            self.sweeps[key] = {"name": name, "folder": marker.parent, "description": description, "members": members}
            order.append((key, f"▾ {name} ({len(members)})", cells))
            for k in members:
                order.append((k, f"  {k.removeprefix(name + '/')}", rows[k]))
                grouped.add(k)
        order.extend((k, k, rows[k]) for k in rows if k not in grouped)
        return order

    def _selected_key(self) -> str | None:
        table = self.query_one("#experiments", DataTable)
        if table.row_count == 0:
            return None
        return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value

    def selected(self):
        key = self._selected_key()
        return None if key is None else self.infos.get(key)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_details()

    def _show_details(self) -> None:
        details = self.query_one("#details")
        sweep = self.sweeps.get(self._selected_key() or "")
        details.set_class(sweep is not None, "sweep")
        if sweep is not None:
            self._show_sweep(sweep)
            return
        e = self.selected()
        info = self.query_one("#info", Static)
        if e is None:
            info.update(Text(f"no experiments in {self.train_dir}"))
            return
        lines = [Text.assemble((e.id, "bold"), f"  {e.state}  {e.env}"), Text(str(e.path))]
        if e.reason:
            lines.append(Text(e.reason, style="red"))
        actions = []
        if e.state in LIVE_STATES:
            actions.append("a attach")
        if is_resumable(e.state, e.path):
            actions.append("r resume")
        if any((e.path / "checkpoints").glob("p*/*.pt")):
            actions.append("e enjoy")
        if e.state not in (*LIVE_STATES, "not_responding", "remote"):
            actions.append("delete")
        lines.append(Text("actions: " + (", ".join(actions) or "none")))
        info.update(Text("\n").join(lines))
        returns, fps = self._read_curves_once(e.path)
        self.query_one("#return-curve", Sparkline).data = returns
        self.query_one("#fps-curve", Sparkline).data = fps
        ckpts = sorted(str(p.relative_to(e.path)) for p in (e.path / "checkpoints").glob("p*/*.pt"))
        self.query_one("#checkpoints", Static).update(Text("checkpoints:\n  " + ("\n  ".join(ckpts[-6:]) or "none")))
        try:
            cfg_text = (e.path / "cfg.json").read_text(errors="replace")
        except OSError as err:
            cfg_text = f"cfg.json unreadable: {err}"
        self.query_one("#cfg", Static).update(Text("cfg.json\n" + cfg_text[:4000], style="dim"))

    def _show_sweep(self, sweep: dict) -> None:
        """The sweep view: its experiments ranked, their return curves overlaid, the overrides that differ."""
        description = sweep["description"]
        experiments = {e.get("name"): e.get("overrides", {}) for e in description.get("experiments", [])}
        self.query_one("#info", Static).update(Text.assemble(
            (f"sweep {sweep['name']}", "bold"), f"  {len(sweep['members'])} of {len(experiments)} experiments started  "
            f"{description.get('env', '?')}\n{description.get('source', '')}"))
        lines = Text("ranked by final return\n", style="bold")
        series = []
        for rank, key in enumerate(sweep["members"], 1):
            e = self.infos[key]
            short = key.removeprefix(sweep["name"] + "/")
            ret = "-" if e.last_return is None else f"{e.last_return:.2f}"
            lines.append(f"{rank:>2}. {short}  {ret}  {e.state}\n", style="")
            if len(series) < 8:
                series.append((short, read_return_curve(e.path)))
        varying: dict[str, list] = {}
        for overrides in experiments.values():
            for k, v in overrides.items():
                if v not in varying.setdefault(k, []):
                    varying[k].append(v)
        differ = Text("\noverrides that differ\n", style="bold")
        for k, values in varying.items():
            if len(values) > 1:
                differ.append(f"  {k}: {', '.join(json.dumps(v) for v in values)}\n")
        chart = Text("\nreturn curves (the top 8)\n", style="bold")
        chart.append_text(overlay(series))
        self.query_one("#sweep", Static).update(Text.assemble(lines, differ, chart))

    def _read_curves_once(self, folder: Path) -> tuple[list[float], list[float]]:
        """read_curves, redone only when the selection or its status.jsonl changed (it can be megabytes)."""
        try:
            stat = (folder / "status.jsonl").stat()
            identity = (folder, stat.st_mtime_ns, stat.st_size)
        except OSError:
            identity = (folder, None, None)
        if self._curves is None or self._curves[0] != identity:
            self._curves = (identity, read_curves(folder))
        return self._curves[1]

    # ---- actions ---------------------------------------------------------------------------------

    def action_open(self) -> None:
        self.action_attach()

    def action_attach(self) -> None:
        e = self.selected()
        if e is None:
            return
        if e.state not in LIVE_STATES:
            self.notify(f"{e.id} is {e.state}, not live", severity="warning", markup=False)
            return
        self.app.attach(e.path, e.id)

    def action_enjoy(self) -> None:
        e = self.selected()
        if e is not None:
            self.app.enjoy(e.path, e.id)

    def action_resume(self) -> None:
        e = self.selected()
        if e is None:
            return
        if not is_resumable(e.state, e.path):
            self.notify(f"{e.id} is {e.state}: not resumable", severity="warning", markup=False)
            return
        command = [sys.executable, "-m", "sftui", "run", str(e.path / "cfg.json"), "--detach",
                   "--train-dir", str(self.train_dir)]
        self.notify(f"resuming {e.id} ...", markup=False)

        def work() -> None:
            result = subprocess.run(command, capture_output=True, text=True)
            if result.returncode == 0:
                self.app.call_from_thread(self.app.attach, e.path, e.id)
            else:
                message = (result.stderr.strip().splitlines() or ["unknown error"])[-1]
                self.app.call_from_thread(self.notify, f"resume failed: {message}", severity="error", markup=False)

        self.run_worker(work, thread=True)

    def action_delete(self) -> None:
        e = self.selected()
        if e is None:
            return
        if e.state in (*LIVE_STATES, "not_responding", "remote"):
            self.notify(f"{e.id} is {e.state}: stop it before deleting it", severity="warning", markup=False)
            return

        def answered(answer: str | None) -> None:
            if answer == "yes":
                shutil.rmtree(e.path, ignore_errors=True)
                self.notify(f"deleted {e.id}", markup=False)
                self.action_reload()

        self.app.push_screen(confirm(f"Delete {e.id} and everything in {e.path}? This cannot be undone."), answered)
