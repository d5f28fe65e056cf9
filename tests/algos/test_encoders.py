import pytest
import torch

from algos.encoders import ConvEncoder, DictEncoder, PlanesEncoder, VectorEncoder
from algos.model_config import ModelConfig
from algos.models import ActorCritic
from algos.spaces import ActionSpec, ObsSpec

# Flattened conv output sizes, worked out by hand from the layer list.
EXPECTED_FLAT = {
    ((3, 72, 128), "convnet_simple"): 128 * 3 * 6,  # 72x128 -> 17x31 -> 7x14 -> 3x6
    ((4, 84, 84), "convnet_simple"): 128 * 4 * 4,  # 84 -> 20 -> 9 -> 4
    ((3, 72, 128), "convnet_atari"): 64 * 5 * 12,  # 72x128 -> 17x31 -> 7x14 -> 5x12
    ((4, 84, 84), "convnet_atari"): 64 * 7 * 7,  # 84 -> 20 -> 9 -> 7
    ((3, 72, 128), "resnet_impala"): 32 * 9 * 16,  # each stage halves (rounding up)
    ((4, 84, 84), "resnet_impala"): 32 * 11 * 11,  # 84 -> 42 -> 21 -> 11
}


@pytest.mark.parametrize(("shape", "architecture"), list(EXPECTED_FLAT))
def test_conv_encoder_output_shapes(shape, architecture):
    spec = ObsSpec(shape, "uint8")
    flat_only = ConvEncoder(ModelConfig(encoder_conv_architecture=architecture, encoder_conv_mlp_layers=[]), spec)
    assert flat_only.out_features == EXPECTED_FLAT[(shape, architecture)]
    encoder = ConvEncoder(ModelConfig(encoder_conv_architecture=architecture, encoder_conv_mlp_layers=[64, 32]), spec)
    assert encoder.out_features == 32
    frames = torch.randint(0, 256, (2, *shape), dtype=torch.uint8)
    out = encoder(frames.float())
    assert out.shape == (2, 32) and torch.isfinite(out).all()


def test_pixels_reach_the_encoder_in_unit_range():
    spec = {"obs": ObsSpec((1, 8, 8), "uint8")}
    model = ActorCritic(ModelConfig(encoder_conv_architecture="resnet_impala"), spec, ActionSpec(kind="discrete", n=2))
    out = model.normalize_obs({"obs": torch.full((1, 1, 8, 8), 255, dtype=torch.uint8)})
    torch.testing.assert_close(out["obs"], torch.ones(1, 1, 8, 8))


def test_normalize_images_centres_each_pixel():
    spec = {"obs": ObsSpec((1, 4, 4), "uint8")}
    model = ActorCritic(ModelConfig(normalize_images=True, encoder_conv_architecture="resnet_impala"), spec,
                        ActionSpec(kind="discrete", n=2))
    frames = torch.randint(0, 256, (64, 1, 4, 4), dtype=torch.uint8)
    frames[:, 0, 0, 0] = 7  # a constant pixel stays finite
    model.update_normalizers({"obs": frames})
    out = model.normalize_obs({"obs": frames})["obs"]
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out.mean(0), torch.zeros(1, 4, 4), atol=1e-4, rtol=0)
    assert 0.9 < out[:, 0, 1:].std(0, unbiased=False).mean() < 1.1


def test_too_small_frames_get_a_clear_error():
    with pytest.raises(ValueError, match="too small for convnet_simple"):
        ConvEncoder(ModelConfig(), ObsSpec((3, 24, 32), "uint8"))


def test_dict_encoder_concatenates_one_encoder_per_key():
    specs = {
        "pixels": ObsSpec((3, 16, 16), "uint8"),
        "state": ObsSpec((5,), "float32"),
        "grid": ObsSpec((2, 3), "uint8"),  # not 3-D: a vector key
    }
    cfg = ModelConfig(encoder_mlp_layers=[], encoder_conv_architecture="resnet_impala", encoder_conv_mlp_layers=[8])
    encoder = DictEncoder(cfg, specs)
    assert isinstance(encoder.encoders["pixels"], ConvEncoder)
    assert isinstance(encoder.encoders["grid"], VectorEncoder)
    assert encoder.out_features == 8 + 5 + 6
    obs = {
        "pixels": torch.zeros(4, 3, 16, 16),
        "state": torch.arange(20.0).reshape(4, 5),
        "grid": torch.ones(4, 2, 3),
    }
    out = encoder(obs)
    assert out.shape == (4, 19)
    # An empty MLP passes vector keys through, in key order after the image features.
    torch.testing.assert_close(out[:, 8:13], obs["state"])
    torch.testing.assert_close(out[:, 13:], torch.ones(4, 6))


def test_image_keys_skip_the_running_normalizer():
    specs = {"pixels": ObsSpec((3, 36, 36), "uint8"), "state": ObsSpec((2,), "float32")}
    model = ActorCritic(
        ModelConfig(encoder_mlp_layers=[8], encoder_conv_mlp_layers=[8]), specs, ActionSpec("discrete", 2)
    )
    assert set(model.obs_normalizers) == {"state"}
    params, values = model(
        {"pixels": torch.randint(0, 256, (2, 3, 36, 36), dtype=torch.uint8), "state": torch.ones(2, 2)}
    )
    assert params.shape == (2, 2) and values.shape == (2,)


def test_feature_planes_are_flattened_unless_asked_for_convolutions():
    specs = {"board": ObsSpec((9, 10, 10), "float32"), "pixels": ObsSpec((3, 16, 16), "uint8"),
             "stats": ObsSpec((5,), "float32")}
    flat = DictEncoder(ModelConfig(encoder_conv_architecture="resnet_impala"), specs)
    assert isinstance(flat.encoders["board"], VectorEncoder)
    conv = DictEncoder(ModelConfig(encoder_conv_architecture="resnet_impala", encoder_planes="conv",
                                   encoder_plane_channels=[8, 4], encoder_conv_mlp_layers=[]), specs)
    assert isinstance(conv.encoders["board"], PlanesEncoder)
    assert isinstance(conv.encoders["pixels"], ConvEncoder) and isinstance(conv.encoders["stats"], VectorEncoder)
    assert conv.encoders["board"].out_features == 4 * 10 * 10  # every cell kept
    obs = {"board": torch.rand(2, 9, 10, 10), "pixels": torch.rand(2, 3, 16, 16), "stats": torch.rand(2, 5)}
    assert conv(obs).shape == (2, conv.out_features)


def test_the_board_convolutions_move_with_the_board():
    # Same weights at every cell and no stride: a piece moved one cell over moves the features one cell over.
    encoder = PlanesEncoder(ModelConfig(encoder_plane_channels=[6, 5], encoder_conv_mlp_layers=[]),
                            ObsSpec((2, 12, 12), "float32"))
    board = torch.zeros(1, 2, 12, 12)
    board[0, :, 5, 4] = torch.tensor([1.0, -0.5])
    moved = torch.roll(board, shifts=(1, 2), dims=(2, 3))
    features = encoder.conv[:-1](board)  # before the flatten
    features_moved = encoder.conv[:-1](moved)
    torch.testing.assert_close(torch.roll(features, shifts=(1, 2), dims=(2, 3)), features_moved)
    assert features.shape == (1, 5, 12, 12)
