"""Ctrl+C held while a command starts: noted, then raised (or taken by the supervisor) at a safe point."""

from __future__ import annotations

import os
import signal

import pytest

from sampler.run import interrupts


def test_a_held_sigint_is_noted_then_raised_where_it_is_released():
    before = signal.getsignal(signal.SIGINT)
    interrupts.hold()
    try:
        os.kill(os.getpid(), signal.SIGINT)  # no KeyboardInterrupt here, in the middle of whatever runs
        assert interrupts.holding()
        with pytest.raises(KeyboardInterrupt):
            interrupts.release()
        assert signal.getsignal(signal.SIGINT) is before  # Python's handler is back
        interrupts.release()  # released twice: nothing
    finally:
        signal.signal(signal.SIGINT, before)


def test_take_reports_a_noted_sigint_once():
    before = signal.getsignal(signal.SIGINT)
    interrupts.hold()
    try:
        assert not interrupts.take()
        os.kill(os.getpid(), signal.SIGINT)
        assert interrupts.take() and not interrupts.take()
        interrupts.release()  # nothing noted any more: no KeyboardInterrupt
    finally:
        signal.signal(signal.SIGINT, before)
