"""The Enjoy screen's player process: a `Player` run at real time x speed, tied to the app's life.

It sends frames and the step at most SEND_FPS times a second, and every finished episode; it obeys pause,
speed, next episode, record and stop. `sftui.app.enjoy` starts it as `python -m sampler.play.process`.
"""

from __future__ import annotations

import time
from collections import deque
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np

from sampler.errors import SftuiError
from sampler.play.player import Player
from sampler.play.video import VideoWriter
from sampler.run.workers.base import SupervisorGone, die_with_parent

SEND_FPS = 15.0  # frames a second the Enjoy screen is sent
EPISODE_BUFFER_BYTES = 256 << 20  # the current episode's frames kept, so that r records it from its start


def serve(folder: str, policy: int, checkpoint: str, commands: Connection, events: Connection,
          agent: int = 0) -> None:
    """The enjoy process of the app's Enjoy screen: play at real time x speed; send frames and the
    step at most SEND_FPS times a second, and every finished episode; obey pause, speed, next, record
    and stop."""
    die_with_parent()
    player = None
    try:
        try:
            player = Player(Path(folder), policy=policy, checkpoint=checkpoint, agent=agent)
        except SftuiError as e:
            events.send(("error", str(e)))
            return
        events.send(("ready", {"checkpoint": str(player.checkpoint_path), "version": player.version,
                               "env_frames": player.env_frames, "fps": player.natural_fps,
                               "has_frames": player.frame() is not None, "agents": player.env.num_agents}))
        Session(player, Path(folder), commands, events).run()
    except (SupervisorGone, KeyboardInterrupt, BrokenPipeError, EOFError):
        pass
    except Exception as e:  # noqa: BLE001 - reported on the screen, never as a traceback
        try:
            events.send(("error", f"{type(e).__name__}: {e}"))
        except OSError:
            pass  # the screen is gone
    finally:
        if player is not None:
            player.close()


class Session:
    """The loop of `serve`, with its state: speed, pause, the pacing clock and the video being recorded."""

    def __init__(self, player: Player, folder: Path, commands: Connection, events: Connection):
        self.player, self.folder, self.commands, self.events = player, folder, commands, events
        self.speed, self.paused, self.writer = 1.0, False, None
        self.last_sent = 0.0
        self.episode_frames: deque[np.ndarray] = deque()  # since the episode began (bounded by bytes)
        self.episode_bytes = 0
        self.restart_clock()

    def keep(self, frame: np.ndarray) -> None:
        self.episode_frames.append(frame)
        self.episode_bytes += frame.nbytes
        while self.episode_bytes > EPISODE_BUFFER_BYTES:
            self.episode_bytes -= self.episode_frames.popleft().nbytes

    def forget_episode(self) -> None:
        self.episode_frames.clear()
        self.episode_bytes = 0

    def restart_clock(self) -> None:
        self.clock, self.shown = time.monotonic(), 0

    def obey(self) -> bool:
        """Handle pending commands; False on stop."""
        while self.commands.poll(0):
            command, arg = self.commands.recv()
            if command == "stop":
                return False
            if command == "pause":
                self.paused = bool(arg)
            elif command == "speed":
                self.speed = float(arg)
            elif command == "next":
                self.player.new_episode()
                self.forget_episode()
            elif command == "record":
                self.toggle_recording()
            self.restart_clock()
        return True

    def toggle_recording(self) -> None:
        if self.writer is None:
            self.writer = start_video(self.folder, self.player)
            for frame in self.episode_frames:  # the episode so far, then the rest as it plays
                self.writer.write(frame)
            self.events.send(("recording", str(self.writer.path)))
        else:
            self.finish_recording()

    def finish_recording(self) -> None:
        path = self.writer.close()
        self.writer = None
        self.events.send(("recorded", str(path) if path else "nothing (no frames)"))

    def wait_for(self, frames: int) -> None:
        """Sleep until `frames` more frames are due at real time x speed."""
        self.shown += frames
        if self.speed > 0:
            delay = self.clock + self.shown / (self.player.natural_fps * self.speed) - time.monotonic()
            if delay > 0:
                time.sleep(delay)

    def run(self) -> None:
        player = self.player
        try:
            while self.obey():
                if self.paused:
                    time.sleep(0.05)
                    self.restart_clock()
                    continue
                result = player.step()
                frame = None
                for frame in result.frames:
                    if self.writer is not None:
                        self.writer.write(frame)
                    self.keep(frame)
                    self.wait_for(1)
                if not result.frames:
                    self.wait_for(1)
                now = time.monotonic()
                if now - self.last_sent >= 1.0 / SEND_FPS or result.done:
                    self.last_sent = now
                    step = {"episode": len(player.episodes) + (0 if result.done else 1), "step": result.episode_step,
                            "return": result.episode_return, "action": result.action, "value": result.value,
                            "obs": None if frame is not None else player.vector_obs()}
                    self.events.send(("step", frame, step))
                if result.done:
                    self.forget_episode()
                    e = player.episodes[-1]
                    self.events.send(("episode", {"index": e.index, "return": e.episode_return, "length": e.length}))
                    if self.writer is not None:
                        self.finish_recording()
        finally:
            if self.writer is not None:
                self.writer.abort()


def start_video(folder: Path, player):
    videos = folder / "videos"
    videos.mkdir(exist_ok=True)
    name = f"{time.strftime('%Y%m%d-%H%M%S')}-p{player.policy}-v{player.version}.mp4"
    return VideoWriter(videos / name, player.natural_fps)


def main(argv: list[str]) -> None:
    """`python -m sampler.play.process FOLDER POLICY CHECKPOINT AGENT COMMANDS_FD EVENTS_FD`, started by the app."""
    folder, policy, checkpoint, agent, commands_fd, events_fd = argv
    serve(folder, int(policy), checkpoint, Connection(int(commands_fd), writable=False),
          Connection(int(events_fd), readable=False), agent=int(agent))


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
