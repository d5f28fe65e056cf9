"""sampler.plugins is the one import path for extensions: every name it exports resolves, the README's
registration functions are among them, and examples/ imports project code from nowhere else and loads through
its documented routes (tests/e2e/test_examples.py trains the corridor example through the whole tree)."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import sampler.plugins as plugins

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))
# the project's own top-level packages and folders of code; anything else an example imports is third-party
PROJECT = {p.name for p in ROOT.iterdir() if (p / "__init__.py").exists()} | {"examples", "tests", "bench"}


def test_every_exported_name_resolves_once():
    assert len(plugins.__all__) == len(set(plugins.__all__))
    for name in plugins.__all__:
        assert getattr(plugins, name, None) is not None, name
    assert set(plugins.__all__) >= {"register_family", "EnvFamily", "EnvContext", "MultiAgentEnv", "VectorEnv",
                                    "VectorStep", "register_policy_mapping", "register_encoder", "register_core",
                                    "register_actor_critic", "ObsSpec", "ActionSpec", "ConfigError"}
    assert "one stable import path" in plugins.__doc__


def test_the_readme_names_sampler_plugins_for_every_registration_function_it_documents():
    readme = (ROOT / "README.md").read_text()
    assert "`sampler.plugins`" in readme
    documented = set(re.findall(r"\b(register_[a-z_]+)\b", readme))
    assert documented >= {"register_family", "register_policy_mapping", "register_encoder", "register_core",
                          "register_actor_critic"}
    assert documented <= set(plugins.__all__), documented - set(plugins.__all__)
    # no deep import path is documented for them
    assert not re.search(r"(sampler\.envs|algos\.registry)[\w.]*\.register_", readme)


def _project_imports(path: Path) -> list[str]:
    """The project modules a file imports (relative imports count as project ones)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if alias.name.split(".")[0] in PROJECT]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                found.append("." * node.level + (node.module or ""))
            elif node.module.split(".")[0] in PROJECT:
                # `from sampler import plugins` names sampler.plugins; `from sampler import x` names sampler
                named = {f"{node.module}.{a.name}" for a in node.names}
                found += sorted(named) if named == {"sampler.plugins"} else [node.module]
    return found


def test_examples_import_project_code_only_from_sampler_plugins():
    assert {p.name for p in EXAMPLES} >= {"corridor_env.py", "residual_encoder.py", "cue_game.py"}
    for path in EXAMPLES:
        imported = _project_imports(path)
        assert all(module == "sampler.plugins" for module in imported), f"{path.name} imports {imported}"
    assert _project_imports(ROOT / "examples" / "corridor_env.py") == ["sampler.plugins"]  # the walker sees it


@pytest.mark.parametrize("source, expected", [
    ("from sampler.envs.contract import EnvContext", ["sampler.envs.contract"]),
    ("import algos.registry", ["algos.registry"]),
    ("from sampler import errors", ["sampler"]),
    ("from . import corridor_env", ["."]),
    ("from sampler import plugins\nimport sampler.plugins\nimport numpy", ["sampler.plugins", "sampler.plugins"]),
])
def test_the_import_walker_tells_project_imports_from_third_party_ones(tmp_path, source, expected):
    path = tmp_path / "module.py"
    path.write_text(source)
    assert _project_imports(path) == expected


# Run in a fresh process, as a worker imports run.imports: the examples register into the process's registries,
# which the rest of this test process should not see.
LOAD_EXAMPLES = textwrap.dedent("""
    import json, sys
    from algos.models import make_actor_critic
    from sampler.config.build import read_cfg_file
    from sampler.envs.families.registry import make_env
    from sampler.experiment.prepare import prepare
    from sampler.plugins import EnvContext

    train_dir = sys.argv[1]
    out = {}
    # examples/corridor.json: run.imports registers the corridor family and the residual_mlp encoder
    cfg = prepare(read_cfg_file("examples/corridor.json"), [], train_dir=train_dir, create=False).cfg
    env = make_env(cfg, EnvContext(seed=0))
    env.reset()
    obs, rewards, terminated, truncated, infos = env.step([1])
    model = make_actor_critic(cfg.model, env.obs_specs, env.action_spec)
    out["corridor"] = {"env": cfg.env.name, "obs": obs[0]["obs"].tolist(), "reward": rewards[0],
                       "encoder": sorted({type(m).__name__ for m in model.modules()} & {"ResidualMLP"})}
    env.close()
    # examples/cue_game.py: a PettingZoo Parallel env found as pettingzoo_<module> from the current folder
    cfg = prepare({"env": {"name": "pettingzoo_examples.cue_game"}},
                  ["sampler.num_policies=2", "sampler.policy_mapping=seat"], train_dir=train_dir,
                  experiment_default="cues", create=False).cfg
    env = make_env(cfg, EnvContext(seed=0))
    env.reset()
    obs, rewards, terminated, truncated, infos = env.step([0, 0])
    out["cue_game"] = {"agents": env.num_agents, "rewards": len(rewards), "keys": sorted(obs[0])}
    env.close()
    print(json.dumps(out))
""")


def test_each_example_loads_through_its_documented_route_and_steps(tmp_path):
    pytest.importorskip("pettingzoo")
    result = subprocess.run([sys.executable, "-c", LOAD_EXAMPLES, str(tmp_path)], capture_output=True, text=True,
                            cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    corridor = out["corridor"]
    assert corridor["env"] == "corridor_8" and corridor["obs"] == [0.125, 0.875]  # one step right of 8
    assert corridor["reward"] == pytest.approx(-0.01) and corridor["encoder"] == ["ResidualMLP"]
    assert out["cue_game"] == {"agents": 2, "rewards": 2, "keys": ["obs"]}
    assert not list(tmp_path.iterdir())  # a check creates nothing


def test_sampler_plugins_imports_in_a_fresh_process_before_any_other_project_module():
    # a plugin module may be the first thing a process imports (an entry point, run.imports in a worker)
    script = "import sampler.plugins, sys; print(len(sampler.plugins.__all__))"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) == len(plugins.__all__)
