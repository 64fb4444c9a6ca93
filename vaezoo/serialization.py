"""Saving and loading models as a folder: ``config.json`` beside ``model.safetensors``.

No pickle: weights are safetensors, the config is JSON. The safetensors metadata repeats
the config (as JSON text), the vaezoo version, and where each component came from, so a
weights file alone says what it is. Loading is strict: any missing or unexpected key is an
error that lists them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from .errors import CheckpointError, ConfigError, UnknownComponentError
from .fileio import atomic_write, atomic_write_bytes, default_file_mode  # noqa: F401  (re-exported)

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


def save_pretrained(model: Any, directory: str | os.PathLike[str], *, dtype: torch.dtype | None = None, extra_metadata: dict[str, str] | None = None) -> Path:
    """Write ``model`` (a ``vaezoo.VAE`` built from a config) into ``directory``.

    ``dtype`` (e.g. ``torch.float16``) stores floating-point weights in that precision;
    they are cast back to the model's dtype on load.
    """
    from . import __version__

    if model.config is None:
        raise CheckpointError("this VAE was not built by vaezoo.build_model, so it has no config to save; build it from a config")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config = model.config
    write_weights(model, directory / WEIGHTS_NAME, dtype=dtype, extra_metadata=extra_metadata)
    model_dtype = _float_dtype(model)
    text = json.dumps(
        {"vaezoo_version": __version__, "model": config, "components": model.sources, "dtype": model_dtype},
        indent=2,
        sort_keys=True,
    )
    atomic_write(directory / CONFIG_NAME, lambda p: Path(p).write_text(text + "\n"))
    return directory


def write_weights(model: Any, path: str | os.PathLike[str], *, dtype: torch.dtype | None = None,
                  extra_metadata: dict[str, str] | None = None) -> None:
    """The one writer of a model's weights file: ``weights_bytes`` written with ``atomic_write``."""
    atomic_write_bytes(path, weights_bytes(model, dtype=dtype, extra_metadata=extra_metadata))


def weights_bytes(model: Any, *, dtype: torch.dtype | None = None, extra_metadata: dict[str, str] | None = None) -> bytes:
    """A model's weights file, in memory: its ``state_dict`` (floating-point tensors in
    ``dtype`` if given) with the metadata that says what it is -- the config, the vaezoo
    version, where each component came from, the model's dtype -- plus ``extra_metadata``."""
    from . import __version__

    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    if dtype is not None:
        state = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in state.items()}
    metadata = {
        "format": "vaezoo",
        "vaezoo_version": __version__,
        "config": json.dumps(model.config, sort_keys=True),
        "components": json.dumps(model.sources, sort_keys=True),
        "dtype": _float_dtype(model),
        **(extra_metadata or {}),
    }
    return safetensors_bytes(unshared_tensors(state), metadata)


def write_safetensors(path: str | os.PathLike[str], tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    """The one writer of safetensors files: serialised in memory, then ``atomic_write``.

    (Not ``safetensors.torch.save_file``, whose own temporary file and rename would give the
    file mode 0600 and leave a stray temporary file when killed; a full disk or a read-only
    folder is a plain ``OSError`` naming the path.)
    """
    atomic_write_bytes(path, safetensors_bytes(tensors, metadata))


def safetensors_bytes(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> bytes:
    """``tensors`` and ``metadata`` as the bytes of a safetensors file."""
    from safetensors.torch import save

    return save(tensors, metadata=metadata)


def _float_dtype(model: torch.nn.Module) -> str:
    """The model's floating-point dtype as text (``"float32"``, ``"float64"``, ...)."""
    ref = next((t for t in model.state_dict().values() if t.is_floating_point()), None)
    return str(ref.dtype).removeprefix("torch.") if ref is not None else "float32"


def unshared_tensors(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Contiguous, non-aliasing copies (safetensors refuses shared storage)."""
    out: dict[str, torch.Tensor] = {}
    for k, v in state.items():
        out[k] = v.contiguous().clone() if v.data_ptr() in {t.data_ptr() for t in out.values()} else v.contiguous()
    return out


def read_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The safetensors metadata of a weights file.

    ``CheckpointError`` naming ``path`` if there is no such file or it is not a readable
    safetensors file; a ``PermissionError`` (the system's refusal) is raised as it is.
    """
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as fh:
            return dict(fh.metadata() or {})
    except PermissionError:
        raise
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such weights file") from None
    except Exception as exc:  # safetensors' SafetensorError (bad header, ...), a folder, ...
        lines = str(exc).strip().splitlines()
        raise CheckpointError(
            f"{path}: not a readable safetensors file ({type(exc).__name__}: {lines[0] if lines else 'no details'})"
        ) from exc


def load_weights(model: torch.nn.Module, source: str | os.PathLike[str] | bytes | bytearray | memoryview, *,
                 map_location: str | torch.device = "cpu", what: str | None = None) -> None:
    """The one loader of weights: a safetensors file, or its bytes in memory, into ``model``
    strictly (``load_state_strict``). Errors name ``what`` (default: the path; "weights" for bytes)."""
    from safetensors.torch import load, load_file

    in_memory = isinstance(source, (bytes, bytearray, memoryview))
    what = what or ("weights" if in_memory else str(source))
    try:
        if in_memory:
            state = {k: v.to(map_location) for k, v in load(bytes(source)).items()}
        else:
            state = load_file(str(source), device=str(map_location))
    except Exception as exc:
        raise CheckpointError(f"{what}: not a readable safetensors file ({type(exc).__name__}: {exc})") from exc
    load_state_strict(model, state, what)


def load_state_strict(model: torch.nn.Module, state: dict[str, torch.Tensor], what: str) -> None:
    """Load ``state`` into ``model``: every key present, no stray key, every shape right.

    Floating-point tensors are cast to the dtype of the model's own tensors. Errors name
    ``what`` (a file, a checkpoint section) and list the missing, unexpected or misshapen keys.
    """
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise CheckpointError(
            f"{what}: weights do not match the model: missing keys {missing or '[]'}, unexpected keys {unexpected or '[]'}"
        )
    wrong = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own if state[k].shape != own[k].shape]
    if wrong:
        raise CheckpointError(f"{what}: weights have the wrong shape for: {', '.join(wrong)}")
    bad = [k for k in sorted(state) if state[k].is_floating_point() and not bool(torch.isfinite(state[k]).all())]
    if bad:  # vaezoo never saves such weights (training stops first): the file was damaged or written elsewhere
        raise CheckpointError(f"{what}: weights hold NaN or infinite values in {', '.join(bad[:3])}"
                              f"{f' (and {len(bad) - 3} more)' if len(bad) > 3 else ''}; the file is damaged or not from vaezoo")
    state = {k: (v.to(device=own[k].device, dtype=own[k].dtype) if v.is_floating_point() else v.to(own[k].device)) for k, v in state.items()}
    model.load_state_dict(state, strict=True)


def read_config_json(path: Path) -> dict[str, Any]:
    """A model folder's ``config.json`` as the mapping ``save_pretrained`` writes (one-line ``CheckpointError``s)."""
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise CheckpointError(f"{path}: not a text file (not UTF-8); expected the JSON config save_pretrained writes") from None
    except RecursionError:
        raise CheckpointError(f"{path}: not valid JSON (nested too deeply)") from None
    except ValueError as exc:
        raise CheckpointError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(saved, dict):
        raise CheckpointError(f"{path}: expected a JSON object with the model's config under \"model\" (as "
                              f"save_pretrained writes), got {_json_kind(saved)}")
    if not isinstance(saved.get("model", saved), dict):
        raise CheckpointError(f"{path}: \"model\" must hold the model's config as an object (as save_pretrained "
                              f"writes), got {_json_kind(saved['model'])}")
    return saved


def _json_kind(value: Any) -> str:
    """How JSON names ``value``'s type: null, a boolean, a number, a string, an array or an object."""
    if value is None:
        return "null"
    for kind, name in ((bool, "a boolean"), ((int, float), "a number"), (str, "a string"), (list, "an array"),
                       (dict, "an object")):
        if isinstance(value, kind):
            return name
    return type(value).__name__


def load_folder(directory: str | os.PathLike[str], *, map_location: str | torch.device = "cpu") -> Any:
    """Load the model in a folder written by ``save_pretrained`` (``config.json`` + ``model.safetensors``).

    A component whose plugin is not installed is named in the error, with the plugin and
    distribution that provided it when the model was saved. (``vaezoo.from_pretrained`` also
    takes run folders, zoo names and ``file://`` URLs: ``vaezoo.loading``.)
    """
    from .model import build_model

    path = Path(directory)
    config_path = path / CONFIG_NAME
    weights_path = path / WEIGHTS_NAME
    for p in (config_path, weights_path):
        if not p.is_file():
            raise CheckpointError(f"{path}: missing {p.name}; a saved model is a folder with {CONFIG_NAME} and {WEIGHTS_NAME}")
    saved = read_config_json(config_path)
    config = saved.get("model", saved)
    components = saved.get("components", {})
    if not isinstance(components, dict):
        components = {}
    try:
        model = build_model(config)
    except ConfigError as exc:
        if not isinstance(exc.__cause__, UnknownComponentError):
            raise ConfigError(f"{config_path}: {exc}") from None  # which file holds the bad config
        cause = exc.__cause__
        if isinstance(cause, UnknownComponentError):
            import re

            found = re.match(r"model\.(\w+)", str(exc))
            kind = found.group(1) if found else "component"
            origin = components.get(kind, {}) if isinstance(components.get(kind), dict) else {}
            section = config.get(kind)
            wanted = section.get("name") if isinstance(section, dict) else section
            hint = ""
            if origin.get("distribution"):
                hint = f"; it came from plugin {origin.get('plugin')!r} (distribution {origin['distribution']} {origin.get('version') or ''}), install it: pip install {origin['distribution']}"
            raise CheckpointError(f"{path}: this model needs {kind} {wanted!r}, which is not installed{hint}") from exc
        raise
    dtype = saved.get("dtype", "float32")
    if dtype not in ("float32", "float64", "float16", "bfloat16"):
        raise CheckpointError(f"{config_path}: unknown dtype {dtype!r}; expected float32, float64, float16 or bfloat16")
    model = model.to(getattr(torch, dtype))
    load_weights(model, weights_path, map_location=map_location)
    return model.to(map_location)
