"""Hub names (``hf-hub:ORG/NAME[@REVISION]``), repository ids, the files of a vaezoo repository, and the errors."""

from __future__ import annotations

import re
from typing import Any

from ..errors import VaezooError, did_you_mean

HUB_PREFIX = "hf-hub:"
CONFIG_NAME = "config.json"  # = vaezoo.serialization.CONFIG_NAME (not imported: that module imports torch)
WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "README.md"
FILES = (WEIGHTS_NAME, CARD_NAME, CONFIG_NAME)  # the order they are written in: config.json last
INSTALL_HINT = "pip install 'vaezoo[hub]'"
SYNTAX = "hf-hub:ORG/NAME or hf-hub:ORG/NAME@REVISION (a branch, a tag or a commit hash)"

# The Hub's repository names: ORG/NAME, letters, digits, '-', '_', '.', at most 96 characters
# each, no '--' or '..', not starting or ending with '-' or '.'.
_PART = r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9_])?"
REPO_ID_PATTERN = re.compile(rf"^{_PART}/{_PART}$")
REVISION_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/\-]*$")
COMMIT_PATTERN = re.compile(r"^[0-9a-f]{40}$")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+._-]+):")  # 2+ characters: never a Windows drive letter

#: vaezoo dataset name -> the same data on the Hub (the card's ``datasets``); others are named as they are.
HUB_DATASETS = {"mnist": "ylecun/mnist", "fashion_mnist": "zalando-datasets/fashion_mnist", "cifar10": "uoft-cs/cifar10"}


class HubError(VaezooError):
    """A Hub name, repository, revision or file that cannot be used as asked (CLI exit 2)."""


class HubChecksumError(HubError):
    """Downloaded weights whose sha256 is not the one the repository's ``config.json`` records."""


class HubUnavailableError(OSError):
    """The Hub cannot be reached (or ``HF_HUB_OFFLINE`` is set) and the files are not cached (CLI exit 3)."""


def is_hub_name(source: Any) -> bool:
    """Whether ``source`` is meant as a Hub model (a string starting with ``hf-hub:``)."""
    return isinstance(source, str) and source.startswith(HUB_PREFIX)


def parse_name(name: str) -> tuple[str, str | None]:
    """``"hf-hub:ORG/NAME@REV"`` -> ``("ORG/NAME", "REV")`` (revision None when not given)."""
    if not is_hub_name(name):
        raise HubError(f"{name!r}: not a Hub model name; expected {SYNTAX}")
    rest = name[len(HUB_PREFIX):]
    repo_id, at, revision = rest.partition("@")
    check_repo_id(repo_id, what=name)
    if at and not (revision and REVISION_PATTERN.match(revision) and ".." not in revision):
        raise HubError(f"{name!r}: revision {revision!r} is not a branch, tag or commit hash; expected {SYNTAX}")
    return repo_id, (revision if at else None)


def check_repo_id(repo_id: str, *, what: str | None = None) -> str:
    """``repo_id`` if it is a valid ``ORG/NAME`` Hub repository id, else a ``HubError`` saying why."""
    label = repr(what if what is not None else repo_id)
    if not isinstance(repo_id, str) or not repo_id:
        raise HubError(f"{label}: no repository given; expected {SYNTAX}")
    if "/" not in repo_id:
        raise HubError(f"{label}: expected ORG/NAME (the owner, a '/', the repository), got {repo_id!r}; "
                       f"e.g. {HUB_PREFIX}someone/{repo_id}")
    if not REPO_ID_PATTERN.match(repo_id) or "--" in repo_id or ".." in repo_id:
        raise HubError(f"{label}: {repo_id!r} is not a Hub repository id: ORG/NAME of letters, digits, '-', '_' "
                       f"and '.', at most 96 characters each, no '--' or '..'")
    return repo_id


def scheme_hint(text: str) -> str:
    """`` Did you mean 'hf-hub:...'?`` for a string with a near-miss scheme (``hf:a/b``, ``hf_hub:a/b``), else ``""``."""
    found = _SCHEME.match(text)
    if not found or found.group(1).lower() in ("file", "hf-hub"):
        return ""
    scheme = found.group(1).lower()
    if scheme in ("hf", "hub", "huggingface", "hugging-face", "hf_hub", "hfhub") or did_you_mean(scheme, ["hf-hub"]):
        return f" Did you mean {HUB_PREFIX + text[found.end():].lstrip('/')!r}?"
    return ""
