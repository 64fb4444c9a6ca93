"""Shared pieces of the benchmark scripts: machine info, timing, tables, data, and the
hand-written ("bare") PyTorch models and pythae wrappers that vaezoo is measured against.

Every contender gets the *same* network: the bare and pythae models are built layer for
layer like vaezoo's, and their weights are copied from the vaezoo model, so that one batch
with the same noise gives the same loss (``check_same_loss``) and an epoch does the same
arithmetic.
"""

from __future__ import annotations

import ctypes
import math
import os
import platform
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

DEFAULT_ROOT = "/usr/share/datasets/fashion-mnist"
MIN_SCALE = 1e-4  # vaezoo's encoders: scale = softplus(raw) + min_scale

# -- machine, timing, tables -----------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def machine_lines(threads: int, extra: dict[str, str] | None = None) -> list[str]:
    """Markdown bullet lines describing the machine and the software."""
    lines = [
        f"- CPU: {cpu_model()}, {os.cpu_count()} logical cores",
        f"- torch {torch.__version__}, {threads} thread(s) (torch.set_num_threads, the same for every contender), "
        f"Python {platform.python_version()}",
        f"- load average (1, 5, 15 min) at the start: {load_average()}",
        f"- {time.strftime('%Y-%m-%d %H:%M:%S')}, `{' '.join([Path(sys.argv[0]).name, *sys.argv[1:]])}`",
    ]
    for key, value in (extra or {}).items():
        lines.append(f"- {key}: {value}")
    return lines


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def markdown_table(headers: list[str], rows: list[list[Any]]) -> str:
    def cell(v: Any) -> str:
        return v if isinstance(v, str) else f"{v:.3g}" if isinstance(v, float) else str(v)

    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(out)


def verdict(ratio: float, target: float, smaller_is_better: bool = True) -> str:
    """``met`` or ``MISSED by x%`` for a ratio against its target."""
    if ratio != ratio:
        return "n/a"
    ok = ratio <= target if smaller_is_better else ratio >= target
    if ok:
        return "met"
    miss = (ratio / target - 1) if smaller_is_better else (1 - ratio / target)
    return f"MISSED by {100 * miss:.0f}%"


class PeakRSS:
    """Peak resident memory increase (bytes) of this process inside the block.

    The baseline is the resident size at entry, after ``malloc_trim`` hands freed heap
    memory back to the system (so a contender does not profit from what the previous one
    left mapped); a thread samples ``/proc/self/statm`` every ``interval`` seconds.
    """

    def __init__(self, interval: float = 0.002) -> None:
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._page = os.sysconf("SC_PAGE_SIZE")

    def _rss(self) -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * self._page

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._rss())
            time.sleep(self.interval)

    def __enter__(self) -> PeakRSS:
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except OSError:
            pass
        self.base = self._rss()
        self.peak = self.base
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())

    @property
    def increase(self) -> int:
        return self.peak - self.base


# -- data -----------------------------------------------------------------------------------


def load_fashion(root: str, likelihood: Any, limit: int | None = None) -> Any:
    """Fashion-MNIST splits through vaezoo's data layer: the 60k training images (no
    validation split), prepared for ``likelihood`` (binarized once for a Bernoulli one)."""
    from vaezoo.data import load_data

    binarize = "static" if type(likelihood).__name__ == "Bernoulli" else "none"
    cfg = {"name": "fashion_mnist", "root": root, "binarize": binarize, "val_fraction": 0.0, "limit": limit}
    return load_data(cfg, likelihood=likelihood)


# -- the same networks, by hand -------------------------------------------------------------


def mlp_encoder(latent: int = 32) -> nn.Sequential:
    return nn.Sequential(
        nn.Flatten(), nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(), nn.Linear(256, 2 * latent)
    )


def mlp_decoder(out_channels: int = 1, latent: int = 32) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(latent, 256), nn.ReLU(), nn.Linear(256, 512), nn.ReLU(), nn.Linear(512, 784 * out_channels),
        nn.Unflatten(1, (out_channels, 28, 28)),
    )


def conv_encoder(latent: int = 32) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.ReLU(),
        nn.Flatten(), nn.Linear(64 * 7 * 7, 256), nn.ReLU(), nn.Linear(256, 2 * latent),
    )


def conv_decoder(out_channels: int = 1, latent: int = 32) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(latent, 256), nn.ReLU(), nn.Linear(256, 64 * 7 * 7), nn.ReLU(), nn.Unflatten(1, (64, 7, 7)),
        nn.ConvTranspose2d(64, 32, 3, stride=2, padding=1, output_padding=1), nn.ReLU(),
        nn.ConvTranspose2d(32, out_channels, 3, stride=2, padding=1, output_padding=1),
    )


def copy_weights(src: nn.Module, dst: nn.Module) -> None:
    """Copy parameters in registration order (the same layers in the same order)."""
    a, b = list(src.parameters()), list(dst.parameters())
    assert len(a) == len(b), (len(a), len(b))
    with torch.no_grad():
        for p, q in zip(a, b):
            assert p.shape == q.shape, (p.shape, q.shape)
            q.copy_(p)


def bernoulli_log_prob(logits: Tensor, x: Tensor) -> Tensor:
    """log p(x | logits) per example: what everybody writes, the negated BCE with logits."""
    return -F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(-1)


def dlm_log_prob(params: Tensor, x: Tensor, components: int, bits: int = 8) -> Tensor:
    """Discretized logistic mixture log-probability per example, PixelCNN++ style (Salimans
    et al. 2017, the usual hand-written form), for 8-bit data in [0, 1], one mixture per channel.

    ``params (B, 3KC, H, W)``: K logit blocks, K loc blocks, K log-scale blocks of C channels
    (vaezoo's layout).
    """
    b, c = x.shape[0], x.shape[1]
    n = 2**bits - 1
    p = params.view(b, 3, components, c, *x.shape[2:])
    logits, loc, log_scale = p[:, 0], p[:, 1], p[:, 2]
    xs = x.unsqueeze(1)
    centered = xs - loc
    inv_s = torch.exp(-log_scale)
    plus_in = inv_s * (centered + 0.5 / n)
    min_in = inv_s * (centered - 0.5 / n)
    cdf_delta = torch.sigmoid(plus_in) - torch.sigmoid(min_in)
    log_cdf_plus = plus_in - F.softplus(plus_in)
    log_one_minus_cdf_min = -F.softplus(min_in)
    mid_in = inv_s * centered
    log_pdf_mid = mid_in - log_scale - 2.0 * F.softplus(mid_in) - math.log(n)
    inner = torch.where(cdf_delta > 1e-5, torch.log(torch.clamp(cdf_delta, min=1e-12)), log_pdf_mid)
    lp = torch.where(xs < 0.5 / n, log_cdf_plus, torch.where(xs > 1 - 0.5 / n, log_one_minus_cdf_min, inner))
    lp = torch.logsumexp(lp + torch.log_softmax(logits, dim=1), dim=1)
    return lp.flatten(1).sum(-1)


class BareVAE(nn.Module):
    """The VAE a researcher writes by hand: encoder -> (loc, softplus scale), reparameterised
    z, decoder logits, closed-form likelihood, analytic KL against N(0, I)."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module, likelihood: str = "bernoulli", components: int = 5) -> None:
        super().__init__()
        self.encoder, self.decoder = encoder, decoder
        self.likelihood, self.components = likelihood, components

    def posterior(self, x: Tensor) -> tuple[Tensor, Tensor]:
        loc, raw = self.encoder(x).chunk(2, dim=-1)
        return loc, F.softplus(raw) + MIN_SCALE

    def log_px_z(self, params: Tensor, x: Tensor) -> Tensor:
        if self.likelihood == "bernoulli":
            return bernoulli_log_prob(params, x)
        return dlm_log_prob(params, x, self.components)

    def forward(self, x: Tensor) -> Tensor:
        loc, scale = self.posterior(x)
        z = loc + scale * torch.randn_like(scale)
        rec = self.log_px_z(self.decoder(z), x)
        kl = (0.5 * (scale.pow(2) + loc.pow(2) - 1) - torch.log(scale)).sum(-1)
        return (kl - rec).mean()


class BareLoop:
    """The training loop a competent researcher writes: in-memory tensors indexed with
    ``randperm``, ``model.train()``, ``torch.optim.Adam`` with its defaults (on CPU the
    single-tensor implementation: neither fused nor foreach), ``zero_grad``, ``backward``,
    ``step``, and the usual ``loss.item()`` per batch for logging."""

    def __init__(self, model: nn.Module, x: Tensor, batch_size: int, lr: float) -> None:
        self.model, self.x, self.batch_size = model, x, batch_size
        self.opt = torch.optim.Adam(model.parameters(), lr=lr)

    def epoch(self) -> float:
        self.model.train()
        n = len(self.x)
        perm = torch.randperm(n)
        total = 0.0
        for i in range(0, n, self.batch_size):
            xb = self.x[perm[i : i + self.batch_size]]
            loss = self.model(xb)
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
            total += loss.item() * len(xb)
        return total / n


class StrongLoop(BareLoop):
    """``BareLoop`` as a performance-minded engineer writes it: the fused Adam kernel, gradients
    set to None, and no host sync per step (the loss is summed on the device and read once
    per epoch)."""

    def __init__(self, model: nn.Module, x: Tensor, batch_size: int, lr: float) -> None:
        super().__init__(model, x, batch_size, lr)
        self.opt = torch.optim.Adam(model.parameters(), lr=lr, fused=True)

    def epoch(self) -> float:
        self.model.train()
        n = len(self.x)
        perm = torch.randperm(n)
        total = torch.zeros((), dtype=torch.float64)
        for i in range(0, n, self.batch_size):
            xb = self.x[perm[i : i + self.batch_size]]
            loss = self.model(xb)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            total += loss.detach() * len(xb)
        return float(total) / n


@torch.no_grad()
def bare_log_likelihood(model: BareVAE, x: Tensor, k: int, rows: int = 100, samples: int = 100) -> Tensor:
    """Importance-sampled log p(x) written by hand: ``rows`` examples at a time, ``samples``
    z per pass through the decoder, log-sum-exp over all K."""
    out = []
    half_log_2pi = 0.5 * math.log(2 * math.pi)
    for xb in x.split(rows):
        loc, scale = model.posterior(xb)
        log_w = []
        for done in range(0, k, samples):
            n = min(samples, k - done)
            eps = torch.randn(n, *loc.shape)
            z = loc + scale * eps
            params = model.decoder(z.flatten(0, 1))
            rec = model.log_px_z(params, xb.repeat(n, *[1] * (xb.dim() - 1))).view(n, len(xb))
            log_pz = (-0.5 * z.pow(2) - half_log_2pi).sum(-1)
            log_qz = (-0.5 * eps.pow(2) - torch.log(scale) - half_log_2pi).sum(-1)
            log_w.append(rec + log_pz - log_qz)
        out.append(torch.logsumexp(torch.cat(log_w), dim=0) - math.log(k))
    return torch.cat(out)


# -- pythae --------------------------------------------------------------------------------


def import_pythae() -> tuple[Any, str]:
    """``(module, "")`` when pythae imports, else ``(None, why not)``."""
    os.environ.setdefault("TQDM_DISABLE", "1")  # pythae's progress bars off, like vaezoo's log.progress=false
    try:
        import logging

        import pythae  # noqa: F401
        from pythae.models import VAE  # noqa: F401
        from pythae.trainers import BaseTrainer  # noqa: F401

        logging.getLogger("pythae").setLevel(logging.WARNING)
        for name in list(logging.root.manager.loggerDict):
            if name.startswith("pythae"):
                logging.getLogger(name).setLevel(logging.WARNING)
        return pythae, ""
    except Exception as exc:  # ImportError, or pythae failing against this torch
        return None, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


def pythae_version() -> str:
    try:
        from importlib.metadata import version

        return version("pythae")
    except Exception:
        return "?"


def pythae_vae(encoder: nn.Module, decoder: nn.Module, latent: int = 32) -> Any:
    """A pythae ``VAE`` (Bernoulli: ``reconstruction_loss="bce"``) around the same networks.

    pythae's encoder returns ``log_covariance``; ``2 log(softplus(raw) + min_scale)`` makes
    it the very same posterior as vaezoo's. Its decoder returns probabilities.
    """
    from pythae.models import VAE, VAEConfig
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder, BaseEncoder

    class Encoder(BaseEncoder):
        def __init__(self) -> None:
            BaseEncoder.__init__(self)
            self.net = encoder

        def forward(self, x: Tensor) -> Any:
            loc, raw = self.net(x).chunk(2, dim=-1)
            return ModelOutput(embedding=loc, log_covariance=2 * torch.log(F.softplus(raw) + MIN_SCALE))

    class Decoder(BaseDecoder):
        def __init__(self) -> None:
            BaseDecoder.__init__(self)
            self.net = decoder

        def forward(self, z: Tensor) -> Any:
            return ModelOutput(reconstruction=torch.sigmoid(self.net(z)))

    config = VAEConfig(input_dim=(1, 28, 28), latent_dim=latent, reconstruction_loss="bce")
    return VAE(config, encoder=Encoder(), decoder=Decoder())


class PythaeLoop:
    """pythae's own ``BaseTrainer``; one ``train_step`` is one epoch of its training loop
    (its DataLoader over a ``BaseDataset``, forward, Adam step, ``loss.item()``)."""

    def __init__(self, model: Any, x: Tensor, batch_size: int, lr: float, out_dir: str) -> None:
        from pythae.data.datasets import BaseDataset
        from pythae.trainers import BaseTrainer, BaseTrainerConfig

        config = BaseTrainerConfig(
            output_dir=out_dir,
            num_epochs=1000,
            learning_rate=lr,
            per_device_train_batch_size=batch_size,
            optimizer_cls="Adam",
            no_cuda=True,
        )
        self.trainer = BaseTrainer(model, BaseDataset(x, torch.zeros(len(x))), training_config=config)
        self.trainer.prepare_training()
        # no progress bar, as vaezoo runs with log.progress=false (the console printer stays)
        from pythae.trainers.training_callbacks import ProgressBarCallback

        handler = self.trainer.callback_handler
        handler.callbacks = [cb for cb in handler.callbacks if not isinstance(cb, ProgressBarCallback)]
        self.count = 0

    def epoch(self) -> float:
        self.count += 1
        return float(self.trainer.train_step(self.count))


# -- vaezoo's own trainer ---------------------------------------------------------------------


def run_overrides(model: dict, args: Any, *, binarize: str = "static", compile_: bool = False) -> list[str]:
    """The run config every benchmark gives vaezoo: ``model`` on Fashion-MNIST (``args.root``), the
    contenders' batch size, learning rate and threads, a constant learning rate, no KL warm-up,
    no validation, final evaluation, images or TensorBoard."""
    import json

    return [
        f"model={json.dumps(model)}",
        "data.name=fashion_mnist",
        f"data.root={args.root}",
        f"data.binarize={binarize}",
        "data.val_fraction=0",
        f"train.batch_size={args.batch_size}",
        f"train.lr={args.lr}",
        "train.schedule=constant",
        "train.warmup_epochs=0",
        "objective.kl_warmup_epochs=0",
        f"train.compile={str(compile_).lower()}",
        f"train.num_threads={args.threads}",
        "train.device=cpu",
        "eval.at_end=false",
        "log.images=false",
        "log.tensorboard=false",
        "log.progress=false",
    ]


class VaezooLoop:
    """vaezoo's generic ``Trainer`` built from a run config; ``epoch()`` is ``fit()`` for one
    more epoch (training, metrics, checkpoint written to disk)."""

    def __init__(self, overrides: list[str], splits: Any, init: nn.Module | None, run_dir: Path, epochs: int) -> None:
        import vaezoo
        from vaezoo.config import load_config
        from vaezoo.training import Trainer
        from vaezoo.training.distributed import setup

        cfg = load_config(None, [*overrides, f"train.epochs={epochs}", f"log.dir={run_dir}"])
        cfg.model["data_shape"] = list(splits.data_shape)
        self.model = vaezoo.build_model(cfg.model)
        if init is not None:
            self.model.load_state_dict(init.state_dict())
        run_dir.mkdir(parents=True, exist_ok=True)
        self.trainer = Trainer(cfg, self.model, splits, run_dir, setup("cpu"), echo=lambda _msg: None)
        self.done = 0
        self.loop_seconds: list[float] = []  # the training loop alone (the trainer's time/epoch)

    def epoch(self) -> float:
        self.done += 1
        result = self.trainer.fit(until_epoch=self.done)
        self.loop_seconds.append(float(result.history[-1]["time/epoch"]))
        return float(result.history[-1]["train/loss"])


def time_call(fn: Callable[[], Any]) -> tuple[float, Any]:
    """``(wall seconds, fn())``."""
    started = time.perf_counter()
    value = fn()
    return time.perf_counter() - started, value


def time_call_cpu(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """``(wall seconds, CPU seconds of this process, fn())``; the CPU time is less disturbed
    by other processes competing for the cores than the wall time."""
    wall0, cpu0 = time.perf_counter(), time.process_time()
    value = fn()
    return time.perf_counter() - wall0, time.process_time() - cpu0, value
