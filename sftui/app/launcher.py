"""The launcher: pick an env, edit a form generated from the config schema with its family's defaults, launch.

Every keystroke re-validates the whole config with the same schema the run uses, so an error shows
under the form (and on its field) before launch, and Launch stays disabled until it is fixed.
Launching writes the config next to the experiments and runs `sftui run --headless --detach`.
Env names, settings and error messages are shown as plain text, never read as markup.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, Footer, Header, Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from sampler.config.build import build_config, config_to_dict, read_cfg_file
from sampler.config.keys import parse_value, unflatten
from sampler.config.settings import describe_settings
from sampler.envs.families.registry import families
from sampler.errors import SftuiError
from sampler.experiment.folders import write_json_atomic

SKIPPED = {"env.name"}  # chosen above the form


def field_id(path: str) -> str:
    return "f-" + path.replace(".", "--")


def problem(error: Exception) -> str:
    """One line for an error an env name led to: ours say what to do; anything else also names its type."""
    return str(error) if isinstance(error, SftuiError) else f"{type(error).__name__}: {error}"


def save_problem(path: Path, typed: str) -> str | None:
    """Why a cfg.json cannot be written at `path` (`typed` as the user typed it), or None. No folder is made."""
    if path.is_dir():
        return f"cannot save: {path} is a folder; give a file path, e.g. {path / 'cfg.json'}"
    if typed.endswith("/"):
        return f"cannot save: {typed} names a folder; give a file path"
    if not path.parent.exists():
        return f"cannot save: the folder {path.parent} does not exist"
    if not path.parent.is_dir():
        return f"cannot save: {path.parent} is not a folder"
    return None


class LauncherScreen(Screen):
    BINDINGS = [
        Binding("ctrl+l", "launch", "Launch", id="launch"),
        Binding("ctrl+s", "save_cfg", "Save cfg", id="save_cfg"),
    ]
    DEFAULT_CSS = """
    LauncherScreen #families { width: 42; }
    LauncherScreen #form { width: 1fr; }
    LauncherScreen .section { text-style: bold; margin-top: 1; color: $accent; }
    LauncherScreen .row { height: auto; }
    LauncherScreen .row Label { width: 34; padding-top: 1; }
    LauncherScreen .row Input { width: 30; }
    LauncherScreen .help { color: $text-muted; padding: 1 0 0 1; width: 1fr; }
    LauncherScreen Input.-invalid { border: tall $error; }
    LauncherScreen #error, LauncherScreen #file-message { color: $error; height: auto; padding: 0 1; }
    LauncherScreen #bar { height: auto; padding: 0 1; }
    LauncherScreen #bar Input { width: 30; }
    """

    def __init__(self, train_dir: Path, env: str = "gym_CartPole-v1"):
        super().__init__(name="launcher")
        self.train_dir = Path(train_dir)
        self.env = env
        self.defaults: dict[str, object] = {}
        self.error: str | None = None
        self._validation_pending = False

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal():
            with Vertical(id="families"):
                yield Label("Env family")
                yield OptionList(*(Option(Text(f"{f.prefix}: {f.description}"), id=f.prefix) for f in families()),
                                 id="family-list")
                yield Label("Env")
                yield Input(self.env, id="env")
            with Vertical(id="form"):
                with Horizontal(id="bar"):
                    yield Input(placeholder="experiment name", id="experiment")
                    yield Button("Launch", id="launch", variant="success")
                    yield Input(placeholder="path/to/cfg.json", id="cfg-path")
                    yield Button("Save", id="save")
                    yield Button("Load", id="load")
                yield Static(id="file-message", markup=False)
                yield Static(id="error", markup=False)
                yield VerticalScroll(id="fields")
        yield Footer()

    def on_mount(self) -> None:
        self.title = "sftui · launcher"
        self.sub_title = str(self.train_dir)
        self.show_file_message(None)
        self.build_form(self.env)
        families = self.query_one("#family-list", OptionList)
        prefix = self.env.split("_", 1)[0]
        families.highlighted = next((i for i in range(families.option_count)
                                     if families.get_option_at_index(i).id == prefix), 0)
        families.focus()  # up/down and Enter pick a family before anything else

    # ---- the form ---------------------------------------------------------------------------------

    def build_form(self, env: str, values: dict | None = None) -> None:
        """The fields for `env`, filled with its family's defaults (then `values`, flat paths).

        Every family shares the schema, so a form already holding its settings is refilled in place (mounting a
        hundred rows takes seconds on a slow machine); a different set of settings (a plugin's) is rebuilt.
        """
        try:
            rows = describe_settings(env)
        except Exception as e:  # noqa: BLE001 - the name reaches family and user code (pettingzoo_<module>)
            self.show_unbuilt(env, problem(e))
            return
        self.env = env
        fields = self.query_one("#fields", VerticalScroll)
        fields.display = True
        self.defaults = {path: default for path, _, default, _ in rows if path not in SKIPPED}
        inputs = {widget.id: widget for widget in fields.query(Input)}
        if sorted(inputs) == sorted(map(field_id, self.defaults)):
            for path, default in self.defaults.items():
                inputs[field_id(path)].value = json.dumps((values or {}).get(path, default))
            self.call_after_refresh(self.validate)
            return
        fields.remove_children()
        widgets = []
        section = None
        for path, kind, default, description in rows:
            if path in SKIPPED:
                continue
            if path.split(".")[0] != section:
                section = path.split(".")[0]
                widgets.append(Static(section, classes="section", markup=False))
            value = (values or {}).get(path, default)
            widgets.append(Horizontal(
                Label(path, markup=False), Input(json.dumps(value), id=field_id(path)),
                Static(f"{kind}: {description}", classes="help", markup=False), classes="row",
            ))
        fields.mount_all(widgets)
        self.call_after_refresh(self.validate)

    def show_unbuilt(self, env: str, message: str) -> None:
        """No form for `env`: the reason in one line instead, and the env field focused for another name."""
        self.env = env
        self.defaults = {}  # the hidden fields are not read
        self.query_one("#fields", VerticalScroll).display = False
        self.show_error(message)
        self.query_one("#env", Input).focus()

    def values(self) -> dict[str, object]:
        """The fields that differ from the defaults, as flat paths."""
        out = {}
        for path, default in self.defaults.items():
            try:
                field = self.query_one(f"#{field_id(path)}", Input)
            except Exception:  # noqa: BLE001 - the form is being rebuilt
                continue
            value = parse_value(field.value)
            if value != default:
                out[path] = value
        return out

    def raw_config(self) -> dict:
        raw = unflatten(self.values(), where="form")
        raw.setdefault("env", {})["name"] = self.env
        name = self.query_one("#experiment", Input).value.strip()
        if name:
            raw.setdefault("run", {})["experiment"] = name
        return raw

    def validate(self) -> bool:
        for field in self.query("#fields Input"):
            field.remove_class("-invalid")
        try:
            build_config(self.raw_config())
        except Exception as e:  # noqa: BLE001 - as in build_form
            self.show_error(problem(e))
            path = str(e).split(":", 1)[0]
            try:
                self.query_one(f"#{field_id(path)}", Input).add_class("-invalid")
            except Exception:  # noqa: BLE001 - the error names no single field
                pass
            return False
        self.show_error(None)
        return True

    def show_error(self, message: str | None) -> None:
        self.error = message
        self.query_one("#error", Static).update(message or "")
        self.query_one("#launch", Button).disabled = message is not None

    def show_file_message(self, message: str | None) -> None:
        """The line under the buttons: why a save, load or launch could not write or read its file."""
        line = self.query_one("#file-message", Static)
        line.update(message or "")
        line.display = message is not None

    def on_input_changed(self, event: Input.Changed) -> None:
        self.show_file_message(None)  # it answered the last save, load or launch, before this edit
        if event.input.id in ("env", "cfg-path") or self._validation_pending:
            return
        # One validation per batch of changes: a rebuilt form sends one Changed per field.
        self._validation_pending = True
        self.call_after_refresh(self._validate_pending)

    def _validate_pending(self) -> None:
        self._validation_pending = False
        self.validate()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "env":
            self.build_form(event.value.strip())

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        family = next(f for f in families() if f.prefix == event.option.id)
        env = family.example or f"{family.prefix}_"
        self.query_one("#env", Input).value = env
        if family.example:
            self.build_form(env)
        else:
            self.show_unbuilt(env, f"{family.prefix}: the family names no example env; type a "
                                   f"{family.prefix}_<id> name above and press Enter")

    # ---- actions ---------------------------------------------------------------------------------

    def on_button_pressed(self, event: Button.Pressed) -> None:
        {"launch": self.action_launch, "save": self.action_save_cfg, "load": self.load_cfg}[event.button.id]()

    def action_save_cfg(self) -> None:
        """Write the form as a complete cfg.json, atomically, into a folder that exists; a refusal says why."""
        typed = self.query_one("#cfg-path", Input).value.strip()
        if not typed:
            self.show_file_message("cannot save: type a path for the cfg.json first")
            return
        if not self.validate():
            self.show_file_message("cannot save: fix the form first (its error is below)")
            return
        path = Path(typed).expanduser()
        reason = save_problem(path, typed)
        if reason is None:
            try:
                write_json_atomic(path, config_to_dict(build_config(self.raw_config())))
            except OSError as e:
                reason = f"cannot save: {path}: {e.strerror or e}"
        self.show_file_message(reason)
        if reason is None:
            self.notify(f"saved {path}", markup=False)

    def load_cfg(self) -> None:
        path = Path(self.query_one("#cfg-path", Input).value.strip()).expanduser()
        try:
            raw = read_cfg_file(path)
            cfg = config_to_dict(build_config(raw))
        except SftuiError as e:
            self.show_file_message(f"cannot load: {e}")
            return
        self.show_file_message(None)
        flat = {}

        def walk(node, prefix):
            for key, value in node.items():
                if isinstance(value, dict) and f"{prefix}{key}" not in self.defaults:
                    walk(value, f"{prefix}{key}.")
                else:
                    flat[f"{prefix}{key}"] = value

        walk(cfg, "")
        experiment = (cfg.get("run") or {}).get("experiment")
        if experiment:
            self.query_one("#experiment", Input).value = experiment
        self.query_one("#env", Input).value = cfg["env"]["name"]
        self.build_form(cfg["env"]["name"], flat)
        self.notify(f"loaded {path}", markup=False)

    def launch_command(self) -> tuple[list[str], Path, str]:
        """(command, cfg path, experiment) that launching runs."""
        raw = self.raw_config()
        name = raw.get("run", {}).get("experiment") or self.env
        raw.setdefault("run", {})["experiment"] = name
        cfg_path = self.train_dir / f"{name}.cfg.json"
        command = [sys.executable, "-m", "sftui", "run", "--headless", "--detach", str(cfg_path),
                   "--train-dir", str(self.train_dir)]
        return command, cfg_path, name

    def action_launch(self) -> None:
        if not self.validate():
            self.notify("fix the form first", severity="error")
            return

        command, cfg_path, name = self.launch_command()
        raw = self.raw_config()
        raw.setdefault("run", {})["experiment"] = name
        try:
            self.train_dir.mkdir(parents=True, exist_ok=True)
            write_json_atomic(cfg_path, raw)
        except OSError as e:
            self.show_file_message(f"cannot launch: cannot write {cfg_path}: {e.strerror or e}")
            return
        self.show_file_message(None)
        self.query_one("#launch", Button).disabled = True
        self.notify(f"launching {name} ...", markup=False)

        def work() -> None:
            result = subprocess.run(command, capture_output=True, text=True)
            if result.returncode == 0:
                self.app.call_from_thread(self.app.attach, self.train_dir / name, name)
            else:
                message = (result.stderr.strip().splitlines() or ["unknown error"])[-1]
                self.app.call_from_thread(self.notify, f"launch failed: {message}", severity="error", timeout=15,
                                          markup=False)
            self.app.call_from_thread(self.validate)

        self.run_worker(work, thread=True)
