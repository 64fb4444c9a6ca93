"""Autoregressive Bernoulli likelihood: the decoder's logits plus a masked-convolution context.

``p(x|z) = prod_i Bernoulli(x_i; sigmoid(l_i(z) + g_i(x_<i)))`` over the pixels in raster
order (row by row, left to right). ``l(z)`` are the decoder's logits, ``g`` a small masked
convolutional net of the pixels before ``i`` (PixelCNN's masks: van den Oord et al., 2016,
"Pixel Recurrent Neural Networks", ICML; used as a VAE decoder head by Gulrajani et al.,
2017, "PixelVAE", ICLR). The product is a normalised probability mass for any weights, and
``log_prob`` is its exact logarithm in one pass (the context sees the observed pixels); only
``sample`` runs pixel by pixel. Because ``g`` does not depend on z it is computed once per
batch of data, whatever the number of latent samples: within one ``log_prob`` call, and
across the calls inside ``same_data(x)`` (an importance-sampled log-likelihood passes the K
samples of one batch in chunks). With ``features``, z weights the context's maps pixel by
pixel through gain maps from the decoder, which costs one multiply-add per map and pixel per
latent sample.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.distributions import Distribution, constraints

from ..components.base import Likelihood, sum_event
from ..errors import DataError
from ._common import event_dims_of, prepare
from ..validation import check_positive_int
from ._fast import bernoulli_log_prob
from .bernoulli import check_binary

WHO = "autoregressive_bernoulli"


class MaskedConv2d(nn.Conv2d):
    """A ``k x k`` convolution that sees only the pixels before the centre in raster order
    (``include_centre=False``, PixelCNN's mask A) or those and the centre (mask B)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, include_centre: bool) -> None:
        super().__init__(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
        mask = torch.ones(kernel_size, kernel_size)
        c = kernel_size // 2
        mask[c, c + int(include_centre):] = 0
        mask[c + 1:, :] = 0
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight * self.mask.to(self.weight.dtype), self.bias, padding=self.padding)


class AutoregressiveBernoulli(Likelihood):
    """Bernoulli likelihood whose pixel ``i`` also sees the pixels before it (``P = 1 + features``).

    ``logit_i = l_i(z) + g_i(x_<i) + sum_f s_fi(z) g_fi(x_<i)`` in raster order; a probability
    mass (``discrete=True``). Data ``(C, H, W)`` (images) or ``(D,)`` (a vector, read as one
    row). Each channel is its own raster sequence, read by the same masked convolutional
    context net, whose ``1 + features`` output maps ``g, g_1 .. g_F`` see only the pixels before
    each one: they do not depend on z, so they are computed once for any number of latent
    samples. The decoder's output holds ``1 + features`` blocks of C channels: the logits
    ``l(z)``, then ``features`` gain maps ``s_f(z)`` that weight ``g_f`` pixel by pixel -- how
    much, given z, each context feature matters where (the channels couple through z). The
    context's output layer starts at zero, so a fresh likelihood is ``bernoulli`` of the
    logits block. ``sample`` runs the context net H*W times, on the window each pixel sees; ``mean`` is not closed-form
    for an autoregressive mass: it returns the conditional means along one ancestral draw.

    Parameters:

    * ``kernel_size`` -- odd size of the first masked convolution (mask A: the pixels before
      the centre); its half-width is how far back along the row and up the image a pixel looks.
    * ``channels`` -- width of the context net.
    * ``layers`` -- masked layers of the context net; each after the first is a 3x3 mask-B
      convolution and widens the receptive field by one pixel.
    * ``features`` -- context maps weighted by the decoder's gain maps, conditioning the
      context on z (0: the context is added as it is).
    """

    num_params = 1
    discrete = True
    wants = "binary"

    def __init__(self, kernel_size: int = 7, channels: int = 32, layers: int = 1, features: int = 0) -> None:
        super().__init__()
        self.kernel_size = check_positive_int(kernel_size, "kernel_size", WHO)
        if self.kernel_size < 3:
            raise ValueError(f"{WHO}: kernel_size must be >= 3 (a mask A of size 1 sees no pixel), got {kernel_size}")
        if self.kernel_size % 2 == 0:
            raise ValueError(f"{WHO}: kernel_size must be odd (a centre pixel), got {kernel_size}")
        self.channels = check_positive_int(channels, "channels", WHO)
        self.layers = check_positive_int(layers, "layers", WHO)
        self.features = check_positive_int(features, "features", WHO, allow_zero=True)
        self.num_params = 1 + self.features
        hidden: list[nn.Module] = [MaskedConv2d(1, self.channels, self.kernel_size, False)]
        hidden += [MaskedConv2d(self.channels, self.channels, 3, True) for _ in range(self.layers - 1)]
        self.hidden = nn.ModuleList(hidden)
        self.out = nn.Conv2d(self.channels, 1 + self.features, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, channels={self.channels}, layers={self.layers}, features={self.features}"

    # -- the context g(x_<i) and its gains s(z) -----------------------------------------------

    @staticmethod
    def _as_image(x: Tensor) -> Tensor:
        """``(N, *data_shape)`` as ``(N, C, H, W)``: a vector is one row of one channel."""
        if x.dim() == 2:
            return x[:, None, None, :]
        if x.dim() == 4:
            return x
        raise DataError(
            f"autoregressive_bernoulli models images (C, H, W) or vectors (D,), got data of shape {tuple(x.shape[1:])}"
        )

    def _maps(self, x: Tensor) -> Tensor:
        """The context net's output maps for data ``x (N, *data_shape)``: ``(N, C, 1 + features, H, W)``."""
        img = self._as_image(x)
        n, c, hgt, wid = img.shape
        h = img.reshape(n * c, 1, hgt, wid).to(self.out.weight.dtype) * 2 - 1  # {-1, 1}: the zero padding is neither
        return self._net(h).reshape(n, c, 1 + self.features, hgt, wid)

    def _net(self, h: Tensor) -> Tensor:
        """The context net on pixels in {-1, 1} (0: none), ``(M, 1, H, W) -> (M, 1 + features, H, W)``."""
        for layer in self.hidden:
            h = F.relu(layer(h))
        return self.out(h)

    @property
    def reach(self) -> int:
        """How many rows up and columns to either side a pixel's context reaches."""
        return self.kernel_size // 2 + self.layers - 1

    def context(self, x: Tensor, gains: Tensor | None = None) -> Tensor:
        """What the context adds to the logits, for data ``x (N, *data_shape)``: ``g`` in the
        shape of ``x``; with ``features``, ``g + sum_f s_f g_f`` for the decoder's gain maps
        ``gains (..., N, features * C, *data_shape[1:])``, in the shape of one block of those."""
        return self._context(x, gains, given=None)

    def _context(self, x: Tensor, gains: Tensor | None, given: Tensor | None) -> Tensor:
        """``context``; the maps computed once while ``given`` is the ``x`` of ``same_data``."""
        if self.features and gains is None:
            raise ValueError(f"{WHO}: with features={self.features} the context needs the decoder's gain maps (gains=...)")
        fixed = getattr(self, "_fixed", None)
        if given is not None and fixed is not None and fixed[0] is given:
            if fixed[1] is None:
                fixed[1] = self._maps(x)
            maps = fixed[1]
        else:
            maps = self._maps(x)
        g = maps[:, :, 0]
        if self.features == 0:
            return g.reshape(x.shape).to(x.dtype)
        event = tuple(x.shape[1:])
        lead = gains.shape[: gains.dim() - len(event)]  # (..., N)
        s = gains.reshape(*lead, self.features, *event)  # block f is gain map f
        if len(event) == 1:
            s = s[..., None, None, :]  # a vector: one row of one channel
        g = g + (s.to(maps.dtype) * maps[:, :, 1:].transpose(1, 2)).sum(-4)  # (..., N, C, H, W)
        return g.reshape(*lead, *event).to(gains.dtype)

    @contextlib.contextmanager
    def same_data(self, x: Tensor) -> Iterator[None]:
        """Inside, ``log_prob`` on this very ``x`` runs the context net once (at the first call)."""
        previous = getattr(self, "_fixed", None)
        object.__setattr__(self, "_fixed", [x, None])  # a plain attribute: not state, gone on exit
        try:
            yield
        finally:
            object.__setattr__(self, "_fixed", previous)

    # -- the Likelihood contract ------------------------------------------------------------

    def log_prob(self, x: Tensor, params: Tensor) -> Tensor:
        given = x
        x, event_dims = prepare(self, x, params)
        logits, gains = self._blocks(params, event_dims)
        logits = logits + self._context(x, gains, given)
        return sum_event(bernoulli_log_prob(logits, x.expand_as(logits)), event_dims)

    def _blocks(self, params: Tensor, event_dims: int) -> tuple[Tensor, Tensor | None]:
        """Views of ``params``: the logits block, and the ``features`` gain blocks (None without features)."""
        if self.features == 0:
            return params, None
        c = params.shape[-event_dims] // self.num_params
        return params.narrow(-event_dims, 0, c), params.narrow(-event_dims, c, self.features * c)

    def distribution(self, params: Tensor, event_dims: int | None = None) -> Distribution:
        return AutoregressiveBernoulliDistribution(self, params, event_dims_of(params, event_dims))

    def _draw(self, params: Tensor, event_dims: int | None) -> tuple[Tensor, Tensor]:
        """One ancestral draw ``x`` and its conditional means, both shaped like the logits block of ``params``.

        Pixel by pixel in raster order; each step runs the context net only on the part of
        the image that the pixel's output depends on (``reach`` rows up, ``reach`` columns to
        either side, clipped to the image, whose borders the net pads as in ``log_prob``), so
        a step costs the same for any image size."""
        event_dims = event_dims_of(params, event_dims)
        logits, gains = self._blocks(params.detach(), event_dims)
        shape = logits.shape
        event = tuple(shape[logits.dim() - event_dims:])
        img = self._as_image(logits.reshape(-1, *event))  # (N, C, H, W)
        n, ch, hgt, wid = img.shape
        s = None
        if gains is not None:  # (N, features, C, H, W): block f is gain map f, as in _context
            s = gains.reshape(n, self.features, *event)
            s = s[..., None, None, :] if len(event) == 1 else s
        r, dtype = self.reach, self.out.weight.dtype
        seen = torch.zeros(n * ch, 1, hgt, wid, dtype=dtype, device=img.device)  # drawn pixels in {-1, 1}
        x = torch.zeros_like(img)
        probs = torch.zeros_like(img)
        with torch.no_grad():
            for i in range(hgt):
                top = max(0, i - r)
                for j in range(wid):
                    left = max(0, j - r)
                    window = seen[:, :, top:i + 1, left:j + r + 1]
                    m = self._net(window)[:, :, i - top, j - left].reshape(n, ch, 1 + self.features)
                    g = m[:, :, 0]
                    if s is not None:
                        g = g + (s[:, :, :, i, j].transpose(1, 2).to(dtype) * m[:, :, 1:]).sum(-1)
                    p = torch.sigmoid(img[:, :, i, j] + g.to(img.dtype))
                    probs[:, :, i, j] = p
                    x[:, :, i, j] = torch.bernoulli(p)
                    seen[:, 0, i, j] = x[:, :, i, j].reshape(-1).to(dtype) * 2 - 1
        return x.reshape(shape), probs.reshape(shape)

    def sample(self, params: Tensor, event_dims: int | None = None) -> Tensor:
        return self._draw(params, event_dims)[0]

    def mean(self, params: Tensor, event_dims: int | None = None) -> Tensor:
        return self._draw(params, event_dims)[1]

    def check_data(self, x: Tensor) -> None:
        check_binary(self, x, "autoregressive_bernoulli")

class AutoregressiveBernoulliDistribution(Distribution):
    """The distribution of one whole example under ``AutoregressiveBernoulli`` with fixed ``params``."""

    arg_constraints = {"params": constraints.real}
    support = constraints.boolean
    has_enumerate_support = False

    def __init__(self, likelihood: AutoregressiveBernoulli, params: Tensor, event_dims: int) -> None:
        self.likelihood, self.params, self.event_dims = likelihood, params, event_dims
        split = params.dim() - event_dims
        data = (params.shape[split] // likelihood.num_params, *params.shape[split + 1:])  # one block: the data's shape
        super().__init__(params.shape[:split], torch.Size(data), validate_args=False)

    def log_prob(self, value: Tensor) -> Tensor:
        split = self.params.dim() - self.event_dims
        batch = self.params.shape[:split]
        flat_v = value.expand(*batch, *self.event_shape).reshape(-1, *self.event_shape)
        flat_p = self.params.reshape(-1, *self.params.shape[split:])
        return self.likelihood.log_prob(flat_v, flat_p).reshape(batch)

    def sample(self, sample_shape: torch.Size = torch.Size()) -> Tensor:
        params = self.params.expand(*sample_shape, *self.params.shape)
        return self.likelihood.sample(params, self.event_dims)

    @property
    def mean(self) -> Tensor:
        raise NotImplementedError(
            "the mean of an autoregressive Bernoulli is not closed-form; "
            "AutoregressiveBernoulli.mean gives the conditional means along one draw"
        )
