"""The pretrained model zoo: verified weights by name, from vaezoo and from plugins.

``vaezoo.from_pretrained("mlp-bernoulli.digits")`` or ``vaezoo.zoo.load_pretrained(...)``;
see ``docs/zoo.md``. Modules: ``entry`` (what an entry is), ``api`` (list/get/load),
``download`` (cache and verified downloads), ``catalogue`` (the built-in entries),
``publish`` (make an entry from a trained model), ``metrics`` (how entries are measured),
``cli`` (``vaezoo zoo ...``), ``docs`` (the table in docs/zoo.md).
"""

from __future__ import annotations

from typing import Any

from .entry import PretrainedEntry
from .errors import ChecksumError, DownloadError, InvalidEntryError, UnknownModelError, ZooError

# (``download`` is not re-exported: ``vaezoo.zoo.download`` is the module; use ``vaezoo.zoo.api.download``)
_API = ("list_pretrained", "get_entry", "load_pretrained")

__all__ = ["PretrainedEntry", "ZooError", "InvalidEntryError", "UnknownModelError", "DownloadError",
           "ChecksumError", *_API]


def __getattr__(name: str) -> Any:
    if name in _API:  # vaezoo.zoo.api imports lazily-heavy things; keep `import vaezoo.zoo` cheap
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'vaezoo.zoo' has no attribute {name!r}")
