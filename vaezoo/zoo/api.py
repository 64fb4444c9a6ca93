"""Using the zoo: list entries, look one up, fetch its weights, load the model.

Entries come from the ``vaezoo_register_pretrained`` hook (the built-in catalogue is one
plugin among others). A name registered by two plugins is an error naming both.
"""

from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import did_you_mean, one_of
from .entry import PretrainedEntry, as_entry
from .errors import UnknownModelError, ZooError

if TYPE_CHECKING:  # pragma: no cover
    import torch


def list_pretrained(pattern: str = "*") -> list[str]:
    """Sorted names of the registered zoo models matching the shell-style ``pattern``."""
    from ..registry import get_registry

    return sorted(n for n in get_registry().pretrained if fnmatch.fnmatchcase(n, pattern))


def get_entry(name: str) -> PretrainedEntry:
    """The validated ``PretrainedEntry`` registered as ``name``.

    Raises ``UnknownModelError`` (with a did-you-mean and the available names), or
    ``ZooError`` when two plugins registered the name or the entry is invalid.
    """
    from ..registry import get_registry

    table = get_registry().pretrained
    if not isinstance(name, str) or name not in table:
        raise UnknownModelError(
            f"unknown pretrained model {name!r}.{did_you_mean(str(name), table)} Available: {one_of(table)}"
        )
    registrations = table[name]
    if len(registrations) > 1:
        plugins = {source.plugin for _, source in registrations}
        if len(plugins) == 1:
            raise ZooError(f"pretrained model {name!r} is registered {len(registrations)} times by {registrations[0][1]}; "
                           f"a plugin must register each name once")
        raise ZooError(
            f"pretrained model {name!r} is registered by more than one plugin: "
            + " and ".join(str(source) for _, source in registrations)
            + "; uninstall one of them or limit the plugins with VAEZOO_PLUGINS"
        )
    obj, source = registrations[0]
    return as_entry(name, obj, f"from {source}")


def _entry(name_or_entry: str | PretrainedEntry) -> PretrainedEntry:
    return name_or_entry if isinstance(name_or_entry, PretrainedEntry) else get_entry(name_or_entry)


def download(name_or_entry: str | PretrainedEntry, progress: bool = True) -> Path:
    """A local, sha256-verified weights file for the entry (downloaded into the cache if needed).

    ``progress``: show a progress bar when stderr is a terminal. Packaged weights need no
    network. Raises ``DownloadError`` or ``ChecksumError``; nothing partial is ever cached.
    """
    from .download import ensure_weights

    return ensure_weights(_entry(name_or_entry), progress=progress)


def load_pretrained(name: str | PretrainedEntry, map_location: str | torch.device = "cpu", progress: bool = True) -> Any:
    """Build the zoo model ``name`` from its config and load its verified weights strictly.

    The full sha256 of the weights file is checked on every call before loading. Returns
    a ``vaezoo.VAE`` on ``map_location`` in eval mode, with ``model.pretrained`` set to the
    entry (config, metrics, provenance).
    """
    from ..model import build_model
    from ..serialization import load_weights

    entry = _entry(name)
    path = download(entry, progress=progress)
    model = build_model(entry.config)
    load_weights(model, path, map_location=map_location)
    model = model.to(map_location).eval()
    model.pretrained = entry
    return model
