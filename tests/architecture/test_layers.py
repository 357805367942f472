"""The package layout shows the architecture: a lower layer never imports an upper one."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# package -> packages it must never import (docs/design/architecture.md, "Layers")
FORBIDDEN = {
    "nvrlib": ("recorder", "webapp", "edge"),
    "edge": ("recorder", "webapp"),
    "recorder.store": ("recorder.supervise", "recorder.ingest", "recorder.health", "recorder.hub",
                       "recorder.control", "webapp"),
    "recorder.supervise": ("recorder.ingest", "recorder.health", "recorder.hub", "webapp"),
    "recorder.ingest": ("recorder.supervise", "recorder.store", "recorder.health", "recorder.hub",
                        "webapp"),
    "recorder.health": ("recorder.hub", "recorder.ingest", "webapp"),
    "recorder": ("webapp",),
    "webapp": ("recorder.hub", "recorder.ingest", "recorder.supervise.segmenter"),
}


def _modules() -> list[tuple[str, Path]]:
    found = []
    for top in ("nvrlib", "edge", "recorder", "webapp"):
        for path in sorted((ROOT / top).rglob("*.py")):
            found.append((".".join(path.relative_to(ROOT).with_suffix("").parts), path))
    return found


def _imports(module: str, path: Path) -> set[str]:
    names: set[str] = set()
    package = module.rsplit(".", 1)[0] if path.name != "__init__.py" else module
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def _layer(module: str) -> str | None:
    matches = [layer for layer in FORBIDDEN if module == layer or module.startswith(layer + ".")]
    return max(matches, key=len) if matches else None


@pytest.mark.parametrize("module,path", _modules(), ids=[m for m, _ in _modules()])
def test_module_imports_only_from_its_own_or_lower_layers(module: str, path: Path) -> None:
    layer = _layer(module)
    if layer is None:
        return
    bad = sorted(name for name in _imports(module, path)
                 for banned in FORBIDDEN[layer]
                 if name == banned or name.startswith(banned + "."))
    assert not bad, f"{module} ({layer}) imports {bad}"


def test_recorder_top_level_stays_small() -> None:
    flat = sorted(p.name for p in (ROOT / "recorder").glob("*.py"))
    assert len(flat) <= 8, f"recorder/ has {len(flat)} flat modules: {flat}"
