"""`sftui enjoy` on the shared CartPole experiment: episode returns, a video, and clear refusals.

The command runs in this process (tests.support.cli): it starts no run, and a fresh process would spend
about 2 s importing torch."""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import pytest

from sampler.errors import ExperimentError, SftuiError
from sampler.experiment import checkpoints
from sampler.play.player import Player, play_episodes
from sampler.play.video import VideoWriter
from tests.support import cli

av = pytest.importorskip("av")


def test_enjoy_prints_each_episode_and_the_mean(trained):
    result = cli("enjoy", str(trained), "--episodes", "3", "--no-render")
    assert result.returncode == 0, result.stderr
    episodes = re.findall(r"episode (\d+): return ([\d.]+), length (\d+) steps", result.stdout)
    assert [int(e[0]) for e in episodes] == [1, 2, 3]
    assert all(float(ret) == int(length) for _, ret, length in episodes)  # CartPole: +1 a step
    mean = sum(float(e[1]) for e in episodes) / 3
    assert f"3 episodes: mean return {mean:.2f} ±" in result.stdout
    assert mean > 100  # the trained policy (random play: about 22)


def test_video_has_one_frame_per_step(trained, tmp_path):
    video = tmp_path / "cartpole.mp4"
    result = cli("enjoy", str(trained), "--episodes", "1", "--no-render", "--video", str(video), "--fps", "50")
    assert result.returncode == 0, result.stderr
    steps = int(re.search(r"length (\d+) steps", result.stdout).group(1))
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(video=0))
        assert stream.average_rate == 50
    # Every step's frame; the step that ends the episode shows the reset env, which is left out.
    assert frames == steps
    assert f"video: {video} ({frames} frames at 50 fps)" in result.stdout
    assert not list(tmp_path.glob(".*"))  # no temporary file left


def test_a_video_write_that_fails_leaves_no_file(trained, tmp_path, monkeypatch):
    from sftui import watch

    written = []

    def write(self, frame):
        written.append(frame)
        if len(written) == 5:
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(VideoWriter, "write", write)
    lines = []
    with pytest.raises(OSError, match="No space left"):
        watch.enjoy(trained, policy=0, checkpoint="latest", episodes=1, deterministic=True,
                    video=tmp_path / "full.mp4", fps=50, render=False, echo=lines.append)
    assert list(tmp_path.iterdir()) == [] and not any(line.startswith("video:") for line in lines)


def test_bad_input_gets_one_clear_line(trained, tmp_path):
    folder = tmp_path / "cartpole"
    shutil.copytree(trained, folder)
    newest = checkpoints.latest_checkpoint(folder, 0)
    newest.write_bytes(b"not a checkpoint")
    result = cli("enjoy", str(folder), "--no-render", "--episodes", "1")
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert str(newest) in result.stderr and "corrupt" in result.stderr and "next newest is" in result.stderr

    with pytest.raises(ExperimentError, match="policies 0..0"):
        Player(folder, policy=3)
    with pytest.raises(ExperimentError, match="--agent 1: gym_CartPole-v1 seats agents 0..0"):
        Player(folder, checkpoint="best", agent=1)
    with pytest.raises(ExperimentError, match="made for a different model"):
        cfg = json.loads((folder / "cfg.json").read_text())
        cfg["model"]["encoder_mlp_layers"] = [32]
        (folder / "cfg.json").write_text(json.dumps(cfg))
        Player(folder, checkpoint="best")
    for path in (folder / "checkpoints").rglob("*.pt"):
        path.unlink()
    with pytest.raises(ExperimentError, match="no checkpoint yet"):
        Player(folder)
    with pytest.raises(SftuiError, match="MP4"):
        VideoWriter(tmp_path / "x.avi", 30)


def test_the_enjoy_process_plays_records_and_ends(trained, tmp_path):
    from sftui.app.enjoy import PlayerProcess

    folder = tmp_path / "cartpole"
    shutil.copytree(trained, folder)
    source = PlayerProcess(folder, 0, "latest")
    events: list[tuple] = []

    def wait_for(kind: str, timeout: float = 60.0) -> tuple:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            events.extend(source.poll())
            found = [e for e in events if e[0] == kind]
            if found:
                return found[0]
            time.sleep(0.05)
        raise AssertionError(f"no {kind} event; got {[e[0] for e in events]}")

    try:
        ready = wait_for("ready")
        assert ready[1]["has_frames"]  # CartPole's rgb_array render
        step = wait_for("step")
        assert step[1].shape[2] == 3 and step[2]["step"] >= 1
        source.send("speed", 0.0)
        source.send("record")
        recording = wait_for("recording")[1]
        recorded = wait_for("recorded", timeout=120)[1]
        assert recorded == recording and Path(recorded).parent == folder / "videos" and Path(recorded).exists()
        assert wait_for("episode")[1]["return"] > 0
        time.sleep(1.0)  # not reading: at full speed the player soon blocks on a full pipe
    finally:
        source.close()
    # It ended by itself (EPIPE, then its own clean-up that closes the env), not by a kill.
    assert source.process.returncode == 0


def test_players_side_by_side_play_fixed_shares_and_the_returns_each_plays_alone(trained):
    def player(i: int) -> Player:
        return Player(trained, deterministic=True, seed=7 + 1000 * i, frames=False)

    together = [player(i) for i in range(3)]
    returns = play_episodes(together, 7)  # shares 3, 2, 2: not the first 7 episodes to end
    assert [len(p.episodes) for p in together] == [3, 2, 2]
    alone = []
    for i, share in enumerate([3, 2, 2]):
        single = player(i)
        while len(single.episodes) < share:
            single.step()
        alone += [e.episode_return for e in single.episodes]
        single.close()
    assert returns == alone  # one batched forward pass a step acts as each env's own would
    assert len(play_episodes(together, 2)) == 2 and [len(p.episodes) for p in together] == [4, 3, 2]
    for p in together:
        p.close()
