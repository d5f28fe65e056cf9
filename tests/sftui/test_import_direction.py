"""sftui -> sampler -> algos, never back; the headless path never loads textual or rich."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = {"algos": {"sampler", "sftui", "textual", "rich"}, "sampler": {"sftui", "textual", "rich"}}


def _imported_roots(package: str) -> dict[str, set[str]]:
    found = {}
    for path in (ROOT / package).rglob("*.py"):
        roots = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                roots |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                roots.add(node.module.split(".")[0])
        found[str(path.relative_to(ROOT))] = roots
    return found


def test_no_module_imports_against_the_direction():
    for package, forbidden in FORBIDDEN.items():
        for path, roots in _imported_roots(package).items():
            assert not roots & forbidden, f"{path} imports {roots & forbidden}"


def _loaded_after(code: str) -> set[str]:
    script = code + "\nimport sys; print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, check=True)
    return set(out.stdout.split())


def test_headless_modules_load_no_ui_in_a_fresh_process():
    loaded = _loaded_after(
        "import sftui.cli, sftui.report, sftui.detach, sampler.run.supervisor, sampler.experiment.prepare, "
        "sampler.experiment.control")
    assert not loaded & {"textual", "rich"}
    assert not _loaded_after("import algos.appo, algos.models, algos.returns") & {"sampler", "sftui"}


def test_a_spawned_worker_reimporting_the_cli_main_loads_no_ui(tmp_path):
    main = tmp_path / "main_like_console_script.py"
    main.write_text(textwrap.dedent("""
        import multiprocessing as mp
        import sys
        from sftui.cli import main  # what the console script imports; a spawned child re-imports this file

        def report(queue):
            queue.put(sorted({m.split('.')[0] for m in sys.modules}))

        if __name__ == "__main__":
            ctx = mp.get_context("spawn")
            queue = ctx.SimpleQueue()
            child = ctx.Process(target=report, args=(queue,))
            child.start()
            print(" ".join(queue.get()))
            child.join()
    """))
    out = subprocess.run([sys.executable, str(main)], capture_output=True, text=True, cwd=ROOT, check=True)
    loaded = set(out.stdout.split())
    assert "sftui" in loaded  # the main module was re-imported in the child
    assert not loaded & {"textual", "rich"}
