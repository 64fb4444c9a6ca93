"""vaezoo's own pretrained models: ``catalogue.json``, registered through ``vaezoo_register_pretrained``.

The built-in entries arrive through the same hook as any plugin's. The catalogue file is
``{"format": 1, "entries": {name: {config, weights, sha256, meta}}}``, written by
``vaezoo.zoo.publish`` with sorted keys and two-space indentation so diffs stay small.
"""

from __future__ import annotations

import importlib.resources
import json
import os
from pathlib import Path
from typing import Any

from ..hookspecs import hookimpl
from .errors import ZooError

FORMAT = 1
CATALOGUE_NAME = "catalogue.json"


def catalogue_path() -> Path:
    """The built-in catalogue file inside the installed package."""
    return Path(str(importlib.resources.files("vaezoo.zoo").joinpath(CATALOGUE_NAME)))


def read_catalogue(path: str | os.PathLike[str] | None = None, *, package: str = "vaezoo.zoo") -> dict[str, dict[str, Any]]:
    """Entries of a catalogue file as ``{name: fields}``; missing file: ``{}``. Without ``path``:
    the ``catalogue.json`` that ``package`` ships as package data (default: vaezoo's own)."""
    if path is None:
        resource = importlib.resources.files(package).joinpath(CATALOGUE_NAME)
        if not resource.is_file():
            return {}
        text, where = resource.read_text(encoding="utf-8"), str(resource)
    else:
        path = Path(path)
        if not path.is_file():
            return {}
        text, where = path.read_text(encoding="utf-8"), str(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ZooError(f"{where}: not valid JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("entries"), dict):
        raise ZooError(f"{where}: expected {{\"format\": {FORMAT}, \"entries\": {{...}}}}")
    return data["entries"]


def dumps(entries: dict[str, dict[str, Any]]) -> str:
    """The canonical text of a catalogue: sorted keys, indent 2, trailing newline."""
    clean = {name: {k: v for k, v in fields.items() if k != "name"} for name, fields in entries.items()}
    return json.dumps({"format": FORMAT, "entries": clean}, indent=2, sort_keys=True, allow_nan=False) + "\n"


def write_catalogue(entries: dict[str, dict[str, Any]], path: str | os.PathLike[str] | None = None) -> Path:
    """Write ``entries`` atomically in canonical form (default: the built-in catalogue file)."""
    from ..serialization import atomic_write

    path = Path(path) if path is not None else catalogue_path()
    text = dumps(entries)
    atomic_write(path, lambda p: Path(p).write_text(text, encoding="utf-8"))
    return path


def register_catalogue(register: Any, package: str) -> None:
    """Register every entry of the ``catalogue.json`` that ``package`` ships (a plugin's zoo entries,
    written by ``python -m vaezoo.zoo.publish ... --catalogue``), from its ``vaezoo_register_pretrained``
    hook; the registry checks each entry and names the plugin of a bad one."""
    for name, fields in sorted(read_catalogue(package=package).items()):
        register(name, fields)


@hookimpl
def vaezoo_register_pretrained(register):
    """Register every entry of the built-in ``catalogue.json``."""
    from .entry import PretrainedEntry

    for name, fields in sorted(read_catalogue().items()):
        register(name, PretrainedEntry.from_mapping(fields, name=name))
