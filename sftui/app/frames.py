"""Game frames drawn with half blocks: each cell is '▀' with the upper pixel as its foreground colour
and the lower pixel as its background, so a cell shows two pixels.

Styles are cached by colour pair, and runs of equal cells share one segment, so a 128x72 frame takes
a few milliseconds (`bench/enjoy.py` measures it). `HalfBlocks.strips` feeds a Textual widget;
`HalfBlocks.ansi` writes straight to a terminal for `sftui enjoy`.
"""

from __future__ import annotations

import numpy as np
from rich.color import Color
from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip
from textual.widget import Widget

UPPER_HALF = "▀"
MAX_CACHED = 1 << 16
# 5 bits a channel: invisible at two pixels a cell, and it turns the many near-equal colours of a
# resized game frame into cache hits and longer runs (measured: about 8x faster on Doom frames).
QUANTIZE = 0xF8


def fit(frame: np.ndarray, cols: int, rows: int) -> np.ndarray:
    """Nearest-pixel resize so the frame fits `cols` x `rows` cells (2 pixels a cell), keeping its aspect."""
    height, width = frame.shape[:2]
    scale = min(cols / width, 2 * rows / height, 1.0)
    if scale >= 1.0:
        return frame
    new_w, new_h = max(1, int(width * scale)), max(1, int(height * scale))
    ys = (np.arange(new_h) * height / new_h).astype(np.intp)
    xs = (np.arange(new_w) * width / new_w).astype(np.intp)
    return frame[ys][:, xs]


def cell_keys(frame: np.ndarray) -> np.ndarray:
    """[rows, cols] int64: the upper pixel's RGB (quantized) in the high 24 bits, the lower pixel's in the low 24."""
    rgb = (frame & QUANTIZE).astype(np.int64)
    packed = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    if packed.shape[0] % 2:
        packed = np.vstack([packed, np.zeros((1, packed.shape[1]), np.int64)])
    return (packed[0::2] << 24) | packed[1::2]


def runs(row: np.ndarray) -> tuple[list[int], list[int]]:
    """(keys, lengths) of the runs of equal values in one row."""
    starts = np.flatnonzero(np.diff(row)) + 1
    bounds = np.concatenate(([0], starts, [len(row)]))
    return row[bounds[:-1]].tolist(), np.diff(bounds).tolist()


class HalfBlocks:
    def __init__(self) -> None:
        self._styles: dict[int, Style] = {}
        self._codes: dict[int, str] = {}

    def style(self, key: int) -> Style:
        style = self._styles.get(key)
        if style is None:
            if len(self._styles) >= MAX_CACHED:
                self._styles.clear()
            top, bottom = key >> 24, key & 0xFFFFFF
            style = Style(color=Color.from_rgb(top >> 16, (top >> 8) & 255, top & 255),
                          bgcolor=Color.from_rgb(bottom >> 16, (bottom >> 8) & 255, bottom & 255))
            self._styles[key] = style
        return style

    def code(self, key: int) -> str:
        code = self._codes.get(key)
        if code is None:
            if len(self._codes) >= MAX_CACHED:
                self._codes.clear()
            top, bottom = key >> 24, key & 0xFFFFFF
            code = (f"\x1b[38;2;{top >> 16};{(top >> 8) & 255};{top & 255}"
                    f";48;2;{bottom >> 16};{(bottom >> 8) & 255};{bottom & 255}m")
            self._codes[key] = code
        return code

    def strips(self, frame: np.ndarray) -> list[Strip]:
        """One Textual Strip per pair of pixel rows."""
        out = []
        for row in cell_keys(frame):
            keys, lengths = runs(row)
            out.append(Strip([Segment(UPPER_HALF * n, self.style(k)) for k, n in zip(keys, lengths, strict=True)],
                             int(row.shape[0])))
        return out

    def ansi(self, frame: np.ndarray) -> str:
        """The frame as ANSI text (24-bit colour), one line per pair of pixel rows, colours reset at each end."""
        lines = []
        for row in cell_keys(frame):
            keys, lengths = runs(row)
            lines.append("".join(self.code(k) + UPPER_HALF * n for k, n in zip(keys, lengths, strict=True)) + "\x1b[0m")
        return "\n".join(lines)


class FrameView(Widget):
    """Shows the latest frame, scaled down to fit, centred; blank until the first frame."""

    DEFAULT_CSS = "FrameView { width: 1fr; height: 1fr; }"

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002 - Textual's name for it
        super().__init__(id=id)
        self.blocks = HalfBlocks()
        self.frame: np.ndarray | None = None
        self._strips: list[Strip] = []

    def show(self, frame: np.ndarray) -> None:
        self.frame = frame
        self._render_strips()
        self.refresh()

    def _render_strips(self) -> None:
        width, height = self.size.width, self.size.height
        if self.frame is None or width <= 0 or height <= 0:
            self._strips = []
            return
        self._strips = self.blocks.strips(fit(self.frame, width, height))

    def on_resize(self) -> None:
        self._render_strips()

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        strips = self._strips
        top = max(0, (self.size.height - len(strips)) // 2)
        index = y - top
        if not 0 <= index < len(strips):
            return Strip.blank(width)
        strip = strips[index]
        left = max(0, (width - strip.cell_length) // 2)
        return Strip([Segment(" " * left), *strip], left + strip.cell_length).crop_extend(0, width, None)
