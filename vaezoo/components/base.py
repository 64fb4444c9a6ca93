"""The contracts of the net components (encoder, decoder, prior, likelihood). Subclass these to write a plugin.

Shapes: ``B`` is the batch, ``data_shape`` one example (``(C, H, W)`` for images,
``(D,)`` for vectors), ``latent_dim`` the size of z. Every component works in float32
and float64 and on any device (it follows its inputs and its own parameters).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor, nn
from torch.distributions import Distribution


class Likelihood(nn.Module):
    """p(x|z): a closed-form density of the decoder's output; never sampled to train or evaluate.

    The decoder produces ``params`` of shape ``(..., *param_shape(data_shape))``. For data
    ``(B, C, ...)`` the params are ``(B, P*C, ...)``: ``P`` blocks of ``C`` channels, split
    with ``params.chunk(P, dim=1)`` (``dim=-len(data_shape)`` when there are extra leading
    sample dimensions). Subclasses set ``num_params`` (``P``) and implement ``log_prob``,
    ``distribution``, ``mean`` and ``sample``; ``check_data`` checks the support.

    Class attributes:

    * ``num_params`` -- P, parameter blocks per data channel.
    * ``discrete`` -- True when ``log_prob`` is a probability mass (nats are directly
      comparable across models and convertible to bits/dim); False for densities.
    * ``wants`` -- the data it models, which ``data.binarize``/``data.dequantize`` follow when
      the config leaves them unset: ``"binary"`` (0/1: dynamic binarization), ``"bins"``
      (quantised levels as they are), ``"continuous"`` (values in [0, 1]: quantised sources are
      uniformly dequantized), or None (no opinion: the data as they are).
    """

    num_params: int = 1
    discrete: bool = False
    wants: str | None = None

    def param_shape(self, data_shape: tuple[int, ...]) -> tuple[int, ...]:
        """The decoder's output shape for one example of ``data_shape``."""
        data_shape = tuple(int(s) for s in data_shape)
        if not data_shape:
            raise ValueError("data_shape must have at least one dimension, e.g. (784,) or (1, 28, 28)")
        return (self.num_params * data_shape[0], *data_shape[1:])

    def split(self, params: Tensor, event_dims: int) -> tuple[Tensor, ...]:
        """Split ``params`` into its ``num_params`` blocks along the channel dimension."""
        return params.chunk(self.num_params, dim=-event_dims)

    def log_prob(self, x: Tensor, params: Tensor) -> Tensor:
        """log p(x|params) in nats, summed over the example: ``x (B, *data_shape)`` and
        ``params (..., B, *param_shape)`` give ``(..., B)``."""
        raise NotImplementedError

    def distribution(self, params: Tensor) -> Distribution:
        """A ``torch.distributions.Distribution`` whose event is one whole example."""
        raise NotImplementedError

    @contextlib.contextmanager
    def same_data(self, x: Tensor) -> Iterator[None]:
        """A block in which ``log_prob`` is called several times with this very ``x`` and new
        ``params`` (an importance-sampled log-likelihood passes its K samples in chunks). A
        likelihood may compute what depends on ``x`` alone once, on entry or at the first
        call, and must forget it on exit. The default does nothing."""
        yield

    def mean(self, params: Tensor) -> Tensor:
        """E[x|params], shape ``(..., *data_shape)``."""
        return self.distribution(params).mean

    def sample(self, params: Tensor) -> Tensor:
        """One draw of x per set of params (only for generating), shape ``(..., *data_shape)``."""
        return self.distribution(params).sample()

    def check_data(self, x: Tensor) -> None:
        """Raise ``vaezoo.errors.DataError`` if ``x`` lies outside this likelihood's support."""
        _check_finite(x, self)

    def extra_repr(self) -> str:
        return ""


class Encoder(nn.Module):
    """q(z|x). Built with ``(data_shape, latent_dim, **params)``.

    ``forward(x)`` with ``x (B, *data_shape)`` returns a ``Distribution`` with batch shape
    ``(B,)``, event shape ``(latent_dim,)`` and ``rsample`` (reparameterised).

    ``latent`` names the family of z: ``"real"`` (z anywhere in R^latent_dim, ``log_prob`` a
    density with respect to Lebesgue measure; the default) or another family, such as
    ``"categorical"`` (one-hot groups, ``vaezoo.distributions.categorical``). A model pairs it
    only with a prior that lists the family in ``Prior.latents`` (checked by ``Prior.bind``).
    """

    latent: str = "real"

    def __init__(self, data_shape: tuple[int, ...], latent_dim: int) -> None:
        super().__init__()
        self.data_shape = tuple(int(s) for s in data_shape)
        self.latent_dim = int(latent_dim)


class Decoder(nn.Module):
    """z -> likelihood parameters. Built with ``(latent_dim, param_shape, **params)``.

    ``forward(z)`` maps ``(..., latent_dim)`` to ``(..., *param_shape)`` for any number of
    leading dimensions (``(B, latent)`` while training, ``(K, B, latent)`` for importance
    sampling).
    """

    def __init__(self, latent_dim: int, param_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.latent_dim = int(latent_dim)
        self.param_shape = tuple(int(s) for s in param_shape)


class Prior(nn.Module):
    """p(z). Built with ``(latent_dim, **params)``.

    ``distribution()`` returns a ``Distribution`` with event shape ``(latent_dim,)`` and
    empty batch shape; ``log_prob(z)`` sums over the latent dimension; ``sample(n)`` returns
    ``(n, latent_dim)``. The defaults below derive both from ``distribution()``.

    A prior that depends on the model (the VampPrior evaluates the encoder at learned
    pseudo-inputs) overrides ``bind(encoder, data_shape, condition=None)``; the architecture
    calls it once, after building the encoder and before loading any weights. In a
    conditional model ``condition`` is the model's ``vaezoo.conditioning.Condition`` and the
    encoder takes ``(x, y)``; a ``bind`` without the ``condition`` parameter is called without
    it, and then a prior that evaluates the encoder cannot be part of a conditional model.

    ``latents`` are the families of z it is a prior for (``Encoder.latent``; default
    ``("real",)``): the default ``bind`` refuses an encoder of any other family in one line,
    so that a density on R^latent_dim is never compared with a posterior of another kind.
    ``evaluates_encoder`` is True for a prior that runs the encoder itself (the VampPrior): in
    a conditional model it must feed the encoder a y of its own (see ``bind``).
    """

    latents: tuple[str, ...] = ("real",)
    evaluates_encoder: bool = False

    def __init__(self, latent_dim: int) -> None:
        super().__init__()
        self.latent_dim = int(latent_dim)

    def bind(self, encoder: nn.Module, data_shape: tuple[int, ...], condition: Any = None) -> None:
        """Give the prior access to the model's encoder. Default: only check its family (``check_latents``)."""
        check_latents(self, encoder)

    def distribution(self) -> Distribution:
        raise NotImplementedError

    def log_prob(self, z: Tensor) -> Tensor:
        return self.distribution().log_prob(z)

    def sample(self, n: int) -> Tensor:
        return self.distribution().sample((int(n),))

    def _reference(self) -> Tensor:
        """A tensor with this prior's device and dtype (its first parameter or buffer)."""
        for t in self.parameters():
            return t
        for t in self.buffers():
            return t
        return torch.zeros(())


def check_latents(prior: Prior, encoder: nn.Module) -> str:
    """The encoder's latent family (``Encoder.latent``, ``"real"`` if it names none); a
    ``ConfigError`` naming ``model.prior`` if it is not one of ``prior.latents``."""
    family = getattr(encoder, "latent", "real")
    if family in prior.latents:
        return family
    from ..errors import ConfigError

    wanted = " or ".join(map(repr, prior.latents))
    other_encoder = (  # only an encoder component can be swapped; an architecture's own q(z|x) cannot
        f" or an encoder of {wanted} latents{_registered('encoder', lambda f: getattr(f, 'latent', 'real') in prior.latents)}"
        if isinstance(encoder, Encoder) else ""
    )
    raise ConfigError(
        f"model.prior: {type(prior).__name__} is a prior for {wanted} latents, but the encoder "
        f"({type(encoder).__name__}) gives {family!r} latents; choose a prior for {family!r} latents"
        f"{_registered('prior', lambda f: family in getattr(f, 'latents', ()))}{other_encoder}"
    )


def _registered(kind: str, fits: Any) -> str:
    """`` ('a', 'b')``: the registered components of ``kind`` whose factory ``fits``, or ``""``."""
    from ..registry import get_registry

    names = []
    for name, specs in sorted(get_registry().components[kind].items()):
        try:
            if any(fits(spec.load()) for spec in specs):
                names.append(name)
        except Exception:  # a broken plugin must not hide the error being reported
            continue
    return f" ({', '.join(map(repr, names))})" if names else ""


def _check_finite(x: Tensor, who: Any) -> None:
    from ..errors import DataError

    if not torch.is_floating_point(x):
        raise DataError(f"{type(who).__name__}: data must be a floating-point tensor, got {x.dtype}")
    if not torch.isfinite(x).all():
        raise DataError(f"{type(who).__name__}: data contains NaN or inf")


def sum_event(t: Tensor, event_dims: int) -> Tensor:
    """Sum the last ``event_dims`` dimensions of ``t``."""
    return t.sum(dim=tuple(range(-event_dims, 0))) if event_dims else t


LOG_2 = math.log(2.0)
