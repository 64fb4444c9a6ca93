"""Recipes and run folders of earlier versions: their keys translated to today's config.

Every translation warns in one line (what moved where) and keeps what the old keys meant.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: Keys of earlier versions: ``train.<key>`` now lives in the ``objective`` section.
OLD_OBJECTIVE_KEYS = ("beta", "kl_warmup_epochs", "free_bits", "num_samples")
OLD_DEFAULTS = {"beta": 1.0, "kl_warmup_epochs": 10.0, "free_bits": 0.0, "num_samples": 1}


def translate_old_keys(update: dict[str, Any], origin: str) -> dict[str, Any]:
    """Move ``model.objective`` and ``train.{beta, kl_warmup_epochs, free_bits, num_samples}`` of
    older recipes (and run folders) into the ``objective`` section, with one warning line.

    The translation keeps what the old keys meant: a layer that names the objective
    (``model.objective``) brings the old defaults of the keys it does not give, and a zero
    ``free_bits`` (which did nothing) is dropped, since only ``elbo`` takes it.
    """
    model = update.get("model") if isinstance(update.get("model"), Mapping) else {}
    train = update.get("train") if isinstance(update.get("train"), Mapping) else {}
    old_name = model.get("objective")
    moved = [k for k in OLD_OBJECTIVE_KEYS if k in train]
    if old_name is None and not moved:
        return update
    update = dict(update)
    section = dict(update["objective"]) if isinstance(update.get("objective"), Mapping) else {}
    values = {k: train[k] for k in moved}
    if old_name is not None:
        update["model"] = {k: v for k, v in model.items() if k != "objective"}
        section.setdefault("name", old_name)
        values = {**OLD_DEFAULTS, **values}
    if moved:
        update["train"] = {k: v for k, v in train.items() if k not in OLD_OBJECTIVE_KEYS}
    if values.get("free_bits") in (0, 0.0):
        values.pop("free_bits")
    for key, value in values.items():
        section.setdefault(key, value)
    update["objective"] = section
    written = (["model.objective"] if old_name is not None else []) + [f"train.{k}" for k in moved]
    now = ["objective.name" if w == "model.objective" else f"objective.{w.split('.', 1)[1]}" for w in written]
    import warnings

    warnings.warn(
        f"{', '.join(written)} (in {origin}): these keys moved; write {', '.join(now)} (translated this time)",
        UserWarning,
        stacklevel=3,
    )
    return update


def translate_tensorboard(update: dict[str, Any], origin: str, loggers: Any) -> dict[str, Any]:
    """Replace ``log.tensorboard`` of older recipes and run folders by ``log.loggers``, with one
    warning line. ``loggers``: the list so far (the layers merged before this one).

    It keeps what the key meant: ``true`` wrote TensorBoard events when the package was
    installed, so it adds the ``tensorboard`` logger only if it is; ``false`` removes it.
    """
    log = update.get("log") if isinstance(update.get("log"), Mapping) else {}
    if "tensorboard" not in log:
        return update
    import importlib.util
    import warnings

    from .errors import ConfigError
    from .registry import plain_value

    log = dict(log)
    wanted = log.pop("tensorboard")
    if not isinstance(wanted, bool):
        raise ConfigError(f"log.tensorboard: expected true or false, got {wanted!r} (in {origin}); write log.loggers instead")
    note = ""
    if "loggers" not in log:  # the same layer names the loggers: the old key is just dropped
        def name(item: Any) -> Any:
            return item.get("name") if isinstance(item, Mapping) else item

        current = [item for item in (plain_value(loggers) or ["jsonl"]) if name(item) != "tensorboard"]
        if wanted:
            if importlib.util.find_spec("tensorboard") is not None:
                current.append("tensorboard")
            else:
                note = "; tensorboard is not installed, so it is left out as before"
        log["loggers"] = current
    shown = ", ".join(str(item.get("name")) if isinstance(item, Mapping) else str(item) for item in log["loggers"])
    warnings.warn(
        f"log.tensorboard (in {origin}): replaced by log.loggers; write log.loggers=[{shown}] (translated this time{note})",
        UserWarning,
        stacklevel=3,
    )
    return {**update, "log": log}
