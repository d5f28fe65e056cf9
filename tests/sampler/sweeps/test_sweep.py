"""Sweep descriptions: grids, linked lists and variants expand into experiments with unique, stable names."""

from __future__ import annotations

import pytest

from sampler.errors import ConfigError
from sampler.sweeps.spec import check, expand, load


def names(sweep):
    return [e.name for e in sweep.experiments]


def test_a_grid_is_the_product_of_its_lists_in_file_order():
    sweep = expand({"env": "gym_CartPole-v1", "grid": {"run.seed": [0, 1, 2], "appo.learning_rate": [1e-4, 3e-4]}},
                   default_name="lr")
    assert len(sweep.experiments) == 6
    assert names(sweep)[:2] == ["seed_0__learning_rate_0.0001", "seed_0__learning_rate_0.0003"]
    first = sweep.experiments[0]
    assert first.overrides == {"run.seed": 0, "appo.learning_rate": 1e-4}
    assert first.raw["run"] == {"seed": 0, "experiment": "lr/seed_0__learning_rate_0.0001"}
    assert first.raw["appo"] == {"learning_rate": 1e-4} and first.raw["env"] == {"name": "gym_CartPole-v1"}


def test_linked_lists_vary_together_and_variants_are_whole_named_override_sets():
    sweep = expand({
        "env": "gym_CartPole-v1",
        "set": {"run": {"train_for_env_steps": 1000}},  # nested tables are section.key too
        "linked": [{"appo.rollout": [16, 32], "appo.batch_size": [512, 1024]}],
        "variants": [{"name": "small", "model.encoder_mlp_layers": [64, 64]}, {"model.use_rnn": True}],
    }, default_name="mix")
    assert names(sweep) == ["small__rollout_16__batch_size_512__encoder_mlp_layers_64-64",
                            "rollout_16__batch_size_512__use_rnn_true",
                            "small__rollout_32__batch_size_1024__encoder_mlp_layers_64-64",
                            "rollout_32__batch_size_1024__use_rnn_true"]
    assert all(e.raw["run"]["train_for_env_steps"] == 1000 for e in sweep.experiments)
    assert sweep.experiments[3].raw["appo"] == {"rollout": 32, "batch_size": 1024}


def test_names_are_stable_across_loads_and_unique_even_when_values_repeat(tmp_path):
    path = tmp_path / "seeds.toml"
    path.write_text('env = "gym_CartPole-v1"\n[grid]\n"run.seed" = [3, 3, 4]\n"pbt.pbt_period_env_steps" = [5]\n'
                    '"run.train_for_env_steps" = [9]\n')
    first, again = load(path), load(path)
    assert names(first) == names(again)
    assert len(set(names(first))) == 3 and names(first)[1].endswith("__1")
    assert first.name == "seeds"


def test_the_same_key_name_in_two_sections_is_spelled_out():
    sweep = expand({"env": "gym_CartPole-v1", "grid": {"appo.batch_size": [64], "env.envpool.batch_size": [8]}},
                   default_name="x")
    assert names(sweep) == ["appo-batch_size_64__env-envpool-batch_size_8"]


@pytest.mark.parametrize("description, message", [
    ({"grid": {"run.seed": [0]}}, "env is missing"),
    ({"env": "gym_CartPole-v1", "grids": {}}, "unknown key(s) ['grids']"),
    ({"env": "gym_CartPole-v1", "grid": {"run.seed": 3}}, "grid.run.seed: give a non-empty list"),
    ({"env": "gym_CartPole-v1", "grid": {"seed": [1]}}, "'seed' is not section.key"),
    ({"env": "gym_CartPole-v1", "linked": [{"run.seed": [0, 1], "appo.rollout": [8]}]}, "need one length"),
    ({"env": "gym_CartPole-v1", "name": "a b"}, "must be letters, digits"),
])
def test_malformed_descriptions_are_refused_in_one_line(description, message):
    with pytest.raises(ConfigError) as refused:
        expand(description, default_name="bad")
    assert message in str(refused.value) and "\n" not in str(refused.value)


def test_a_bad_value_anywhere_in_the_grid_names_the_experiment_and_the_field(tmp_path):
    sweep = expand({"env": "gym_CartPole-v1", "grid": {"appo.learning_rate": [1e-4, -1.0]}}, default_name="lr")
    with pytest.raises(ConfigError, match="experiment learning_rate_-1: appo.learning_rate: "):
        check(sweep)
    bad = tmp_path / "bad.toml"
    bad.write_text("env = ")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load(bad)
    module = tmp_path / "built.py"
    module.write_text("SWEEP = {'env': 'gym_CartPole-v1', 'grid': {'run.seed': list(range(3))}}\n")
    assert names(load(module)) == ["seed_0", "seed_1", "seed_2"]
