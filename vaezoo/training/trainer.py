"""The training loop: generic over any VAE (nothing here knows which components it holds).

Contract of ``Trainer.fit``:

* one optimizer step per batch on the loss of the objective (``cfg.objective``, a
  ``vaezoo.Objective``); the learning rate follows ``optim.lr_at``, the objective's own
  schedule (a KL warm-up) ``objective.schedule(step)``; every metric it returns is averaged
  and logged as ``train/<name>``;
* gradient clipping (``train.grad_clip``); an update is skipped when the loss is not finite
  or the gradient norm (computed with ``grad_clip``, ``skip_threshold`` or several processes)
  is not finite or above ``train.skip_threshold`` (no host sync with the fused optimizer);
* metrics are summed on the device and read once per ``log.interval`` steps and per epoch;
* after every epoch: validation ELBO (EMA weights when enabled), image grids (with a run
  folder), the epoch record, then the callbacks (``vaezoo.training.callbacks``): by default
  ``EarlyStopping(train.patience)`` and, with a run folder, ``Checkpoint(run_dir)`` (atomic);
* a non-finite loss, validation loss or weights raise ``NonFiniteLossError`` before the
  checkpoint is written: the weights after an epoch's last step are checked on its last
  batch, so an exploded final step is never saved over the previous checkpoint;
* the randomness of epoch ``e`` (batch order, dynamic binarization, z samples) depends only
  on ``(train.seed, e, rank)``, so a resumed run repeats an uninterrupted one bit for bit.
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor, nn

from ..conditioning import given as condition_kwargs
from ..data.preprocess import derive_seed
from ..errors import DataError, VaezooError
from ..serialization import load_state_strict
from . import checkpoint as ckpt
from .distributed import DistInfo, all_reduce_sum, barrier
from .metrics import MetricsLog, progress_bar
from .optim import EMA, FusedStep, build_optimizer, is_fused, lr_at



class NonFiniteLossError(VaezooError):
    """The training loss became NaN or infinite; the run stopped."""


@dataclass
class FitResult:
    """How ``fit`` ended: epochs completed, why it stopped, the best validation epoch."""

    epochs: int
    step: int
    stop_reason: str  # "completed", "paused", "early_stopping" or the reason a callback gave
    best_epoch: int | None = None
    best_val_elbo: float | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    weights: str = ""  # set by vaezoo.fit: which weights the model holds ("best (epoch N)", "ema", "last")
    checkpoint: Path | None = None  # the last checkpoint written, if any


class _Step(nn.Module):
    """The model and the objective as one module, so DistributedDataParallel sees every forward
    (and ``train.compile`` compiles it whole): returns the loss to minimise and the batch's sum
    of every metric (detached)."""

    def __init__(self, model: nn.Module, objective: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.objective = objective

    def forward(self, x: Tensor, schedule: dict[str, Any], y: Tensor | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        loss, metrics = self.objective(self.model, x, **schedule, **condition_kwargs(y))
        return loss, {k: v.detach().sum() for k, v in metrics.items()}


class Trainer:
    """Trains ``model`` on ``splits`` per ``cfg.train``, writing into ``run_dir`` (main rank only).

    ``splits.train`` / ``splits.val`` are datasets (batched by ``BatchIterator``) or
    ``DataLoader``s. ``run_dir=None`` writes nothing (no images, no default checkpoint).
    ``callbacks=None`` installs what the command line uses: ``EarlyStopping(train.patience)``
    and, with a run folder, ``Checkpoint(run_dir)``. Construct, optionally ``resume()`` from
    the run's checkpoint, ``fit()``, then ``final_weights()`` to put the weights to publish
    into the model.
    """

    def __init__(
        self,
        cfg: Any,
        model: nn.Module,
        splits: Any,
        run_dir: Path | None,
        info: DistInfo,
        *,
        metrics: MetricsLog | None = None,
        echo: Callable[[str], None] = print,
        callbacks: list[Any] | None = None,
    ) -> None:
        from ..data.loaders import batches_of, num_examples
        from .callbacks import Checkpoint, EarlyStopping

        self.cfg = cfg
        t = cfg.train
        self.t = t
        self.model = model
        self.splits = splits
        self.run_dir = Path(run_dir) if run_dir is not None else None
        if callbacks is None:
            callbacks = [EarlyStopping(int(t.patience))]
            if self.run_dir is not None:
                callbacks.append(Checkpoint(self.run_dir))
        self.callbacks = list(callbacks)
        self.info = info
        self.device = info.device
        self.metrics = metrics or MetricsLog(None)
        self.echo = echo
        from ..model import build_objective

        self.objective = build_objective(cfg.objective, model).to(info.device)
        self.wrapped: nn.Module = _Step(model, self.objective)
        self.compiled = bool(t.compile)
        if self.compiled:
            # The whole training objective, forward and backward, as one graph. Static shapes
            # (the last, smaller batch of an epoch compiles once more), the schedule passed as
            # tensors so the KL warm-up does not recompile, and torch's own random number
            # generator (fallback_random) so that z is drawn exactly as in eager mode.
            self.wrapped.compile(dynamic=False, options={"fallback_random": True})
        self.net: nn.Module = self.wrapped
        if info.enabled:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.device.index] if self.device.type == "cuda" else None
            # static_graph: the same modules run every step; DDP learns unused parameters (if any) once
            self.net = DDP(self.wrapped, device_ids=ids, static_graph=True)
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = build_optimizer(self.params, t)
        self.fused = is_fused(self.optimizer)
        self._fused_step = FusedStep(self.optimizer) if self.fused else None
        self.scaler = torch.amp.GradScaler(self.device.type) if t.precision == "16-mixed" else None
        dtype = {"bf16": torch.bfloat16, "16-mixed": torch.float16}.get(str(t.precision))
        self._autocast = (lambda: torch.autocast(self.device.type, dtype=dtype)) if dtype else contextlib.nullcontext
        self.ema = EMA(model, t.ema) if t.ema > 0 else None
        rank, world = info.rank, info.world_size
        self.train_iter = batches_of(
            splits.train,
            int(t.batch_size),
            shuffle=True,
            seed=int(t.seed),
            device=self.device,
            rank=rank,
            world_size=world,
        )
        self.val_iter = (
            batches_of(
                splits.val,
                int(cfg.eval.batch_size),
                shuffle=False,
                seed=int(t.seed),
                device=self.device,
                rank=rank,
                world_size=world,
            )
            if splits.val is not None and len(splits.val)
            else None
        )
        self.steps_per_epoch = len(self.train_iter)
        self.total_steps = int(t.epochs) * self.steps_per_epoch
        self.warmup_steps = round(float(t.warmup_epochs) * self.steps_per_epoch)
        self.objective.setup(steps_per_epoch=self.steps_per_epoch, dataset_size=num_examples(splits.train))
        self.epoch = 0  # epochs completed
        self.step = 0
        self.seconds = 0.0  # wall-clock time of the epochs completed, across resumes
        self.best_val: float | None = None
        self.best_epoch: int | None = None
        self.best_state: dict[str, Tensor] | None = None
        self.stop_reason = ""
        self.should_stop = False  # set by a callback (``stop``): training ends after the current epoch
        self.stop_message = ""
        self.end_epoch = int(t.epochs)  # where the current ``fit`` ends
        self.last_checkpoint: Path | None = None
        self.history: list[dict[str, Any]] = []
        self._fixed_batch: Tensor | None = None
        self._fixed_labels: Tensor | None = None
        self._last_batch: tuple[Tensor, Tensor | None] | None = None  # the last training batch, to check the weights after it

    # -- state ---------------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path | None:
        """The run folder's checkpoint (None without a run folder)."""
        return self.run_dir / ckpt.CHECKPOINT_NAME if self.run_dir is not None else None

    def stop(self, reason: str = "stopped", message: str = "") -> None:
        """End training after the current epoch (for callbacks); ``message`` is echoed then."""
        self.should_stop, self.stop_reason, self.stop_message = True, str(reason), str(message)

    def _early_stopping(self) -> Any:
        """The first ``EarlyStopping`` callback (its count goes into the checkpoint), or None."""
        from .callbacks import EarlyStopping

        return next((c for c in self.callbacks if isinstance(c, EarlyStopping)), None)

    def _fire(self, event: str, *args: Any) -> None:
        for callback in self.callbacks:
            getattr(callback, event)(self, *args)

    def state(self, param_groups: list[dict[str, Any]]) -> dict[str, Any]:
        """The JSON part of a checkpoint (``param_groups`` from ``checkpoint.optimizer_tensors``)."""
        es = self._early_stopping()
        return {
            "epoch": self.epoch,
            "step": self.step,
            "steps_per_epoch": self.steps_per_epoch,
            "world_size": self.info.world_size,
            "optimizer": {"param_groups": param_groups},
            "scheduler": {"step": self.step, "total_steps": self.total_steps},
            "ema": {"decay": self.ema.decay, "updates": self.ema.updates} if self.ema else None,
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "early_stopping": {
                "best_val_elbo": self.best_val,
                "best_epoch": self.best_epoch,
                "bad_epochs": es.bad_epochs if es is not None else 0,
            },
            "stop_reason": self.stop_reason,
            "seconds": round(self.seconds, 3),
        }

    def save_checkpoint(self, path: str | Path | None = None) -> Path:
        """Write a checkpoint atomically at ``path`` (default: the run folder's), then fire
        ``on_checkpoint``. Main rank only; the folder must still be there."""
        path = Path(path) if path is not None else self.checkpoint_path
        if path is None:
            raise VaezooError("save_checkpoint: no path given and no run folder (run_dir=None)")
        if not path.parent.is_dir():
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), str(path.parent))
        opt_tensors, param_groups = ckpt.optimizer_tensors(self.optimizer)
        groups = {"model": self.model.state_dict(), "optimizer": opt_tensors}
        if self.ema is not None:
            groups["ema"] = self.ema.state
        if self.best_state is not None:
            groups["best"] = self.best_state
        self.last_checkpoint = ckpt.save(path, self.state(param_groups), groups)
        self._fire("on_checkpoint", self.last_checkpoint)
        return self.last_checkpoint

    def resume(self, path: Path | None = None) -> None:
        """Load model, optimizer, EMA, scaler, early-stopping and progress from a checkpoint."""
        path = Path(path or self.checkpoint_path)  # type: ignore[arg-type]
        c = ckpt.load(path, device=self.device)
        state = c.state
        load_state_strict(self.model, c.group("model"), f"{path} (model)")
        ckpt.load_optimizer(self.optimizer, c.group("optimizer"), state["optimizer"]["param_groups"])
        if self.ema is not None:
            saved = c.group("ema")
            if not saved:
                raise VaezooError(
                    "train.ema is on, but the checkpoint has no EMA weights (the run was started with train.ema=0)"
                )
            for n in self.ema.names:
                self.ema.state[n].copy_(saved[n])
            self.ema.updates = int((state.get("ema") or {}).get("updates", 0))
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        if c.group("best"):
            self.best_state = {k: v.to(self.device) for k, v in c.group("best").items()}
        es = state.get("early_stopping") or {}
        self.best_val, self.best_epoch = es.get("best_val_elbo"), es.get("best_epoch")
        stopper = self._early_stopping()
        if stopper is not None:
            stopper.bad_epochs, stopper.best_epoch = int(es.get("bad_epochs", 0)), self.best_epoch
            stopper.best = self.best_val if stopper.monitor == "val/elbo" else None
        self.epoch, self.step = int(state["epoch"]), int(state["step"])
        self.seconds = float(state.get("seconds") or 0.0)
        self.stop_reason = state.get("stop_reason", "")
        if int(state.get("steps_per_epoch", self.steps_per_epoch)) != self.steps_per_epoch:
            self.echo(
                f"note: {self.steps_per_epoch} steps per epoch now, {state['steps_per_epoch']} when the checkpoint was written "
                "(batch size, data or world size changed); the run continues but does not repeat an uninterrupted one"
            )

    # -- the loop --------------------------------------------------------------------------
    def fit(self, until_epoch: int | None = None) -> FitResult:
        """Train from ``self.epoch`` to ``train.epochs`` (or pause after ``until_epoch`` epochs),
        firing the callbacks' events (``vaezoo.training.callbacks``); a callback's ``stop`` ends
        it after the current epoch."""
        t, info = self.t, self.info
        end = int(t.epochs) if until_epoch is None else min(int(t.epochs), int(until_epoch))
        if self.stop_reason == "early_stopping":
            end = self.epoch
        self.end_epoch, self.should_stop = end, False
        self._fire("on_fit_start")
        while self.epoch < end:
            started = time.perf_counter()
            record = self._train_epoch(self.epoch)
            self._check_weights(self.epoch)  # nothing unusable is ever written over the last checkpoint
            val = self._validate_and_track(self.epoch)
            if val:
                self._fire("on_validation_end", {"epoch": self.epoch + 1, **val})
            record.update(val)
            self.epoch += 1
            if info.is_main and self.run_dir is not None:
                self._images(self.epoch)
            self.seconds += time.perf_counter() - started
            record["time/total"] = round(self.seconds, 3)  # continues across resumes
            if info.is_main:
                self.metrics.write(record)  # before the checkpoint: a resume drops records past it
            self.history.append(record)
            self._fire("on_epoch_end", record)  # early stopping decides before the checkpoint is written
            every = max(1, int(t.epochs) // 10)
            if self.epoch % every == 0 or self.epoch == end or self.epoch == 1:
                self.echo(_summary(record, int(t.epochs), time.perf_counter() - started))
            barrier(info)
            if self.should_stop:
                if self.stop_message:
                    self.echo(self.stop_message)
                break
        if self.should_stop:
            self.stop_reason = self.stop_reason or "stopped"  # a callback set should_stop itself
        elif self.stop_reason != "early_stopping":
            self.stop_reason = "completed" if self.epoch >= int(t.epochs) else "paused"
        result = FitResult(
            self.epoch, self.step, self.stop_reason, self.best_epoch, self.best_val, self.history, checkpoint=self.last_checkpoint
        )
        self._fire("on_fit_end", result)
        return result

    def _train_epoch(self, epoch: int) -> dict[str, Any]:
        t, info, log = self.t, self.info, self.cfg.log
        started = time.perf_counter()
        torch.manual_seed(derive_seed(int(t.seed), "train", epoch, info.rank))
        self.train_iter.set_epoch(epoch)
        self.wrapped.train()
        acc: Tensor | None = None  # metric sums, then skipped, non-finite and example counts
        zero = torch.zeros((), device=self.device)
        names: list[str] = []
        last: list[float] = []
        interval = int(log.interval)
        bar = progress_bar(self.steps_per_epoch, f"epoch {epoch + 1}/{t.epochs}", None if log.progress and info.is_main else False)
        opt, params = self.optimizer, self.params
        lr_kw = dict(
            lr=float(t.lr),
            total_steps=self.total_steps,
            warmup_steps=self.warmup_steps,
            schedule=str(t.schedule),
            min_lr=float(t.min_lr),
        )
        clip, threshold = float(t.grad_clip), float(t.skip_threshold)
        lr, schedule = 0.0, {}
        try:
            with _unvalidated_distributions():  # a NaN shows in the loss; no host sync per distribution
                for x, labels in self.train_iter:
                    lr = lr_at(self.step, **lr_kw)
                    schedule = self.objective.schedule(self.step)
                    for group in opt.param_groups:
                        group["lr"] = lr
                    given = {k: torch.full((), v, device=self.device) for k, v in schedule.items()} if self.compiled else schedule
                    with self._autocast():
                        loss, sums = self.net(x, given, self._condition(labels))
                    opt.zero_grad(set_to_none=True)
                    if self.scaler is not None:
                        self.scaler.scale(loss).backward()
                        self.scaler.unscale_(opt)
                    else:
                        loss.backward()
                    norm = None
                    if clip > 0:
                        norm = torch.nn.utils.clip_grad_norm_(params, clip, foreach=True)
                    elif threshold > 0 or info.enabled:
                        norm = _grad_norm(params)
                    nonfinite = ~torch.isfinite(loss.detach())
                    skip = None
                    if norm is not None:  # gradients are all-reduced: every rank takes the same decision
                        skip = ~torch.isfinite(norm)
                        if threshold > 0:
                            skip = skip | (norm > threshold)
                    if not info.enabled:
                        skip = nonfinite if skip is None else skip | nonfinite
                    self._optimizer_step(skip)
                    if self.ema is not None:
                        self.ema.update(self.model)
                    if acc is None:
                        names = _metric_order(sums)
                        acc = torch.zeros(len(names) + 3, device=self.device, dtype=torch.float64)
                        last = [0.0] * len(acc)
                    acc += torch.cat(
                        [
                            torch.stack([sums[k] for k in names]).to(acc.dtype),
                            torch.stack(
                                [skip.to(zero.dtype) if skip is not None else zero, nonfinite.to(zero.dtype), zero + x.shape[0]]
                            ).to(acc.dtype),
                        ]
                    )
                    self.step += 1
                    self._last_batch = (x, labels)
                    bar.update(1)
                    if self.step % interval == 0:
                        now = acc.tolist()  # the one host sync per interval
                        delta = [a - b for a, b in zip(now, last)]
                        last = now
                        if info.enabled:  # every rank must take the same stop decision
                            delta = all_reduce_sum(
                                info, torch.tensor(delta, dtype=torch.float64, device=self.device)
                            ).tolist()
                        self._check_finite(delta, epoch)
                        means = _means(names, delta)
                        bar.set_postfix({k: f"{v:.3f}" for k, v in list(means.items())[:3]}, refresh=False)
                        step_record = {"kind": "step", "epoch": epoch + 1, "step": self.step, **means, "lr": lr, **schedule}
                        if info.is_main:
                            self.metrics.write(step_record)
                        self._fire("on_step_end", step_record)
        except ValueError as exc:  # torch.distributions refusing NaN/inf parameters: the run diverged
            if not _invalid_values(exc):
                raise
            self._diverged(f"the loss became NaN or infinite in epoch {epoch + 1} (near step {self.step})", exc)
        finally:
            bar.close()
        assert acc is not None  # the training split is never empty
        all_reduce_sum(info, acc)
        total = acc.tolist()
        self._check_finite(total, epoch)
        return {
            "kind": "epoch",
            "epoch": epoch + 1,
            "step": self.step,
            **_means(names, total),
            "train/skipped": int(total[-3]),
            "lr": lr,
            **schedule,
            "time/epoch": round(time.perf_counter() - started, 3),
        }

    def _optimizer_step(self, skip: Tensor | None) -> None:
        opt = self.optimizer
        if self.scaler is not None:  # the scaler skips non-finite gradients itself
            if float(self.t.skip_threshold) > 0 and bool(skip):  # fp16 + skip threshold: one sync per step
                self.scaler.update()
                return
            self.scaler.step(opt)
            self.scaler.update()
        elif self._fused_step is not None:  # the fused kernel skips on-device
            self._fused_step(skip.to(torch.float32) if skip is not None else None)
        elif skip is not None:  # foreach: one host sync per step
            if not bool(skip):
                opt.step()
        else:
            opt.step()

    def _check_finite(self, sums: list[float], epoch: int) -> None:
        """``sums``: the metric sums, then skipped, non-finite and example counts."""
        if sums[-2] != 0 or not all(math.isfinite(v) for v in sums[:-3]):
            self._diverged(f"the loss became NaN or infinite in epoch {epoch + 1} (near step {self.step})")

    def _diverged(self, what: str, cause: BaseException | None = None) -> None:
        """Raise ``NonFiniteLossError``: what happened, what to change, which checkpoint was kept."""
        path = self.checkpoint_path
        if self.run_dir is None:  # the Python API
            kept = f"the last checkpoint is kept: {self.last_checkpoint}" if self.last_checkpoint else "no checkpoint was written"
        elif path is not None and path.is_file() and self.epoch > 0:
            kept = (
                f"the last good checkpoint (epoch {self.epoch}) is kept: {path}; continue it with "
                f"`vaezoo train --resume {self.run_dir} train.lr=...` after changing the settings"
            )
        else:
            kept = f"no checkpoint was written (it diverged before the first one); start again with `vaezoo train --resume {self.run_dir} train.lr=...`"
        detail = f" ({str(cause).splitlines()[0]})" if cause is not None and str(cause) else ""
        raise NonFiniteLossError(
            f"training stopped: {what}{detail}; lower train.lr (now {self.t.lr:g}), or set train.grad_clip / "
            f"train.skip_threshold / objective.kl_warmup_epochs; {kept}"
        ) from None

    @torch.no_grad()
    def _check_weights(self, epoch: int) -> None:
        """Stop before a checkpoint keeps weights that are NaN/infinite, or that give a NaN/infinite
        loss on the epoch's last batch (an exploded last step: the loss of each step is that of
        the weights *before* it). Every rank takes the same decision."""
        bad = torch.zeros((), device=self.device)
        for p in self.params:
            bad += (~torch.isfinite(p)).any()
        cause: BaseException | None = None
        if self._last_batch is not None:
            x, labels = self._last_batch
            was_training = self.wrapped.training
            self.wrapped.eval()
            try:
                with _forked_rng(self.device, derive_seed(int(self.t.seed), "probe", epoch)):
                    loss = self.model.elbo(x, **condition_kwargs(self._condition(labels)))["loss"]
                bad += (~torch.isfinite(loss)).any()
            except ValueError as exc:
                if not _invalid_values(exc):
                    raise
                bad += 1
                cause = exc
            finally:
                self.wrapped.train(was_training)
        all_reduce_sum(self.info, bad)
        if bool(bad > 0):
            self._diverged(
                f"the weights after the last step of epoch {epoch + 1} (step {self.step}) are NaN/infinite "
                "or give a NaN/infinite loss",
                cause,
            )

    # -- after each epoch --------------------------------------------------------------------
    @contextlib.contextmanager
    def eval_weights(self):
        """Inside: the model holds the weights to evaluate (EMA averages when enabled)."""
        was_training = self.wrapped.training
        self.wrapped.eval()
        if self.ema is not None:
            self.ema.swap(self.model)
        try:
            yield self.model
        finally:
            if self.ema is not None:
                self.ema.swap(self.model)
            self.wrapped.train(was_training)

    @torch.no_grad()
    def _validate_and_track(self, epoch: int) -> dict[str, Any]:
        """Validation ELBO after epoch ``epoch`` (0-based); tracks the best epoch and its weights."""
        if self.val_iter is None:
            return {}
        acc: Tensor | None = None
        names: list[str] = []
        with self.eval_weights(), _forked_rng(self.device, derive_seed(int(self.t.seed), "validate")):
            self.val_iter.set_epoch(0)
            for x, labels in self.val_iter:
                try:
                    # the model's ELBO terms, whatever the training objective
                    out = self.model.elbo(x, **condition_kwargs(self._condition(labels)))
                except ValueError as exc:
                    if not _invalid_values(exc):
                        raise
                    self._diverged(f"the validation loss after epoch {epoch + 1} is NaN or infinite", exc)
                if acc is None:
                    names = [k for k in out if k != "loss"]
                    acc = torch.zeros(len(names) + 1, device=self.device, dtype=torch.float64)
                acc += torch.stack([*(out[k].sum() for k in names), torch.tensor(float(x.shape[0]), device=self.device)]).to(acc.dtype)
            assert acc is not None  # the validation split is not empty here
            all_reduce_sum(self.info, acc)
            total = acc.tolist()
            means = {k: v / max(total[-1], 1.0) for k, v in zip(names, total)}
            elbo = means["elbo"]
            if not all(math.isfinite(v) for v in means.values()):
                self._diverged(f"the validation loss after epoch {epoch + 1} is NaN or infinite")
            if self.best_val is None or elbo > self.best_val:
                self.best_val, self.best_epoch = elbo, epoch + 1
                if self.t.restore_best or self.t.patience > 0:
                    self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        return {**{f"val/{k}": v for k, v in means.items()}, "val/best_elbo": self.best_val}

    @torch.no_grad()
    def _images(self, epoch: int) -> None:
        log = self.cfg.log
        if not log.images or log.num_images <= 0:
            return
        from ..figures import save_grid, save_reconstructions

        folder = self.run_dir / "images"
        n = int(log.num_images)
        if self._fixed_batch is None:
            source = self.splits.val if self.val_iter is not None else self.splits.train
            source = getattr(source, "dataset", source)  # a DataLoader's dataset
            k = min(n, len(source))
            if isinstance(getattr(source, "x", None), Tensor):
                self._fixed_batch = source.x[:k]
                labels = getattr(source, "y", None)
                self._fixed_labels = labels[:k] if isinstance(labels, Tensor) else None
            else:
                items = [source[i] for i in range(k)]
                self._fixed_batch = torch.stack([it[0] if isinstance(it, (tuple, list)) else it for it in items])
                if items and isinstance(items[0], (tuple, list)) and len(items[0]) > 1:
                    self._fixed_labels = torch.stack([torch.as_tensor(it[1]) for it in items])
        from ..evaluation import _class_columns, sample_condition

        with self.eval_weights() as model, _forked_rng(self.device, derive_seed(int(self.t.seed), "figures")):
            conditional = getattr(model, "condition", None) is not None
            labels = None if self._fixed_labels is None or not conditional else self._fixed_labels.to(self.device)
            if conditional and not model.condition.classes:  # covariates: those of the fixed batch, in turn
                cond = {"y": labels[torch.arange(n) % len(labels)]} if labels is not None else None
            else:
                cond = sample_condition(model, n)
            if cond is not None:
                samples = model.sample(n, mean=bool(log.sample_mean), **cond)
                save_grid(samples, folder / f"samples_e{epoch:03d}.png", model.data_shape, nrow=_class_columns(model, cond))
            if self._fixed_batch is not None and (labels is not None or not conditional):
                x = self._fixed_batch.to(self.device)
                save_reconstructions(
                    x, model.reconstruct(x, **condition_kwargs(labels)), folder / f"reconstructions_e{epoch:03d}.png", model.data_shape
                )

    def _condition(self, labels: Tensor | None) -> Tensor | None:
        """The batch's labels for a conditional model (``model.condition``); None otherwise."""
        if getattr(self.model, "condition", None) is None:
            return None
        if labels is None:
            raise DataError(f"this model is conditional ({self.model.condition.describe()}), but this batch of its data has no labels")
        return labels

    def final_weights(self) -> str:
        """Put the weights to publish into the model; returns which ones (``best``, ``ema`` or ``last``)."""
        if self.t.restore_best and self.best_state is not None:
            load_state_strict(self.model, self.best_state, "the best epoch's weights")  # EMA averages when EMA is on
            return f"best (epoch {self.best_epoch})"
        if self.ema is not None:
            self.ema.swap(self.model)
            return "ema"
        return "last"


@contextlib.contextmanager
def torch_settings(t: Any):
    """Inside: torch uses ``t.num_threads`` threads (0: unchanged) and, with ``t.deterministic``,
    deterministic algorithms; both are restored afterwards."""
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    if int(t.num_threads) > 0:
        torch.set_num_threads(int(t.num_threads))
    if t.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        if t.deterministic:
            torch.use_deterministic_algorithms(deterministic)


def _summary(record: dict[str, Any], epochs: int, seconds: float) -> str:
    """One line per reported epoch, ending in its wall-clock time (training, validation, figures,
    checkpoint): ``epoch 10/100  loss 25.31  elbo -25.62  val elbo -25.90  3.12 s``."""
    parts = [f"epoch {record['epoch']}/{epochs}"]
    parts += [f"{k} {record[f'train/{k}']:.3f}" for k in ("loss", "elbo", "kl") if f"train/{k}" in record]
    if record.get("val/elbo") is not None:
        parts.append(f"val elbo {record['val/elbo']:.3f}")
    if record.get("train/skipped"):
        parts.append(f"skipped {record['train/skipped']}")
    parts.append(format_seconds(seconds))
    return "  ".join(parts)


def format_seconds(seconds: float) -> str:
    """A duration to about three significant digits: ``412 ms``, ``3.12 s``, ``42.5 s``, ``12 min 05 s``."""
    if seconds < 0.9995:
        return f"{seconds * 1000:.3g} ms"
    if seconds < 59.95:
        return f"{seconds:.3g} s"
    minutes, rest = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {rest:02d} s"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def _metric_order(sums: dict[str, Tensor]) -> list[str]:
    """The objective's metrics, ``loss`` first."""
    return sorted(sums, key=lambda k: (k != "loss", list(sums).index(k)))


def _means(names: list[str], sums: list[float]) -> dict[str, float]:
    """``train/<name>``: per-example means from the metric sums and the example count (last)."""
    n = max(sums[-1], 1.0)
    return {f"train/{k}": v / n for k, v in zip(names, sums)}


@contextlib.contextmanager
def _unvalidated_distributions():
    """torch.distributions without argument validation (each check is a host sync), restored after."""
    from torch.distributions import Distribution

    previous = Distribution._validate_args
    Distribution.set_default_validate_args(False)
    try:
        yield
    finally:
        Distribution.set_default_validate_args(previous)


def _invalid_values(exc: ValueError) -> bool:
    """True for torch.distributions refusing NaN/infinite parameters (argument validation)."""
    return "invalid values" in str(exc)


def _grad_norm(params: list[nn.Parameter]) -> Tensor:
    """Total 2-norm of the gradients, computed on the device (no sync)."""
    grads = [p.grad for p in params if p.grad is not None]
    get_total_norm = getattr(torch.nn.utils, "get_total_norm", None)
    if get_total_norm is not None:
        return get_total_norm(grads, foreach=True)
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))


@contextlib.contextmanager
def _forked_rng(device: torch.device, seed: int):
    """Run the block with torch's RNG seeded by ``seed``, restoring the outer state afterwards."""
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield

