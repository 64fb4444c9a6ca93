"""Models on the Hugging Face Hub: ``hf-hub:ORG/NAME[@REVISION]`` to load, ``push_to_hub`` to publish.

A vaezoo repository on the Hub holds three files: ``config.json`` (``save_pretrained``'s,
plus ``weights: {file, sha256, size}`` and, when known, ``data``: the ``DataConfig`` the
model was measured on), ``model.safetensors`` and ``README.md`` (the model card: YAML front
matter with ``library_name: vaezoo``, tags, datasets, license and the metrics as
``model-index``, then the recipe, the preprocessing, how to load it, the measured numbers).

Loading (``fetch``) downloads ``config.json`` at the revision asked for (default ``main``)
through ``huggingface_hub`` (its cache, ``HF_ENDPOINT``, ``HF_TOKEN``, ``HF_HUB_OFFLINE``),
then ``model.safetensors`` at the very commit that ``config.json`` came from, and checks
the weights' full sha256 against ``config.json`` before anything is loaded.

``huggingface_hub`` is optional (``pip install 'vaezoo[hub]'``); this module imports it
only when a Hub name is used. Errors are one line: ``HubError`` (a ``VaezooError``, CLI exit
2) for a bad name, a missing repository, revision or file, a sha256 mismatch, a missing
``huggingface_hub``; ``HubUnavailableError`` (an ``OSError``, exit 3) when the Hub cannot be
reached, or ``HF_HUB_OFFLINE`` is set, and the files are not in the cache.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import VaezooError, did_you_mean
from .fileio import atomic_write, remove_stale_temp

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


# -- names ---------------------------------------------------------------------------------
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


# -- loading -------------------------------------------------------------------------------
def _hf() -> Any:
    """The ``huggingface_hub`` module, or a ``HubError`` saying how to install it."""
    try:
        import huggingface_hub
    except ImportError:
        raise HubError(f"Hugging Face Hub models need the huggingface_hub package, which is not installed: "
                       f"{INSTALL_HINT}") from None
    return huggingface_hub


def _hf_errors(hf: Any) -> dict[str, type[BaseException]]:
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


def _constants(hf: Any) -> Any:
    """``huggingface_hub.constants`` (a submodule that is not always imported with the package)."""
    import importlib

    try:
        return importlib.import_module(f"{hf.__name__}.constants")
    except ImportError:
        return None


def offline_mode(hf: Any = None) -> bool:
    """Whether ``HF_HUB_OFFLINE`` is set (as huggingface_hub read it at import, or in the environment now)."""
    if hf is not None and getattr(_constants(hf), "HF_HUB_OFFLINE", False):
        return True
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in ("1", "ON", "YES", "TRUE")


def _endpoint(hf: Any) -> str:
    return str(getattr(_constants(hf), "ENDPOINT", "https://huggingface.co")).rstrip("/")


def _cache_dir(hf: Any) -> str:
    return str(getattr(_constants(hf), "HF_HUB_CACHE", "the Hugging Face cache"))


def _first_line(exc: BaseException | None) -> str:
    lines = [line.strip() for line in str(exc or "").splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def _download(hf: Any, name: str, repo_id: str, filename: str, revision: str | None) -> Path:
    """``hf_hub_download`` of one file, its errors turned into one-line vaezoo errors."""
    from . import __version__

    errors = _hf_errors(hf)
    offline = offline_mode(hf)
    at = f" at revision {revision!r}" if revision else ""
    try:
        return Path(hf.hf_hub_download(repo_id, filename, revision=revision, library_name="vaezoo",
                                       library_version=__version__, local_files_only=offline))
    except errors["GatedRepoError"]:
        raise HubError(f"{name}: the repository {repo_id} on {_endpoint(hf)} is gated: accept its conditions on its "
                       f"page and log in (hf auth login, or set HF_TOKEN)") from None
    except errors["RepositoryNotFoundError"]:
        raise HubError(f"{name}: no repository {repo_id} on {_endpoint(hf)} (or it is private: log in with "
                       f"hf auth login, or set HF_TOKEN); check the name, ORG/NAME") from None
    except errors["RevisionNotFoundError"]:
        raise HubError(f"{name}: the repository {repo_id} has no revision {revision!r}; give a branch, a tag or a "
                       f"commit hash of it, or leave '@{revision}' out for its main branch") from None
    except errors["LocalEntryNotFoundError"] as exc:
        if offline:
            raise HubUnavailableError(
                f"{name}: {filename} is not in the local Hugging Face cache ({_cache_dir(hf)}) and HF_HUB_OFFLINE is "
                f"set, so nothing is downloaded; load it once with the network on, or unset HF_HUB_OFFLINE") from None
        cause = exc.__cause__ or exc.__context__
        raise HubUnavailableError(
            f"{name}: cannot reach the Hub at {_endpoint(hf)} ({_first_line(cause or exc)}) and {filename}{at} is not "
            f"in the local cache ({_cache_dir(hf)}); check the network, HF_ENDPOINT, or set HF_HUB_OFFLINE=1 to use "
            f"the cache only") from None
    except errors["EntryNotFoundError"]:
        raise HubError(f"{name}: the repository {repo_id} has no {filename}{at}, so it is not a vaezoo model "
                       f"(one holds {CONFIG_NAME}, {WEIGHTS_NAME} and {CARD_NAME}: push one with model.push_to_hub "
                       f"or vaezoo zoo push)") from None
    except errors["OfflineModeIsEnabled"]:
        raise HubUnavailableError(f"{name}: HF_HUB_OFFLINE is set and {filename}{at} is not in the local cache "
                                  f"({_cache_dir(hf)}); unset HF_HUB_OFFLINE to download it") from None
    except errors["HfHubHTTPError"] as exc:
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if status in (401, 403):
            raise HubError(f"{name}: the Hub refused access to {repo_id} (HTTP {status}); log in with hf auth login, "
                           f"or set HF_TOKEN to a token that can read it") from None
        raise HubUnavailableError(f"{name}: the Hub at {_endpoint(hf)} failed to serve {filename} "
                                  f"({_first_line(exc)}); try again later") from None
    except Exception as exc:  # a connection that failed while downloading (huggingface_hub passes these on)
        if not _network_error(exc):
            raise
        raise HubUnavailableError(f"{name}: cannot download {filename} from the Hub at {_endpoint(hf)} "
                                  f"({type(exc).__name__}: {_first_line(exc)})") from None


def _network_error(exc: BaseException) -> bool:
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
    hf = _hf()
    config_path = _download(hf, name, repo_id, CONFIG_NAME, revision)
    folder = config_path.parent
    commit = folder.name if COMMIT_PATTERN.match(folder.name) else revision
    expected = recorded_sha256(config_path, name)
    weights_path = _download(hf, name, repo_id, WEIGHTS_NAME, commit)
    if weights_path.parent != folder:  # both files of one commit share its snapshot folder in the cache
        raise HubError(f"{name}: {CONFIG_NAME} and {WEIGHTS_NAME} were not found in one snapshot folder of the "
                       f"cache ({folder}, {weights_path.parent}); delete the repository from the cache and retry")
    from .zoo.download import sha256_file

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


# -- what to publish -----------------------------------------------------------------------
def build_folder(source: Any, directory: str | os.PathLike[str], *, repo_id: str | None = None,
                 license: str | None = None) -> Path:
    """Write the folder that ``push_to_hub`` uploads into ``directory``; no network. Returns it.

    ``source``: a ``vaezoo`` model, a zoo name or ``PretrainedEntry``, or a model or run
    folder. Writes ``model.safetensors`` (a zoo entry's or a folder's file byte for byte;
    a model's current weights), ``README.md`` and last ``config.json`` (with
    ``weights.sha256``), each atomically. ``repo_id`` goes into the card's loading example;
    ``license`` (an SPDX id) overrides the entry's. ``directory`` must be new, empty, or
    hold only these three files.
    """
    if repo_id is not None:
        check_repo_id(repo_id)
    out = Path(directory)
    if out.exists():
        remove_stale_temp([out])  # what a killed write of an earlier call left behind
        if not out.is_dir():
            raise HubError(f"{out}: expected a folder to write {', '.join(FILES)} into, got a file")
        stray = sorted(p.name for p in out.iterdir() if p.name not in FILES)
        if stray:
            raise HubError(f"{out}: not empty (holds {', '.join(stray[:3])}{', ...' if len(stray) > 3 else ''}); "
                           f"give a new or empty folder to write the Hub files into")
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="vaezoo-hub-"))
    try:
        info = _describe(source, staging)
        if _same_folder(info.get("folder"), out):
            raise HubError(f"{out}: is the model folder being published; write the Hub files into another folder")
        if license is not None:
            info["license"] = license
        from .zoo.download import sha256_file

        weights = staging / WEIGHTS_NAME
        saved = info["saved"]
        saved["weights"] = {"file": WEIGHTS_NAME, "sha256": sha256_file(weights), "size": weights.stat().st_size}
        if info.get("data"):
            saved["data"] = info["data"]
        card = model_card(info, repo_id=repo_id)
        config_text = json.dumps(saved, indent=2, sort_keys=True, allow_nan=False) + "\n"
        atomic_write(out / WEIGHTS_NAME, lambda p: shutil.copyfile(weights, p))
        atomic_write(out / CARD_NAME, lambda p: Path(p).write_text(card, encoding="utf-8"))
        atomic_write(out / CONFIG_NAME, lambda p: Path(p).write_text(config_text, encoding="utf-8"))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


def _same_folder(a: Any, b: Path) -> bool:
    try:
        return a is not None and Path(a).resolve() == b.resolve()
    except OSError:
        return False


def _describe(source: Any, staging: Path) -> dict[str, Any]:
    """What the card says about ``source``, with its weights copied or written to ``staging/model.safetensors``.

    Keys: saved (the config.json mapping), title, zoo, config, num_params, description,
    license, citation, vaezoo_version, dataset, metrics, data, recipe, recipe_text,
    training, reference, storage_dtype, folder (the source folder, for folders).
    """
    from .zoo.entry import PretrainedEntry

    if isinstance(source, PretrainedEntry):
        return _describe_entry(source, staging)
    if isinstance(source, (str, os.PathLike)):
        text = str(source)
        path = Path(text)
        if path.exists():
            return _describe_folder(path, staging)
        if "/" in text or os.sep in text or text.startswith("file:"):
            raise HubError(f"{text}: no such folder; expected a model folder ({CONFIG_NAME} + {WEIGHTS_NAME}), "
                           f"a run folder, or a zoo name (see 'vaezoo zoo list')")
        from .zoo.api import get_entry

        return _describe_entry(get_entry(text), staging)
    if callable(getattr(source, "state_dict", None)) and hasattr(source, "config"):
        return _describe_model(source, staging)
    raise HubError(f"cannot publish a {type(source).__name__}: expected a vaezoo model, a zoo name, or a model or "
                   f"run folder")


def _entry_info(entry: Any) -> dict[str, Any]:
    meta = entry.meta
    keys = ("num_params", "description", "license", "citation", "vaezoo_version", "dataset", "metrics", "recipe",
            "training", "reference")
    info = {k: meta[k] for k in keys if k in meta}
    info.update(title=entry.name, zoo=entry.name, config=entry.config, data=entry.data_config,
                storage_dtype=meta.get("dtype"))
    info["recipe_text"] = _read_recipe(meta.get("recipe"))
    return info


def _describe_entry(entry: Any, staging: Path) -> dict[str, Any]:
    from . import __version__
    from .zoo.api import download

    path = download(entry, progress=False)  # its full sha256 checked by this call
    shutil.copyfile(path, staging / WEIGHTS_NAME)
    info = _entry_info(entry)
    info["saved"] = {"vaezoo_version": __version__, "model": entry.config, "components": _components(path),
                     "dtype": "float32", "zoo": {"name": entry.name, "sha256": entry.sha256}}
    return info


def _components(weights: Path) -> dict[str, Any]:
    from .serialization import read_metadata

    try:
        found = json.loads(read_metadata(weights).get("components") or "{}")
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def _describe_model(model: Any, staging: Path) -> dict[str, Any]:
    from .errors import CheckpointError
    from .serialization import save_pretrained

    if getattr(model, "config", None) is None:
        raise CheckpointError("this model was not built by vaezoo.build_model, so it has no config to push; "
                              "build it from a config")
    entry = getattr(model, "pretrained", None)
    if entry is not None and _unchanged(model, entry):
        return _describe_entry(entry, staging)
    save_pretrained(model, staging)
    saved = json.loads((staging / CONFIG_NAME).read_text(encoding="utf-8"))
    (staging / CONFIG_NAME).unlink()
    info: dict[str, Any] = {"saved": saved, "title": None, "config": model.config,
                            "num_params": sum(int(p.numel()) for p in model.parameters())}
    if entry is not None:
        info["changed_from"] = entry.name
    return info


def _unchanged(model: Any, entry: Any) -> bool:
    """Whether ``model``'s weights are still exactly those of the zoo entry it was loaded from."""
    from safetensors.torch import load_file

    from .zoo.api import download

    try:
        shipped = load_file(str(download(entry, progress=False)))
    except Exception:
        return False
    own = model.state_dict()
    if set(shipped) != set(own):
        return False
    for key, value in own.items():
        value = value.detach().cpu()
        other = shipped[key].to(value.dtype) if value.is_floating_point() else shipped[key]
        if other.shape != value.shape or not bool((other == value).all()):
            return False
    return True


def _describe_folder(path: Path, staging: Path) -> dict[str, Any]:
    from . import __version__
    from .serialization import read_metadata

    from .errors import CheckpointError
    from .loading import locate

    try:
        model_dir, run_dir = locate(path)
    except CheckpointError as exc:
        raise HubError(str(exc)) from None
    try:
        saved = json.loads((model_dir / CONFIG_NAME).read_text(encoding="utf-8"))
    except ValueError as exc:
        raise HubError(f"{model_dir / CONFIG_NAME}: not valid JSON ({exc})") from None
    if not isinstance(saved, dict) or not isinstance(saved.get("model"), dict):
        raise HubError(f"{model_dir / CONFIG_NAME}: expected the model's config under \"model\", as save_pretrained "
                       f"writes it")
    saved.pop("weights", None)
    saved.setdefault("vaezoo_version", __version__)
    shutil.copyfile(model_dir / WEIGHTS_NAME, staging / WEIGHTS_NAME)
    run_meta: dict[str, Any] = {}
    raw = read_metadata(model_dir / WEIGHTS_NAME).get("vaezoo_run")
    if raw:
        try:
            found = json.loads(raw)
            run_meta = found if isinstance(found, dict) else {}
        except ValueError:
            run_meta = {}
    run_config = _read_yaml(run_dir / "config.yaml") if run_dir is not None else {}
    data = run_config.get("data") if isinstance(run_config.get("data"), dict) else run_meta.get("data")
    data = saved.get("data") if not isinstance(data, dict) else data
    data = {**data, "root": None} if isinstance(data, dict) and data.get("name") else None
    info: dict[str, Any] = {"saved": saved, "title": (run_dir or model_dir).name, "config": saved["model"],
                            "vaezoo_version": saved.get("vaezoo_version"), "data": data, "folder": model_dir}
    scores = _read_json(run_dir / "eval.json") if run_dir is not None else {}
    if data and all(isinstance(scores.get(k), (int, float)) for k in ("elbo", "nll", "bits_per_dim")):
        info["metrics"] = {"neg_elbo": -float(scores["elbo"]), "nll": float(scores["nll"]),
                           "bits_per_dim": float(scores["bits_per_dim"]),
                           **{k: scores[k] for k in ("num_samples", "num_examples") if isinstance(scores.get(k), int)}}
        info["dataset"] = {"name": data["name"], "split": str(scores.get("split", "test")),
                           "preprocessing": preprocessing_words(data)}
    elif data:
        info["dataset"] = {"name": data["name"], "preprocessing": preprocessing_words(data)}
    if run_config:
        info["recipe_text"] = _dump_yaml(_portable({**run_config, "data": data or run_config.get("data")}))
        train = run_config.get("train") if isinstance(run_config.get("train"), dict) else {}
        training = {"epochs": run_meta.get("epochs"), "threads": train.get("num_threads") or None}
        info["training"] = {k: v for k, v in training.items() if isinstance(v, int) and not isinstance(v, bool)}
    return info


def _portable(value: Any) -> Any:
    """``value`` with every absolute or home path (``/...``, ``~/...``, ``C:\\...``) replaced by None:
    a card names no folder of the machine the model was trained on."""
    if isinstance(value, dict):
        return {k: _portable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_portable(v) for v in value]
    if isinstance(value, str) and (value.startswith(("/", "~")) or re.match(r"^[A-Za-z]:[\\/]", value)):
        return None
    return value


def preprocessing_words(data: Mapping[str, Any]) -> str:
    """The preprocessing a ``DataConfig`` mapping asks for, in words (pixels scaled, binarized, ...)."""
    steps = ["pixels scaled to [0, 1]"]
    binarize = data.get("binarize", "none")
    if binarize == "dynamic":
        steps.append("binarized anew every batch in training (data.binarize=dynamic), the test set once with a "
                     "fixed seed")
    elif binarize == "static":
        steps.append(f"binarized once with data.seed={data.get('seed', 0)} (data.binarize=static)")
    if data.get("dequantize"):
        steps.append(f"uniformly dequantized into {2 ** int(data.get('bits', 8))} bins (data.dequantize=true)")
    elif data.get("bits") not in (None, 8):
        steps.append(f"quantized to {int(data['bits'])} bits")
    if data.get("image_size"):
        steps.append(f"resized to {data['image_size']}x{data['image_size']}")
    if data.get("grayscale"):
        steps.append("converted to grayscale")
    if data.get("flatten"):
        steps.append("flattened")
    return "; ".join(steps)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def _read_yaml(path: Path) -> dict[str, Any]:
    import yaml

    try:
        found = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return {}
    return found if isinstance(found, dict) else {}


def _dump_yaml(value: Any) -> str:
    import yaml

    return yaml.safe_dump(value, sort_keys=False, default_flow_style=False, allow_unicode=True, width=100)


def _read_recipe(recipe: Any) -> str | None:
    """The text of a zoo recipe (``configs/zoo/<name>.yaml``) when this checkout has it, else None."""
    if not isinstance(recipe, str) or Path(recipe).is_absolute() or ".." in Path(recipe).parts:
        return None
    for root in (Path.cwd(), Path(__file__).resolve().parent.parent):
        candidate = root / recipe
        if candidate.is_file():
            try:
                return candidate.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                return None
    return None


# -- the model card ------------------------------------------------------------------------
def card_metadata(info: Mapping[str, Any]) -> dict[str, Any]:
    """The card's YAML front matter: library_name, tags, datasets, license, pipeline_tag, model-index."""
    config = info.get("config") or {}
    meta: dict[str, Any] = {"library_name": "vaezoo"}
    license = info.get("license")
    if isinstance(license, str) and license:
        simple = re.fullmatch(r"[A-Za-z0-9.+\-]+", license)
        meta["license"] = license.lower() if simple else "other"
        if not simple:
            meta["license_name"] = license
    tags = ["vaezoo", "vae", "variational-autoencoder", "safetensors"]
    for kind in ("architecture", "prior", "likelihood"):
        section = config.get(kind, "vae" if kind == "architecture" else None)
        value = section.get("name") if isinstance(section, dict) else section
        if isinstance(value, str) and value not in tags:
            tags.append(value)
    meta["tags"] = tags
    dataset = info.get("dataset") or {}
    data_name = dataset.get("name")
    if data_name:
        meta["datasets"] = [HUB_DATASETS.get(data_name, data_name)]
    images = len(config.get("data_shape") or ()) == 3
    if images:
        meta["pipeline_tag"] = "unconditional-image-generation"
    metrics = info.get("metrics")
    if metrics and data_name:
        k = metrics.get("num_samples")
        rows = [{"type": "nll", "name": f"NLL (nats{f', K={k} importance samples' if k else ''})",
                 "value": _round(metrics["nll"])},
                {"type": "neg_elbo", "name": "negative ELBO (nats)", "value": _round(metrics["neg_elbo"])},
                {"type": "bits_per_dim", "name": "bits/dim", "value": _round(metrics["bits_per_dim"])}]
        task = ({"type": "unconditional-image-generation", "name": "Density estimation"} if images
                else {"type": "density-estimation", "name": "Density estimation"})
        meta["model-index"] = [{
            "name": info.get("title") or "vaezoo model",
            "results": [{"task": task,
                         "dataset": {"name": data_name, "type": HUB_DATASETS.get(data_name, data_name),
                                     "split": dataset.get("split", "test")},
                         "metrics": rows}],
        }]
    return meta


def _round(value: Any) -> float:
    return round(float(value), 4)


def _num(value: Any, digits: int = 4) -> str:
    return f"{float(value):.{digits}f}" if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)


def model_card(info: Mapping[str, Any], *, repo_id: str | None = None) -> str:
    """The ``README.md`` of a Hub repository: YAML front matter (``card_metadata``), then the body."""
    import yaml

    front = yaml.safe_dump(card_metadata(info), sort_keys=False, allow_unicode=True, width=1000)
    name = f"{HUB_PREFIX}{repo_id}" if repo_id else f"{HUB_PREFIX}ORG/NAME"
    title = info.get("title") or (repo_id.split("/")[1] if repo_id else "vaezoo model")
    config = info.get("config") or {}
    saved = info.get("saved") or {}
    out = ["---", front.rstrip("\n"), "---", "", f"# {title}", ""]
    out += [str(info.get("description") or "A variational autoencoder made with vaezoo."), ""]

    out += ["## Model", ""]
    out.append(f"- architecture: `{config.get('architecture', 'vae')}`; data shape `{config.get('data_shape')}`, "
               f"latent dimension `{config.get('latent_dim')}`")
    from .kinds import KINDS

    for kind in KINDS:
        if kind in config:
            out.append(f"- {kind}: `{json.dumps(config[kind], sort_keys=True)}`")
    if info.get("num_params"):
        out.append(f"- parameters: {int(info['num_params']):,}")
    weights = saved.get("weights") or {}
    stored = f", stored in {info['storage_dtype']}" if info.get("storage_dtype") else ""
    out.append(f"- weights: `{WEIGHTS_NAME}`{stored}, {weights.get('size', '?'):,} bytes, sha256 "
               f"`{weights.get('sha256', '?')}` (recorded in `{CONFIG_NAME}`, checked before every load)"
               if isinstance(weights.get("size"), int) else f"- weights: `{WEIGHTS_NAME}`{stored}")
    if info.get("zoo"):
        out.append(f"- the vaezoo zoo entry `{info['zoo']}`, byte for byte (`vaezoo zoo info {info['zoo']}`)")
    if info.get("changed_from"):
        out.append(f"- loaded from the zoo entry `{info['changed_from']}`, then changed: its measured numbers do "
                   f"not apply")
    out.append("")

    condition = config.get("condition") if isinstance(config.get("condition"), Mapping) else {}
    labelled = "classes" in condition
    y = "3" if labelled else "cov" if condition else None
    sample = (f"x = model.sample(16, y={y})  # 16 samples given y ({'class 3' if labelled else 'cov: (16, C) covariates'})"
              if y else "x = model.sample(16)                   # 16 samples, shape (16, *data_shape)")
    score = (f"log_px = model.log_likelihood(x, num_samples=1000, y={y})  # importance-sampled log p(x|y), nats" if y else
             "log_px = model.log_likelihood(x, num_samples=1000)  # importance-sampled log p(x), nats")
    out += ["## How to load", "", "```python", "import vaezoo  # pip install 'vaezoo[hub]'", "",
            f"model = vaezoo.from_pretrained({name!r})  # or {name + '@REVISION'!r}", sample, score, "```", "",
            "On the command line:", "", "```bash", f"vaezoo eval {name} --num-samples 5000",
            f"vaezoo sample {name} --n 64{' --label 3' if labelled else ''} --out samples.png", "```", "",
            "huggingface_hub's cache, `HF_TOKEN` and `HF_HUB_OFFLINE=1` (use the cache only) apply.", ""]

    metrics = info.get("metrics")
    dataset = info.get("dataset") or {}
    out += ["## Measured quality", ""]
    if metrics:
        split = dataset.get("split", "test")
        k = metrics.get("num_samples")
        nll = _num(metrics["nll"])
        if isinstance(metrics.get("nll_se"), (int, float)):
            nll += f" ± {_num(metrics['nll_se'])} (standard error over the examples)"
        how = ", ".join(([f"K={k}"] if k else []) + ([f"seed {metrics['seed']}"] if "seed" in metrics else []))
        out += ["| metric | value |", "| --- | --- |",
                f"| NLL, importance-sampled{f' ({how})' if how else ''} | {nll} nats |",
                f"| negative ELBO | {_num(metrics['neg_elbo'])} nats |",
                f"| bits/dim | {_num(metrics['bits_per_dim'])} |"]
        conv = metrics.get("convergence")
        if isinstance(conv, dict) and "nll" in conv:
            out.append(f"| NLL again with K={conv.get('num_samples')}, seed {conv.get('seed')} (convergence check) "
                       f"| {_num(conv['nll'])} nats |")
        reference = info.get("reference")
        if isinstance(reference, dict) and "nll" in reference:
            out.append(f"| published NLL of {reference.get('model')} ({reference.get('source')}) "
                       f"| {_num(reference['nll'])} nats |")
        count = f"{metrics['num_examples']:,} " if isinstance(metrics.get("num_examples"), int) else ""
        out += ["", f"Nats per example on the {count}examples of the {dataset.get('name')} {split} split, "
                    f"measured on these weights"
                    + (f" by vaezoo {info['vaezoo_version']}" if info.get("vaezoo_version") else "") + ".", ""]
    else:
        out += ["Not measured: no numbers were recorded with this model.", ""]

    data = info.get("data")
    if dataset or data:
        out += ["## Data and preprocessing", ""]
        if dataset.get("name"):
            out.append(f"Dataset `{dataset['name']}`" + (f", {dataset['split']} split" if dataset.get("split") else "")
                       + (f": {dataset['preprocessing']}." if dataset.get("preprocessing") else "."))
        if data:
            out += ["", f"The data config (`data` in `{CONFIG_NAME}`; `vaezoo eval` measures on it):", "",
                    "```yaml", _dump_yaml(dict(data)).rstrip("\n"), "```"]
        out.append("")

    recipe, text, training = info.get("recipe"), info.get("recipe_text"), info.get("training") or {}
    if recipe or text or training:
        out += ["## Recipe", ""]
        if recipe:
            out.append(f"Trained with `vaezoo train {recipe}` (the recipe in the vaezoo repository):")
        elif text:
            out.append("Trained with `vaezoo train` on this configuration (the run's `config.yaml`):")
        if text:
            out += ["", "```yaml", text.rstrip("\n"), "```"]
        parts = []
        if training.get("epochs") is not None:
            parts.append(f"{training['epochs']} epochs")
        if training.get("wall_time_s") is not None:
            parts.append(f"{float(training['wall_time_s']):,.0f} s of training")
        if training.get("threads"):
            parts.append(f"{training['threads']} thread{'s' if training['threads'] != 1 else ''}")
        if training.get("hardware"):
            parts.append(f"hardware: {training['hardware']}")
        if parts:
            out += ["", "Training: " + ", ".join(parts) + "."]
        out.append("")

    if info.get("citation"):
        out += ["## Citation", "", str(info["citation"]), ""]
    out += ["## Files", "", f"- `{CONFIG_NAME}`: the model config vaezoo builds it from, the weights' sha256"
            + (" and the data config" if data else ""), f"- `{WEIGHTS_NAME}`: the weights (safetensors, no pickle)",
            f"- `{CARD_NAME}`: this card", ""]
    return "\n".join(out)


def read_card_metadata(text: str) -> dict[str, Any]:
    """The YAML front matter of a model card as a mapping (empty when there is none)."""
    import yaml

    if not text.startswith("---\n"):
        return {}
    end = text.find("\n---\n", 4)
    if end < 0:
        return {}
    found = yaml.safe_load(text[4:end])
    return found if isinstance(found, dict) else {}


# -- publishing ----------------------------------------------------------------------------
def push_to_hub(source: Any, repo_id: str, *, revision: str | None = None, private: bool | None = None,
                token: str | None = None, commit_message: str | None = None, license: str | None = None,
                folder: str | os.PathLike[str] | None = None) -> str:
    """Upload ``source`` (a model, a zoo name or entry, a model or run folder) to the Hub repository ``repo_id``.

    Builds the folder (``build_folder``; into ``folder`` when given, kept; else a temporary
    one), creates the repository if needed (``private``), creates the branch ``revision``
    if needed, and commits ``config.json``, ``model.safetensors`` and ``README.md`` in one
    commit. ``token``: default huggingface_hub's (``HF_TOKEN`` or ``hf auth login``).
    Returns the name that loads it: ``hf-hub:ORG/NAME`` (``@REVISION`` for a branch).
    """
    check_repo_id(repo_id)
    if revision is not None and not (REVISION_PATTERN.match(revision) and ".." not in revision):
        raise HubError(f"--revision {revision!r}: not a branch name; letters, digits, '.', '_', '-' and '/'")
    hf = _hf()
    with tempfile.TemporaryDirectory(prefix="vaezoo-push-") as tmp:
        where = build_folder(source, folder if folder is not None else Path(tmp) / "repo", repo_id=repo_id,
                             license=license)
        upload_folder(hf, where, repo_id, revision=revision, private=private, token=token,
                      commit_message=commit_message)
    return f"{HUB_PREFIX}{repo_id}" + (f"@{revision}" if revision else "")


def upload_folder(hf: Any, folder: Path, repo_id: str, *, revision: str | None = None, private: bool | None = None,
                  token: str | None = None, commit_message: str | None = None) -> Any:
    """Commit the three files of ``folder`` to ``repo_id`` (creating the repository and branch); one-line errors."""
    errors = _hf_errors(hf)
    name = f"{HUB_PREFIX}{repo_id}"
    try:
        api = hf.HfApi(token=token)
        api.create_repo(repo_id, private=private, exist_ok=True)
        if revision is not None:
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        operations = [hf.CommitOperationAdd(path_in_repo=n, path_or_fileobj=str(folder / n)) for n in FILES]
        return api.create_commit(repo_id, operations=operations, revision=revision,
                                 commit_message=commit_message or f"Upload vaezoo model ({', '.join(FILES)})")
    except errors["OfflineModeIsEnabled"]:
        raise HubUnavailableError(f"{name}: HF_HUB_OFFLINE is set, so nothing can be pushed; unset it") from None
    except errors["RepositoryNotFoundError"]:
        raise HubError(f"{name}: the Hub at {_endpoint(hf)} has no repository {repo_id} that you may write to; "
                       f"log in (hf auth login, or set HF_TOKEN) as its owner or a member of {repo_id.split('/')[0]}") \
            from None
    except errors["HfHubHTTPError"] as exc:
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if status in (401, 403):
            raise HubError(f"{name}: the Hub refused the upload (HTTP {status}); log in with hf auth login, or set "
                           f"HF_TOKEN to a token with write access to {repo_id}") from None
        if status is not None and 400 <= status < 500:
            raise HubError(f"{name}: the Hub refused the upload (HTTP {status}: {_first_line(exc)})") from None
        raise HubUnavailableError(f"{name}: the Hub at {_endpoint(hf)} failed during the upload "
                                  f"({_first_line(exc)}); try again later") from None
    except Exception as exc:
        if not _network_error(exc):
            raise
        raise HubUnavailableError(f"{name}: cannot reach the Hub at {_endpoint(hf)} "
                                  f"({type(exc).__name__}: {_first_line(exc)})") from None


# -- vaezoo zoo push -----------------------------------------------------------------------
PUSH_EPILOG = """\
examples:
  vaezoo zoo push mlp-bernoulli.digits someone/mlp-bernoulli-digits     a zoo model, its weights byte for byte
  vaezoo zoo push runs/digits-20250101-120000 someone/my-vae --private  a run: its eval.json, config.yaml, data
  vaezoo zoo push my-model someone/my-vae --revision v1                 a model folder, to the branch v1
  vaezoo zoo push mlp-bernoulli.digits someone/x --out hub-x --dry-run  write the files only, upload nothing

log in first (hf auth login, or set HF_TOKEN); load it back with vaezoo.from_pretrained("hf-hub:someone/my-vae").
"""


def add_push_parser(subparsers: Any) -> Any:
    """Add ``push`` to ``vaezoo zoo``'s subparsers (argparse only: nothing heavy is imported)."""
    import argparse

    q = subparsers.add_parser(
        "push", help="upload a model to the Hugging Face Hub, with its model card",
        description="Upload config.json (with the weights' sha256), model.safetensors and a README.md model card "
                    "to a Hugging Face Hub model repository, in one commit. Needs " + INSTALL_HINT + ".",
        epilog=PUSH_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    q.add_argument("source", metavar="NAME_OR_FOLDER", help="a zoo name, a model folder or a run folder")
    q.add_argument("repo_id", metavar="REPO_ID", help="the Hub repository, ORG/NAME (created if it does not exist)")
    q.add_argument("--revision", metavar="BRANCH", help="commit to this branch (created from main if needed)")
    q.add_argument("--private", action="store_true", help="create the repository private")
    q.add_argument("--license", metavar="SPDX", help="the weights' license for the card (default: the zoo entry's)")
    q.add_argument("--message", metavar="TEXT", help="the commit message")
    q.add_argument("--out", metavar="DIR", help="write the three files into DIR too (new or empty), and keep them")
    q.add_argument("--dry-run", action="store_true", help="write the files (into --out) and upload nothing")
    return q


def run_push(args: Any) -> int:
    """``vaezoo zoo push``: build the folder, upload it (unless ``--dry-run``), say where it went."""
    check_repo_id(args.repo_id, what=args.repo_id)
    if args.dry_run:
        if not args.out:
            raise HubError("--dry-run: nothing would be kept; give --out DIR to write the files into")
        where = build_folder(args.source, args.out, repo_id=args.repo_id, license=args.license)
        print(f"wrote {', '.join(FILES)} to {where} (nothing uploaded)")
        return 0
    name = push_to_hub(args.source, args.repo_id, revision=args.revision, private=True if args.private else None,
                       commit_message=args.message, license=args.license, folder=args.out)
    hf = _hf()
    print(f"pushed {args.source} to {_endpoint(hf)}/{args.repo_id}" + (f" (branch {args.revision})" if args.revision
                                                                          else ""))
    print(f"load it with: vaezoo.from_pretrained({name!r})")
    return 0
