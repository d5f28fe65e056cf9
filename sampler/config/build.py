"""Building the one typed config of an experiment: defaults, env-family defaults, cfg.json and --set, checked.

Precedence: schema defaults < env-family defaults < cfg.json < --set section.key=value. A process builds its
config once, here, and hands the `ExperimentConfig` down; worker processes receive it, they never rebuild it.
"""

from __future__ import annotations

import difflib
import importlib
import json
import os
import sys
from pathlib import Path

from pydantic import ValidationError

from sampler.config.keys import deep_merge
from sampler.config.schema import SECTIONS, EnvConfig, ExperimentConfig, family_settings_models, section_model
from sampler.envs.families import registry
from sampler.errors import ConfigError


def read_cfg_file(path: Path) -> dict:
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file; `sftui config ENV > cfg.json` writes a starting point") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: a folder, not a cfg file; `sftui config ENV > cfg.json` writes one") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read it ({e.strerror})") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not a text file (byte {e.start} is not UTF-8); a cfg file is JSON") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}: not valid JSON: {e.msg} (line {e.lineno}, column {e.colno})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a JSON object with sections {', '.join(SECTIONS)}")
    return data


def import_modules(modules: list[str]) -> None:
    """Imports run.imports; modules are found on sys.path or relative to the current folder."""
    if modules and os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as e:
            raise ConfigError(f"run.imports: cannot import {name!r} ({e}); is it on PYTHONPATH?") from None


def build_config(raw: dict, overrides: dict | None = None, experiment_default: str | None = None
                 ) -> ExperimentConfig:
    """Validate raw settings (cfg.json contents) plus --set overrides into an ExperimentConfig."""
    merged = deep_merge(raw, overrides or {})
    _check_sections(merged)
    env_name = merged.get("env", {}).get("name") if isinstance(merged.get("env"), dict) else None
    if not env_name:
        raise ConfigError("env.name is missing; set it, e.g. \"env\": {\"name\": \"gym_CartPole-v1\"}")
    imports = merged.get("run", {}).get("imports", [])
    if isinstance(imports, list) and all(isinstance(m, str) for m in imports):
        import_modules(imports)
    family = registry.family_for(str(env_name))
    merged = deep_merge(family.defaults_for(str(env_name)), merged)
    if experiment_default and not merged.get("run", {}).get("experiment"):
        merged = deep_merge(merged, {"run": {"experiment": experiment_default}})
    _check_env_section(merged.get("env", {}))
    try:
        cfg = ExperimentConfig.model_validate(merged)
    except ValidationError as e:
        raise ConfigError(_describe_validation_error(e)) from None
    family.check(cfg)
    if cfg.run.eval_env and registry.family_for(cfg.run.eval_env) is not family:
        raise ConfigError(f"run.eval_env: {cfg.run.eval_env} is not a {family.prefix}_* env; evaluation plays an "
                          f"env of the run's own family, e.g. {cfg.env.name}")
    if cfg.run.eval_env:
        try:
            family.check_name(cfg.run.eval_env)
        except ConfigError as e:
            raise ConfigError(f"run.eval_env: {str(e).removeprefix('env.name: ')}") from None
    if cfg.sampler.batched_sampling:
        _check_batched(cfg, family)
    if cfg.pbt.with_pbt and cfg.sampler.num_policies < 2:
        raise ConfigError(f"pbt.with_pbt: a population needs sampler.num_policies of 2 or more (got "
                          f"{cfg.sampler.num_policies}); e.g. --set sampler.num_policies=4")
    return cfg


def _check_env_section(env: dict) -> None:
    """The env section's family settings, each reported by its full path (env.<prefix>.<key>)."""
    models = family_settings_models()
    for key, value in env.items():
        if key in EnvConfig.model_fields:
            continue
        if key not in models:
            known = [*EnvConfig.model_fields, *models]
            raise ConfigError(f"env.{key}: unknown setting{_suggest(key, known)}; `sftui settings` lists them all")
        if not isinstance(value, dict):
            raise ConfigError(f"env.{key}: must be a JSON object of settings, got {type(value).__name__}")
        try:
            models[key].model_validate(value)
        except ValidationError as e:
            raise ConfigError(_describe_validation_error(e, ["env", key])) from None


def _check_batched(cfg: ExperimentConfig, family: registry.EnvFamily) -> None:
    if family.make_vector is None:
        vectorized = ", ".join(f"{f.prefix}_*" for f in registry.families() if f.make_vector is not None)
        raise ConfigError(f"sampler.batched_sampling: {family.prefix}_* envs are not vectorized; batched sampling "
                          f"takes {vectorized}; set sampler.batched_sampling=false")
    if cfg.sampler.num_policies > 1:
        raise ConfigError(f"sampler.batched_sampling: one policy per run (got sampler.num_policies "
                          f"{cfg.sampler.num_policies}); several policies need per-agent sampling "
                          "(sampler.batched_sampling=false)")
    if cfg.pool.enabled:
        raise ConfigError("sampler.batched_sampling: the opponent pool needs per-agent sampling; leave the pool "
                          "settings at 0 or set sampler.batched_sampling=false")


def config_to_dict(cfg: ExperimentConfig) -> dict:
    """The config as cfg.json holds it: every value, JSON types only."""
    return cfg.model_dump(mode="json")


def _check_sections(merged: dict) -> None:
    for key, value in merged.items():
        if key not in SECTIONS:
            raise ConfigError(f"{key}: unknown section{_suggest(key, SECTIONS)}; sections are {', '.join(SECTIONS)}")
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: must be a JSON object of settings, got {type(value).__name__}")


def _describe_validation_error(error: ValidationError, where: list[str] | None = None) -> str:
    first = error.errors()[0]
    loc = [*(where or []), *(str(p) for p in first["loc"])]
    path = ".".join(loc)
    if first["type"] == "extra_forbidden":
        known = _known_keys(loc[:-1])
        return f"{path}: unknown setting{_suggest(loc[-1], known)}; `sftui settings` lists them all"
    message = first["msg"].removeprefix("Value error, ").removeprefix(f"{path}: ")  # a check that names its field
    if first["type"] in ("value_error", "assertion_error") and not loc:
        return message
    own_check = isinstance(first.get("input"), dict)  # a section's validator: its input is the whole section
    if "input" in first and first["type"] != "missing" and not own_check:
        return f"{path}: {message} (got {json.dumps(first['input'], default=str)})"
    return f"{path}: {message}"


def _known_keys(section_path: list[str]) -> list[str]:
    model = section_model(section_path)
    return list(model.model_fields) if model is not None else []


def _suggest(word: str, choices) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
