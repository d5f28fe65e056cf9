"""`sftui enjoy`: play a checkpoint, print each episode's return, draw the frames, write a video."""

from __future__ import annotations

import math
import shutil
import sys
import time
from pathlib import Path

from sampler.play.player import Episode, Player
from sampler.play.video import VideoWriter
from sftui.app.frames import HalfBlocks, fit

DRAW_FPS = 15.0  # terminal redraws a second, whatever the env's frame rate


def summary_line(episodes: list[Episode]) -> str:
    if not episodes:
        return "no episode finished"
    returns = [e.episode_return for e in episodes]
    mean = sum(returns) / len(returns)
    std = math.sqrt(sum((r - mean) ** 2 for r in returns) / len(returns))
    lengths = sum(e.length for e in episodes) / len(episodes)
    return (f"{len(episodes)} episode{'s' * (len(episodes) != 1)}: mean return {mean:.2f} ± {std:.2f} "
            f"(min {min(returns):.2f}, max {max(returns):.2f}), mean length {lengths:.0f} steps")


def episode_line(e: Episode) -> str:
    return f"episode {e.index}: return {e.episode_return:.2f}, length {e.length} steps ({e.frames} frames)"


class Terminal:
    """Frames drawn in place on the alternate screen, with a status line and the last episodes under them."""

    def __init__(self, title: str):
        self.blocks = HalfBlocks()
        self.title = title
        self.last_draw = 0.0
        sys.stdout.write("\x1b[?1049h\x1b[?25l\x1b[2J")

    def draw(self, frame, status: str, recent: list[str], force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last_draw < 1.0 / DRAW_FPS:
            return
        self.last_draw = now

        cols, rows = shutil.get_terminal_size()
        text = ""
        if frame is not None:
            text = self.blocks.ansi(fit(frame, cols, max(1, rows - 3 - len(recent))))
        lines = [self.title, text, status, *recent] if text else [self.title, status, *recent]
        sys.stdout.write("\x1b[H" + "\x1b[K\n".join(lines) + "\x1b[K\x1b[J")
        sys.stdout.flush()

    def close(self) -> None:
        sys.stdout.write("\x1b[?25h\x1b[?1049l")
        sys.stdout.flush()


def enjoy(folder: Path, *, policy: int, checkpoint: str, episodes: int, deterministic: bool,
          video: Path | None, fps: float | None, render: bool, echo=print, agent: int = 0,
          env: str | None = None) -> list[Episode]:
    player = Player(folder, policy=policy, checkpoint=checkpoint, deterministic=deterministic,
                    frames=render or video is not None, agent=agent, env_name=env)
    rate = fps or player.natural_fps
    writer = VideoWriter(video, rate) if video is not None else None
    screen = Terminal(f"{folder.name} · policy {policy} · {player.checkpoint_path.name} "
                      f"(version {player.version}, {player.env_frames:,} frames) · Ctrl+C stops") if render else None
    where = f" in {player.cfg.env.name}" if env else ""
    echo(f"enjoying {player.checkpoint_path} ({player.env_frames:,} env frames){where}")
    lines: list[str] = []
    started, shown = time.monotonic(), 0
    interrupted = False
    try:
        while episodes <= 0 or len(player.episodes) < episodes:
            result = player.step()
            for frame in result.frames:
                if writer is not None:
                    writer.write(frame)
                if screen is not None:
                    shown += 1
                    delay = started + shown / rate - time.monotonic()  # real time at `rate` frames a second
                    if delay > 0:
                        time.sleep(delay)
                    status = (f"episode {len(player.episodes) + 1}  step {result.episode_step}  "
                              f"return {result.episode_return:.2f}  action {result.action}  value {result.value:.2f}")
                    screen.draw(frame, status, lines[-5:])
            if result.done:
                lines.append(episode_line(player.episodes[-1]))
                if screen is None:
                    echo(lines[-1])
    except KeyboardInterrupt:
        interrupted = True  # the video keeps the episodes so far
    except BaseException:
        if writer is not None:  # a failed write (a full disk) or a failed env: no half-made video
            writer.abort()
            writer = None
        raise
    finally:
        if screen is not None:
            screen.close()
            for line in lines:
                echo(line)
        player.close()
        if writer is not None:
            path = writer.close()
            echo(f"video: {path} ({writer.frames} frames at {writer.fps} fps)" if path else "video: no frames")
    echo(summary_line(player.episodes) + (" (interrupted)" if interrupted else ""))
    return player.episodes
