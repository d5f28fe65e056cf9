import pytest
import torch

from algos.cores import GruCore, IdentityCore, LstmCore
from algos.model_config import ModelConfig
from algos.models import ActorCritic
from algos.spaces import ActionSpec, ObsSpec

OBS_SPECS = {"state": ObsSpec((3,), "float32"), "pixels": ObsSpec((1, 12, 12), "uint8")}
DISCRETE = ActionSpec(kind="discrete", n=4)


def recurrent_model(rnn_type, num_layers=1):
    torch.manual_seed(0)
    cfg = ModelConfig(
        encoder_mlp_layers=[16],
        encoder_conv_architecture="resnet_impala",
        encoder_conv_mlp_layers=[16],
        use_rnn=True,
        rnn_type=rnn_type,
        rnn_size=8,
        rnn_num_layers=num_layers,
    )
    return ActorCritic(cfg, OBS_SPECS, DISCRETE)


def sequence_obs(num_seq, steps, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return {
        "state": torch.randn(num_seq, steps, 3, generator=gen),
        "pixels": torch.randint(0, 255, (num_seq, steps, 1, 12, 12), generator=gen, dtype=torch.uint8),
    }


@pytest.mark.parametrize(("rnn_type", "num_layers", "state_size"), [("gru", 1, 8), ("lstm", 2, 32)])
def test_chunked_rnn_equals_step_by_step_loop_with_resets_at_episode_ends(rnn_type, num_layers, state_size):
    model = recurrent_model(rnn_type, num_layers)
    assert model.rnn_state_size == state_size
    num_seq, steps = 3, 7
    obs = sequence_obs(num_seq, steps)
    dones = torch.zeros(num_seq, steps)
    dones[0, 2] = dones[1, 0] = dones[1, 5] = dones[2, 6] = 1.0
    initial = torch.randn(num_seq, state_size)

    params, values = model.forward_sequences(obs, initial, dones)
    assert params.shape == (num_seq, steps, 4) and values.shape == (num_seq, steps)

    state = initial
    for t in range(steps):
        out = model.act({k: v[:, t] for k, v in obs.items()}, rnn_states=state)
        torch.testing.assert_close(params[:, t], out["dist_params"])
        torch.testing.assert_close(values[:, t], out["values"])
        # What the sampler does between episodes: the next episode starts from zeros.
        state = out["rnn_states"] * (1.0 - dones[:, t : t + 1])

    # forward() on one step is act() without sampling.
    step_params, step_values = model.forward({k: v[:, 0] for k, v in obs.items()}, initial)
    torch.testing.assert_close(step_params, params[:, 0])
    torch.testing.assert_close(step_values, values[:, 0])


def test_state_carries_memory_and_defaults_to_zeros():
    model = recurrent_model("gru")
    obs = {k: v[:, 0] for k, v in sequence_obs(2, 1).items()}
    from_zeros = model.act(obs)
    torch.testing.assert_close(from_zeros["dist_params"], model.act(obs, rnn_states=torch.zeros(2, 8))["dist_params"])
    other = model.act(obs, rnn_states=torch.ones(2, 8))
    assert not torch.allclose(from_zeros["dist_params"], other["dist_params"])
    assert from_zeros["rnn_states"].shape == (2, 8)


def test_feed_forward_model_has_no_state():
    cfg = ModelConfig(encoder_mlp_layers=[8], encoder_conv_architecture="resnet_impala", encoder_conv_mlp_layers=[])
    model = ActorCritic(cfg, OBS_SPECS, DISCRETE)
    assert model.rnn_state_size == 0 and isinstance(model.core, IdentityCore)
    obs = sequence_obs(2, 5)
    out = model.act({k: v[:, 0] for k, v in obs.items()}, rnn_states=torch.zeros(2, 0))
    assert "rnn_states" not in out
    params, values = model.forward_sequences(obs, torch.zeros(2, 0), torch.ones(2, 5))
    flat_params, flat_values = model({k: v.flatten(0, 1) for k, v in obs.items()})
    torch.testing.assert_close(params, flat_params.reshape(2, 5, 4))
    torch.testing.assert_close(values, flat_values.reshape(2, 5))


def test_lstm_state_layout_is_h_then_c():
    core = LstmCore(in_features=3, hidden_size=4, num_layers=2)
    x, state = torch.randn(5, 3), torch.randn(5, 16)
    y, new_state = core(x, state)
    h0 = state[:, :8].reshape(5, 2, 4).transpose(0, 1).contiguous()
    c0 = state[:, 8:].reshape(5, 2, 4).transpose(0, 1).contiguous()
    ref_y, (ref_h, ref_c) = core.rnn(x.unsqueeze(0), (h0, c0))
    torch.testing.assert_close(y, ref_y[0])
    torch.testing.assert_close(new_state[:, :8], ref_h.transpose(0, 1).reshape(5, 8))
    torch.testing.assert_close(new_state[:, 8:], ref_c.transpose(0, 1).reshape(5, 8))
    # The top layer's h is the output.
    torch.testing.assert_close(y, new_state[:, 4:8])


def test_gru_core_sizes():
    core = GruCore(in_features=3, hidden_size=4, num_layers=3)
    assert core.state_size == 12 and core.out_features == 4
    y, state = core(torch.randn(2, 3), torch.zeros(2, 12))
    assert y.shape == (2, 4) and state.shape == (2, 12)
