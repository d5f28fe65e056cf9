"""The model's settings: encoder, core and head sizes, input normalization, and the registered factories to build.

Names of custom factories are checked against algos.registry when a config is validated.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from algos import registry


class ModelConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    encoder_mlp_layers: list[Annotated[int, Field(ge=1)]] = Field(
        [512, 512],
        description="Hidden layer sizes of the MLP applied to each vector observation key "
        "(an empty list passes the flattened observation through).",
    )
    encoder_conv_architecture: Literal["convnet_simple", "convnet_atari", "resnet_impala"] = Field(
        "convnet_simple",
        description="Conv net for uint8 [C, H, W] image keys: convnet_simple (32-64-128 strided convs), "
        "convnet_atari (the DQN Nature net) or resnet_impala (three residual stages, suits small frames).",
    )
    encoder_conv_mlp_layers: list[Annotated[int, Field(ge=1)]] = Field(
        [512], description="Fully connected layer sizes after the conv net (empty: the flattened conv output)."
    )
    encoder_planes: Literal["flatten", "conv"] = Field(
        "flatten",
        description="Float [C, H, W] keys (a game board as feature planes, like Generals' grid): flattened into "
        "the encoder MLP, or run through 3x3 convolutions that keep every cell (encoder_plane_channels), then "
        "encoder_conv_mlp_layers.",
    )
    encoder_plane_channels: list[Annotated[int, Field(ge=1)]] = Field(
        [32, 32, 32], min_length=1, description="Channels of each 3x3 same-size convolution of encoder_planes=conv."
    )
    nonlinearity: Literal["elu", "relu", "tanh"] = Field(
        "elu", description="Activation function of the MLPs and of convnet_simple/convnet_atari."
    )
    use_rnn: bool = Field(
        False, description="Add a recurrent core (rnn_type) after the encoder; the default core reads this."
    )
    rnn_type: Literal["gru", "lstm"] = Field("gru", description="Recurrent cell of the core when use_rnn is set.")
    rnn_size: int = Field(512, ge=1, description="Hidden size of the recurrent core.")
    rnn_num_layers: int = Field(1, ge=1, description="Number of stacked recurrent layers.")
    normalize_input: bool = Field(
        True,
        description="Normalize vector observations (any dtype but uint8 and bool) with running mean/std statistics.",
    )
    normalize_images: bool = Field(
        False,
        description="Also normalize uint8 [C, H, W] images per pixel with running mean/std statistics; "
        "without it pixels are only scaled to 0..1.",
    )
    policy_init_gain: float = Field(
        0.01,
        gt=0,
        description="Orthogonal init gain of the policy head; small values start "
        "close to a uniform / zero-mean policy.",
    )
    encoder: str = Field(
        registry.BUILT_IN, description="Registered encoder factory (sampler.plugins.register_encoder)."
    )
    core: str = Field(registry.BUILT_IN, description="Registered core factory (sampler.plugins.register_core).")
    actor_critic: str = Field(
        registry.BUILT_IN, description="Registered actor-critic factory (sampler.plugins.register_actor_critic)."
    )

    @field_validator("encoder", "core", "actor_critic")
    @classmethod
    def _registered(cls, name: str, info: ValidationInfo) -> str:
        registry.check_name(info.field_name, name)
        return name
