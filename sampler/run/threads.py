"""The learner's torch thread count, chosen by measuring the run (run.learner_threads 0, auto).

Whether a second learner thread helps depends on who waits for whom. When the learner is the bottleneck
(Atari's 4 epochs of a conv net) the rollout workers sit idle part of the time and a second thread uses that
time: atari_pong per agent trained at 1,890 FPS with 2 threads against 1,600 with 1. When the rollout
workers keep every core busy (doom_basic) a second thread only takes time from them: 2,755 against 3,335.
No rule read off the config tells these apart, so the learner tries each count and keeps the faster.
"""

from __future__ import annotations

from sampler.config.schema import ExperimentConfig


class ThreadTuner:
    """Trains `window_sec` with each thread count in turn, keeps the fastest, and tries again every `recheck_sec`.

    The rate is env frames trained per wall second, waiting for data included: the run's throughput as the
    learner sees it. More threads must beat fewer by `min_gain` to be kept, since a thread the learner does not
    need is a core the rollout workers could use. The first window after the start is a warm-up and not counted.
    """

    def __init__(self, choices: list[int], start: int, window_sec: float = 20.0, recheck_sec: float = 600.0,
                 min_gain: float = 0.05):
        self.choices = sorted(set(choices))
        self.current = start
        self.window_sec, self.recheck_sec, self.min_gain = window_sec, recheck_sec, min_gain
        self.phase = "warmup"  # then "trying" (one window per choice), then "settled" until the recheck
        self.rates: dict[int, float] = {}  # frames/s per thread count in the latest round
        self._window_start: float | None = None
        self._frames = 0
        self._settled_at = 0.0

    def record(self, frames: int, now: float) -> int | None:
        """`frames` trained by the step that ended at `now`; returns a thread count to switch to, or None."""
        if self._window_start is None:
            self._window_start = now  # the first step opens the first window
            return None
        self._frames += frames
        span = now - self._window_start
        if span < self.window_sec:
            return None
        rate, self._window_start, self._frames = self._frames / span, now, 0
        if self.phase == "warmup":
            self.phase, self.rates = "trying", {}
            return None
        if self.phase == "settled":
            if now - self._settled_at >= self.recheck_sec:
                self.phase, self.rates = "trying", {self.current: rate}
                return self._next(now)
            return None
        self.rates[self.current] = rate
        return self._next(now)

    def _next(self, now: float) -> int | None:
        untried = [c for c in self.choices if c not in self.rates]
        if untried:
            self.current = untried[0]
            return self.current
        self.phase, self._settled_at = "settled", now
        best = self.best()
        if best == self.current:
            return None
        self.current = best
        return best

    def best(self) -> int:
        """The fewest threads within `min_gain` of the fastest measured."""
        best = min(self.rates)
        for count in sorted(self.rates):
            if self.rates[count] > self.rates[best] * (1 + self.min_gain):
                best = count
        return best

    def describe(self) -> str:
        rates = ", ".join(f"{self.rates[c]:,.0f} with {c}" for c in sorted(self.rates))
        return f"{self.current} torch thread(s) (trained frames/s: {rates})"


def thread_choices(cfg: ExperimentConfig, device: str, cores: int) -> list[int]:
    """The counts a learner tries: 1, 2, 4... up to `cores`; none when the count is fixed: run.learner_threads
    set, a GPU learner, several learners that would share the cores, or batched sampling, whose rollout workers
    only move arrays and leave the cores to the learner (CartPole batched: 66,400 FPS tuning, 69,400 fixed on
    every core, the 20 s a window spends on 1 thread being the difference)."""
    fixed = cfg.run.learner_threads or cfg.sampler.batched_sampling or cfg.sampler.num_policies > 1
    if fixed or device != "cpu" or cores < 2:
        return []
    choices, count = [], 1
    while count < cores:
        choices.append(count)
        count *= 2
    return [*choices, cores]
