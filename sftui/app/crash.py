"""Running the app to its end: an unhandled exception exits non-zero, with one line and the traceback in a log file.

Textual ends the app on an unhandled exception, prints the traceback and sets `return_code` to 1, but `run()`
returns normally. `run_to_end` turns that into AppCrashed (exit code 1 through `sftui.cli.main`) after writing
the traceback to `$XDG_CACHE_HOME/sftui/app-crash.log` (`~/.cache/sftui/app-crash.log`), which holds the last
crash.
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
import time
import traceback
from pathlib import Path

from textual.app import App

from sampler.errors import SftuiError


class AppCrashed(SftuiError):
    """The app ended on an unhandled exception; the message says where its traceback was written."""

    exit_code = 1


def crash_log_path() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "sftui" / "app-crash.log"


def crash_report(error: BaseException | None, code: int) -> str:
    """The log's text: when, what ran, the versions, and the traceback."""
    import textual

    lines = [
        f"sftui app crash at {time.strftime('%Y-%m-%d %H:%M:%S')}, exit code {code}",
        f"command: {' '.join(sys.argv)}",
        f"python {platform.python_version()}, textual {textual.__version__}",
        "",
    ]
    if error is None:
        lines.append("the app recorded no exception")
    else:
        lines.append("".join(traceback.format_exception(error)).rstrip())
    return "\n".join(lines) + "\n"


def write_crash_log(text: str) -> tuple[Path | None, str | None]:
    """(where the report was written, None), else (None, why not). A new temp file when the cache is unwritable."""
    path = crash_log_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path, None
    except OSError as e:
        reason = f"{path}: {e.strerror or e}"
    try:
        fd, name = tempfile.mkstemp(prefix="sftui-app-crash-", suffix=".log")
        with os.fdopen(fd, "w") as f:
            f.write(text)
        return Path(name), None
    except OSError as e:
        return None, f"{reason}; temp folder: {e.strerror or e}"


def run_to_end(app: App, **run_options) -> None:
    """`app.run(**run_options)`; raises AppCrashed when the app ended on an unhandled exception."""
    app.run(**run_options)
    code = app.return_code or 0
    if code == 0:
        return
    error = getattr(app, "_exception", None)  # Textual keeps the first unhandled exception here
    log, why_not = write_crash_log(crash_report(error, code))
    first_line = (str(error).splitlines() or [""])[0] if error is not None else ""
    what = f"{type(error).__name__}: {first_line}" if error is not None else f"exit code {code}"
    where = f"the traceback is in {log}" if log else f"the traceback is above (no log written: {why_not})"
    crashed = AppCrashed(f"the app crashed ({what}); {where}")
    crashed.exit_code = code
    raise crashed
