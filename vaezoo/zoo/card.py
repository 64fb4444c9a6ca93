"""What a zoo entry's model card records beside its numbers, and the checks of its values.

The preprocessing protocol of the measurement (``evaluation_data``), the training record
read from the run folder (``training_record``), vaezoo's license and version, this
machine's hardware in one line, and ``check_card``, which refuses a bad card value in one
line naming its flag. ``vaezoo.zoo.publish`` is their one user.
"""

from __future__ import annotations

from collections.abc import Mapping
import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from .errors import ZooError

TRAINING_FLAGS = {"epochs": "--epochs", "wall_time_s": "--wall-time", "threads": "--threads", "hardware": "--hardware"}


def run_config(run_dir: Path | None) -> dict[str, Any]:
    """The run's ``config.yaml`` as plain data (empty without one)."""
    if run_dir is None or not (run_dir / "config.yaml").is_file():
        return {}
    from omegaconf import OmegaConf

    config = OmegaConf.to_container(OmegaConf.load(run_dir / "config.yaml"), resolve=True)
    return config if isinstance(config, dict) else {}


def evaluation_data(run_data: dict[str, Any], likelihood: Any = None) -> tuple[dict[str, Any], dict[str, Any], str]:
    """``(config to measure with, portable config to record, preprocessing note)``.

    The note states each step ``vaezoo.data.load_data`` takes: scaling, quantization to the
    likelihood's grid, binarization and its seed, dequantization and its seed.
    """
    from ..data import as_config
    from ..data.preprocess import FIXED_SEED

    from .units import grey_levels, resolved_data

    measured = dataclasses.asdict(resolved_data(run_data, likelihood, where=None))  # unset binarize/dequantize resolved
    levels = grey_levels(measured)
    steps = [f"pixels v = 0..{levels - 1} scaled to v/{levels - 1} in [0, 1]" if levels else "pixels scaled to [0, 1]"]
    quant_bits = getattr(likelihood, "bits", None)
    if quant_bits is not None:
        steps.append(f"quantized to the likelihood's {int(quant_bits)}-bit grid k/{2 ** int(quant_bits) - 1}")
    binarize = measured.get("binarize", "none")
    if binarize in ("dynamic", "static"):
        measured["binarize"] = "static"
        training = ("training data binarized anew every batch (data.binarize=dynamic)" if binarize == "dynamic"
                    else f"training data binarized once with data.seed={measured.get('seed', 0)}")
        steps.append(f"test set binarized once with the fixed seed {FIXED_SEED} (each pixel 1 with probability "
                     f"its intensity; data.binarize=static); {training}")
    if measured.get("dequantize"):
        b = int(measured.get("bits", 8))
        steps.append(f"test set uniformly dequantized once with the fixed seed {FIXED_SEED}: (k + u)/{2 ** b}, "
                     f"k = round({2 ** b - 1}x), u ~ U[0, 1); training data dequantized anew every batch")
    steps += transform_steps(measured)
    measured = dataclasses.asdict(as_config(measured))
    recorded = {**measured, "root": None, "download": False}  # portable: found in the default places
    return measured, recorded, "; ".join(steps)


def training_record(model_dir: Path, run_dir: Path | None) -> dict[str, Any]:
    """``{epochs, wall_time_s, threads}`` from the run's metrics.jsonl, config.yaml (``train.num_threads``;
    0, torch's default, is not recorded) and weights metadata, when known."""
    out: dict[str, Any] = {}
    threads = (run_config(run_dir).get("train") or {}).get("num_threads")
    if isinstance(threads, int) and not isinstance(threads, bool) and threads > 0:
        out["threads"] = threads
    from ..serialization import WEIGHTS_NAME, read_metadata

    from ..evaluation import parse_run_metadata

    raw = read_metadata(model_dir / WEIGHTS_NAME).get("vaezoo_run")
    if raw:
        epochs = parse_run_metadata(raw, model_dir / WEIGHTS_NAME).get("epochs")
        if isinstance(epochs, int):
            out["epochs"] = epochs
    log = run_dir / "metrics.jsonl" if run_dir is not None else None
    if log is not None and log.is_file():
        per_epoch: dict[int, float] = {}
        for line in log.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if record.get("kind") == "epoch" and isinstance(record.get("time/epoch"), (int, float)):
                per_epoch[int(record["epoch"])] = float(record["time/epoch"])  # a resumed epoch: last wins
        if per_epoch:
            out.setdefault("epochs", max(per_epoch))
            out["wall_time_s"] = round(sum(per_epoch.values()), 1)
    return out


def vaezoo_version() -> str:
    from .. import __version__

    return __version__


def project_license() -> str:
    """vaezoo's license as its package metadata states it (pyproject.toml ``license``)."""
    from importlib.metadata import PackageNotFoundError, metadata

    try:
        info = metadata("vaezoo")
    except PackageNotFoundError:
        raise ZooError("--license: vaezoo's package metadata is not installed (pip install -e .); "
                       "give the license of the weights, e.g. --license MIT") from None
    found = info.get("License-Expression") or info.get("License")
    if not found:
        raise ZooError("--license: vaezoo's package metadata states no license; give one, e.g. --license MIT")
    return str(found)


def describe_hardware() -> str:
    """This machine in one line: the CPU model (``/proc/cpuinfo`` "model name", else
    ``platform.processor()``), the number of CPUs, and the CUDA GPU when one is available."""
    import platform

    model = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Model", "cpu model") and value.strip():
                    model = value.strip()
                    break
    except OSError:
        pass
    model = " ".join((model or platform.processor() or platform.machine() or "unknown CPU").split())
    text = f"{model}, {os.cpu_count() or '?'} CPUs ({platform.machine() or '?'}, {platform.system() or '?'})"
    try:
        import torch

        if torch.cuda.is_available():
            text += f", GPU {torch.cuda.get_device_name(0)}"
    except Exception:  # pragma: no cover - a broken CUDA setup must not stop publishing
        pass
    from .entry import field_problem

    if field_problem("meta.training.hardware", text) is not None:  # e.g. a model name that looks like a path
        text = f"{os.cpu_count() or '?'} CPUs ({platform.machine() or '?'}, {platform.system() or '?'})"
    return text


def check_card(card: dict[str, Any], training: dict[str, Any], reference: dict[str, Any] | None) -> None:
    """One-line ``ZooError`` naming the flag of the first bad model-card value."""
    from .entry import field_problem

    checks = [(f"--{k}", f"meta.{k}", v) for k, v in card.items() if v is not None]
    checks += [(TRAINING_FLAGS.get(k, k), f"meta.training.{k}", v) for k, v in training.items()]
    if reference is not None:
        given = [k for k in ("nll", "model", "source") if reference.get(k) is not None]
        if given and len(given) < 3:
            raise ZooError("--reference-nll, --reference-model, --reference-source: give all three or none "
                           f"(got only {', '.join('--reference-' + k for k in given)})")
        checks += [(f"--reference-{k}", f"meta.reference.{k}", reference[k]) for k in given]
    for flag, path, value in checks:
        problem = field_problem(path, value)
        if problem is not None:
            raise ZooError(f"{flag}: {problem}")


def transform_steps(data: Mapping[str, Any]) -> list[str]:
    """The data section's resizing, grayscale and flattening, in words (nothing when none is asked for)."""
    steps = []
    if data.get("image_size"):
        steps.append(f"resized to {data['image_size']}x{data['image_size']}")
    if data.get("grayscale"):
        steps.append("converted to grayscale")
    if data.get("flatten"):
        steps.append("flattened")
    return steps
