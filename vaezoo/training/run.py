"""One training run from a validated config: folder, data, model, ``Trainer``, final model, report.

``train(cfg)`` is what ``vaezoo train`` calls. The run folder receives::

    config.yaml               the fully resolved config (model.data_shape filled in)
    checkpoint.safetensors    written after every epoch (resume with --resume RUN_DIR)
    metrics.jsonl             one JSON record per log interval, epoch and final evaluation
    tensorboard/, mlflow.db, wandb/, ...  what the trackers of log.loggers keep locally
    images/                   samples_eNNN.png, reconstructions_eNNN.png per epoch
    samples.png, reconstructions.png, loss_curve.png     the last epoch's grids, the curve
    latent_scatter.png, latent_manifold.png              when model.latent_dim == 2
    eval.json                 final ELBO / NLL / bits-per-dim on eval.split
    model/                    config.json + model.safetensors (vaezoo.from_pretrained)
"""

from __future__ import annotations

import json
import shutil
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from ..errors import CheckpointError, ConfigError
from ..fileio import atomic_write, remove_stale_temp
from ..loading import RUN_CONFIG
from ..loading import RUN_MODEL_DIR as MODEL_DIR
from . import checkpoint as ckpt
from .checkpoint import UnreadableCheckpoint
from .distributed import DistInfo, barrier, broadcast_int, setup, teardown


@dataclass
class RunResult:
    """Where a run went and how it ended."""

    run_dir: Path
    model_dir: Path | None
    stop_reason: str
    epochs: int
    metrics: dict[str, Any] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)


def train(
    cfg: Any, *, resume: str | Path | None = None, until_epoch: int | None = None, echo: Callable[[str], None] = print
) -> RunResult:
    """Train per ``cfg`` (from ``vaezoo.config.load_config``); ``resume``: continue that run folder.

    ``until_epoch`` pauses after that many epochs in total (the checkpoint is then resumable
    as if the run had been killed there). Raises ``ConfigError`` before any work for an
    inconsistent config, ``NonFiniteLossError`` when the loss diverges.
    """
    from .trainer import torch_settings

    info = setup(str(cfg.train.device))
    try:
        with torch_settings(cfg.train):
            return _train(cfg, info, resume, until_epoch, echo if info.is_main else (lambda _msg: None))
    finally:
        teardown(info)


def _train(
    cfg: Any, info: DistInfo, resume: str | Path | None, until_epoch: int | None, echo: Callable[[str], None]
) -> RunResult:
    from ..config import to_container, to_yaml
    from ..data import as_config, for_likelihood, load_data, read_source, source_shape
    from ..data.config import preprocessing_note
    from ..loggers.config import build_loggers
    from ..conditioning import check_labels
    from ..model import build_model
    from .metrics import MetricsLog
    from .trainer import Trainer

    t = cfg.train
    run_dir = Path(resume) if resume is not None else _new_run_dir(cfg, info)
    cfg.log.dir = str(run_dir)

    # the raw data's shape completes the model config; the model is built (every component's
    # parameter values checked) before the data are prepared for its likelihood
    data_cfg = as_config(cfg.data)
    raw = read_source(data_cfg)
    shape = list(source_shape(raw, data_cfg))
    given = cfg.model.get("data_shape")
    if given is None:
        cfg.model["data_shape"] = shape
    elif ([given] if isinstance(given, int) else list(given)) != shape:
        raise ConfigError(
            f"model.data_shape: {given} does not match the data ({shape} from data.name={cfg.data.name!r}); "
            "remove model.data_shape to take it from the data"
        )
    torch.manual_seed(int(t.seed))
    model = build_model(cfg.model, initialize=resume is None)  # a resumed run loads its checkpoint
    name = (getattr(model, "sources", None) or {}).get("likelihood", {}).get("name", type(model.likelihood).__name__)
    note = preprocessing_note(data_cfg, model.likelihood, name)
    if note and info.is_main:
        warnings.warn(note, UserWarning, stacklevel=2)
    data_cfg = for_likelihood(data_cfg, model.likelihood, raw)  # what was left unset follows the likelihood ...
    cfg.data.binarize, cfg.data.dequantize = data_cfg.binarize, data_cfg.dequantize  # ... and is recorded
    splits = load_data(data_cfg, likelihood=model.likelihood, raw=raw)
    if len(splits.train) == 0:
        raise ConfigError("data: the training split is empty (data.limit too small?)")
    for split in ("train", "val", "test"):
        check_labels(getattr(model, "condition", None), getattr(splits, split, None), split)
    if t.patience > 0 and len(splits.val) == 0:
        raise ConfigError(
            "train.patience: early stopping needs a validation split; set data.val_fraction > 0 or train.patience=0"
        )
    if cfg.eval.at_end and cfg.eval.split == "val" and len(splits.val) == 0:
        raise ConfigError("eval.split=val: the final evaluation needs a validation split; set data.val_fraction > 0 "
                          "or eval.split=test")
    loggers = build_loggers(cfg.log.loggers) if info.is_main else []  # a tracker not installed: refused here
    model = model.to(info.device)
    trainer = Trainer(cfg, model, splits, run_dir, info, echo=echo)
    finishing = resume is not None and _resume(trainer, run_dir, int(t.epochs), echo)
    # Every check has passed: only now is the run folder written (a refused command changes nothing).
    if info.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_temp(run_folders(run_dir))
        atomic_write(run_dir / RUN_CONFIG, lambda p: Path(p).write_text(to_yaml(cfg)))
    metrics = MetricsLog(run_dir if info.is_main else None, loggers=loggers, config=to_container(cfg))
    trainer.metrics = metrics
    try:
        if resume is not None:
            metrics.drop_after(trainer.epoch)
        if finishing:
            result = RunResult(run_dir, None, trainer.stop_reason or "completed", trainer.epoch)
            which = trainer.final_weights()
            if info.is_main:
                _finish(cfg, trainer, splits, result, which, echo)
            barrier(info)
            return result
        n_params = sum(p.numel() for p in model.parameters())
        echo(f"data: {splits.description}")
        parts = ", ".join(f"{where} {src['name']}" for where, src in model.sources.items() if where != "architecture")
        echo(f"model: {n_params:,} parameters; architecture {model.config['architecture']} ({parts}); objective {cfg.objective['name']}")
        echo(
            f"training {t.epochs} epochs x {trainer.steps_per_epoch} steps on {info.device}"
            + (f" x {info.world_size} processes" if info.enabled else "")
            + f"; run folder {run_dir}"
        )
        started = time.perf_counter()
        try:
            fit = trainer.fit(until_epoch=until_epoch)
        except KeyboardInterrupt:
            if trainer.epoch:
                echo(f"interrupted; the checkpoint of epoch {trainer.epoch} is intact: vaezoo train --resume {run_dir}")
            else:
                echo(f"interrupted before the first checkpoint; start it again with: vaezoo train --resume {run_dir}")
            raise
        elapsed = time.perf_counter() - started
        result = RunResult(run_dir, None, fit.stop_reason, fit.epochs)
        result.metrics["train_seconds"] = round(elapsed, 2)
        if fit.history:
            last = fit.history[-1]
            result.metrics.update({k: v for k, v in last.items() if k.startswith(("train/", "val/"))})
        if fit.stop_reason == "paused":
            echo(f"paused after epoch {fit.epochs}; continue with: vaezoo train --resume {run_dir}")
            return result
        which = trainer.final_weights()
        if info.is_main:
            _finish(cfg, trainer, splits, result, which, echo)
        barrier(info)
        return result
    finally:
        metrics.close()


def _finish(cfg: Any, trainer: Any, splits: Any, result: RunResult, which: str, echo: Callable[[str], None]) -> None:
    """Main rank: save the model, evaluate it, draw the final figures, report."""
    from ..config import to_container
    from ..evaluation import (
        RUN_METADATA_KEY,
        dataset_tensors,
        evaluate,
        latent_figures,
        num_bins_for,
    )
    from ..figures import loss_curve
    from .metrics import read_metrics

    run_dir, model = result.run_dir, trainer.model
    model.eval()
    model_dir = run_dir / "model"
    run_meta = {
        "data": to_container(cfg)["data"],
        "epochs": result.epochs,
        "weights": which,
        "stop_reason": result.stop_reason,
        "best_epoch": trainer.best_epoch,
    }
    model.save_pretrained(str(model_dir), extra_metadata={RUN_METADATA_KEY: json.dumps(run_meta, sort_keys=True)})
    trainer.metrics.log_model(model_dir)
    result.model_dir = model_dir
    result.files["weights"] = model_dir
    images = run_dir / "images"
    for name in ("samples", "reconstructions"):
        latest = images / f"{name}_e{result.epochs:03d}.png"
        if latest.is_file():
            shutil.copyfile(latest, run_dir / f"{name}.png")
            result.files[name] = run_dir / f"{name}.png"
    result.files["metrics"] = run_dir / "metrics.jsonl"
    if cfg.eval.at_end:
        dataset = getattr(splits, cfg.eval.split)
        if len(dataset):
            x, y = dataset_tensors(dataset)
            scores = evaluate(
                model,
                x,
                y=y if getattr(model, "condition", None) is not None else None,
                num_samples=int(cfg.eval.num_samples),
                batch_size=int(cfg.eval.batch_size),
                num_bins=num_bins_for(splits),
                seed=int(cfg.train.seed),
                progress=None if cfg.log.progress else False,
                desc=f"{cfg.eval.split} (K={int(cfg.eval.num_samples)})",
            )
            scores.update(split=cfg.eval.split, weights=which)
            result.metrics.update({f"{cfg.eval.split}/{k}": v for k, v in scores.items() if isinstance(v, float)})
            text = json.dumps(scores, indent=2) + "\n"
            atomic_write(run_dir / "eval.json", lambda p: Path(p).write_text(text))
            trainer.metrics.write(
                {
                    "kind": "eval",
                    "epoch": result.epochs,
                    "step": trainer.step,
                    **{f"{cfg.eval.split}/{k}": v for k, v in scores.items() if isinstance(v, (int, float))},
                }
            )
            for path in latent_figures(model, x, y, run_dir, classes=getattr(splits, "classes", None)):
                result.files[path.stem] = path
            echo(
                f"{cfg.eval.split} ({len(x)} examples, {which} weights): ELBO {scores['elbo']:.3f} nats, "
                f"NLL {scores['nll']:.3f} nats (K={scores['num_samples']}), {scores['bits_per_dim']:.4f} bits/dim"
            )
    records = read_metrics(run_dir)
    if any(r.get("kind") == "epoch" for r in records):
        result.files["loss_curve"] = loss_curve(records, run_dir / "loss_curve.png")
    for key in ("loss_curve", "latent_scatter", "latent_manifold"):
        if key in result.files:  # the final figures (samples.png, reconstructions.png went with their epoch)
            trainer.metrics.log_images(key, result.files[key], trainer.step)
    echo(f"run folder: {run_dir}")
    echo(f"  {'weights:':<17}{model_dir}   (vaezoo.from_pretrained({str(model_dir)!r}))")
    for key in ("samples", "reconstructions", "loss_curve", "latent_scatter", "latent_manifold"):
        if key in result.files:
            echo(f"  {key + ':':<17}{result.files[key]}")
    echo(f"  {'metrics:':<17}{result.files['metrics']}")


def _resume(trainer: Any, run_dir: Path, epochs: int, echo: Callable[[str], None]) -> bool:
    """Load the run's checkpoint into ``trainer``, or refuse (``ConfigError``) before any file is touched.

    Returns True when training is over but the final model was never written (the run was
    killed after its last checkpoint): the caller then only finishes it. A run killed before
    its first checkpoint starts again from epoch 1 in its folder.
    """
    if not trainer.checkpoint_path.is_file():
        echo(f"{run_dir} has no checkpoint yet (it stopped during its first epoch): training it from the start")
        return False
    try:
        trainer.resume()
    except UnreadableCheckpoint as exc:
        raise CheckpointError(f"--resume {run_dir}: {exc}") from None  # not a config mismatch: no override fixes it
    except CheckpointError as exc:
        raise CheckpointError(
            f"--resume {run_dir}: the checkpoint does not fit this config (a resumed run keeps its model and "
            f"optimizer; drop the model.* / train.optimizer overrides): {exc}"
        ) from None
    done, finished = trainer.epoch, _has_final_model(run_dir)
    early = trainer.stop_reason == "early_stopping"
    if done > epochs and not early:
        raise ConfigError(
            f"train.epochs={epochs}: this run has already trained {done} epochs; pass train.epochs=N with N > {done} "
            f"to train longer{'' if finished else f', or train.epochs={done} to write its final model'}"
        )
    if done == epochs or early:
        if finished:
            why = "stopped early (validation ELBO stopped improving)" if early else f"trained all {done} epochs"
            more = "" if early else f"; pass train.epochs=N with N > {done} to train longer"
            raise ConfigError(f"--resume {run_dir}: this run already {why}, its model is in {run_dir / MODEL_DIR}{more}")
        echo(f"{run_dir}: training ended after epoch {done}, but the final model was not written; writing it now")
        return True
    echo(f"resuming {run_dir} at epoch {done + 1} of {epochs} (step {trainer.step})")
    return False


def _has_final_model(run_dir: Path) -> bool:
    """``model/`` is complete (its config.json is written last)."""
    from ..serialization import CONFIG_NAME, WEIGHTS_NAME

    return (run_dir / MODEL_DIR / WEIGHTS_NAME).is_file() and (run_dir / MODEL_DIR / CONFIG_NAME).is_file()


def run_folders(run_dir: Path) -> list[Path]:
    """The folders of a run that atomic writes put temporary files in."""
    return [run_dir, run_dir / MODEL_DIR, run_dir / "images"]


def _new_run_dir(cfg: Any, info: DistInfo) -> Path:
    """``log.dir`` if set (must not hold another run), else ``log.root/<name>-<timestamp>``."""
    log = cfg.log
    if log.dir:
        path = Path(log.dir)
        if path.exists() and not path.is_dir():
            raise ConfigError(f"log.dir: {path} is a file; the run folder must be a folder (choose another --out)")
        if (path / ckpt.CHECKPOINT_NAME).exists():
            raise ConfigError(
                f"log.dir: {path} already holds a run; continue it with `vaezoo train --resume {path}` "
                "or choose another folder (--out)"
            )
        if (path / RUN_CONFIG).exists():
            raise ConfigError(
                f"log.dir: {path} holds a run that stopped before its first checkpoint; start it again with "
                f"`vaezoo train --resume {path}` (its config.yaml is used) or choose another folder (--out)"
            )
        return path
    name = log.name = log.name or cfg.data.name
    stamp = broadcast_int(info, int(time.time()))
    base = Path(log.root) / f"{name}-{time.strftime('%Y%m%d-%H%M%S', time.localtime(stamp))}"
    suffix = 0
    if info.is_main:
        while (base.parent / (base.name + (f"-{suffix}" if suffix else ""))).exists():
            suffix += 1
    suffix = broadcast_int(info, suffix)
    return base.parent / (base.name + (f"-{suffix}" if suffix else ""))
