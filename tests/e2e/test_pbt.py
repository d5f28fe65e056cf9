"""Population-based training in a real run: the worst policies become mutated copies of the best."""

from __future__ import annotations

import json

from algos.tunables import TUNABLES
from tests.support import SMALL, sftui


def test_a_population_replaces_its_worst_with_mutated_copies_of_its_best_and_resumes_its_schedule(tmp_path):
    pbt = ["--set", "sampler.num_policies=3", "--set", "pbt.with_pbt=true",
           "--set", "pbt.pbt_start_mutation=15000", "--set", "pbt.pbt_period_env_steps=15000",
           "--set", "pbt.pbt_replace_reward_gap=0", "--set", "pbt.pbt_replace_reward_gap_absolute=0",
           "--set", "pbt.pbt_mutation_rate=1.0"]
    result = sftui("train", "gym_CartPole-v1", "-e", "pop", "--train-dir", str(tmp_path), *SMALL, *pbt,
                   "--set", "run.train_for_env_steps=90000", timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    folder = tmp_path / "pop"
    state = json.loads((folder / "pbt.json").read_text())
    decisions = state["decisions"]
    assert decisions, "no replacement happened"
    for d in decisions:
        assert d["policy"] != d["source"] and d["objectives"][1] > d["objectives"][0]
        # the replaced policy's weights became the source's, as published: a real copy
        assert d["digest_after"] == d["source_digest"] != d["digest_before"]
        assert d["mutated"], "pbt_mutation_rate 1.0 mutates every mutable value"
    for policy in {d["policy"] for d in decisions}:
        hparams = json.loads((folder / "policies" / f"p{policy}" / "hparams.json").read_text())
        for tunable in TUNABLES:
            if tunable.pbt_mutable:
                low, high = tunable.bounds
                assert low <= hparams[tunable.name] <= high, (tunable.name, hparams[tunable.name])
        history = (folder / "policies" / f"p{policy}" / "history.jsonl").read_text().splitlines()
        assert any(json.loads(line)["source"].startswith("pbt: copy of p") for line in history)
    statuses = [json.loads(line) for line in (folder / "status.jsonl").read_text().splitlines() if line.strip()]
    events = [e for s in statuses for e in s.get("events", []) if e.get("kind") == "pbt"]
    assert events and "<- p" in events[-1]["message"]
    assert "pbt: p" in (folder / "log.txt").read_text()

    last = state["last_update_env_frames"]
    result = sftui("train", "gym_CartPole-v1", "-e", "pop", "--train-dir", str(tmp_path), *SMALL, *pbt,
                   "--set", f"run.train_for_env_steps={last + 10000}", timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    resumed = json.loads((folder / "pbt.json").read_text())
    assert resumed["last_update_env_frames"] == last  # under a period later: the schedule carried over
    assert resumed["decisions"][:len(decisions)] == decisions
