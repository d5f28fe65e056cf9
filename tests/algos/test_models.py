import pytest
import torch
from pydantic import ValidationError

from algos.model_config import ModelConfig
from algos.models import ActorCritic
from algos.pbt import PbtConfig
from algos.spaces import ActionSpec, ObsSpec, obs_specs_from_dict, obs_specs_to_dict

DISCRETE = ActionSpec(kind="discrete", n=3)
BOX = ActionSpec(kind="box", shape=(2,), low=(-1.0, -1.0), high=(1.0, 1.0))
MULTI = ActionSpec(kind="multi_discrete", nvec=(2, 1, 3))
OBS_SPECS = {"state": ObsSpec((4,), "float32"), "grid": ObsSpec((2, 3), "uint8")}


def raw_obs(n):
    return {
        "state": torch.randn(n, 4) * 10 + 3,
        "grid": torch.randint(0, 255, (n, 2, 3), dtype=torch.uint8),
    }


def test_forward_shapes_and_act():
    model = ActorCritic(ModelConfig(encoder_mlp_layers=[16, 8]), OBS_SPECS, DISCRETE)
    params, values = model(raw_obs(5))
    assert params.shape == (5, 3) and values.shape == (5,)
    assert params.dtype == values.dtype == torch.float32
    out = model.act(raw_obs(5), action_mask=torch.tensor([[True, False, True]] * 5))
    assert set(out) == {"actions", "log_probs", "values", "dist_params"}
    assert out["actions"].dtype == torch.int64 and (out["actions"] != 1).all()
    assert not any(t.requires_grad for t in out.values())
    greedy = model.act(raw_obs(5), deterministic=True)
    torch.testing.assert_close(greedy["actions"], greedy["dist_params"].argmax(-1))


def test_box_params_append_state_independent_log_std():
    model = ActorCritic(ModelConfig(encoder_mlp_layers=[8]), OBS_SPECS, BOX)
    with torch.no_grad():
        model.log_std.fill_(-0.7)
    params, _ = model(raw_obs(4))
    assert params.shape == (4, BOX.num_dist_params())
    torch.testing.assert_close(params[:, 2:], torch.full((4, 2), -0.7))
    assert model.act(raw_obs(4))["actions"].shape == (4, 2)


def test_normalizers_cover_float_keys_and_live_in_state_dict():
    model = ActorCritic(ModelConfig(encoder_mlp_layers=[8]), OBS_SPECS, DISCRETE)
    assert set(model.obs_normalizers) == {"state"}
    obs = raw_obs(256)
    model.update_normalizers(obs)
    normalized = model.normalize_obs(obs)
    assert normalized["state"].mean().abs() < 0.1
    torch.testing.assert_close(normalized["grid"], obs["grid"].float())
    keys = model.state_dict().keys()
    for name in ("mean", "var", "count"):
        assert f"obs_normalizers.state.{name}" in keys
        assert f"returns_normalizer.{name}" in keys


def test_no_normalizers_when_disabled():
    model = ActorCritic(ModelConfig(encoder_mlp_layers=[8], normalize_input=False), OBS_SPECS, DISCRETE)
    assert len(model.obs_normalizers) == 0
    obs = raw_obs(3)
    torch.testing.assert_close(model.normalize_obs(obs)["state"], obs["state"])


def test_obs_keys_that_are_not_valid_module_names():
    specs = {"values": ObsSpec((2,), "float32"), "a.b": ObsSpec((1,), "float32")}
    model = ActorCritic(ModelConfig(encoder_mlp_layers=[4]), specs, DISCRETE)
    obs = {"values": torch.randn(3, 2), "a.b": torch.randn(3, 1)}
    model.update_normalizers(obs)
    assert model(obs)[0].shape == (3, 3)


def test_initialization():
    model = ActorCritic(ModelConfig(encoder_mlp_layers=[32], policy_init_gain=0.01), OBS_SPECS, DISCRETE)
    for layer in (model.encoder.encoders["state"].layers[0], model.policy_head, model.value_head):
        assert (layer.bias == 0).all()
    assert model.policy_head.weight.abs().max() < 0.05


def test_model_config_validation():
    assert ModelConfig(use_rnn=True, rnn_type="lstm").use_rnn
    with pytest.raises(ValidationError, match="model.encoder: unknown encoder 'nope'; registered: default"):
        ModelConfig(encoder="nope")
    with pytest.raises(ValidationError, match="model.core: unknown core"):
        ModelConfig(core="nope")
    with pytest.raises(ValidationError, match="model.actor_critic: unknown actor_critic"):
        ModelConfig(actor_critic="nope")
    with pytest.raises(ValidationError):
        ModelConfig(rnn_size=0)
    with pytest.raises(ValidationError):
        ModelConfig(encoder_conv_architecture="vgg")
    with pytest.raises(ValidationError):
        ModelConfig(encoder_mlp_layers=[0])
    with pytest.raises(ValidationError):
        ModelConfig(hidden_size=3)
    assert ModelConfig().encoder_mlp_layers == [512, 512]
    for name, field in ModelConfig.model_fields.items():
        assert field.description, name


def test_pbt_config_validation():
    assert PbtConfig(with_pbt=True).with_pbt
    with pytest.raises(ValidationError):
        PbtConfig(pbt_period_env_steps=0)
    assert all(field.description for field in PbtConfig.model_fields.values())


def test_spec_dict_round_trips():
    assert obs_specs_from_dict(obs_specs_to_dict(OBS_SPECS)) == OBS_SPECS
    for spec in (DISCRETE, BOX, MULTI):
        assert ActionSpec.from_dict(spec.to_dict()) == spec
    assert DISCRETE.num_dist_params() == 3 and DISCRETE.action_shape() == ()
    assert BOX.num_dist_params() == 4 and BOX.action_dtype() == torch.float32
    assert MULTI.num_dist_params() == 6 and MULTI.action_shape() == (3,) and MULTI.action_dtype() == torch.int64
    # Specs stored before multi_discrete existed have no "nvec".
    old = {k: v for k, v in DISCRETE.to_dict().items() if k != "nvec"}
    assert ActionSpec.from_dict(old) == DISCRETE


@pytest.mark.parametrize("nvec", [(), (2, 0)])
def test_multi_discrete_spec_needs_positive_nvec(nvec):
    with pytest.raises(ValueError, match="nvec"):
        ActionSpec(kind="multi_discrete", nvec=nvec)


def test_multi_discrete_act_and_masks():
    model = ActorCritic(ModelConfig(encoder_mlp_layers=[8]), OBS_SPECS, MULTI)
    mask = torch.ones(64, 6, dtype=torch.bool)
    mask[:, 0] = False  # head 0: only action 1
    mask[:, 3:5] = False  # head 2: only action 2
    out = model.act(raw_obs(64), action_mask=mask)
    assert out["actions"].shape == (64, 3) and out["actions"].dtype == torch.int64
    assert (out["actions"][:, 0] == 1).all() and (out["actions"][:, 2] == 2).all()
    assert out["dist_params"].shape == (64, 6) and out["log_probs"].shape == (64,)
