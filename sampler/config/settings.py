"""Settings help: every setting of the schema with its type, default and description (`sftui settings`, the
launcher's form)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from sampler.config.build import build_config, config_to_dict
from sampler.config.schema import EnvConfig, ExperimentConfig, family_settings_models


def describe_settings(env_name: str | None = None) -> list[tuple[str, str, Any, str]]:
    """Every setting as (path, type, default, description), with the env family's defaults applied."""
    defaults = config_to_dict(build_config({"env": {"name": env_name}})) if env_name else None
    rows = []

    def walk(model: type[BaseModel], prefix: str, values: dict | None) -> None:
        for name, field in model.model_fields.items():
            path = f"{prefix}{name}"
            annotation = field.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                walk(annotation, path + ".", values.get(name) if values else None)
                continue
            if values is not None:
                default = values.get(name)
            elif field.default_factory is not None:
                default = field.default_factory()
            else:
                default = field.default if field.is_required() is False else "(required)"
            rows.append((path, _type_name(annotation), default, field.description or ""))
        if model is EnvConfig:  # the families' own sections, resolved at run time
            for family, settings in family_settings_models().items():
                walk(settings, f"{prefix}{family}.", values.get(family) if values else None)

    walk(ExperimentConfig, "", defaults)
    return rows


def _type_name(annotation: Any) -> str:
    text = getattr(annotation, "__name__", None) or str(annotation)
    return text.replace("typing.", "")
