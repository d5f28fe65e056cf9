"""Sweeps: many experiments from one description, run as separate detached runs under `train_dir/<sweep>/`.

A sweep file is TOML (or a Python module whose `SWEEP` dict has the same structure):

    name = "cartpole_lr"               # optional: the file's stem otherwise
    env = "gym_CartPole-v1"

    [set]                              # the base overrides, every experiment's
    "run.train_for_env_steps" = 200000

    [grid]                             # the product of these lists
    "run.seed" = [0, 1, 2]
    "appo.learning_rate" = [1e-4, 3e-4]

    [[linked]]                         # lists that vary together (zipped); each [[linked]] is one more axis
    "appo.rollout" = [16, 32]
    "appo.batch_size" = [512, 1024]

    [[variants]]                       # whole override sets, one axis; "name" names the variant
    name = "small"
    "model.encoder_mlp_layers" = [64, 64]

Keys are `section.key` as with --set (nested tables work too). Every combination of the axes is one
experiment, named from what varies in it (e.g. `seed_0__learning_rate_0.0001`), so a name stays the same
whenever the same file is run again. `sweep.json` in the sweep's folder marks it and keeps the description.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sampler.config.build import build_config
from sampler.config.keys import deep_merge, flatten, unflatten
from sampler.errors import ConfigError
from sampler.experiment.folders import derived_state, is_live, write_json_atomic

KNOWN_KEYS = {"name", "env", "set", "grid", "linked", "variants"}


@dataclass
class SweepExperiment:
    name: str
    overrides: dict[str, Any]  # what varies: section.key -> value
    raw: dict = field(default_factory=dict)  # the whole config, as a cfg.json would hold it


@dataclass
class Sweep:
    name: str
    source: Path
    env: str
    base: dict[str, Any]
    experiments: list[SweepExperiment]
    description: dict


def load(path: Path) -> Sweep:
    """Reads and expands a sweep file; refuses a malformed one in one line naming the problem."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path} is a folder, not a sweep file; give the .toml (or .py) file itself")
    if not path.is_file():
        raise ConfigError(f"{path}: no such sweep file")
    if path.suffix == ".toml":
        try:
            description = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{path}: not valid TOML: {e}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"{path}: not valid TOML: it is not UTF-8 text") from None
        except OSError as e:
            raise ConfigError(f"{path}: cannot read it ({e.strerror or e})") from None
    elif path.suffix == ".py":
        description = _from_module(path)
    else:
        raise ConfigError(f"{path}: a sweep file is .toml (or a .py module with a SWEEP dict)")
    return expand(description, default_name=path.stem, source=path)


def _from_module(path: Path) -> dict:
    spec = importlib.util.spec_from_file_location(f"sftui_sweep_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as e:  # noqa: BLE001 - the user's module: report, do not crash
        raise ConfigError(f"{path}: importing it failed: {type(e).__name__}: {e}") from None
    description = getattr(module, "SWEEP", None)
    if not isinstance(description, dict):
        raise ConfigError(f"{path}: the module must define SWEEP, a dict like a sweep TOML file")
    return description


def _flatten(table: dict, where: str) -> dict[str, Any]:
    """A sweep table's settings by dotted path; nested tables flatten all the way (a grid may vary one shaping
    coefficient)."""
    out = flatten(table, whole=())
    for key in out:
        if "." not in key:
            raise ConfigError(f"{where}: {key!r} is not section.key (e.g. \"appo.learning_rate\")")
    return out


def _lists(table: dict, where: str) -> dict[str, list]:
    flat = _flatten(table, where)
    for key, values in flat.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{where}.{key}: give a non-empty list of values (got {json.dumps(values)})")
    return flat


def expand(description: dict, default_name: str, source: Path | None = None) -> Sweep:
    unknown = set(description) - KNOWN_KEYS
    if unknown:
        raise ConfigError(f"sweep: unknown key(s) {sorted(unknown)}; a sweep has {', '.join(sorted(KNOWN_KEYS))}")
    env = description.get("env")
    if not isinstance(env, str) or not env:
        raise ConfigError("sweep: env is missing; e.g. env = \"gym_CartPole-v1\"")
    name = str(description.get("name") or default_name)
    if not re.fullmatch(r"[A-Za-z0-9._-]+", name):
        raise ConfigError(f"sweep: name {name!r} must be letters, digits, '.', '_' or '-' (it names a folder)")
    base = _flatten(description.get("set", {}), "set")

    axes: list[list[tuple[str | None, dict]]] = []  # each axis: (label or None, overrides) choices
    for key, values in _lists(description.get("grid", {}), "grid").items():
        axes.append([(None, {key: value}) for value in values])
    for i, group in enumerate(description.get("linked", [])):
        lists = _lists(group, f"linked[{i}]")
        lengths = {len(v) for v in lists.values()}
        if len(lengths) != 1:
            raise ConfigError(f"linked[{i}]: its lists vary together, so they need one length (got "
                              + ", ".join(f"{k}: {len(v)}" for k, v in lists.items()) + ")")
        axes.append([(None, {k: v[j] for k, v in lists.items()}) for j in range(lengths.pop())])
    variants = description.get("variants", [])
    if variants:
        choices = []
        for i, variant in enumerate(variants):
            variant = dict(variant)
            label = variant.pop("name", None)
            choices.append((str(label) if label is not None else None, _flatten(variant, f"variants[{i}]")))
        axes.append(choices)

    experiments = []
    for combination in itertools.product(*axes) if axes else [()]:
        overrides: dict[str, Any] = {}
        labels = []
        for label, chosen in combination:
            overrides.update(chosen)
            labels.append(label)
        experiments.append(SweepExperiment(name=_name(overrides, labels), overrides=overrides))
    _make_unique(experiments)
    for experiment in experiments:
        merged = unflatten({**base, **experiment.overrides}, where=f"sweep {name}")
        experiment.raw = deep_merge({"env": {"name": env}},
                                    deep_merge(merged, {"run": {"experiment": f"{name}/{experiment.name}"}}))
    return Sweep(name=name, source=source or Path(default_name), env=env, base=base, experiments=experiments,
                 description=description)


def _format(value: Any) -> str:
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, float):
        text = f"{value:g}"
    elif isinstance(value, list):
        text = "-".join(_format(v) for v in value)
    else:
        text = str(value)
    return re.sub(r"[^A-Za-z0-9.+-]", "-", text)


def _name(overrides: dict[str, Any], labels: list[str | None]) -> str:
    named = [label for label in labels if label]
    shorts = [key.rsplit(".", 1)[-1] for key in overrides]
    parts = []
    for key, short in zip(overrides, shorts, strict=True):
        label = short if shorts.count(short) == 1 else key.replace(".", "-")
        parts.append(f"{label}_{_format(overrides[key])}")
    return "__".join([*named, *parts]) or "base"


def _make_unique(experiments: list[SweepExperiment]) -> None:
    seen: dict[str, int] = {}
    for experiment in experiments:
        count = seen.get(experiment.name, 0)
        seen[experiment.name] = count + 1
        if count:
            experiment.name = f"{experiment.name}__{count}"


def check(sweep: Sweep) -> list:
    """Every experiment's config, validated before anything starts; an error names the experiment."""
    configs = []
    for experiment in sweep.experiments:
        try:
            configs.append(build_config(experiment.raw))
        except ConfigError as e:
            raise ConfigError(f"sweep {sweep.name}, experiment {experiment.name}: {e}") from None
    return configs


def write_marker(sweep: Sweep, train_dir: Path) -> Path:
    folder = train_dir / sweep.name
    folder.mkdir(parents=True, exist_ok=True)
    write_json_atomic(folder / "sweep.json", {
        "name": sweep.name, "source": str(sweep.source), "env": sweep.env, "description": sweep.description,
        "experiments": [{"name": e.name, "overrides": e.overrides} for e in sweep.experiments],
    })
    return folder


def state_of(sweep: Sweep, train_dir: Path, name: str) -> str:
    folder = Path(train_dir) / sweep.name / name
    return derived_state(folder)[0] if (folder / "cfg.json").exists() else "pending"


def to_run(sweep: Sweep, train_dir: Path, echo) -> list[int]:
    """Indices of the experiments a `sweep run` starts or resumes: not finished, not training already."""
    chosen = []
    for i, experiment in enumerate(sweep.experiments):
        state = state_of(sweep, train_dir, experiment.name)
        if state == "finished":
            echo(f"{experiment.name}: finished already, skipped")
        elif is_live(Path(train_dir) / sweep.name / experiment.name):
            echo(f"{experiment.name}: already training ({state}), left alone")
        else:
            chosen.append(i)
    return chosen


def summarize(sweep: Sweep, train_dir: Path, echo) -> int:
    """One line of state counts; the exit code: 0 when every experiment finished."""
    states: dict[str, int] = {}
    for experiment in sweep.experiments:
        state = state_of(sweep, train_dir, experiment.name)
        states[state] = states.get(state, 0) + 1
    echo(f"sweep {sweep.name}: " + ", ".join(f"{n} {s}" for s, n in sorted(states.items())))
    return 0 if set(states) <= {"finished"} else 1


@dataclass
class Row:
    name: str
    state: str
    env_frames: int
    last_return: float | None
    best_return: float | None
    elapsed_sec: float
    error: str | None
    overrides: dict


def status_rows(sweep: Sweep, train_dir: Path) -> list[Row]:
    """One row per experiment, best first: by final (last) return, experiments without one at the end."""
    rows = []
    for experiment in sweep.experiments:
        folder = train_dir / sweep.name / experiment.name
        if not (folder / "cfg.json").exists():
            rows.append(Row(experiment.name, "pending", 0, None, None, 0.0, None, experiment.overrides))
            continue
        state, summary = derived_state(folder)
        policies = [p for p in summary.get("policies", []) if isinstance(p, dict)]
        last = [p["episode_return"] for p in policies if p.get("episode_return") is not None]
        best = [p["best_return"] for p in policies if p.get("best_return") is not None]
        rows.append(Row(experiment.name, state, int(summary.get("env_frames", 0)), max(last) if last else None,
                        max(best) if best else None, float(summary.get("elapsed_sec", 0.0)), summary.get("error"),
                        experiment.overrides))

    def rank(row: Row):
        return (row.last_return is None, -(row.last_return or 0.0))

    return sorted(rows, key=rank)
