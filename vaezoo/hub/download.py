"""Loading from the Hub: ``fetch`` downloads a repository's files at one commit through
``huggingface_hub`` and verifies the weights' sha256 before anything is loaded."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .names import CARD_NAME, COMMIT_PATTERN, CONFIG_NAME, HubChecksumError, HubError, HubUnavailableError, INSTALL_HINT, WEIGHTS_NAME, parse_name


def hf_library() -> Any:
    """The ``huggingface_hub`` module, or a ``HubError`` saying how to install it."""
    try:
        import huggingface_hub
    except ImportError:
        raise HubError(f"Hugging Face Hub models need the huggingface_hub package, which is not installed: "
                       f"{INSTALL_HINT}") from None
    return huggingface_hub


def hf_errors(hf: Any) -> dict[str, type[BaseException]]:
    """huggingface_hub's error classes by name (a missing one, in some version, matches nothing)."""

    class _Never(Exception):
        pass

    names = ("GatedRepoError", "RepositoryNotFoundError", "RevisionNotFoundError", "LocalEntryNotFoundError",
             "EntryNotFoundError", "HfHubHTTPError", "OfflineModeIsEnabled")
    import importlib

    try:
        utils = importlib.import_module(f"{hf.__name__}.utils")
    except ImportError:
        utils = None
    found = {n: getattr(utils, n, None) for n in names}
    return {n: cls if isinstance(cls, type) and issubclass(cls, BaseException) else _Never for n, cls in found.items()}


def hf_constants(hf: Any) -> Any:
    """``huggingface_hub.constants`` (a submodule that is not always imported with the package)."""
    import importlib

    try:
        return importlib.import_module(f"{hf.__name__}.constants")
    except ImportError:
        return None


def offline_mode(hf: Any = None) -> bool:
    """Whether ``HF_HUB_OFFLINE`` is set (as huggingface_hub read it at import, or in the environment now)."""
    if hf is not None and getattr(hf_constants(hf), "HF_HUB_OFFLINE", False):
        return True
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in ("1", "ON", "YES", "TRUE")


def endpoint(hf: Any) -> str:
    return str(getattr(hf_constants(hf), "ENDPOINT", "https://huggingface.co")).rstrip("/")


def cache_dir(hf: Any) -> str:
    return str(getattr(hf_constants(hf), "HF_HUB_CACHE", "the Hugging Face cache"))


def first_line(exc: BaseException | None) -> str:
    lines = [line.strip() for line in str(exc or "").splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


@contextlib.contextmanager
def quiet_retries() -> Iterator[None]:
    """huggingface_hub's own warnings (one line per retry of a failed request) held back: a
    failure ends as one vaezoo error line, not a dozen lines before it."""
    log = logging.getLogger("huggingface_hub")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


def _download(hf: Any, name: str, repo_id: str, filename: str, revision: str | None) -> Path:
    """``hf_hub_download`` of one file, its errors turned into one-line vaezoo errors."""
    from .. import __version__

    errors = hf_errors(hf)
    offline = offline_mode(hf)
    at = f" at revision {revision!r}" if revision else ""
    try:
        with quiet_retries():
            return Path(hf.hf_hub_download(repo_id, filename, revision=revision, library_name="vaezoo",
                                           library_version=__version__, local_files_only=offline))
    except errors["GatedRepoError"]:
        raise HubError(f"{name}: the repository {repo_id} on {endpoint(hf)} is gated: accept its conditions on its "
                       f"page and log in (hf auth login, or set HF_TOKEN)") from None
    except errors["RepositoryNotFoundError"]:
        raise HubError(f"{name}: no repository {repo_id} on {endpoint(hf)} (or it is private: log in with "
                       f"hf auth login, or set HF_TOKEN); check the name, ORG/NAME") from None
    except errors["RevisionNotFoundError"]:
        raise HubError(f"{name}: the repository {repo_id} has no revision {revision!r}; give a branch, a tag or a "
                       f"commit hash of it, or leave '@{revision}' out for its main branch") from None
    except errors["LocalEntryNotFoundError"] as exc:
        if offline:
            raise HubUnavailableError(
                f"{name}: {filename} is not in the local Hugging Face cache ({cache_dir(hf)}) and HF_HUB_OFFLINE is "
                f"set, so nothing is downloaded; load it once with the network on, or unset HF_HUB_OFFLINE") from None
        cause = exc.__cause__ or exc.__context__
        raise HubUnavailableError(
            f"{name}: cannot reach the Hub at {endpoint(hf)} ({first_line(cause or exc)}) and {filename}{at} is not "
            f"in the local cache ({cache_dir(hf)}); check the network, HF_ENDPOINT, or set HF_HUB_OFFLINE=1 to use "
            f"the cache only") from None
    except errors["EntryNotFoundError"]:
        raise HubError(f"{name}: the repository {repo_id} has no {filename}{at}, so it is not a vaezoo model "
                       f"(one holds {CONFIG_NAME}, {WEIGHTS_NAME} and {CARD_NAME}: push one with model.push_to_hub "
                       f"or vaezoo zoo push)") from None
    except errors["OfflineModeIsEnabled"]:
        raise HubUnavailableError(f"{name}: HF_HUB_OFFLINE is set and {filename}{at} is not in the local cache "
                                  f"({cache_dir(hf)}); unset HF_HUB_OFFLINE to download it") from None
    except errors["HfHubHTTPError"] as exc:
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if status in (401, 403):
            raise HubError(f"{name}: the Hub refused access to {repo_id} (HTTP {status}); log in with hf auth login, "
                           f"or set HF_TOKEN to a token that can read it") from None
        raise HubUnavailableError(f"{name}: the Hub at {endpoint(hf)} failed to serve {filename} "
                                  f"({first_line(exc)}); try again later") from None
    except Exception as exc:  # a connection that failed while downloading (huggingface_hub passes these on)
        if not is_network_error(exc):
            raise
        raise HubUnavailableError(f"{name}: cannot download {filename} from the Hub at {endpoint(hf)} "
                                  f"({type(exc).__name__}: {first_line(exc)})") from None


def is_network_error(exc: BaseException) -> bool:
    """A failed connection, timeout or broken transfer, whichever HTTP library huggingface_hub uses."""
    top = (type(exc).__module__ or "").split(".")[0]
    return isinstance(exc, (ConnectionError, TimeoutError)) or top in (
        "httpx", "httpx2", "httpcore", "httpcore2", "requests", "urllib3")


def fetch(name: str) -> Path:
    """The local folder (in huggingface_hub's cache) of the Hub model ``name``, its weights verified.

    ``name`` is ``hf-hub:ORG/NAME`` or ``hf-hub:ORG/NAME@REVISION``. The folder holds
    ``config.json`` and ``model.safetensors`` of one commit; the weights' full sha256 was
    checked against ``config.json`` by this call (``HubChecksumError`` otherwise: nothing
    is to be loaded). Raises ``HubError`` / ``HubUnavailableError`` (see the module).
    """
    repo_id, revision = parse_name(name)
    hf = hf_library()
    config_path = _download(hf, name, repo_id, CONFIG_NAME, revision)
    folder = config_path.parent
    commit = folder.name if COMMIT_PATTERN.match(folder.name) else revision
    expected = recorded_sha256(config_path, name)
    weights_path = _download(hf, name, repo_id, WEIGHTS_NAME, commit)
    if weights_path.parent != folder:  # both files of one commit share its snapshot folder in the cache
        raise HubError(f"{name}: {CONFIG_NAME} and {WEIGHTS_NAME} were not found in one snapshot folder of the "
                       f"cache ({folder}, {weights_path.parent}); delete the repository from the cache and retry")
    from ..zoo.download import sha256_file

    actual = sha256_file(weights_path)
    if actual != expected:
        where = f"{repo_id}@{commit}" if commit else repo_id
        raise HubChecksumError(
            f"{name}: {WEIGHTS_NAME} of {where} has sha256 {actual}, but its {CONFIG_NAME} records {expected}; "
            f"nothing was loaded (the repository's files do not belong together: push them again; or the cached "
            f"copy {weights_path.resolve()} is damaged: delete it)")
    return folder


def recorded_sha256(config_path: str | os.PathLike[str], name: str = "") -> str:
    """The weights' sha256 that a pushed ``config.json`` records (``weights.sha256``), or a ``HubError``."""
    label = name or str(config_path)
    try:
        saved = json.loads(Path(config_path).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise HubError(f"{label}: {CONFIG_NAME} is not valid JSON ({exc})") from None
    weights = saved.get("weights") if isinstance(saved, dict) else None
    digest = weights.get("sha256") if isinstance(weights, dict) else None
    if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-fA-F]{64}", digest):
        raise HubError(
            f"{label}: {CONFIG_NAME} records no sha256 of {WEIGHTS_NAME} (expected \"weights\": {{\"sha256\": "
            f"<64 hex digits>}}, as model.push_to_hub and vaezoo zoo push write it), so the weights cannot be "
            f"verified; nothing was loaded")
    return digest.lower()


def recorded_data(folder: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The ``DataConfig`` mapping a model folder's ``config.json`` records under ``data`` (None if none)."""
    path = Path(folder) / CONFIG_NAME
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    data = saved.get("data") if isinstance(saved, dict) else None
    return dict(data) if isinstance(data, dict) and data.get("name") else None
