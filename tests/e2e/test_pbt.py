"""Population-based training in a real run: the worst policies become mutated copies of the best."""

from __future__ import annotations

import json

import pytest

from algos.tunables import TUNABLES
from tests.support import SMALL, sftui, summary

PERIOD = 10000  # env frames between two population updates


@pytest.mark.slow  # 45 s of multi-policy training: run by CI's slow phase, to keep the default run under its limit
def test_a_population_replaces_its_worst_with_mutated_copies_of_its_best_and_resumes_its_schedule(tmp_path):
    # one rollout worker: three learners already share the two cores
    pbt = ["--set", "sampler.num_workers=1", "--set", "sampler.num_policies=3", "--set", "pbt.with_pbt=true",
           "--set", "pbt.pbt_start_mutation=10000", "--set", f"pbt.pbt_period_env_steps={PERIOD}",
           "--set", "pbt.pbt_replace_reward_gap=0", "--set", "pbt.pbt_replace_reward_gap_absolute=0",
           "--set", "pbt.pbt_mutation_rate=1.0"]
    result = sftui("train", "gym_CartPole-v1", "-e", "pop", "--train-dir", str(tmp_path), *SMALL, *pbt,
                   "--set", "run.train_for_env_steps=30000", timeout=240)
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

    # Resumed a little further: the schedule carries over, so the next update comes a period after the last
    # one (which this short resume rarely reaches), not at once as if the schedule had started again.
    last = state["last_update_env_frames"]
    stopped_at = summary(folder)["env_frames"]
    result = sftui("train", "gym_CartPole-v1", "-e", "pop", "--train-dir", str(tmp_path), *SMALL, *pbt,
                   "--set", f"run.train_for_env_steps={stopped_at + 3000}", timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "resuming" in result.stdout and summary(folder)["env_frames"] >= stopped_at + 3000
    resumed = json.loads((folder / "pbt.json").read_text())
    assert resumed["decisions"][:len(decisions)] == decisions
    assert resumed["last_update_env_frames"] == last or resumed["last_update_env_frames"] >= last + PERIOD
    assert all(d["env_frames"] >= last + PERIOD for d in resumed["decisions"][len(decisions):])
