"""Ctrl+C while a run starts: noted, then acted on at a safe point.

Python turns SIGINT into a KeyboardInterrupt raised at whatever line runs. During start-up that line is often
inside an import of a compiled module (torch aborts the whole process when one reaches its C++ code) or
inside the command-line library before it catches anything; either way the user saw a traceback, a core
dump, or a run that kept training. So from the first line of `sftui` until the command is known, and for
training until the supervisor's event loop takes SIGINT over, a Ctrl+C only sets a flag here:

- `hold()` starts noting SIGINT instead of raising;
- `release()` gives SIGINT back to Python and raises the KeyboardInterrupt of one noted meanwhile;
- `take()` says whether one was noted (and forgets it): the supervisor stops its run at once if so.

It imports nothing but `signal`: the `sftui` command holds Ctrl+C before anything else loads.
"""

from __future__ import annotations

import signal

_noted = False
_before: object = None  # the handler hold() replaced, which release() puts back


def _note(signum: int, frame: object) -> None:
    global _noted
    _noted = True


def hold() -> None:
    """From now on a SIGINT is noted, not raised."""
    global _before
    current = signal.getsignal(signal.SIGINT)
    if current is not _note:
        _before = current
    signal.signal(signal.SIGINT, _note)


def holding() -> bool:
    return signal.getsignal(signal.SIGINT) is _note


def release() -> None:
    """SIGINT back to the handler hold() found (Python's KeyboardInterrupt, or ignored for a job started with
    it ignored); a SIGINT noted meanwhile is raised here, as if it came now."""
    if not holding():
        return
    signal.signal(signal.SIGINT, signal.default_int_handler if _before is None else _before)
    if take():
        raise KeyboardInterrupt


def take() -> bool:
    """Whether a SIGINT was noted since the last take(); it is forgotten."""
    global _noted
    noted, _noted = _noted, False
    return noted


def raise_if_noted() -> None:
    """A safe point of a held start: a Ctrl+C noted so far ends it now (as a KeyboardInterrupt)."""
    if take():
        raise KeyboardInterrupt
