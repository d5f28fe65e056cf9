"""The checks a live `set` command passes before any learner hears of it."""

from __future__ import annotations

import pytest

from algos import tunables
from sampler.config.build import build_config
from sampler.errors import ControlError
from sampler.run.commands import check_hyperparameters


@pytest.fixture(scope="module")
def cfg():
    return build_config({"env": {"name": "gym_CartPole-v1"}, "sampler": {"num_policies": 2}})


def test_a_valid_change_goes_to_every_policy_or_to_the_one_named(cfg):
    assert check_hyperparameters(cfg, (), {"hyperparameters": {"learning_rate": 3e-4}}) == (
        [0, 1], {"learning_rate": 3e-4})
    assert check_hyperparameters(cfg, (), {"hyperparameters": {"gamma": 0.98}, "policy": 1})[0] == [1]


def test_set_takes_exactly_the_tunable_hyperparameters(cfg):
    for name in tunables.NAMES:
        value = getattr(cfg.appo, name)
        assert check_hyperparameters(cfg, (), {"hyperparameters": {name: value}})[1] == {name: value}
    with pytest.raises(ControlError) as e:
        check_hyperparameters(cfg, (), {"hyperparameters": {"adam_eps": 1e-5}})
    assert f"among {', '.join(tunables.NAMES)}; got ['adam_eps']" in str(e.value)


def test_shaping_takes_numbers_for_the_envs_own_components(cfg):
    policies, changes = check_hyperparameters(cfg, ("kills", "deaths"), {"hyperparameters": {
        "reward_shaping": {"kills": 2, "deaths": -0.5}}})
    assert changes["reward_shaping"] == {"kills": 2, "deaths": -0.5}


@pytest.mark.parametrize(("components", "args", "message"), [
    ((), {}, "set takes hyperparameters among"),
    ((), {"hyperparameters": {"bogus": 1}}, "got ['bogus']"),
    ((), {"hyperparameters": {"reward_shaping": {"kills": 1}}}, "got ['reward_shaping']"),
    (("kills",), {"hyperparameters": {"reward_shaping": {"frags": 1}}}, "components among kills"),
    (("kills",), {"hyperparameters": {"reward_shaping": {"kills": True}}}, "reward_shaping takes numbers"),
    ((), {"hyperparameters": {"learning_rate": -1.0}}, "appo.learning_rate: "),
    ((), {"hyperparameters": {"gamma": 0.9}, "policy": 2}, "--policy 2: the run has policies 0..1"),
    ((), {"hyperparameters": {"gamma": 0.9}, "policy": "0"}, "--policy 0: the run has policies 0..1"),
])
def test_a_bad_change_is_refused_with_what_is_wrong(cfg, components, args, message):
    with pytest.raises(ControlError) as e:
        check_hyperparameters(cfg, components, args)
    assert message in str(e.value)
