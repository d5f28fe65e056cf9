"""APPO hyperparameters."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class AppoConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rollout: int = Field(32, ge=2, description="Env steps per trajectory slice sent to the learner.")
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto",
        description="Learner arithmetic: bf16 runs the model's forward and backward passes under bfloat16 "
        "autocast; weights, optimizer and losses stay fp32. auto: bf16 where the hardware computes it natively "
        "(a CPU with AVX-512 BF16 or AMX, a GPU with bf16 support), else fp32.",
    )
    recurrence: int = Field(
        1,
        ge=1,
        description="Backprop-through-time length of recurrent models: trajectories are trained in chunks of "
        "this many steps, each starting from its stored state. Feed-forward models ignore it.",
    )
    batch_size: int = Field(1024, ge=2, description="Samples (env steps) per SGD minibatch.")
    num_batches_per_epoch: int = Field(
        1,
        ge=1,
        description="Minibatches per training batch; the learner waits for "
        "batch_size * num_batches_per_epoch samples.",
    )
    num_epochs: int = Field(1, ge=1, description="Passes over each training batch.")
    learning_rate: float = Field(1e-4, gt=0, description="Adam learning rate.")
    lr_schedule: Literal["constant", "linear_decay", "kl_adaptive"] = Field(
        "constant",
        description="constant; linear_decay to 0 over the run's env frames; "
        "kl_adaptive: scale the lr by 1.5 to keep the KL near lr_schedule_kl_threshold.",
    )
    lr_schedule_kl_threshold: float = Field(
        0.008, gt=0, description="Target KL per SGD step for the kl_adaptive schedule."
    )
    gamma: float = Field(0.99, ge=0, le=1, description="Discount factor.")
    gae_lambda: float = Field(0.95, ge=0, le=1, description="GAE lambda (bias/variance trade-off).")
    ppo_clip_ratio: float = Field(
        0.1, gt=0, description="PPO clip epsilon; ratios are clipped to [1/(1+eps), 1+eps]."
    )
    ppo_clip_value: float = Field(
        1.0, gt=0, description="Max change of the value prediction from its acting-time value."
    )
    value_loss_coeff: float = Field(0.5, ge=0, description="Weight of the value loss.")
    exploration_loss_coeff: float = Field(
        0.003, ge=0, description="Weight of the exploration loss selected by exploration_loss."
    )
    exploration_loss: Literal["entropy", "symmetric_kl"] = Field(
        "entropy",
        description="entropy: maximize the policy entropy; symmetric_kl: minimize KL(p||u) + KL(u||p) to the "
        "uniform policy over allowed actions, a stronger push away from near-deterministic policies "
        "(discrete and multi_discrete actions only).",
    )
    kl_loss_coeff: float = Field(
        0.0,
        ge=0,
        description="Weight of a KL(acting-time policy || current policy) penalty on top of the PPO clip; "
        "0 disables it.",
    )
    max_grad_norm: float = Field(4.0, ge=0, description="Gradient norm clip; 0 disables clipping.")
    adam_eps: float = Field(1e-6, gt=0, description="Adam epsilon.")
    adam_beta1: float = Field(0.9, ge=0, lt=1, description="Adam beta1.")
    adam_beta2: float = Field(0.999, ge=0, lt=1, description="Adam beta2.")
    normalize_advantage: bool = Field(True, description="Standardize advantages within each minibatch.")
    normalize_returns: bool = Field(True, description="Train the value head on running-normalized returns.")
    reward_scale: float = Field(1.0, gt=0, description="Multiply env rewards by this factor.")
    reward_clip: float = Field(
        1000.0, gt=0, description="Clip scaled rewards to [-reward_clip, reward_clip]."
    )
    value_bootstrap: bool = Field(
        False,
        description="On time-outs add gamma * V(s_t+1) of the state cut off to the reward, so truncation is not "
        "treated as a real episode end (V(s_t) stands in where the env does not keep that state).",
    )

    with_vtrace: bool = Field(
        False,
        description="Use V-trace (IMPALA) value targets and advantages instead of GAE; corrects for the "
        "policy lag of asynchronous sampling. Needs normalize_returns false.",
    )
    vtrace_rho: float = Field(
        1.0, gt=0, description="V-trace rho-bar: clip of the importance weight in the TD errors and advantages."
    )
    vtrace_c: float = Field(
        1.0, gt=0, description="V-trace c-bar: clip of the importance weight that carries corrections back in time."
    )

    @model_validator(mode="after")
    def _batch_holds_whole_rollouts(self) -> AppoConfig:
        if self.batch_size % self.rollout != 0:
            raise ValueError(f"batch_size ({self.batch_size}) must be divisible by rollout ({self.rollout})")
        return self

    @model_validator(mode="after")
    def _rollout_holds_whole_chunks(self) -> AppoConfig:
        if self.rollout % self.recurrence != 0:
            raise ValueError(f"appo.recurrence ({self.recurrence}) must divide appo.rollout ({self.rollout})")
        return self

    @model_validator(mode="after")
    def _vtrace_needs_raw_returns(self) -> AppoConfig:
        # V-trace mixes current-model values into its targets; the returns normalizer would
        # rescale them between the target computation and the loss.
        if self.with_vtrace and self.normalize_returns:
            raise ValueError(
                "appo.with_vtrace cannot be combined with appo.normalize_returns; set appo.normalize_returns to false"
            )
        return self
