"""The experiment config's schema: `ExperimentConfig` and the sections the sampler owns (run, sampler, env, pool).

Every section is a static type, so a config crosses to a worker process as it is (pickled), and is never
rebuilt there. Only the env families' own settings (`env.<prefix>.*`) are resolved at run time, from the
families registered with `sampler.envs.families.registry`. The learning sections (appo, model, pbt) are
declared in `algos/`.
"""

from __future__ import annotations

import os
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from algos.appo_config import AppoConfig
from algos.model_config import ModelConfig
from algos.pbt import PbtConfig
from sampler.envs.families import registry
from sampler.envs.mapping import mapping_names

MAX_NAME_PART = 200  # a folder name, with room for `.old-<timestamp>` when --restart archives it
_NOT_IN_NAMES = set('*?[]\\:"<>|') | {chr(c) for c in range(32)}


def shown_name(name: str, limit: int = 60) -> str:
    """A name as an error line quotes it: whole, or its start when it is long."""
    return repr(name) if len(name) <= limit else repr(name[:limit - 3] + "...")


def experiment_name_problem(name: str) -> str | None:
    """What is wrong with an experiment id as a folder under train_dir, or None. Sweeps nest theirs
    (`sweep/experiment`); no part may leave train_dir, hide, or hold what `sftui tb` reads as a wildcard."""
    if not name.strip():
        return "is empty"
    for part in name.split("/"):
        if part in ("", ".", ".."):
            return "must be a folder name under train_dir (no leading, trailing or doubled /, no . or ..)"
        if part.startswith("."):
            return "may not start a folder name with a dot (hidden)"
        if len(part) > MAX_NAME_PART:
            return f"has a folder name of {len(part)} characters (at most {MAX_NAME_PART})"
        bad = sorted(set(part) & _NOT_IN_NAMES)
        if bad:
            return f"may not hold {' '.join(repr(c) for c in bad)}"
    return None


class RunConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    experiment: str | None = Field(
        None, description="Experiment id: its folder under train_dir. Defaults to the cfg file's stem."
    )
    train_dir: str | None = Field(
        None, description="Where experiments live (--train-dir and $SFTUI_TRAIN_DIR take precedence)."
    )
    train_for_env_steps: int = Field(10_000_000_000, ge=1, description="Stop after this many env frames.")
    train_for_seconds: float = Field(
        10_000_000_000.0, gt=0, description="Stop after this much training time, summed over resumes."
    )
    save_every_sec: float = Field(120.0, gt=0, description="Seconds between periodic checkpoints.")
    keep_checkpoints: int = Field(2, ge=1, description="Periodic checkpoints kept per policy (best.pt is extra).")
    save_best_after_env_steps: int = Field(
        0, ge=0, description="Do not write best.pt before this many env frames."
    )
    seed: int | None = Field(None, description="Seed for envs and models; none picks one and records it.")
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="Where inference and learning run: auto picks cuda when available."
    )
    imports: list[str] = Field(
        default_factory=list, description="Modules every process imports first (custom envs and models)."
    )
    learner_threads: int = Field(
        0, ge=0, description="Torch threads of each learner process. 0 (auto): every core with batched sampling on "
        "CPU; a CPU-only run of one policy otherwise tries 1, 2, 4... up to every core for 20 s each while it trains "
        "and keeps the fastest, again every 10 minutes; several policies or a GPU learner use 1."
    )
    stall_timeout_sec: float = Field(
        60.0, gt=0, description="A worker silent for this long shows as stalled."
    )
    kill_stalled_after_sec: float = Field(
        300.0, gt=0, description="A rollout worker silent for this long (its stack already dumped at "
        "stall_timeout_sec) is killed and restarted like a crashed one."
    )
    max_worker_restarts: int = Field(3, ge=0, description="Restarts allowed per worker (rollout, inference or "
                                     "learner) within any hour: rare, unrelated crashes never end a week-long run.")
    report_interval_sec: float = Field(5.0, gt=0, description="Seconds between headless progress lines.")
    status_every_sec: float = Field(
        2.0, ge=0.5, le=5.0,
        description="Seconds between status.jsonl lines and summary.json rewrites (its heartbeat: a run silent "
                    "for 10 s shows as not responding). The app and `sftui status` get one twice a second anyway.",
    )
    eval_every_env_steps: int = Field(
        0, ge=0, description="Evaluate each policy's latest weights every this many env frames (0: off): a "
        "low-priority process plays run.eval_episodes episodes; best.pt then follows the evaluation return."
    )
    eval_episodes: int = Field(10, ge=1, le=1000, description="Episodes per evaluation.")
    eval_env: str | None = Field(
        None, description="The env evaluation plays, of the run's own family (e.g. a duel against a scripted "
        "opponent); none: the training env."
    )
    eval_deterministic: bool = Field(True, description="Evaluation takes the most likely action (false: samples).")
    debug_poison: bool = Field(
        False, description="Fill shared buffers with poison values so that unwritten data is caught."
    )

    @field_validator("experiment")
    @classmethod
    def _folder_name(cls, name: str | None) -> str | None:
        problem = None if name is None else experiment_name_problem(name)
        if problem:
            raise ValueError(f"{shown_name(name)} {problem}; e.g. cartpole_lr3e-4 or mysweep/seed_1")
        return name


class SamplerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    num_workers: int = Field(
        default_factory=lambda: os.cpu_count() or 1, ge=1, description="Rollout worker processes."
    )
    num_envs_per_worker: int = Field(2, ge=1, description="Envs stepped by each rollout worker.")
    worker_num_splits: int | None = Field(
        None,
        ge=1,
        description="Env groups per rollout worker: with inference processes one group steps while another waits "
        "for actions. None: 2 with inference processes (when the envs divide evenly), 1 with local inference.",
    )
    num_policies: int = Field(1, ge=1, description="Policies trained side by side, each with its own learner.")
    inference: Literal["auto", "local", "process"] = Field(
        "auto",
        description="Where actions are computed: 'process' runs inference worker processes that batch requests "
        "from every rollout worker (best with a GPU); 'local' runs the policy inside each rollout worker, with no "
        "messages (best on CPU only); auto: local on CPU, process on a GPU.",
    )
    policy_mapping: str = Field(
        "random",
        description="Which policy plays each agent: 'random' per agent and episode, 'seat' (agent k plays for "
        "policy k mod num_policies), or a name registered with sampler.plugins.register_policy_mapping.",
    )
    policy_workers_per_policy: int = Field(
        1, ge=1, description="Inference worker processes per policy (with sampler.inference 'process')."
    )
    max_policy_lag: int = Field(
        100, ge=1, description="Samples this many policy versions old or more are left out of the loss."
    )
    batched_sampling: bool = Field(
        False, description="Batched sampling for vectorized envs (gym_* through gymnasium.make_vec, envpool_*): each "
        "rollout worker steps all its envs in one call and writes whole arrays into the trajectory buffers. One "
        "policy only (several policies and the opponent pool need per-agent sampling).",
    )

    @field_validator("policy_mapping")
    @classmethod
    def _known_mapping(cls, name: str) -> str:
        if name not in mapping_names():
            raise ValueError(f"unknown policy mapping {name!r}; known: {', '.join(mapping_names())} "
                             "(register others with sampler.plugins.register_policy_mapping from run.imports)")
        return name

    @model_validator(mode="after")
    def _check(self) -> SamplerConfig:
        if self.worker_num_splits is not None and self.num_envs_per_worker % self.worker_num_splits:
            raise ValueError(
                f"sampler.num_envs_per_worker ({self.num_envs_per_worker}) must be divisible by "
                f"sampler.worker_num_splits ({self.worker_num_splits})"
            )
        return self


class EnvConfig(BaseModel):
    """env.*: the fields every family shares, and one settings section per registered family (env.<prefix>.*).

    The family sections are the only part of the schema resolved at run time: a family registers its settings
    model with the registry, and its section holds an instance of that model. `build_config` reports a bad
    family setting by its full path before this model sees it.
    """

    model_config = ConfigDict(extra="allow")

    name: str = Field(..., description="Env to train on: <family>_<id>, e.g. gym_CartPole-v1.")
    frameskip: int = Field(1, ge=1, description="Env frames per agent step (counted in env frames).")
    res_w: int = Field(128, ge=1, description="Observation width for image envs.")
    res_h: int = Field(72, ge=1, description="Observation height for image envs.")
    reward_shaping: dict[str, float] = Field(
        default_factory=dict, description="Named reward-shaping coefficients."
    )

    @model_validator(mode="before")
    @classmethod
    def _family_sections(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        models = family_settings_models()
        data = dict(data)
        for key in set(data) - set(cls.model_fields):
            if key not in models:
                raise ValueError(f"env.{key}: unknown setting; `sftui settings` lists them all")
        for prefix, model in models.items():
            value = data.get(prefix, {})
            data[prefix] = value if isinstance(value, model) else model.model_validate(value)
        return data

    def family_settings(self, prefix: str) -> BaseModel | None:
        """The env.<prefix> section, or None for a family without settings."""
        return (self.__pydantic_extra__ or {}).get(prefix)


class PoolConfig(BaseModel):
    """The self-play opponent pool: frozen snapshots of the policies that play opponent seats."""

    model_config = ConfigDict(extra="forbid")

    snapshot_every_env_steps: int = Field(
        0, ge=0, description="Env frames (of the whole run) between two snapshots of every policy into the "
        "experiment's pool/ folder; 0: no snapshots."
    )
    max_snapshots: int = Field(
        20, ge=1, description="Snapshots kept in the pool; the oldest is dropped (and its file removed) first."
    )
    seat_probability: float = Field(
        0.0, ge=0.0, le=1.0, description="Chance that an opponent seat (every seat but seat 0) is played by a "
        "pool member drawn at random, decided at the start of each of its episodes."
    )
    checkpoints: list[str] = Field(
        default_factory=list, description="Checkpoint files (e.g. another experiment's best.pt) that join the "
        "pool from the start and stay in it; they must be made for the same env and model."
    )
    elo_k: float = Field(16.0, gt=0.0, description="Elo K-factor: how far one game moves a rating.")
    opponent_sampling: Literal["uniform", "pfsp"] = Field(
        "uniform", description="Which member fills a seat: uniform, or pfsp (prioritized fictitious self-play): "
        "in proportion to (1 - p)^2, p the Elo chance that the learning policies (their mean rating) beat the "
        "member, so the members they still lose to play most."
    )

    @property
    def enabled(self) -> bool:
        return self.seat_probability > 0 or self.snapshot_every_env_steps > 0 or bool(self.checkpoints)

    @model_validator(mode="after")
    def _check(self) -> PoolConfig:
        if self.seat_probability > 0 and not self.snapshot_every_env_steps and not self.checkpoints:
            raise ValueError(f"seat_probability is {self.seat_probability} but the pool would stay empty; set "
                             "pool.snapshot_every_env_steps or list pool.checkpoints")
        return self


SECTIONS = ("run", "sampler", "env", "appo", "model", "pbt", "pool")


def family_settings_models() -> dict[str, type[BaseModel]]:
    """env.<prefix> -> settings model, for every registered family that has settings."""
    return {f.prefix: f.settings_model for f in registry.families() if f.settings_model is not None}


class ExperimentConfig(BaseModel):
    """The whole config of one experiment: what cfg.json holds, built once per process and handed down."""

    model_config = ConfigDict(extra="forbid")

    run: RunConfig = Field(default_factory=RunConfig)
    sampler: SamplerConfig = Field(default_factory=SamplerConfig)
    env: EnvConfig
    appo: AppoConfig = Field(default_factory=AppoConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    pbt: PbtConfig = Field(default_factory=PbtConfig)
    pool: PoolConfig = Field(default_factory=PoolConfig)


def section_model(path: list[str]) -> type[BaseModel] | None:
    """The model of the section at `path` (e.g. ["env", "doom"]), or None where the path names no section."""
    model: type[BaseModel] = ExperimentConfig
    for part in path:
        field = model.model_fields.get(part)
        if field is not None and isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            model = field.annotation
        elif model is EnvConfig and part in family_settings_models():
            model = family_settings_models()[part]
        else:
            return None
    return model
