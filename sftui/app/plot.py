"""Several curves on one text chart: the browser's sweep view overlays its experiments' return curves."""

from __future__ import annotations

from rich.text import Text

COLORS = ("cyan", "magenta", "green", "yellow", "red", "blue", "bright_white", "bright_cyan")
MARK = "•"


def overlay(series: list[tuple[str, list[tuple[float, float]]]], width: int = 56, height: int = 10) -> Text:
    """Curves (name, [(x, y), ...]) on one shared scale, each in its own colour, with a legend below.
    Where two curves meet the later one is drawn; an empty series only shows in the legend."""
    points = [p for _, curve in series for p in curve]
    out = Text()
    if not points:
        return out.append("no returns yet", style="dim")
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    grid: list[list[tuple[str, str]]] = [[(" ", "")] * width for _ in range(height)]
    for i, (_, curve) in enumerate(series):
        color = COLORS[i % len(COLORS)]
        for x, y in curve:
            col = 0 if x1 == x0 else round((x - x0) / (x1 - x0) * (width - 1))
            row = 0 if y1 == y0 else round((y1 - y) / (y1 - y0) * (height - 1))
            grid[row][col] = (MARK, color)
    label_width = max(len(f"{y1:.4g}"), len(f"{y0:.4g}"))
    for r, cells in enumerate(grid):
        label = f"{y1:.4g}" if r == 0 else f"{y0:.4g}" if r == height - 1 else ""
        out.append(f"{label:>{label_width}} ┤", style="dim")
        for char, color in cells:
            out.append(char, style=color)
        out.append("\n")
    out.append(f"{'':>{label_width}} └{'─' * width}\n", style="dim")
    out.append(f"{'':>{label_width}}  {x0:,.0f}{'env frames':^{max(0, width - 20)}}{x1:,.0f}\n", style="dim")
    for i, (name, _) in enumerate(series):
        out.append(f"{MARK} ", style=COLORS[i % len(COLORS)])
        out.append(f"{name}\n")
    return out
