"""Dotted setting paths (`section.key=value`): parsing, flattening and nesting, for every place that takes them.

`--set`, `sftui set`, the resume diff, sweep files and the launcher's form all name settings by their dotted
path; this module is the one place that turns those paths into the nested dicts a config is built from.
"""

from __future__ import annotations

import json
from typing import Any

from sampler.errors import ConfigError

# A dict under one of these keys is one setting's value (env.reward_shaping, env.gym.kwargs), not a section.
WHOLE_VALUES = ("reward_shaping", "kwargs")


def parse_value(text: str) -> Any:
    """A value as typed: JSON when it parses (numbers, booleans, lists, objects, null), else the text itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_item(item: str, example: str = "appo.learning_rate=3e-4") -> tuple[str, Any]:
    """`key=value` into (key, value); refused without an `=`, a key or a value."""
    key, sep, text = item.partition("=")
    key, text = key.strip(), text.strip()
    if not sep or not key or not text:
        raise ConfigError(f"{item!r}: expected KEY=VALUE, e.g. {example}")
    return key, parse_value(text)


def parse_overrides(items: list[str]) -> dict:
    """`--set section.key=value` items into a nested dict."""
    flat = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or "." not in key:
            raise ConfigError(f"--set {item!r}: expected section.key=value, e.g. --set appo.learning_rate=3e-4")
        flat[key.strip()] = parse_value(text)  # an empty value is the empty string
    return unflatten(flat, where="--set")


def deep_merge(base: dict, top: dict) -> dict:
    """`top` over `base`: nested dicts merge key by key, anything else in `top` replaces what `base` holds."""
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def flatten(data: dict, whole: tuple[str, ...] = WHOLE_VALUES, prefix: str = "") -> dict[str, Any]:
    """Nested settings as {dotted path: value}; a dict under a key named in `whole` stays one value."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value and key not in whole:
            out.update(flatten(value, whole, path + "."))
        else:
            out[path] = value
    return out


def unflatten(flat: dict[str, Any], where: str = "settings") -> dict:
    """{dotted path: value} as nested dicts; a path set both as a value and as a section is refused."""
    out: dict = {}
    for path, value in flat.items():
        node = out
        *parents, leaf = path.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{where}: {path!r}: {part} is set twice in conflicting ways")
        if isinstance(node.get(leaf), dict) and not isinstance(value, dict):
            raise ConfigError(f"{where}: {path!r} is set twice in conflicting ways")
        node[leaf] = deep_merge(node[leaf], value) if isinstance(value, dict) and isinstance(node.get(leaf), dict) \
            else value
    return out
