"""The figures: readable image sizes, labelled reconstructions, the manifold's axes, the scatter's class ticks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from vaezoo import figures


def test_small_images_are_enlarged_nearest_neighbour(tmp_path):
    x = torch.rand(6, 1, 8, 8)
    path = figures.save_grid(x, tmp_path / "g.png", (1, 8, 8), nrow=3)
    image = np.asarray(Image.open(path).convert("L"))
    cell = figures.MIN_PIXELS  # 8 x 8 pixels, each 8 x 8
    assert cell >= 64
    assert image.shape == (2 * cell + 3 * figures.PADDING, 3 * cell + 4 * figures.PADDING)
    first = image[figures.PADDING : figures.PADDING + cell, figures.PADDING : figures.PADDING + cell]
    blocks = first.reshape(8, cell // 8, 8, cell // 8)
    assert (blocks == blocks[:, :1, :, :1]).all()  # every source pixel a uniform block: nearest-neighbour
    expected = (x[0, 0].numpy() * 255 + 0.5).clip(0, 255).astype(np.uint8)
    assert np.array_equal(blocks[:, 0, :, 0], expected)
    for side, scale in ((28, 3), (32, 2), (64, 1), (100, 1)):
        assert figures.as_images(torch.rand(1, 1, side, side), (1, side, side)).shape[-1] == side * scale


def test_reconstructions_label_their_rows():
    x, recon = torch.zeros(16, 1, 8, 8), torch.ones(16, 1, 8, 8)
    image = figures.reconstruction_image(x, recon, (1, 8, 8), per_row=8)
    grid = figures.grid_image(torch.cat([x[:8], recon[:8], x[8:], recon[8:]]), (1, 8, 8), nrow=8)
    margin = image.width - grid.width
    assert margin > 20 and image.height == grid.height
    pixels = np.asarray(image.convert("L"))
    assert np.array_equal(pixels[:, margin:], np.asarray(grid.convert("L")))  # the images are untouched
    cell = (grid.height - figures.PADDING) // 4
    label = pixels[:, :margin] < 100  # dark text in the light margin
    rows = [label[figures.PADDING + r * cell : (r + 1) * cell].any() for r in range(4)]
    assert all(rows)  # every row is labelled
    data, recon_label = label[figures.PADDING : cell], label[cell + figures.PADDING : 2 * cell]
    assert data.sum() < recon_label.sum()  # "data" is shorter than "reconstruction"
    assert figures.RECONSTRUCTION_LABELS == ("data", "reconstruction")


class _Decoder2D(torch.nn.Module):
    """A model with a 2-d z whose decoded image is brighter for larger z[0]."""

    data_shape = (1, 4, 4)
    latent_dim = 2

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(()))
        from vaezoo.likelihoods.bernoulli import Bernoulli

        self.likelihood = Bernoulli()

    def decode(self, z):
        logits = (self.w * z[:, :1] * 4).expand(len(z), 16).reshape(len(z), 1, 4, 4).clone()
        logits[:, 0, 0, 0] = 20.0  # each image's top-left pixel is white
        return logits


def test_manifold_has_axes_spanning_its_z_range():
    z = torch.stack([torch.linspace(-2, 3, 101), torch.linspace(-1, 1, 101)], dim=1)
    fig = figures.manifold_figure(_Decoder2D(), z, n=5)
    (ax,) = fig.axes
    lo, hi = torch.quantile(z, 0.01, dim=0), torch.quantile(z, 0.99, dim=0)
    dx, dy = float(hi[0] - lo[0]) / 4, float(hi[1] - lo[1]) / 4
    assert ax.get_xlim() == pytest.approx((float(lo[0]) - dx / 2, float(hi[0]) + dx / 2))
    assert ax.get_ylim() == pytest.approx((float(lo[1]) - dy / 2, float(hi[1]) + dy / 2))  # z[1] grows upwards
    assert ax.get_xlabel() == "z[0]" and ax.get_ylabel() == "z[1]"
    assert f"{float(lo[0]):.2f}" in ax.get_title() and f"{float(hi[1]):.2f}" in ax.get_title()
    pixels = ax.get_images()[0].get_array()
    assert pixels.shape == (20, 20)  # 5 x 5 images of 4 x 4
    assert np.allclose(pixels[::4, ::4], 1.0, atol=1e-6)  # every image upright, where it belongs
    assert pixels[1, 1] < pixels[1, -2] and np.allclose(pixels[1, 1], pixels[-2, 1])  # brighter to the right only


@pytest.mark.parametrize("num_classes", [3, 10, 15])
def test_scatter_class_ticks_sit_at_the_centres_of_their_bands(num_classes):
    y = torch.arange(200) % num_classes
    z = torch.randn(200, 2)
    names = [f"class {c}" for c in range(num_classes)]
    fig = figures.scatter_figure(z, y, names)
    cbar_ax = fig.axes[1]
    points = fig.axes[0].collections[0]
    bounds = np.asarray(points.norm.boundaries)
    centres = (bounds[:-1] + bounds[1:]) / 2
    ticks = cbar_ax.get_yticks()
    assert len(bounds) == num_classes + 1 and points.cmap.N == num_classes  # one colour band per class
    assert np.allclose(ticks, centres)
    assert [t.get_text() for t in cbar_ax.get_yticklabels()] == names
    for c in range(num_classes):  # a point of class c gets the colour of band c
        assert points.norm(c) == c


def test_scatter_without_labels_or_with_many_classes(tmp_path):
    z = torch.randn(50, 2)
    assert len(figures.scatter_figure(z, None).axes) == 1
    fig = figures.scatter_figure(z, torch.arange(50))  # 50 classes: a continuous colour bar
    assert len(fig.axes) == 2
    assert figures.save_figures([(figures.scatter_figure(z, torch.arange(50) % 4), tmp_path / "s.png")])[0].is_file()
