"""How a run's status reads on screen: numbers and durations, the lag histogram, one policy's pane, and the
population and pool lines. The dashboard lays these out; they hold no state of the run beyond a plot's history.
"""

from __future__ import annotations

from collections import deque

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Sparkline, Static

from sampler.status import LAG_HISTOGRAM_EDGES, PolicyStatus, RunStatus

HISTORY = 240  # points kept per plot: two minutes at two updates a second


class Readout(Static):
    """A Static that skips updates which change nothing: each update costs a layout pass."""

    _last: object = None

    def show(self, content) -> None:
        if content != self._last:
            self._last = content
            self.update(content)


def human(n: float) -> str:
    return f"{n:,.0f}"


def duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def eta(status: RunStatus) -> str:
    """Time to the first budget the run will reach, at the last minute's speed."""
    candidates = []
    fps = status.fps.get("60") or status.fps.get("10") or 0.0
    if status.budget_env_frames and fps > 0 and status.budget_env_frames < 10**15:
        candidates.append((status.budget_env_frames - status.env_frames) / fps)
    if status.budget_seconds and status.budget_seconds < 10**9:
        candidates.append(status.budget_seconds - status.elapsed_sec)
    return duration(min(candidates)) if candidates else "-"


def lag_histogram(lag_counts: list[int]) -> Text:
    total = sum(lag_counts) or 1
    text = Text()
    for edge, count in zip(LAG_HISTOGRAM_EDGES, lag_counts, strict=False):
        if count:
            bar = "█" * max(1, round(20 * count / total))
            text.append(f"{edge:>4}+ ", style="dim").append(bar, style="cyan").append(f" {count}\n")
    return text or Text("no samples yet", style="dim")


def format_dict(values: dict) -> str:
    def fmt(v):
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    return "  ".join(f"{k} {fmt(v)}" for k, v in values.items())


class PolicyPane(Vertical):
    """One policy: its return plot, episode stats, learner losses, and its generic dicts."""

    DEFAULT_CSS = """
    PolicyPane { height: auto; border: round $primary-darken-2; padding: 0 1; margin-bottom: 1; }
    PolicyPane Sparkline { height: 3; }
    """

    def __init__(self, policy_id: int):
        super().__init__(id=f"policy-{policy_id}")
        self.policy_id = policy_id
        self.returns: deque[float] = deque(maxlen=HISTORY)
        self.border_title = f"policy {policy_id}"
        self.pending: PolicyStatus | None = None  # shown before its children were composed: shown on mount

    def on_mount(self) -> None:
        if self.pending is not None:
            self.call_after_refresh(self.show, self.pending)

    def compose(self) -> ComposeResult:
        yield Readout(id="summary")
        yield Sparkline([], id="returns")
        yield Readout(id="learner")
        yield Readout(id="dicts")

    def show(self, p: PolicyStatus) -> None:
        if not self.query("#summary"):  # its children are not composed yet (a busy machine): on mount
            self.pending = p
            return
        self.pending = None
        if p.episode_return is not None:
            self.returns.append(p.episode_return)
        ret = "-" if p.episode_return is None else f"{p.episode_return:.2f}"
        best = "-" if p.best_return is None else f"{p.best_return:.2f}"
        length = "-" if p.episode_length is None else f"{p.episode_length:.0f}"
        # The env's true objective (frags in a deathmatch, kills, a win rate), when it reports one.
        objective = "" if p.true_objective is None else f"objective [b]{p.true_objective:.2f}[/b]  "
        if p.shaped_return is not None:  # the return this policy's reward shaping gives, which it optimizes
            objective += f"shaped {p.shaped_return:.2f}  "
        if p.eval_return is not None:  # run.eval_every_env_steps: the last evaluation, and the frames it played
            objective += f"eval [b]{p.eval_return:.2f}[/b] @ {human(p.eval_env_frames or 0)}  "
        self.query_one("#summary", Readout).show(
            f"return [b]{ret}[/b] (best.pt {best})  {objective}length {length}  episodes {p.episodes:,}  "
            f"version {p.version}  samples/s {human(p.samples_per_sec)}  valid {p.valid_fraction:.0%}"
        )
        self.query_one("#returns", Sparkline).data = list(self.returns)
        losses = dict(p.losses)
        for key in ("entropy", "kl"):
            if key in p.metrics:
                losses[key] = p.metrics[key]
        self.query_one("#learner", Readout).show(f"lr {p.learning_rate:.3g}  " + format_dict(losses))
        extra = {k: v for k, v in p.metrics.items() if k not in ("entropy", "kl")}
        self.query_one("#dicts", Readout).show(
            Text(f"hyperparameters: {format_dict(p.hyperparameters)}\nmetrics: {format_dict(extra)}", style="dim")
        )


POPULATION_COLUMNS = ("policy", "objective", "return", "rating", "lr", "explore", "last PBT change")


def objective_key(p: PolicyStatus) -> tuple:
    value = p.true_objective if p.true_objective is not None else p.episode_return
    return (value is None, -(value or 0.0), p.policy_id)


def population_row(p: PolicyStatus) -> tuple[str, ...]:
    def fmt(value) -> str:
        return "-" if value is None else f"{value:.3g}"

    h = p.hyperparameters
    rating = "-" if p.rating is None else f"{p.rating:.0f}"
    return (f"p{p.policy_id}", fmt(p.true_objective), fmt(p.episode_return), rating, fmt(h.get("learning_rate")),
            fmt(h.get("exploration_loss_coeff")), p.pbt_last or "-")


def pool_summary(pool: dict | None) -> str:
    """The opponent pool in one line: its size, the share of opponent seats it played, its best member."""
    if not pool:
        return ""
    members = pool.get("members", [])
    if not members:
        return "pool: empty so far"
    seats = pool.get("opponent_seats", 0)
    share = f", {pool.get('pool_seats', 0) / seats:.0%} of opponent seats" if seats else ""
    best = max(members, key=lambda m: m["rating"])
    return f"pool: {len(members)} members{share}, best {best['name']} {best['rating']:.0f}"
