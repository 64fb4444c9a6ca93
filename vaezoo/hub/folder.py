"""What to publish: ``build_folder`` writes the folder a Hub repository holds, from a model,
a zoo entry or a model or run folder; no network."""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..fileio import atomic_write, remove_stale_temp
from .card import dump_yaml, model_card
from .names import CARD_NAME, CONFIG_NAME, FILES, HubError, WEIGHTS_NAME, check_repo_id


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
    staging = Path(tempfile.mkdtemp(prefix="vaezoo-hub-"))
    try:
        info = _describe(source, staging)
        if _same_folder(info.get("folder"), out):
            raise HubError(f"{out}: is the model folder being published; write the Hub files into another folder")
        out.mkdir(parents=True, exist_ok=True)  # only once the source is known to be publishable
        if license is not None:
            info["license"] = license
        from ..zoo.download import sha256_file

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
    from ..zoo.entry import PretrainedEntry

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
        from ..zoo.api import get_entry

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
    from .. import __version__
    from ..zoo.api import download

    path = download(entry, progress=False)  # its full sha256 checked by this call
    shutil.copyfile(path, staging / WEIGHTS_NAME)
    info = _entry_info(entry)
    info["saved"] = {"vaezoo_version": __version__, "model": entry.config, "components": _components(path),
                     "dtype": "float32", "zoo": {"name": entry.name, "sha256": entry.sha256}}
    return info


def _components(weights: Path) -> dict[str, Any]:
    from ..serialization import read_metadata

    try:
        found = json.loads(read_metadata(weights).get("components") or "{}")
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def _describe_model(model: Any, staging: Path) -> dict[str, Any]:
    from ..errors import CheckpointError
    from ..serialization import save_pretrained

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

    from ..zoo.api import download

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
    from .. import __version__
    from ..serialization import read_metadata

    from ..errors import CheckpointError
    from ..loading import locate

    try:
        model_dir, run_dir = locate(path)
    except CheckpointError as exc:
        raise HubError(str(exc)) from None
    from ..errors import VaezooError
    from ..serialization import load_folder, read_config_json

    try:
        saved = read_config_json(model_dir / CONFIG_NAME)
        if not isinstance(saved.get("model"), dict):
            raise CheckpointError(f"{model_dir / CONFIG_NAME}: expected the model's config under \"model\", as "
                                  f"save_pretrained writes it")
        load_folder(model_dir)  # what a user of the Hub repository will do: it must work here first
    except VaezooError as exc:
        raise HubError(f"{exc} (not published: the folder must load as a vaezoo model)") from None
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
        info["recipe_text"] = dump_yaml(_portable({**run_config, "data": data or run_config.get("data")}))
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
    from ..zoo.card import transform_steps

    return "; ".join(steps + transform_steps(data))


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
