"""``vaezoo.fit``: train a model from Python on a tensor, a ``Dataset`` or a ``DataLoader``.

The same ``Trainer`` as ``vaezoo train`` (one loop); options are the config's ``train.*``
keys and ``objective``, with the same defaults and checks. See docs/python.md.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from torch import Tensor, nn

from ..conditioning import check_labels
from ..errors import ConfigError, VaezooError, did_you_mean, one_of
from .trainer import FitResult

# option name -> config key, besides every train.* key under its own name
_EXTRA_OPTIONS = {"objective": "objective", "log_interval": "log.interval", "val_batch_size": "eval.batch_size"}


def option_keys() -> dict[str, str]:
    """Every option of ``fit`` and the config key it sets."""
    from ..config import TrainConfig

    return {**{f.name: f"train.{f.name}" for f in dataclasses.fields(TrainConfig)}, **_EXTRA_OPTIONS}


def fit(
    model: nn.Module,
    train: Any,
    val: Any = None,
    *,
    run_dir: str | Path | None = None,
    callbacks: list[Any] | None = None,
    loggers: list[Any] | None = None,
    resume: str | Path | None = None,
    verbose: bool = True,
    **options: Any,
) -> FitResult:
    """Train ``model`` in place on ``train`` (validating on ``val``); returns the ``FitResult``.

    ``train`` / ``val``: a float tensor ``(N, *model.data_shape)``, a ``Dataset`` whose items
    are ``x`` or ``(x, label)``, or a ``DataLoader`` of such batches; used as given (no
    binarization or scaling). ``options``: ``epochs``, ``lr``, ``batch_size``, ``schedule``,
    ``ema``, ``patience``, ``seed``, ``num_threads``, ... (every ``train.*`` key), ``objective``
    (a name or ``{name: ..., <params>}``), ``log_interval`` (steps per ``on_step_end``) and
    ``val_batch_size``. ``run_dir=None`` writes nothing; a folder gets ``metrics.jsonl``,
    image grids and a resumable checkpoint per epoch. ``loggers``: trackers that also get the
    records, figures and final model, as ``log.loggers`` (names, ``{name: ..., <params>}``) or
    ``vaezoo.Logger`` instances; they need a ``run_dir``. ``callbacks`` are added to the defaults;
    an ``EarlyStopping`` or ``Checkpoint`` among them replaces the default one. ``resume``: a
    checkpoint file to continue from (model, optimizer, EMA, progress) up to ``epochs``; with
    the same data and options the result repeats an uninterrupted run.

    Afterwards ``model`` holds the weights ``vaezoo train`` would publish (the best validation
    epoch's with ``restore_best`` and validation data, else the EMA's with ``ema``, else the
    last) and is in eval mode. Mistakes raise a one-line ``ConfigError`` before any training.
    """
    from ..config import to_container
    from .callbacks import Checkpoint, EarlyStopping
    from .distributed import setup, teardown
    from .metrics import MetricsLog
    from .trainer import Trainer, torch_settings

    cfg = fit_config(options, verbose=verbose)
    trackers = _loggers(loggers, run_dir)
    shape = tuple(getattr(model, "data_shape", None) or ())
    splits = SimpleNamespace(train=as_source(train, "train", shape), val=None if val is None else as_source(val, "val", shape))
    for split in ("train", "val"):
        check_labels(getattr(model, "condition", None), getattr(splits, split), split)
    chosen = list(callbacks or [])
    for cb in chosen:
        if not all(callable(getattr(cb, e, None)) for e in _EVENTS):
            raise ConfigError(
                f"vaezoo.fit: callbacks: {cb!r} is not a callback (subclass vaezoo.Callback; events: {', '.join(_EVENTS)})"
            )
    if not any(isinstance(cb, EarlyStopping) for cb in chosen):
        chosen.insert(0, EarlyStopping(int(cfg.train.patience)))
    elif int(cfg.train.patience) > 0:
        raise ConfigError("vaezoo.fit: patience is set and an EarlyStopping callback is given; pass one of them")
    if run_dir is not None and not any(isinstance(cb, Checkpoint) for cb in chosen):
        chosen.append(Checkpoint(run_dir))
    info = setup(str(cfg.train.device))
    try:
        with torch_settings(cfg.train):
            model.to(info.device)
            if run_dir is not None and info.is_main:
                Path(run_dir).mkdir(parents=True, exist_ok=True)
            echo = print if verbose and info.is_main else (lambda _msg: None)
            metrics = MetricsLog(Path(run_dir) if run_dir is not None and info.is_main else None,
                                 loggers=trackers if info.is_main else [], config=to_container(cfg))
            try:
                trainer = Trainer(cfg, model, splits, run_dir, info, metrics=metrics, echo=echo, callbacks=chosen)
                if resume is not None:
                    _resume(trainer, Path(resume), int(cfg.train.epochs))
                result = trainer.fit()
            finally:
                metrics.close()
            result.weights = trainer.final_weights()
            model.eval()
            return result
    finally:
        teardown(info)


def _loggers(loggers: Any, run_dir: Any) -> list[Any]:
    """``fit(loggers=...)`` built and checked like ``log.loggers``, before anything runs."""
    if loggers is None or (isinstance(loggers, (list, tuple)) and not loggers):
        return []
    from ..loggers.config import build_loggers

    if run_dir is None:
        raise ConfigError("vaezoo.fit: loggers need a run_dir (metrics.jsonl and the trackers' local files live in it)")
    return build_loggers(loggers, where="vaezoo.fit: loggers")


def _resume(trainer: Any, path: Path, epochs: int) -> None:
    """Load ``path`` into ``trainer``; one-line errors for a missing file or a finished run."""
    from ..errors import CheckpointError, MissingFileError

    if not path.is_file():
        raise MissingFileError(f"vaezoo.fit: resume: no checkpoint file {str(path)!r}")
    try:
        trainer.resume(path)
    except CheckpointError as exc:
        raise CheckpointError(f"vaezoo.fit: resume: {exc}") from None
    if trainer.epoch > epochs:
        raise ConfigError(
            f"vaezoo.fit: epochs={epochs}: the checkpoint has already trained {trainer.epoch} epochs; pass epochs > {trainer.epoch}"
        )


_EVENTS = ("on_fit_start", "on_step_end", "on_validation_end", "on_epoch_end", "on_checkpoint", "on_fit_end")


def fit_config(options: dict[str, Any], *, verbose: bool = True) -> Any:
    """The run config for ``fit(**options)``: the schema's defaults with the options merged, validated."""
    from ..config import _merge, default_config, validate

    keys = option_keys()
    update: dict[str, Any] = {"log": {"progress": bool(verbose)}}
    for name, value in options.items():
        if name not in keys:
            raise ConfigError(f"vaezoo.fit: unknown option {name!r}.{did_you_mean(name, keys)} Allowed: {one_of(keys)}")
        section, _, key = keys[name].partition(".")
        if key:
            update.setdefault(section, {})[key] = value
        else:
            update[section] = value
    try:
        cfg = _merge(default_config(), update, "vaezoo.fit options")
        validate(cfg)
    except ConfigError as exc:
        raise ConfigError(_option_message(str(exc), keys)) from None
    return cfg


def _option_message(message: str, keys: dict[str, str]) -> str:
    """A config error in terms of fit's option names: ``train.lr: ...`` -> ``vaezoo.fit: lr: ...``."""
    message = message.replace(" (in vaezoo.fit options)", "")
    for name, key in sorted(keys.items(), key=lambda kv: -len(kv[1])):
        if message.startswith(key + ":") or message.startswith(key + "."):
            return f"vaezoo.fit: {name}{message[len(key):]}"
    return f"vaezoo.fit: {message}"


def as_source(data: Any, name: str, data_shape: tuple[int, ...]) -> Any:
    """``data`` as the trainer takes it (a tensor becomes an ``InMemoryDataset``), its shape checked."""
    from torch.utils.data import DataLoader, Dataset, IterableDataset

    from ..data import InMemoryDataset

    if isinstance(data, Tensor):
        if not data.is_floating_point():
            raise ConfigError(f"vaezoo.fit: {name} is a {data.dtype} tensor; pass floats in the likelihood's range (e.g. x.float() / 255)")
        _check_shape(name, tuple(data.shape[1:]) if data.dim() else (), data_shape, len(data) if data.dim() else 0)
        return InMemoryDataset(data.detach(), split=name)
    if isinstance(data, DataLoader):
        dataset = data.dataset
        if not isinstance(dataset, IterableDataset):
            _check_shape(name, _item_shape(dataset, name), data_shape, len(dataset))
        return data
    if isinstance(data, Dataset):
        _check_shape(name, _item_shape(data, name), data_shape, len(data))  # type: ignore[arg-type]
        return data
    raise ConfigError(
        f"vaezoo.fit: {name} must be a Tensor (N, {', '.join(map(str, data_shape)) or '...'}), a torch Dataset "
        f"or a DataLoader, got {type(data).__name__}"
    )


def _item_shape(dataset: Any, name: str) -> tuple[int, ...] | None:
    if len(dataset) == 0:
        return None
    item = dataset[0]
    x = item[0] if isinstance(item, (tuple, list)) else item
    if not isinstance(x, Tensor):
        raise ConfigError(f"vaezoo.fit: {name}[0] must be a tensor x or a tuple (x, label), got {type(item).__name__}")
    return tuple(x.shape)


def _check_shape(name: str, shape: tuple[int, ...] | None, data_shape: tuple[int, ...], n: int) -> None:
    if n == 0 or shape is None:
        raise VaezooError(f"vaezoo.fit: {name} has no examples")
    if data_shape and shape != tuple(data_shape):
        raise ConfigError(
            f"vaezoo.fit: {name} examples have shape {tuple(shape)}, the model expects data_shape {tuple(data_shape)}"
            + (" (reshape the data, e.g. x.view(len(x), *model.data_shape))" if _numel(shape) == _numel(data_shape) else "")
        )


def _numel(shape: tuple[int, ...]) -> int:
    return int(torch.Size(shape).numel())
