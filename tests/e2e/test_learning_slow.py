"""Learning checks kept out of the default run; `.ci/run` runs them with `-m slow`."""

from __future__ import annotations

import json

import pytest

from tests.support import sftui


@pytest.mark.slow
def test_cartpole_reaches_450_within_1m_frames(tmp_path):
    result = sftui("train", "gym_CartPole-v1", "-e", "cp450", "--train-dir", str(tmp_path),
                   "--set", "run.train_for_env_steps=1000000", timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    statuses = [json.loads(line) for line in (tmp_path / "cp450" / "status.jsonl").read_text().splitlines()]
    reached = [s for s in statuses if (s["policies"][0]["episode_return"] or 0) >= 450]
    assert reached, f"best mean return {max(s['policies'][0]['episode_return'] or 0 for s in statuses):.1f}"
    first = reached[0]
    print(f"mean return >= 450 at {first['env_frames']:,} env frames after {first['elapsed_sec']:.1f} s of training")


@pytest.mark.slow
def test_doom_basic_conv_gru_reaches_60_within_400k_frames(tmp_path):
    result = sftui("train", "doom_basic", "-e", "basic60", "--train-dir", str(tmp_path),
                   "--set", "run.train_for_env_steps=400000", "--set", "run.seed=0",
                   "--set", "model.use_rnn=true", "--set", "model.rnn_type=gru",
                   "--set", "model.encoder_conv_architecture=convnet_simple", timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    statuses = [json.loads(line) for line in (tmp_path / "basic60" / "status.jsonl").read_text().splitlines()]
    # The run stops at a status tick past its budget; only statuses within 400k frames count.
    within = [s for s in statuses if s["env_frames"] <= 400_000]
    returns = [s["policies"][0]["episode_return"] or -1e9 for s in within]
    assert max(returns) >= 60, f"best mean return {max(returns):.1f} within {within[-1]['env_frames']:,} frames"
    first = within[next(i for i, r in enumerate(returns) if r >= 60)]
    print(f"doom_basic mean return >= 60 at {first['env_frames']:,} env frames after {first['elapsed_sec']:.1f} s")
