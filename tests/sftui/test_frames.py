"""The half-block renderer against a tiny known image: colours, layout, runs and fitting."""

from __future__ import annotations

import numpy as np

from sftui.app.frames import UPPER_HALF, HalfBlocks, fit

RED, GREEN, BLUE, WHITE = (248, 0, 0), (0, 248, 0), (0, 0, 248), (248, 248, 248)


def image() -> np.ndarray:
    # 3 rows x 3 columns: rows 0-1 make the first line of cells, row 2 the second (its lower half black).
    return np.array([[RED, RED, GREEN],
                     [BLUE, BLUE, WHITE],
                     [GREEN, (7, 7, 7), RED]], np.uint8)


def test_strips_put_the_upper_pixel_in_front_and_the_lower_behind():
    strips = HalfBlocks().strips(image())
    assert len(strips) == 2 and all(s.cell_length == 3 for s in strips)
    first = list(strips[0])
    # The two equal cells (red over blue) are one run of two half blocks.
    assert [seg.text for seg in first] == [UPPER_HALF * 2, UPPER_HALF]
    assert first[0].style.color.triplet == RED and first[0].style.bgcolor.triplet == BLUE
    assert first[1].style.color.triplet == GREEN and first[1].style.bgcolor.triplet == WHITE
    second = list(strips[1])
    assert [seg.style.color.triplet for seg in second] == [GREEN, (0, 0, 0), RED]  # 7 quantizes to 0
    assert all(seg.style.bgcolor.triplet == (0, 0, 0) for seg in second)


def test_ansi_is_the_same_picture_in_escape_codes():
    lines = HalfBlocks().ansi(image()).split("\n")
    assert len(lines) == 2
    assert lines[0] == ("\x1b[38;2;248;0;0;48;2;0;0;248m" + UPPER_HALF * 2
                        + "\x1b[38;2;0;248;0;48;2;248;248;248m" + UPPER_HALF + "\x1b[0m")


def test_styles_are_cached_by_colour_pair():
    blocks = HalfBlocks()
    frame = np.random.default_rng(0).integers(0, 256, (72, 128, 3), dtype=np.uint8)
    first = blocks.strips(frame)
    second = blocks.strips(frame)
    assert all(a.style is b.style for s1, s2 in zip(first, second, strict=True)
               for a, b in zip(s1, s2, strict=True))


def test_fit_keeps_the_aspect_and_never_enlarges():
    frame = np.zeros((72, 128, 3), np.uint8)
    assert fit(frame, 200, 60).shape == (72, 128, 3)
    small = fit(frame, 64, 100)
    assert small.shape[:2] == (36, 64)
    assert fit(frame, 128, 18).shape[:2] == (36, 64)
