"""From a cfg file to a ready experiment folder: validation, resume rules and --restart.

Nothing is created until the config is valid and the folder may be used.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path

from algos import tunables
from algos.models import make_actor_critic
from algos.spaces import obs_specs_to_dict
from sampler.config.build import build_config, config_to_dict
from sampler.config.keys import deep_merge, flatten, parse_overrides, unflatten
from sampler.config.schema import experiment_name_problem, shown_name
from sampler.envs.contract import EnvFacts
from sampler.envs.families.registry import make_probe_env
from sampler.envs.mapping import check_seating
from sampler.errors import ConfigError, ExperimentError, SftuiError
from sampler.experiment import checkpoints
from sampler.experiment.folders import (
    archive_folder,
    derived_state,
    is_live,
    read_json,
    resolve_train_dir,
    write_json_atomic,
)
from sampler.experiment.hparams import read_hparams, record_change
from sampler.selfplay.pool import check_checkpoints
from sampler.shm.buffers import BufferLayout, TrajectoryBuffers, check_shared_memory

FROZEN_ON_RESUME = ("env", "model", "sampler.num_policies")
_MISSING = object()


@dataclass
class Prepared:
    cfg: object
    folder: Path
    resumed: bool = False
    changes: list[str] = field(default_factory=list)
    already_finished: str | None = None  # a message when there is nothing to do
    env: EnvFacts | None = None  # read from the env built to check the config; the supervisor reuses it
    archived: Path | None = None
    tuned: dict = field(default_factory=dict)  # tunable hyperparameters given on resume: they win over hparams.json
    versions: dict[int, int] = field(default_factory=dict)  # each policy's version in its latest checkpoint


def prepare(raw: dict, set_items: list[str], *, train_dir: str | None = None, restart: bool = False,
            experiment_default: str | None = None, create: bool = True) -> Prepared:
    overrides = parse_overrides(set_items)
    given = deep_merge(raw, overrides)
    given_name = (given.get("run") or {}).get("experiment")
    name = experiment_default if given_name is None else given_name  # an empty name is refused, not replaced
    if name is None:
        raise ConfigError("run.experiment is missing; set it or name the cfg file after the experiment")
    problem = experiment_name_problem(str(name))
    if problem:
        raise ConfigError(f"run.experiment: {shown_name(str(name))} {problem}; "
                          "e.g. -e cartpole_lr3e-4 or mysweep/seed_1")
    root = resolve_train_dir(train_dir, (given.get("run") or {}).get("train_dir"))
    folder = root / name
    exists = (folder / "cfg.json").is_file()
    if exists and is_live(folder):
        raise ExperimentError(f"{folder} is live: a run is training in it; `sftui stop {name}` first")

    if exists and not restart:
        prepared = _resume(folder, raw, overrides, name)
    else:
        cfg = build_config(raw, overrides, experiment_default=name)
        prepared = Prepared(cfg=cfg, folder=folder)
    _check_device(prepared.cfg)
    if prepared.already_finished is None:
        prepared.env = _check_env(prepared.cfg)
        _check_shared_memory(prepared.cfg, prepared.env)
    if create and prepared.already_finished is None:
        if exists and restart:
            prepared.archived = archive_folder(folder)
        _write_cfg(prepared)
        _record_tuned(prepared)
    return prepared


def _resume(folder: Path, raw: dict, overrides: dict, name: str) -> Prepared:
    saved = read_json(folder / "cfg.json")
    if saved is None:
        raise ExperimentError(f"{folder / 'cfg.json'} is unreadable; use --restart to start over")
    before = flatten(saved)
    changes = {k: v for k, v in flatten(raw).items() if before.get(k, _MISSING) != v}
    changes.update({k: v for k, v in flatten(overrides).items() if before.get(k, _MISSING) != v})
    for key in changes:
        if any(key == frozen or key.startswith(frozen + ".") for frozen in FROZEN_ON_RESUME):
            raise ConfigError(
                f"{key}: cannot change on resume (was {json.dumps(before.get(key))}); "
                "use --restart to start over, or a new run.experiment"
            )
    cfg = build_config(deep_merge(saved, unflatten(changes)), experiment_default=name)
    described = [f"{k}: {json.dumps(before.get(k))} -> {json.dumps(v)}" for k, v in changes.items()]
    tuned = {key.removeprefix("appo."): value for key, value in changes.items()
             if key.startswith("appo.") and key.removeprefix("appo.") in tunables.NAMES}
    prepared = Prepared(cfg=cfg, folder=folder, resumed=True, changes=described, tuned=tuned)
    for policy in range(cfg.sampler.num_policies):  # none readable: refused here, before the folder is touched
        latest = checkpoints.load_latest(folder, policy, set_aside=False)
        if latest is not None:
            prepared.versions[policy] = int(latest[1]["version"])
    state, summary = derived_state(folder)
    if state == "finished":
        frames = int(summary.get("env_frames", 0))
        elapsed = float(summary.get("elapsed_sec", 0.0))
        if cfg.run.train_for_env_steps <= frames or cfg.run.train_for_seconds <= elapsed:
            prepared.already_finished = (
                f"{name} already finished at {frames:,} env frames; raise run.train_for_env_steps "
                "(or run.train_for_seconds) or use --restart"
            )
    return prepared


def _check_env(cfg) -> EnvFacts:
    """Refused before anything is created: an env that cannot be built as configured (a kwarg it does not take, a
    missing asset), a policy that could never play (more policies than seats under a mapping that seats them), an
    opponent pool in an env with a single seat, and a pool checkpoint that is unreadable or made for another env
    or model. It builds one env; the supervisor lays the run out from the facts it returns."""
    batched = cfg.sampler.batched_sampling
    try:
        probe = make_probe_env(cfg)
    except SftuiError:
        raise
    except Exception as e:  # noqa: BLE001 - an env's own error, in its own words, on one line
        message = " ".join(str(e).split()) or "no message"
        raise ConfigError(f"env: {cfg.env.name} cannot be built as configured: {type(e).__name__}: {message}; "
                          "check the env.* settings (`sftui settings ENV` lists them)") from None
    try:
        if batched:
            return EnvFacts.of(probe, batched)
        seated = cfg.sampler.num_policies > 1 and cfg.sampler.policy_mapping != "random"
        if seated:
            check_seating(cfg, probe.num_agents)
        if cfg.pool.enabled:
            if probe.num_agents < 2:
                raise ConfigError(f"pool: {cfg.env.name} seats a single agent, so there is no opponent seat for "
                                  "the pool to play; use a multi-agent env or leave the pool settings at 0")

            check_checkpoints(cfg, {"obs": obs_specs_to_dict(probe.obs_specs), "action": probe.action_spec.to_dict(),
                                    "model": cfg.model.model_dump(mode="json")})
        return EnvFacts.of(probe, batched)
    finally:
        probe.close()


def _check_shared_memory(cfg, env: EnvFacts) -> None:
    """Refused before anything is created: shared buffers larger than /dev/shm has room for."""
    rnn_state_size = make_actor_critic(cfg.model, env.obs_specs, env.action_spec).rnn_state_size
    layout = BufferLayout.for_run(cfg, env.num_agents, env.num_envs)
    check_shared_memory(TrajectoryBuffers.required_bytes(
        layout, env.obs_specs, env.action_spec, rnn_state_size=rnn_state_size,
        reward_components=env.reward_components, num_policies=cfg.sampler.num_policies))


def _check_device(cfg) -> None:
    if cfg.run.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise ConfigError("run.device: cuda was asked for but torch sees no GPU; use auto or cpu")


def _write_cfg(prepared: Prepared) -> None:
    cfg = prepared.cfg
    if cfg.run.seed is None:
        cfg.run.seed = random.randrange(2**31)
    try:
        prepared.folder.mkdir(parents=True, exist_ok=True)
        write_json_atomic(prepared.folder / "cfg.json", config_to_dict(cfg))
    except OSError as e:
        raise ExperimentError(f"{prepared.folder}: cannot create the experiment folder ({e.strerror}); "
                              "give a train dir you can write to (--train-dir, $SFTUI_TRAIN_DIR or run.train_dir)"
                              ) from None


def _record_tuned(prepared: Prepared) -> None:
    """A tunable hyperparameter given on resume wins over each policy's hparams.json (where PBT or `set` may have
    moved it) and is recorded in its history.jsonl; a policy whose learner never wrote hparams.json starts from
    the config, which holds the given value already."""
    for policy in range(prepared.cfg.sampler.num_policies) if prepared.tuned else ():
        before = read_hparams(prepared.folder, policy)
        if before is not None and {**before, **prepared.tuned} != before:
            record_change(prepared.folder, policy, before, {**before, **prepared.tuned}, "resume",
                          prepared.versions.get(policy))
