"""MP4 (H.264) files from RGB frames, through PyAV.

Small frames are scaled up by a whole factor (nearest pixel) so that a 128x72 Doom frame makes a
video a player shows at a useful size; H.264 needs even sides, so odd ones are padded by a pixel.
The file appears complete or not at all: frames go to a temporary file renamed at close.
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

import numpy as np

from sampler.errors import ConfigError, MissingDependencyError

MIN_HEIGHT = 288


class VideoWriter:
    def __init__(self, path: Path, fps: float):
        try:
            import av
        except ImportError:
            raise MissingDependencyError("--video needs PyAV: pip install av") from None
        self.av = av
        self.path = Path(path)
        if self.path.suffix.lower() != ".mp4":
            raise ConfigError(f"{path}: the video is written as MP4; name it something.mp4")
        if not self.path.parent.is_dir():
            what = "is a file, not a folder" if self.path.parent.exists() else "no such folder"
            raise ConfigError(f"{self.path.parent}: {what} for the video")
        self.fps = max(1, round(fps))
        try:
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.stem}-", suffix=".mp4")
        except OSError as e:
            raise ConfigError(f"cannot write the video in {self.path.parent} ({e.strerror})") from None
        os.close(fd)
        self.tmp = Path(tmp)
        self.container = None
        self.stream = None
        self.scale = 1
        self.frames = 0

    def _open(self, frame: np.ndarray) -> None:
        height, width = frame.shape[:2]
        self.scale = max(1, math.ceil(MIN_HEIGHT / height))
        self.container = self.av.open(str(self.tmp), mode="w", format="mp4")
        self.stream = self.container.add_stream("libx264", rate=self.fps)
        self.stream.width = (width * self.scale + 1) // 2 * 2
        self.stream.height = (height * self.scale + 1) // 2 * 2
        self.stream.pix_fmt = "yuv420p"
        self.stream.options = {"crf": "20"}

    def write(self, frame: np.ndarray) -> None:
        if self.container is None:
            self._open(frame)
        if self.scale > 1:
            frame = frame.repeat(self.scale, axis=0).repeat(self.scale, axis=1)
        pad_h, pad_w = self.stream.height - frame.shape[0], self.stream.width - frame.shape[1]
        if pad_h or pad_w:
            frame = np.pad(frame, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
        video_frame = self.av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        for packet in self.stream.encode(video_frame):
            self.container.mux(packet)
        self.frames += 1

    def close(self) -> Path | None:
        """Finish the file; returns its path, or None (and no file) when no frame was written."""
        if self.container is None:
            self.tmp.unlink(missing_ok=True)
            return None
        for packet in self.stream.encode():
            self.container.mux(packet)
        self.container.close()
        self.container = None
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(self.tmp, 0o666 & ~umask)  # mkstemp made it private
        os.replace(self.tmp, self.path)
        return self.path

    def abort(self) -> None:
        if self.container is not None:
            self.container.close()
            self.container = None
        self.tmp.unlink(missing_ok=True)
