"""The launcher: pick an env, edit a form generated from the config schema with its family's defaults, launch.

Every keystroke re-validates the whole config with the same schema the run uses, so an error shows
under the form (and on its field) before launch, and Launch stays disabled until it is fixed.
Launching writes the config next to the experiments and runs `sftui run --headless --detach`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, Footer, Header, Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from sampler.config.build import build_config, config_to_dict
from sampler.config.settings import describe_settings
from sampler.errors import SftuiError

EXAMPLE_ENVS = {"gym": "gym_CartPole-v1", "doom": "doom_basic", "atari": "atari_pong"}
SKIPPED = {"env.name"}  # chosen above the form


def field_id(path: str) -> str:
    return "f-" + path.replace(".", "--")


def parse_value(text: str):
    """A form value: JSON when it parses (numbers, booleans, lists, null), else the text itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def nest(values: dict[str, object]) -> dict:
    out: dict = {}
    for path, value in values.items():
        node = out
        *parents, leaf = path.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


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
    LauncherScreen #error { color: $error; height: auto; padding: 0 1; }
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
        from sampler.envs.families.registry import families

        yield Header()
        with Horizontal():
            with Vertical(id="families"):
                yield Label("Env family")
                yield OptionList(*(Option(f"{f.prefix}: {f.description}", id=f.prefix) for f in families()),
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
                yield Static(id="error")
                yield VerticalScroll(id="fields")
        yield Footer()

    def on_mount(self) -> None:
        self.title = "sftui · launcher"
        self.sub_title = str(self.train_dir)
        self.build_form(self.env)
        families = self.query_one("#family-list", OptionList)
        prefix = self.env.split("_", 1)[0]
        families.highlighted = next((i for i in range(families.option_count)
                                     if families.get_option_at_index(i).id == prefix), 0)
        families.focus()  # up/down and Enter pick a family before anything else

    # ---- the form ---------------------------------------------------------------------------------

    def build_form(self, env: str, values: dict | None = None) -> None:
        """Rebuild the fields for `env`, filled with its family's defaults (then `values`, flat paths)."""
        try:
            rows = describe_settings(env)
        except SftuiError as e:
            self.show_error(str(e))
            return
        self.env = env
        fields = self.query_one("#fields", VerticalScroll)
        fields.remove_children()
        self.defaults = {path: default for path, _, default, _ in rows if path not in SKIPPED}
        widgets = []
        section = None
        for path, kind, default, description in rows:
            if path in SKIPPED:
                continue
            if path.split(".")[0] != section:
                section = path.split(".")[0]
                widgets.append(Static(section, classes="section"))
            value = (values or {}).get(path, default)
            widgets.append(Horizontal(
                Label(path), Input(json.dumps(value), id=field_id(path)),
                Static(f"{kind}: {description}", classes="help"), classes="row",
            ))
        fields.mount_all(widgets)
        self.call_after_refresh(self.validate)

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
        raw = nest(self.values())
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
        except SftuiError as e:
            self.show_error(str(e))
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

    def on_input_changed(self, event: Input.Changed) -> None:
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
        env = EXAMPLE_ENVS.get(event.option.id, f"{event.option.id}_")
        self.query_one("#env", Input).value = env
        self.build_form(env)

    # ---- actions ---------------------------------------------------------------------------------

    def on_button_pressed(self, event: Button.Pressed) -> None:
        {"launch": self.action_launch, "save": self.action_save_cfg, "load": self.load_cfg}[event.button.id]()

    def action_save_cfg(self) -> None:
        path = self.query_one("#cfg-path", Input).value.strip()
        if not path:
            self.notify("type a path for the cfg.json first", severity="warning")
            return
        if not self.validate():
            self.notify("fix the form first", severity="error")
            return
        from sampler.experiment.folders import write_json_atomic

        write_json_atomic(Path(path).expanduser(), config_to_dict(build_config(self.raw_config())))
        self.notify(f"saved {path}")

    def load_cfg(self) -> None:
        from sampler.config.build import read_cfg_file

        path = Path(self.query_one("#cfg-path", Input).value.strip()).expanduser()
        try:
            raw = read_cfg_file(path)
            cfg = config_to_dict(build_config(raw))
        except SftuiError as e:
            self.notify(str(e), severity="error")
            return
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
        self.notify(f"loaded {path}")

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
        from sampler.experiment.folders import write_json_atomic

        command, cfg_path, name = self.launch_command()
        raw = self.raw_config()
        raw.setdefault("run", {})["experiment"] = name
        self.train_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(cfg_path, raw)
        self.query_one("#launch", Button).disabled = True
        self.notify(f"launching {name} ...")

        def work() -> None:
            result = subprocess.run(command, capture_output=True, text=True)
            if result.returncode == 0:
                self.app.call_from_thread(self.app.attach, self.train_dir / name, name)
            else:
                message = (result.stderr.strip().splitlines() or ["unknown error"])[-1]
                self.app.call_from_thread(self.notify, f"launch failed: {message}", severity="error", timeout=15)
            self.app.call_from_thread(self.validate)

        self.run_worker(work, thread=True)
