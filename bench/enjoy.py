"""What enjoy costs: the half-block renderer per 128x72 frame, the enjoy loop's speed, and a live
doom_basic run's training FPS with and without the Enjoy screen open on it.

    python bench/enjoy.py                 # about 6 minutes
    python bench/enjoy.py --skip-run      # the renderer and the loop only

1. Renderer: 300 real doom_basic frames (random play), drawn as Textual strips and as ANSI text,
   after one pass that fills the style cache.
2. Enjoy loop: a doom_basic policy playing with `--no-render` as fast as it goes (frames a second,
   at frameskip 1 with the action repeated, as enjoy runs Doom).
3. A real doom_basic run: after a warm-up it saves a checkpoint; then training FPS in alternating
   spans with nothing attached and with `sftui attach` showing the Enjoy screen (key e) at its
   default real-time speed, in a 160x48 tmux terminal.

Not a test: compare figures taken in one run of this script.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.dashboard import fps_between, stop_run, tmux_attached  # noqa: E402
from sampler.config.build import build_config  # noqa: E402
from sampler.envs.contract import EnvContext  # noqa: E402
from sampler.envs.families.registry import make_env  # noqa: E402
from sftui.app.frames import HalfBlocks  # noqa: E402


def doom_frames(count: int = 300) -> list[np.ndarray]:
    env = make_env(build_config({"env": {"name": "doom_basic"}}), EnvContext(seed=0))
    rng = np.random.default_rng(0)
    obs, _ = env.reset()
    frames = []
    while len(frames) < count:
        obs, *_ = env.step([int(rng.integers(env.action_spec.n))])
        frames.append(np.ascontiguousarray(obs[0]["obs"].transpose(1, 2, 0)))
    env.close()
    return frames


def renderer_ms(frames: list[np.ndarray]) -> tuple[float, float]:
    blocks = HalfBlocks()
    for frame in frames:
        blocks.strips(frame)
        blocks.ansi(frame)
    results = []
    for draw in (blocks.strips, blocks.ansi):
        start = time.perf_counter()
        for frame in frames:
            draw(frame)
        results.append((time.perf_counter() - start) / len(frames) * 1e3)
    return results[0], results[1]


def sftui(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sftui", *args], cwd=ROOT, capture_output=True, text=True,
                          **kwargs)


def loop_fps(folder: Path) -> float:
    from sampler.play.player import Player

    player = Player(folder)
    frames, start = 0, time.perf_counter()
    while time.perf_counter() - start < 10.0:
        frames += len(player.step().frames)
    player.close()
    return frames / (time.perf_counter() - start)


def real_run(rounds: int, seconds: float, warmup: float, train_dir: str) -> tuple[list[float], ...]:
    folder = Path(train_dir) / "bench"
    sftui("train", "doom_basic", "-e", "bench", "--train-dir", train_dir, "--detach", check=True)
    try:
        time.sleep(warmup)
        sftui("save", "bench", "--train-dir", train_dir, check=True)
        without, with_enjoy, cpus = [], [], []
        for _ in range(rounds):
            t0 = time.time()
            time.sleep(seconds)
            t1 = time.time()
            # The Enjoy screen (key e) plays from about 5 s after the key: the player starts and loads.
            cpus.append(tmux_attached(folder, seconds, keys=("e",), settle=5.0))
            t2 = time.time()
            without.append(fps_between(folder, t0, t1))
            with_enjoy.append(fps_between(folder, t1 + 8.0, t2))  # from when the Enjoy screen plays
        return without, with_enjoy, cpus
    finally:
        stop_run(folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each span")
    parser.add_argument("--rounds", type=int, default=3, help="pairs of spans without / with enjoy")
    parser.add_argument("--warmup", type=float, default=60.0)
    parser.add_argument("--skip-run", action="store_true")
    args = parser.parse_args()
    strips_ms, ansi_ms = renderer_ms(doom_frames())
    rows = [("renderer, 128x72 doom_basic frame", "Textual strips", f"{strips_ms:.2f} ms"),
            ("", "ANSI text (sftui enjoy)", f"{ansi_ms:.2f} ms")]
    if not args.skip_run:
        if shutil.which("tmux") is None:
            sys.exit("bench/enjoy.py needs tmux for the live part; use --skip-run without it")
        with tempfile.TemporaryDirectory() as train_dir:
            without, with_enjoy, cpus = real_run(args.rounds, args.seconds, args.warmup, train_dir)
            fps = loop_fps(Path(train_dir) / "bench")
        mean_without, mean_with = float(np.mean(without)), float(np.mean(with_enjoy))
        rows += [("enjoy loop, doom_basic, --no-render", "frames a second (real time: 35)", f"{fps:,.0f}"),
                 (f"doom_basic training ({args.rounds} x {args.seconds:.0f} s each)", "FPS without enjoy",
                  f"{mean_without:,.0f}  ({' '.join(f'{x:,.0f}' for x in without)})"),
                 ("Enjoy screen at real time, tmux 160x48", "FPS with enjoy",
                  f"{mean_with:,.0f}  ({' '.join(f'{x:,.0f}' for x in with_enjoy)})"),
                 ("", "app + enjoy process CPU", f"{np.mean(cpus):.1f} % of one core"),
                 ("", "cost", f"{(1 - mean_with / mean_without):.1%}" if mean_without else "-")]
    print(f"{os.cpu_count()} cores")
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))


if __name__ == "__main__":
    main()
