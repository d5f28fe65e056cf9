"""Env failures inside a rollout worker: an env that raises now and then is rebuilt alone, one that keeps
failing right after each rebuild fails its worker with the env's own error line."""

from __future__ import annotations

from sampler.errors import SftuiError

ENV_RESTARTED = "env_restarted"  # in a step's info: the env raised and was rebuilt; the step is not trained on
ENV_FAILS_IN_A_ROW = 5  # an env that raises this many times, each within SHORT_LIFE_STEPS of its rebuild, fails
SHORT_LIFE_STEPS = 10


class EnvFailures:
    """Counts a worker's env restarts, and tells an env that fails now and then (rebuilt, the run goes on) from
    one that keeps failing (its worker fails with the env's own error line)."""

    def __init__(self) -> None:
        self.total = 0
        self.new = 0  # since the last heartbeat
        self.last_error: str | None = None
        self.steps_since: dict[int, int] = {}  # local env index -> steps since its last rebuild
        self.short_lives: dict[int, int] = {}  # local env index -> rebuilds in a row that lived only briefly

    def stepped(self, env: int) -> None:
        if env in self.steps_since:
            self.steps_since[env] += 1

    def failed(self, env: int, line: str) -> int:
        """Records env `env`'s failure; returns how many times it has been rebuilt, or raises where it keeps
        failing."""
        short = self.steps_since.get(env, SHORT_LIFE_STEPS) < SHORT_LIFE_STEPS
        self.short_lives[env] = self.short_lives.get(env, 0) + 1 if short else 1
        if self.short_lives[env] >= ENV_FAILS_IN_A_ROW:
            raise EnvKeepsFailing(f"env {env} failed {self.short_lives[env]} times in a row, each within "
                                  f"{SHORT_LIFE_STEPS} steps of being rebuilt: {line}")
        self.steps_since[env] = 0
        self.total += 1
        self.new += 1
        self.last_error = line
        return self.total

    def take(self) -> tuple[int, str | None]:
        new, self.new = self.new, 0
        return new, self.last_error


class EnvKeepsFailing(SftuiError):
    """An env that raised again and again right after being rebuilt."""
