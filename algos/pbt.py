"""Population-based training settings (the feature itself is not implemented yet)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator


class PbtConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    with_pbt: bool = Field(
        False, description="Train a population of policies and mutate their hyperparameters."
    )
    pbt_start_mutation: int = Field(
        20_000_000, ge=0, description="Env steps before the first hyperparameter mutation."
    )
    pbt_period_env_steps: int = Field(
        5_000_000, ge=1, description="Env steps between two population updates."
    )

    @field_validator("with_pbt")
    @classmethod
    def _pbt_not_available(cls, value: bool) -> bool:
        if value:
            raise ValueError("population-based training is not available yet; set pbt.with_pbt to false")
        return value
