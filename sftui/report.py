"""Plain-text renderings of a RunStatus: the headless progress line and `sftui status`."""

from __future__ import annotations

import sys
import time

from sampler.status import RunStatus


def _num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def progress_line(status: RunStatus) -> str:
    fps = status.fps
    parts = [
        f"[{status.elapsed_sec:7.1f}s] {status.state}",
        f"frames {status.env_frames:,}",
        f"fps {fps['10']:,.0f} / {fps['60']:,.0f} / {fps['300']:,.0f} (10/60/300 s)",
    ]
    for p in status.policies:
        parts.append(
            f"p{p.policy_id} lag {p.lag.min:.0f}/{p.lag.avg:.1f}/{p.lag.max:.0f} "
            f"return {_num(p.episode_return)}{_eval(p)} v{p.version}"
        )
    return " | ".join(parts)


def _eval(p) -> str:
    return "" if p.eval_return is None else f" eval {_num(p.eval_return)}"


def status_text(status: RunStatus) -> str:
    lines = [
        f"{status.experiment}: {status.state}",
        f"  env frames   {status.env_frames:,} of {status.budget_env_frames:,}",
        f"  fps          {status.fps['10']:,.0f} / {status.fps['60']:,.0f} / {status.fps['300']:,.0f} (10/60/300 s)",
        f"  trained for  {status.elapsed_sec:,.0f} s",
    ]
    if status.error:
        lines.append(f"  error        {status.error}")
    if status.warning:
        lines.append(f"  warning      {status.warning}")
    for p in status.policies:
        objective = "" if p.true_objective is None else f", objective {_num(p.true_objective, 2)}"
        rating = "" if p.rating is None else f", rating {p.rating:.0f}"
        evaluated = "" if p.eval_return is None else f", evaluation {_num(p.eval_return)} at {p.eval_env_frames:,}"
        lines.append(
            f"  policy {p.policy_id}: v{p.version}, return {_num(p.episode_return)} over {p.episodes} episodes"
            f"{evaluated}{objective}{rating}, lag {p.lag.min:.0f}/{p.lag.avg:.1f}/{p.lag.max:.0f}, "
            f"{p.samples_per_sec:,.0f} samples/s, valid {p.valid_fraction:.0%}, lr {p.learning_rate:.3g}"
        )
    if status.pool is not None:
        members = sorted(status.pool.get("members", []), key=lambda m: -m["rating"])
        seats = status.pool.get("opponent_seats", 0)
        share = f", {status.pool.get('pool_seats', 0) / seats:.0%} of {seats:,} opponent seats" if seats else ""
        best = ", best " + ", ".join(f"{m['name']} {m['rating']:.0f}" for m in members[:3]) if members else ""
        lines.append(f"  pool         {len(members)} members{share}{best}")
    for w in status.workers:
        error = f", last error: {w.last_error}" if w.last_error else ""
        healed = "".join(f"  {label} {n:,}" for label, n in (("env restarts", w.env_restarts),
                                                              ("partial blocks dropped", w.discarded)) if n)
        lines.append(
            f"  {w.name:<18} {w.state:<8} pid {w.pid}  cpu {w.cpu_percent:5.1f}%  "
            f"{w.steps_per_sec:,.0f} steps/s  restarts {w.restarts}{healed}{error}"
        )
    return "\n".join(lines)


class HeadlessReporter:
    """Prints a progress line every `interval` seconds, and the last state when the run ends."""

    def __init__(self, interval: float, stream=None):
        self.interval = interval
        self.stream = stream or sys.stdout
        self._last = 0.0

    def __call__(self, status: RunStatus) -> None:
        now = time.monotonic()
        final = status.state in ("stopped", "finished", "failed")
        if final or (status.state in ("running", "paused") and now - self._last >= self.interval):
            self._last = now
            print(progress_line(status), file=self.stream, flush=True)
