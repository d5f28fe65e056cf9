"""Small modal questions. Their text is plain, never read as markup: it can hold experiment names and paths."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Select, Static


class Choice(ModalScreen[str | None]):
    """A question with a few answers; returns the chosen answer's id, or None on Escape.

    Each answer's first letter answers it too (y / n), where no other answer starts with it.
    """

    BINDINGS = [Binding("escape", "dismiss_none", "Cancel")]
    DEFAULT_CSS = """
    Choice { align: center middle; }
    Choice > Vertical { width: 64; height: auto; border: thick $primary; background: $surface; padding: 1 2; }
    Choice Horizontal { height: auto; margin-top: 1; }
    Choice Button { margin-right: 2; }
    """

    def __init__(self, question: str, answers: list[tuple[str, str]]):
        super().__init__()
        self.question = question
        self.answers = answers

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self.question, id="question", markup=False)
            with Horizontal():
                for i, (answer_id, label) in enumerate(self.answers):
                    yield Button(label, id=answer_id, variant="primary" if i == 0 else "default")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id)

    def on_key(self, event) -> None:
        letters = [label[0].lower() for _, label in self.answers]
        if letters.count(event.key) == 1:
            event.stop()
            self.dismiss(self.answers[letters.index(event.key)][0])

    def action_dismiss_none(self) -> None:
        self.dismiss(None)


class TextView(ModalScreen[None]):
    """A long text to read (a worker's stack), scrollable; Escape or q closes it."""

    BINDINGS = [Binding("escape", "close", "Close"), Binding("q", "close", "Close", show=False)]
    DEFAULT_CSS = """
    TextView { align: center middle; }
    TextView > VerticalScroll { width: 90%; height: 80%; border: thick $primary; background: $surface; padding: 0 1; }
    """

    def __init__(self, title: str, text: str):
        super().__init__()
        self.title_text, self.text = title, text

    def compose(self) -> ComposeResult:
        with VerticalScroll() as scroll:
            scroll.border_title = self.title_text
            yield Static(self.text, id="text", markup=False)

    def action_close(self) -> None:
        self.dismiss(None)


def confirm(question: str) -> Choice:
    """A yes/no question: its result is "yes", "no", or None on Escape."""
    return Choice(question, [("yes", "Yes"), ("no", "No")])


class SetHyperparameter(ModalScreen[tuple[int | None, str] | None]):
    """Change a live run's hyperparameter: which policy (or all), and `key=value`. Returns (policy, item)."""

    BINDINGS = [Binding("escape", "dismiss_none", "Cancel")]
    DEFAULT_CSS = """
    SetHyperparameter { align: center middle; }
    SetHyperparameter > Vertical { width: 72; height: auto; border: thick $primary; background: $surface;
                                   padding: 1 2; }
    SetHyperparameter Horizontal { height: auto; margin-top: 1; }
    SetHyperparameter Button { margin-right: 2; }
    """

    def __init__(self, policies: int, current: dict):
        super().__init__()
        self.policies = policies
        self.current = current

    def compose(self) -> ComposeResult:
        shown = ", ".join(f"{k} {v}" for k, v in self.current.items() if not isinstance(v, dict))
        with Vertical():
            yield Static(f"Set a hyperparameter (from each learner's next step).\nNow: {shown}", id="question",
                         markup=False)
            options = [("all policies", -1)] + [(f"policy {p}", p) for p in range(self.policies)]
            yield Select(options, value=-1, allow_blank=False, id="policy")
            yield Input(placeholder="learning_rate=2e-4   or   env.reward_shaping.hits=0.1", id="item")
            with Horizontal():
                yield Button("Set", id="set", variant="primary")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#item", Input).focus()

    def _submit(self) -> None:
        item = self.query_one("#item", Input).value.strip()
        if not item:
            self.notify("type KEY=VALUE, e.g. learning_rate=2e-4", severity="warning")
            return
        policy = self.query_one("#policy", Select).value
        self.dismiss((None if policy == -1 else int(policy), item))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self._submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "set":
            self._submit()
        else:
            self.dismiss(None)

    def action_dismiss_none(self) -> None:
        self.dismiss(None)
