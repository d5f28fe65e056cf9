"""Learning checks kept out of the default run; `.ci/run` runs them with `-m slow`."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.support import ROOT


@pytest.mark.slow
@pytest.mark.timeout(900)  # two or three training runs
def test_learning_benchmark_ci_tier_cartpole_solved_and_staying_solved_and_doom_basic_at_60(tmp_path):
    # bench/learning.py --tier ci: gym_CartPole-v1 reaches 475 within 1M frames and the last 20% of the run averages
    # at least 475; doom_basic with its defaults reaches 60 within 400k frames. One seed each, about 3 minutes.
    # A doom_basic seed misses now and then (seeds 1-8 of one sample crossed 60 at 242k-352k frames, but one CI
    # run of seed 1 stayed near -140): a miss gets one more seed, about 2 minutes, and the check says so.
    rows = bench(tmp_path / "first", "--tier", "ci")
    assert set(rows) == {"gym_CartPole-v1", "doom_basic"}
    assert rows["gym_CartPole-v1"]["met"] == 1, rows["gym_CartPole-v1"]
    if rows["doom_basic"]["met"] == 0:
        print(f"doom_basic seed 1 missed 60 ({rows['doom_basic']}); trying seed 2")
        rows = bench(tmp_path / "second", "--tier", "ci", "--rows", "doom_basic", "--seeds", "2")
    assert rows["doom_basic"]["met"] == rows["doom_basic"]["seeds"] == 1, rows["doom_basic"]


def bench(out, *args: str) -> dict[str, dict]:
    result = subprocess.run([sys.executable, "bench/learning.py", *args, "--out", str(out)], cwd=ROOT,
                            capture_output=True, text=True, timeout=900)
    print(result.stdout, result.stderr)
    rows = {row["row"]: row for row in json.loads((out / "learning-ci.json").read_text())["rows"]}
    assert all(row["seeds"] == 1 for row in rows.values()), rows
    return rows
