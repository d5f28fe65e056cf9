"""The one declaration of live-tunable hyperparameters: names AppoConfig knows, bounds it accepts."""

from __future__ import annotations

import pytest

from algos.appo_config import AppoConfig
from algos.tunables import NAMES, TUNABLES


@pytest.mark.parametrize("tunable", TUNABLES, ids=NAMES)
def test_each_tunable_is_an_appo_setting_and_its_bounds_are_values_the_config_accepts(tunable):
    assert tunable.name in AppoConfig.model_fields
    if tunable.pbt_mutable:
        low, high = tunable.bounds
        assert low < high
        for value in (low, high):  # what PBT or the kl_adaptive schedule reach must pass validation too
            assert getattr(AppoConfig(**{tunable.name: value}), tunable.name) == value


def test_names_are_unique_and_only_gamma_mutates_as_a_horizon():
    assert len(set(NAMES)) == len(NAMES)
    assert [t.name for t in TUNABLES if t.mutates_as == "horizon"] == ["gamma"]
