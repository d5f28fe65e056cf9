"""Errors a user can meet. The CLI turns each into one line and an exit code."""


class SftuiError(Exception):
    """Base of every user-facing error. `exit_code` is what the CLI exits with."""

    exit_code = 1


class ConfigError(SftuiError):
    """A config that cannot run: bad JSON, unknown key, bad value, unknown env, illegal resume change."""

    exit_code = 2


class ExperimentError(SftuiError):
    """An experiment folder that cannot be used as asked (live, missing, unreadable)."""

    exit_code = 2


class ControlError(SftuiError):
    """A live run that cannot be reached or refused a command."""

    exit_code = 1


class MissingDependencyError(SftuiError):
    """An optional package an env family needs is not installed."""

    exit_code = 2
