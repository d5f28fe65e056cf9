"""Small modal questions."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static


class Choice(ModalScreen[str | None]):
    """A question with a few answers; returns the chosen answer's id, or None on Escape."""

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
            yield Static(self.question, id="question")
            with Horizontal():
                for i, (answer_id, label) in enumerate(self.answers):
                    yield Button(label, id=answer_id, variant="primary" if i == 0 else "default")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id)

    def action_dismiss_none(self) -> None:
        self.dismiss(None)


def confirm(question: str) -> Choice:
    """A yes/no question: its result is "yes", "no", or None on Escape."""
    return Choice(question, [("yes", "Yes"), ("no", "No")])
