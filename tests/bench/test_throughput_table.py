"""The throughput benchmark's arithmetic, and `sftui sample` as a user runs it."""

from __future__ import annotations

import re
import signal
import time

import psutil
import pytest

from bench.throughput import compute_bound, model_bound, window_rate
from tests.support import all_gone, popen, sftui, shm_entries, shm_left_behind, wait_for


def test_compute_bound_divides_the_cores_among_env_inference_and_training():
    # 8,000 frames/s at frameskip 4 is 0.5 ms of env per sample; plus 0.25 + 0.25 ms of model: 1 ms a sample.
    assert compute_bound(cores=2, frameskip=4, env_fps=8_000, inference_sec=2.5e-4, train_sec=2.5e-4) == \
        pytest.approx(8_000)
    # Free model work leaves the env's own rate times the cores.
    assert compute_bound(cores=2, frameskip=1, env_fps=10_000, inference_sec=0, train_sec=0) == pytest.approx(20_000)


def test_the_model_only_bound_leaves_the_env_out():
    # CartPole's numpy vector env costs next to nothing: 2 cores over 10 + 20 microseconds of model a sample
    assert model_bound(cores=2, frameskip=1, inference_sec=1e-5, train_sec=2e-5) == pytest.approx(2 / 3e-5)


def test_window_rate_counts_trained_frames_after_the_warm_up():
    def status(elapsed, frames, samples):
        return {"elapsed_sec": elapsed, "env_frames": frames, "policies": [{"samples": samples}]}

    statuses = [status(0, 0, 0), status(10, 4_000, 1_000), status(20, 44_000, 11_000), status(40, 84_000, 22_000),
                status(80, 200_000, 60_000)]
    fps, valid, span = window_rate(statuses, warmup=10, seconds=30, frameskip=4)
    assert span == 30
    assert fps == pytest.approx(80_000 / 30)
    assert valid == pytest.approx(20_000 / 21_000)


def test_sftui_sample_prints_frames_per_second_and_leaves_nothing_behind():
    shm_before = shm_entries()
    result = sftui("sample", "gym_CartPole-v1", "--seconds", "1", "--warmup", "0",
                   "--set", "sampler.num_envs_per_worker=4", timeout=120)
    assert result.returncode == 0, result.stderr
    match = re.search(r"([\d,]+) env frames/s", result.stdout)
    assert match and int(match.group(1).replace(",", "")) > 0, result.stdout
    assert not shm_left_behind(shm_before)


def test_sftui_sample_stops_cleanly_on_ctrl_c():
    proc = popen("sample", "gym_CartPole-v1", "--seconds", "600", "--set", "sampler.num_envs_per_worker=4")
    try:
        root = psutil.Process(proc.pid)
        # the resource tracker, the fork server and, forked by it, the two rollout workers
        wait_for(lambda: len(root.children(recursive=True)) >= 4, timeout=60, what="the two rollout workers")
        tree = [root, *root.children(recursive=True)]
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 130, out
        assert "Traceback" not in out and "interrupted" in out
        wait_for(lambda: all_gone(tree), timeout=20, what="every sampler process to exit")
    finally:
        if proc.poll() is None:  # a failed check must not leave a sampler running
            for child in psutil.Process(proc.pid).children(recursive=True):
                child.kill()
            proc.kill()
            proc.wait()


def test_sftui_sample_rejects_an_unknown_env_in_one_line():
    result = sftui("sample", "gym_NoSuchEnv-v0", timeout=60)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
