"""The extension examples train through the whole process tree, as a user would run them."""

from __future__ import annotations

import json
import re

from tests.support import sftui


def test_custom_env_family_and_custom_encoder_train_headless(tmp_path):
    result = sftui("run", "--headless", "examples/corridor.json", "--train-dir", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    folder = tmp_path / "corridor"
    statuses = [json.loads(line) for line in (folder / "status.jsonl").read_text().splitlines()]
    assert max(s["env_frames"] for s in statuses) >= 60_000  # frames counted from the workers' envs
    final = statuses[-1]["policies"][0]
    assert final["episode_return"] > 0.5  # the corridor is walked: 1 minus 0.01 per step
    cfg = json.loads((folder / "cfg.json").read_text())
    assert cfg["model"]["encoder"] == "residual_mlp" and cfg["env"]["corridor"]["max_steps"] == 50


def test_settings_lists_a_family_registered_by_an_imported_module():
    result = sftui("settings", "corridor_8", "--import", "examples.corridor_env")
    assert result.returncode == 0, result.stderr
    assert "env.corridor.max_steps" in result.stdout and "corridor_<id>" in result.stdout
    assert re.search(r"corridor_<id> +corridor_8 +Example: walk", result.stdout)  # the family's example env
