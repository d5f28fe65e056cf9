"""algos/ reads and writes no files: machine facts and checkpoints are the sampler's, handed in as values."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Calls that open, read or write a file, whatever object they are called on (open, Path.read_text, torch.load,
# np.save, ...); os and pathlib cover the rest of what a module would need to reach the file system.
FILE_CALLS = {"open", "read_text", "read_bytes", "write_text", "write_bytes", "load", "save", "loadtxt",
              "savetxt", "fromfile", "tofile", "listdir", "scandir", "walk", "glob", "rglob", "iterdir"}
FILE_MODULES = {"os", "pathlib", "io", "shutil", "tempfile", "glob"}
FILE_PREFIXES = ("/proc", "/sys", "/dev", "/etc")


def file_access(source: str) -> list[str]:
    """What in `source` reaches the file system, as 'line N: what'."""
    found = []
    for node in ast.walk(ast.parse(source)):
        where = f"line {getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
            if name in FILE_CALLS:
                found.append(f"{where}: calls {name}()")
            if name == "Path":
                found.append(f"{where}: builds a Path")
        elif isinstance(node, ast.Import | ast.ImportFrom):
            modules = [alias.name for alias in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            found += [f"{where}: imports {m}" for m in modules if m.split(".")[0] in FILE_MODULES]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith(FILE_PREFIXES):
            found.append(f"{where}: names {node.value}")
    return found


def test_no_algos_module_reaches_the_file_system():
    paths = sorted((ROOT / "algos").rglob("*.py"))
    assert len(paths) > 10
    found = {str(path.relative_to(ROOT)): file_access(path.read_text()) for path in paths}
    assert not {path: what for path, what in found.items() if what}


def test_the_check_sees_the_ways_a_module_reads_a_file():
    source = '''
import functools
from pathlib import Path

def flags():
    with open("/proc/cpuinfo") as f:
        return f.read()

def config(path):
    return Path(path).read_text(), torch.load(path)
'''
    assert set(file_access(source)) == {
        "line 3: imports pathlib", "line 6: calls open()", "line 6: names /proc/cpuinfo",
        "line 10: builds a Path", "line 10: calls read_text()", "line 10: calls load()",
    }
    assert file_access("x = model.load_state_dict(state)\ny = torch.tensor([1.0]).view(-1)\n") == []
