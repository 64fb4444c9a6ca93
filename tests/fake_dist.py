"""Install a real (if tiny) distribution for a test: a module plus a ``.dist-info`` folder.

``importlib.metadata`` finds it on ``sys.path`` exactly as it finds a pip-installed package,
so discovery is exercised end to end, entry-point loading included.
"""

from __future__ import annotations

import importlib
import sys
import textwrap
from pathlib import Path


def install_distribution(
    root: Path, monkeypatch, *, dist: str, version: str, entry_points: dict[str, str], modules: dict[str, str]
) -> None:
    """Write ``modules`` (name -> source) and a dist-info declaring ``entry_points`` in group ``vaezoo``."""
    root.mkdir(parents=True, exist_ok=True)
    for name, source in modules.items():
        (root / f"{name}.py").write_text(textwrap.dedent(source))
    info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    lines = "\n".join(f"{k} = {v}" for k, v in entry_points.items())
    (info / "entry_points.txt").write_text(f"[vaezoo]\n{lines}\n")
    monkeypatch.syspath_prepend(str(root))
    for name in modules:
        monkeypatch.delitem(sys.modules, name, raising=False)
    importlib.invalidate_caches()
