"""The package's import graph (issue 11, item 3): layers import one way, ``handler/`` imports
nothing outside itself, the I/O shell never imports the planner, and the package has one name."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import devkit

PKG = devkit.ROOT / "handler" / "smartcover"
LAYERS = ("core", "cloud", "flow", "ops", "scf", "cli")
"""Lowest first: a module may import its own layer and the ones before it."""
THIRD_PARTY = {"qcloud_cos", "requests", "urllib3", "defusedxml", "tencentcloud", "typing_extensions"}
"""What requirements.txt ships (typing_extensions: type checkers only, under TYPE_CHECKING)."""


def modules() -> list[Path]:
    return sorted(p for p in PKG.rglob("*.py"))


def name_of(path: Path) -> str:
    parts = path.relative_to(PKG.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list[tuple[int, str]]:
    """``(line, absolute module name)`` of every import in ``path``, at any depth (inside
    functions and TYPE_CHECKING blocks too)."""
    here = name_of(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
                if node.module is None:
                    out += [(node.lineno, f"{target}.{a.name}") for a in node.names]
                    continue
            else:
                target = node.module or ""
            out.append((node.lineno, target))
    return out


def layer(module: str) -> int:
    parts = module.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in LAYERS else -1


def test_every_module_is_in_a_layer():
    assert {p.parent.name for p in modules() if p.parent != PKG} == set(LAYERS)
    assert [p.name for p in PKG.glob("*.py")] == ["__init__.py"]


def test_nothing_under_handler_imports_outside_it():
    stdlib = set(sys.stdlib_module_names)
    bad = [f"{p.relative_to(devkit.ROOT)}:{line} imports {m}" for p in modules() for line, m in imports(p)
           if m.split(".")[0] not in stdlib | THIRD_PARTY | {"smartcover"}]
    assert bad == []


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PKG)))
def test_layers_import_one_way(path):
    mine = layer(name_of(path))
    upward = [f"line {line}: {m}" for line, m in imports(path) if m.startswith("smartcover.") and layer(m) > mine]
    assert upward == [], f"{name_of(path)} ({LAYERS[mine] if mine >= 0 else 'package'}) imports a higher layer"


def test_the_io_shell_depends_on_the_model_never_on_the_planner():
    planner = [f"{p.name}:{line}" for p in (PKG / "cloud").glob("*.py") for line, m in imports(p)
               if m in ("smartcover.core.plan", "smartcover.flow", "smartcover.core.parse") or m.startswith("smartcover.flow.")]
    assert planner == []


def test_the_adapter_and_the_operations_share_one_orchestration_module():
    users = {name_of(p) for p in modules() for _, m in imports(p) if m == "smartcover.flow.session"}
    assert {"smartcover.scf.app", "smartcover.ops.reconcile", "smartcover.ops.fanout"} <= users


def test_the_package_refuses_a_second_import_name():
    code = "import sys; sys.path.insert(0, '.'); import handler.smartcover"
    proc = subprocess.run([sys.executable, "-c", code], cwd=devkit.ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "import this package as 'smartcover'" in proc.stderr
