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

MIN_PIXELS = 64  # small images (8x8 digits) are enlarged, nearest-neighbour, to at least this size in grids
PADDING = 2  # pixels between the images of a grid


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
    scale = -(-MIN_PIXELS // h) if h > 1 else 1  # ceil: at least MIN_PIXELS high
    if scale > 1:
        x = x.repeat_interleave(scale, dim=2).repeat_interleave(scale, dim=3)
    return x


def grid_image(x: Tensor, data_shape: Sequence[int], nrow: int | None = None) -> Any:
    """``x (N, *data_shape)`` as one PIL image: ``nrow`` images per row (default ~sqrt(N))."""
    from PIL import Image
    from torchvision.utils import make_grid

    images = as_images(x, data_shape)
    nrow = nrow or max(1, math.ceil(math.sqrt(len(images))))
    grid = make_grid(images, nrow=nrow, padding=PADDING, pad_value=0.5)
    return Image.fromarray(grid.mul(255).add_(0.5).clamp_(0, 255).permute(1, 2, 0).to(torch.uint8).numpy())


def _save_image(image: Any, path: str | Path) -> Path:
    from .serialization import atomic_write

    path = Path(path)
    atomic_write(path, lambda tmp: image.save(tmp, format="png"))
    return path


def save_grid(x: Tensor, path: str | Path, data_shape: Sequence[int], nrow: int | None = None) -> Path:
    """Write ``x (N, *data_shape)`` as one PNG grid (``nrow`` images per row, default ~sqrt(N))."""
    return _save_image(grid_image(x, data_shape, nrow), path)


RECONSTRUCTION_LABELS = ("data", "reconstruction")


def reconstruction_image(x: Tensor, recon: Tensor, data_shape: Sequence[int], per_row: int = 8) -> Any:
    """Rows alternate: ``per_row`` examples, then their reconstructions, each row labelled on the left."""
    from PIL import Image, ImageDraw, ImageFont

    n = (len(x) // per_row) * per_row or len(x)
    per_row = min(per_row, n)
    rows = []
    for i in range(0, n, per_row):
        rows += [x[i : i + per_row], recon[i : i + per_row]]
    grid = grid_image(torch.cat(rows), data_shape, nrow=per_row)
    cell = (grid.height - PADDING) // len(rows)  # one row of images and its padding
    font = ImageFont.load_default(size=max(10, min(16, cell // 3)))
    margin = max(int(font.getlength(label)) for label in RECONSTRUCTION_LABELS) + 12
    image = Image.new("RGB", (grid.width + margin, grid.height), (235, 235, 235))
    image.paste(grid, (margin, 0))
    draw = ImageDraw.Draw(image)
    for r in range(len(rows)):
        middle = PADDING + r * cell + (cell - PADDING) // 2
        draw.text((margin - 6, middle), RECONSTRUCTION_LABELS[r % 2], fill=(0, 0, 0), font=font, anchor="rm")
    return image


def save_reconstructions(
    x: Tensor, recon: Tensor, path: str | Path, data_shape: Sequence[int], per_row: int = 8
) -> Path:
    """Write ``reconstruction_image``: rows of ``per_row`` examples, each above its reconstructions."""
    return _save_image(reconstruction_image(x, recon, data_shape, per_row), path)


def _new_figure(size: tuple[float, float]) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=size, dpi=100, layout="constrained")


def _save_figure(fig: Any, path: str | Path) -> Path:
    return save_figures([(fig, path)])[0]


def save_figures(figures: Sequence[tuple[Any, str | Path]]) -> list[Path]:
    """Write each ``(figure, path)`` as PNG, all or none (``fileio.atomic_write_all``)."""
    from .fileio import atomic_write_all

    def writer(fig: Any) -> Any:
        return lambda tmp: fig.savefig(tmp, format="png")

    atomic_write_all([(path, writer(fig)) for fig, path in figures])
    return [Path(path) for _, path in figures]


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


MAX_CLASS_COLOURS = 20  # up to this many classes get one colour band each (tab10/tab20)


def scatter_figure(z: Tensor, labels: Tensor | None, classes: Sequence[str] | None = None) -> Any:
    """``latent_scatter.png``: 2-D posterior means, coloured by label when there are labels (one
    colour band per class, its tick at the band's centre)."""
    z = z.detach().float().cpu()
    fig = _new_figure((6, 5))
    ax = fig.subplots()
    if labels is None:
        ax.scatter(z[:, 0], z[:, 1], s=6, alpha=0.8)
    else:
        y = labels.detach().cpu().long()
        k = max(int(y.max()) + 1 if len(y) else 1, len(classes or ()))
        if k <= MAX_CLASS_COLOURS:
            import numpy as np
            from matplotlib import colormaps
            from matplotlib.colors import BoundaryNorm, ListedColormap

            colours = colormaps["tab10" if k <= 10 else "tab20"].colors[:k]
            norm = BoundaryNorm(np.arange(k + 1) - 0.5, k)  # class c owns [c - 0.5, c + 0.5]
            points = ax.scatter(z[:, 0], z[:, 1], c=y, cmap=ListedColormap(colours), norm=norm, s=6, alpha=0.8)
            cbar = fig.colorbar(points, ax=ax, ticks=list(range(k)))
            cbar.set_ticklabels([str(classes[c]) if classes is not None and c < len(classes) else str(c) for c in range(k)])
        else:
            points = ax.scatter(z[:, 0], z[:, 1], c=y, cmap="viridis", s=6, alpha=0.8)
            fig.colorbar(points, ax=ax, label="label")
    ax.set_xlabel("z[0]")
    ax.set_ylabel("z[1]")
    ax.set_title("posterior means of the test set")
    return fig


@torch.no_grad()
def manifold_figure(model: Any, z: Tensor, n: int = 16, *, labels: Sequence[Any] | None = None,
                    names: Sequence[str] | None = None) -> Any:
    """``latent_manifold.png``: decoded means on an ``n`` x ``n`` grid of z spanning the
    1st..99th percentiles of ``z (N, 2)``, drawn on axes z[0], z[1] at their values.

    ``labels``: a conditional model's style space, one panel per label (the same grid of z
    decoded with each y; ``names`` titles the panels)."""
    z = z.detach().float().cpu()
    lo, hi = torch.quantile(z, 0.01, dim=0), torch.quantile(z, 0.99, dim=0)
    hi = torch.where(hi > lo, hi, lo + 1e-3)  # a collapsed dimension still spans a little
    xs = torch.linspace(float(lo[0]), float(hi[0]), n)
    ys = torch.linspace(float(hi[1]), float(lo[1]), n)  # top row = largest z[1]
    grid = torch.stack(torch.meshgrid(ys, xs, indexing="ij"), dim=-1).flip(-1).reshape(-1, 2)
    ref = next(model.parameters(), None)
    grid = grid.to(ref.device if ref is not None else "cpu", ref.dtype if ref is not None else torch.float32)
    c, h, w = image_shape(model.data_shape)
    dx, dy = (float(hi[0] - lo[0]) / max(n - 1, 1), float(hi[1] - lo[1]) / max(n - 1, 1))
    extent = (float(lo[0]) - dx / 2, float(hi[0]) + dx / 2, float(lo[1]) - dy / 2, float(hi[1]) + dy / 2)
    panels = [None] if labels is None else list(labels)
    cols = min(len(panels), 5)
    rows = -(-len(panels) // cols)
    fig = _new_figure((6, 6) if labels is None else (2.6 * cols, 2.8 * rows + 0.6))
    axes = fig.subplots(rows, cols, squeeze=False)
    for i, label in enumerate(panels):
        ax = axes[i // cols][i % cols]
        kw = {} if label is None else {"y": _repeat(label, len(grid))}
        images = model.likelihood.mean(model.decode(grid, **kw)).float().cpu()
        if len(model.data_shape) == 3 and model.data_shape[0] not in (1, 3):
            images = images[:, :1]
        mosaic = images.reshape(n, n, c, h, w).clamp(0, 1).permute(2, 0, 3, 1, 4).reshape(c, n * h, n * w)
        pixels = mosaic[0] if c == 1 else mosaic.permute(1, 2, 0)
        ax.imshow(pixels.numpy(), cmap="gray" if c == 1 else None, vmin=0, vmax=1, extent=extent,
                  interpolation="nearest", aspect="auto")
        if label is not None:
            ax.set_title(f"y = {names[i] if names else label}", fontsize=9)
        if i // cols == rows - 1:
            ax.set_xlabel("z[0]")
        if i % cols == 0:
            ax.set_ylabel("z[1]")
    for j in range(len(panels), rows * cols):
        axes[j // cols][j % cols].set_visible(False)
    head = "decoder means" if labels is None else "style space: the same z decoded with each y"
    title = (f"{head}, z[0] in [{float(lo[0]):.2f}, {float(hi[0]):.2f}], "
             f"z[1] in [{float(lo[1]):.2f}, {float(hi[1]):.2f}]\n(1st..99th percentiles of the posterior means)")
    if labels is None:
        axes[0][0].set_title(title, fontsize=9)
    else:
        fig.suptitle(title, fontsize=9)
    return fig


def _repeat(label: Any, n: int) -> Any:
    """One label (or covariate vector) for ``n`` rows."""
    if isinstance(label, Tensor) and label.dim() == 1:
        return label.expand(n, label.shape[0])
    return torch.full((n,), int(label), dtype=torch.long)
