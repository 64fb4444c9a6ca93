"""PNG figures: image grids (samples, reconstructions), the loss curve, and the two 2-D latent plots.

Matplotlib is used through ``matplotlib.figure.Figure`` (Agg canvas), never ``pyplot``, so
no global backend is changed and nothing needs a display.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

MIN_PIXELS = 28  # small images (8x8 digits) are enlarged to at least this size in grids


def image_shape(data_shape: Sequence[int]) -> tuple[int, int, int]:
    """How to draw one example: ``(C, H, W)`` with C in {1, 3}.

    ``(C, H, W)`` data are drawn as they are (first channel when C is not 1 or 3); flat
    data of a square size as a grey ``(1, s, s)`` image (or ``(3, s, s)``); anything else
    as a one-pixel-high strip.
    """
    shape = tuple(int(s) for s in data_shape)
    if len(shape) == 3:
        c, h, w = shape
        return (c if c in (1, 3) else 1, h, w)
    if len(shape) == 2:
        return (1, *shape)
    d = math.prod(shape)
    for c in (1, 3):
        s = math.isqrt(d // c)
        if d % c == 0 and s * s * c == d:
            return (c, s, s)
    return (1, 1, d)


def as_images(x: Tensor, data_shape: Sequence[int]) -> Tensor:
    """``(N, *data_shape)`` -> ``(N, C, H, W)`` float in [0, 1] on the CPU, enlarged if tiny."""
    c, h, w = image_shape(data_shape)
    x = x.detach().float().cpu()
    if len(data_shape) == 3 and data_shape[0] not in (1, 3):
        x = x[:, :1]
    x = x.reshape(len(x), c, h, w).clamp(0, 1)
    scale = max(1, MIN_PIXELS // max(h, 1)) if h > 1 else 1
    if scale > 1:
        x = x.repeat_interleave(scale, dim=2).repeat_interleave(scale, dim=3)
    return x


def save_grid(x: Tensor, path: str | Path, data_shape: Sequence[int], nrow: int | None = None) -> Path:
    """Write ``x (N, *data_shape)`` as one PNG grid (``nrow`` images per row, default ~sqrt(N))."""
    from torchvision.utils import save_image

    from .serialization import atomic_write

    images = as_images(x, data_shape)
    nrow = nrow or max(1, math.ceil(math.sqrt(len(images))))
    path = Path(path)
    atomic_write(path, lambda tmp: save_image(images, tmp, nrow=nrow, padding=2, pad_value=0.5, format="png"))
    return path


def save_reconstructions(
    x: Tensor, recon: Tensor, path: str | Path, data_shape: Sequence[int], per_row: int = 8
) -> Path:
    """Rows alternate: ``per_row`` originals, then their reconstructions below them."""
    n = (len(x) // per_row) * per_row or len(x)
    per_row = min(per_row, n)
    rows = []
    for i in range(0, n, per_row):
        rows += [x[i : i + per_row], recon[i : i + per_row]]
    return save_grid(torch.cat(rows), path, data_shape, nrow=per_row)


def _new_figure(size: tuple[float, float]) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=size, dpi=100, layout="constrained")


def _save_figure(fig: Any, path: str | Path) -> Path:
    from .serialization import atomic_write

    path = Path(path)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
    return path


def loss_curve(records: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Training loss and ELBO per epoch (and validation ELBO when present) from metric records."""
    epochs = [r for r in records if r.get("kind") == "epoch"]
    fig = _new_figure((7, 4))
    ax = fig.subplots()
    xs = [r["epoch"] for r in epochs]
    ax.plot(xs, [r.get("train/loss") for r in epochs], label="train loss (-objective)")
    ax.plot(xs, [_neg(r.get("train/elbo")) for r in epochs], label="train -ELBO")
    if any("val/elbo" in r for r in epochs):
        ax.plot(
            [r["epoch"] for r in epochs if "val/elbo" in r],
            [_neg(r["val/elbo"]) for r in epochs if "val/elbo" in r],
            label="validation -ELBO",
        )
    ax.set_xlabel("epoch")
    ax.set_ylabel("nats per example")
    ax.grid(alpha=0.3)
    ax.legend()
    return _save_figure(fig, path)


def _neg(v: Any) -> Any:
    return -v if isinstance(v, (int, float)) else v


def latent_scatter(z: Tensor, labels: Tensor | None, path: str | Path, classes: Sequence[str] | None = None) -> Path:
    """Scatter of 2-D posterior means, coloured by label when there are labels."""
    z = z.detach().float().cpu()
    fig = _new_figure((6, 5))
    ax = fig.subplots()
    if labels is not None:
        y = labels.detach().cpu()
        points = ax.scatter(z[:, 0], z[:, 1], c=y, cmap="tab10", s=6, alpha=0.8)
        cbar = fig.colorbar(points, ax=ax)
        if classes is not None and len(classes) <= 20:
            ticks = sorted(set(int(v) for v in y.tolist()))
            cbar.set_ticks(ticks)
            cbar.set_ticklabels([str(classes[t]) if t < len(classes) else str(t) for t in ticks])
    else:
        ax.scatter(z[:, 0], z[:, 1], s=6, alpha=0.8)
    ax.set_xlabel("z[0]")
    ax.set_ylabel("z[1]")
    ax.set_title("posterior means of the test set")
    return _save_figure(fig, path)


@torch.no_grad()
def latent_manifold(model: Any, z: Tensor, path: str | Path, n: int = 16) -> Path:
    """Decoded means on an ``n`` x ``n`` grid spanning the 1st..99th percentiles of ``z (N, 2)``."""
    z = z.detach().float().cpu()
    lo = torch.quantile(z, 0.01, dim=0)
    hi = torch.quantile(z, 0.99, dim=0)
    xs = torch.linspace(float(lo[0]), float(hi[0]), n)
    ys = torch.linspace(float(hi[1]), float(lo[1]), n)  # top row = largest z[1]
    grid = torch.stack(torch.meshgrid(ys, xs, indexing="ij"), dim=-1).flip(-1).reshape(-1, 2)
    ref = next(model.parameters(), None)
    grid = grid.to(ref.device if ref is not None else "cpu", ref.dtype if ref is not None else torch.float32)
    images = model.likelihood.mean(model.decode(grid))
    return save_grid(images, path, model.data_shape, nrow=n)
