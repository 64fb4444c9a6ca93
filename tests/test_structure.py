"""The package's structure: the table of kinds is the one list of kinds, and model building,
serialization and the zoo do not import each other in a circle (function-level imports included)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import vaezoo
from vaezoo import hookspecs
from vaezoo.kinds import KINDS, TABLE

PACKAGE = Path(vaezoo.__file__).resolve().parent


def _imports(path: Path) -> set[str]:
    """Every vaezoo module ``path`` imports, at any level of the file."""
    module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    package = package.removesuffix(".__init__")
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            out |= {target, *(f"{target}.{a.name}" for a in node.names)}
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
    return {m for m in out if m.startswith("vaezoo")}


def _group(module: str) -> str | None:
    if module == "vaezoo.model":
        return "model"
    if module == "vaezoo.serialization":
        return "serialization"
    if module == "vaezoo.zoo" or module.startswith("vaezoo.zoo."):
        return "zoo"
    return None


def test_model_serialization_and_zoo_import_each_other_in_one_direction_only():
    edges = set()
    for path in PACKAGE.rglob("*.py"):
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
        here = _group(module)
        for target in _imports(path):
            there = _group(target)
            if here and there and here != there:
                edges.add((here, there))
    cycles = [(a, b) for a, b in edges if (b, a) in edges]
    assert not cycles, f"import cycle between {cycles}"


def test_every_kind_has_its_hook_and_base_class():
    for kind in TABLE:
        assert hasattr(hookspecs, kind.hook), kind.hook
        assert isinstance(kind.base_class(), type)
        check = kind.check_function()
        assert check is None or callable(check)
    assert len(set(KINDS)) == len(KINDS)


def test_the_list_of_kinds_is_written_once():
    """No module but vaezoo/kinds.py spells out the component kinds as a list."""
    pattern = re.compile(r"""["']encoder["']\s*,\s*["']decoder["']""")
    offenders = [str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py") if p.name != "kinds.py" and pattern.search(p.read_text())]
    assert offenders == []
