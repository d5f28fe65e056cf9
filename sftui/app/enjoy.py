"""The Enjoy screen: a checkpoint playing in the terminal while its run keeps training.

The policy plays in its own process (`sampler.play.process.serve`), tied to the app's life; the screen
only draws what it sends: at most 15 frames a second, the step, and each finished episode.
Keys: space pauses, n starts the next episode, r records the current episode (from its start) to the
experiment's videos/, + and - change the speed, escape goes back.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections import deque
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Select, Static

from sampler.experiment import checkpoints
from sampler.processes import kill_tree
from sftui.app.frames import FrameView

PLOT_STEPS = 80
SPARK = "▁▂▃▄▅▆▇█"
SPEEDS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 0.0)  # slowest to fastest; 0: as fast as it goes


# ---- the player process -------------------------------------------------------------------------


class PlayerProcess:
    """The app's end of the enjoy process (`python -m sampler.play.process`): commands out, events in.

    A plain child process on two pipes of its own, not multiprocessing: the app's stdout and stderr
    are the terminal, and nothing the env engine prints may land on the screen.
    """

    def __init__(self, folder: Path, policy: int, checkpoint: str, agent: int = 0):
        commands_r, commands_w = os.pipe()
        events_r, events_w = os.pipe()
        self.errors = tempfile.TemporaryFile()
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "sampler.play.process", str(folder), str(policy), checkpoint, str(agent),
                 str(commands_r), str(events_w)],
                pass_fds=(commands_r, events_w), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=self.errors)
        finally:
            os.close(commands_r)
            os.close(events_w)
        self.commands = Connection(commands_w, readable=False)
        self.events = Connection(events_r, writable=False)
        self.ended = False

    def send(self, command: str, arg=None) -> None:
        try:
            self.commands.send((command, arg))
        except OSError:
            pass  # it ended; poll() says why

    def poll(self) -> list[tuple]:
        out = []
        try:
            while len(out) < 500 and self.events.poll(0):
                out.append(self.events.recv())
        except (EOFError, OSError):
            if not self.ended:
                self.ended = True
                code = self.process.wait(5)
                if code != 0:
                    self.errors.seek(0)
                    last = (self.errors.read().decode(errors="replace").strip().splitlines() or ["no output"])[-1]
                    out.append(("error", f"the enjoy process ended (exit code {code}): {last}"))
        return out

    def close(self) -> None:
        # Closing our end first: a player blocked on a full events pipe (the screen stopped reading) gets
        # EPIPE and ends through its own clean-up, which closes its env and the env's engine.
        self.events.close()
        if self.process.poll() is None:
            self.send("stop")
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                kill_tree(self.process.pid)  # the engine too, and its /dev/shm files
                self.process.wait(3)
        self.commands.close()
        self.errors.close()


# ---- the screen ---------------------------------------------------------------------------------


def sparkline(values: list[float]) -> str:
    low, high = min(values), max(values)
    span = high - low or 1.0
    return "".join(SPARK[min(len(SPARK) - 1, int((v - low) / span * len(SPARK)))] for v in values)


def history_plot(history) -> Text:
    """One sparkline row per observation dimension and one for the action, over the recent steps."""
    text = Text()
    if not history:
        return text
    dims = len(history[-1][0])
    for d in range(dims):
        values = [obs[d] for obs, _ in history if len(obs) > d]
        text.append(f"obs[{d:>2}] {values[-1]:>9.3f}  ", style="bold")
        text.append(sparkline(values) + "\n", style="cyan")
    actions = [a if isinstance(a, int | float) else (a[0] if a else 0) for _, a in history]
    text.append(f"action  {str(history[-1][1]):>9}  ", style="bold")
    text.append(sparkline([float(a) for a in actions]), style="yellow")
    return text


def checkpoint_choices(folder: Path, policy: int) -> list[tuple[str, str]]:
    found = [(p.name, str(p)) for p in reversed(checkpoints.list_checkpoints(folder, policy))]
    best = checkpoints.policy_dir(folder, policy) / "best.pt"
    if best.exists():
        found.insert(1 if found else 0, ("best.pt", str(best)))
    return [("latest", "latest"), *found]


class EnjoyScreen(Screen):
    BINDINGS = [
        Binding("space", "pause", "Pause"),
        Binding("n", "next_episode", "Next episode"),
        Binding("r", "record", "Record"),
        Binding("plus,equals_sign", "faster", "Faster", key_display="+"),
        Binding("minus", "slower", "Slower", key_display="-"),
        Binding("escape", "back", "Back"),
    ]
    DEFAULT_CSS = """
    EnjoyScreen #stage { height: 1fr; }
    EnjoyScreen #frame, EnjoyScreen #plot { width: 1fr; height: 1fr; border: round $primary-darken-2; }
    EnjoyScreen #plot { display: none; padding: 0 1; }
    EnjoyScreen #side { width: 44; }
    EnjoyScreen #now { height: auto; border: round $primary-darken-2; padding: 0 1; }
    EnjoyScreen #episodes { height: 1fr; border: round $primary-darken-2; }
    EnjoyScreen #message { height: auto; padding: 0 1; }
    EnjoyScreen #agent { display: none; }
    EnjoyScreen #message.error { background: $error 30%; }
    """

    def __init__(self, folder: Path, experiment: str, policy: int = 0, checkpoint: str = "latest",
                 source_factory=PlayerProcess):
        super().__init__(name="enjoy")
        self.folder = Path(folder)
        self.experiment = experiment
        self.policy = policy
        self.checkpoint = checkpoint
        self.source_factory = source_factory
        self.source = None
        self.agent = 0
        self.paused = False
        self.speed = 1.0
        self.recording: str | None = None
        self.step_info: dict | None = None
        self.info: dict | None = None
        self.history: deque[tuple[list[float], object]] = deque(maxlen=PLOT_STEPS)

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="message", markup=False)  # the player's errors and the checkpoint's path
        with Horizontal(id="stage"):
            yield FrameView(id="frame")
            yield Static(id="plot")
            with Vertical(id="side"):
                yield Select(checkpoint_choices(self.folder, self.policy), value=self.checkpoint, allow_blank=False,
                             id="checkpoint")
                yield Select([("agent 0", 0)], value=0, allow_blank=False, id="agent")
                yield Static(id="now", markup=False)
                yield DataTable(id="episodes", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        self.title = f"sftui · enjoy · {self.experiment}"
        self.query_one("#frame").border_title = f"policy {self.policy}"
        self.query_one("#plot").border_title = f"policy {self.policy}: observation and action, last {PLOT_STEPS} steps"
        self.query_one("#now").border_title = "now"
        self.query_one("#episodes").border_title = "finished episodes"
        table = self.query_one("#episodes", DataTable)
        for column in ("episode", "return", "length"):
            table.add_column(column, key=column)
        table.focus()  # not the checkpoint picker, which would take space for itself
        self.start()
        self.set_interval(1.0 / 30.0, self.drain)

    def start(self) -> None:
        if self.source is not None:
            self.source.close()
        self.query_one("#episodes", DataTable).clear()
        self.paused, self.recording, self.step_info, self.info = False, None, None, None
        self.history.clear()
        self.show_message(f"loading {self.checkpoint} ...")
        self.source = self.source_factory(self.folder, self.policy, self.checkpoint, self.agent)
        self.show_now()

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "checkpoint" and isinstance(event.value, str) and event.value != self.checkpoint:
            self.checkpoint = event.value
            self.start()
        elif event.select.id == "agent" and isinstance(event.value, int) and event.value != self.agent:
            self.agent = event.value  # the frames and figures are this seat's; the others play their mapped policies
            self.start()

    def drain(self) -> None:
        if self.source is None:
            return
        frame = step = None
        table = self.query_one("#episodes", DataTable)
        for kind, *payload in self.source.poll():
            if kind == "step":
                frame = payload[0] if payload[0] is not None else frame
                step = payload[1]
                if step.get("obs"):
                    self.history.append((step["obs"], step["action"]))
            elif kind == "episode":
                e = payload[0]
                table.add_row(str(e["index"]), f"{e['return']:.2f}", str(e["length"]), key=str(e["index"]))
                table.move_cursor(row=table.row_count - 1)
            elif kind == "ready":
                self.info = payload[0]
                agents = self.query_one("#agent", Select)
                agents.display = self.info.get("agents", 1) > 1
                if agents.display:
                    with self.prevent(Select.Changed):  # filling the picker is not a pick
                        agents.set_options([(f"agent {i}", i) for i in range(self.info["agents"])])
                        agents.value = self.agent
                self.query_one("#frame").display = self.info["has_frames"]
                self.query_one("#plot").display = not self.info["has_frames"]
                self.show_message("")
            elif kind == "recording":
                self.recording = payload[0]
                self.notify(f"recording this episode, from its start, to {payload[0]} (r again stops early)",
                            markup=False)
            elif kind == "recorded":
                self.recording = None
                self.notify(f"saved {payload[0]}", timeout=8, markup=False)
            elif kind == "error":
                self.show_message(payload[0], error=True)
        if frame is not None:
            self.query_one("#frame", FrameView).show(np.asarray(frame))
        if step is not None:
            self.step_info = step
            self.show_now()
            if step.get("obs"):
                self.query_one("#plot", Static).update(history_plot(self.history))

    def show_message(self, text: str, error: bool = False) -> None:
        message = self.query_one("#message", Static)
        message.set_class(error, "error")
        message.update(text)

    def show_now(self) -> None:
        lines = []
        if self.info is not None:
            lines.append(f"{Path(self.info['checkpoint']).name}")
            lines.append(f"version {self.info['version']}  frames {self.info['env_frames']:,}")
        s = self.step_info
        if s is not None:
            lines += [f"episode {s['episode']}  step {s['step']}", f"return {s['return']:.2f}",
                      f"action {s['action']}", f"value {s['value']:.2f}"]
        speed = "max" if self.speed == 0 else f"{self.speed:g}x"
        state = "paused" if self.paused else "playing"
        lines.append(f"{state}  speed {speed}" + ("  ● rec" if self.recording else ""))
        self.query_one("#now", Static).update("\n".join(lines))

    # ---- keys -----------------------------------------------------------------------------------

    def action_pause(self) -> None:
        self.paused = not self.paused
        self.source.send("pause", self.paused)
        self.show_now()

    def action_next_episode(self) -> None:
        self.source.send("next")

    def action_record(self) -> None:
        self.source.send("record")

    def _set_speed(self, step: int) -> None:
        index = min(max(SPEEDS.index(self.speed) + step, 0), len(SPEEDS) - 1)
        self.speed = SPEEDS[index]
        self.source.send("speed", self.speed)
        self.show_now()

    def action_faster(self) -> None:
        self._set_speed(+1)

    def action_slower(self) -> None:
        self._set_speed(-1)

    def action_back(self) -> None:
        self.app.pop_screen()

    def on_unmount(self) -> None:
        if self.source is not None:
            self.source.close()
            self.source = None
