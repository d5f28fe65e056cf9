"""Learning checks kept out of the default run; `.ci/run` runs them with `-m slow`."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.support import ROOT


@pytest.mark.slow
def test_learning_benchmark_ci_tier_cartpole_solved_and_staying_solved_and_doom_basic_at_60(tmp_path):
    # bench/learning.py --tier ci: gym_CartPole-v1 reaches 475 within 1M frames and the last 20% of the run averages
    # at least 475; doom_basic with its defaults reaches 60 within 400k frames. One seed each, about 5 minutes.
    result = subprocess.run([sys.executable, "bench/learning.py", "--tier", "ci", "--out", str(tmp_path)], cwd=ROOT,
                            capture_output=True, text=True, timeout=900)
    print(result.stdout)
    rows = {row["row"]: row for row in json.loads((tmp_path / "learning-ci.json").read_text())["rows"]}
    assert set(rows) == {"gym_CartPole-v1", "doom_basic"}
    for name, row in rows.items():
        assert row["met"] == row["seeds"] == 1, f"{name}: {row}\n{result.stderr}"
    assert result.returncode == 0, result.stderr
