"""The ``hierarchical`` architecture's factory: its ``model`` keys checked (``check_hierarchical``,
without data) and ``HierarchicalVAE`` built from them (``build_hierarchical``)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ..conditioning import Condition, check_conditionable, parse_condition
from ..errors import ConfigError, did_you_mean, one_of
from ..kinds import CONDITION_DIM
from ..nets.layers import check_weights, dense_weights, linear_weights
from ._common import KL_MODES
from .hierarchical import WHO, HierarchicalVAE, _check_activation


def _block_weights(n_in: int, hidden: Sequence[int], name: str, activation: str) -> tuple[list[tuple[str, int]], int]:
    out = []
    for width in hidden:
        desc, n = dense_weights(n_in, width, activation)
        out.append((f"{name} {desc}", n))
        n_in = width
    return out, n_in


def _check_params(latent_dims: Any, hidden: Any, residual: Any, min_scale: Any, kl: Any) -> tuple[tuple[int, ...], tuple[int, ...], float]:
    from ..model import MAX_SIZE

    def ints(value: Any, key: str, allow_empty: bool) -> tuple[int, ...]:
        ok = isinstance(value, (list, tuple)) and (allow_empty or len(value) > 0) and all(
            isinstance(v, int) and not isinstance(v, bool) and 0 < v <= MAX_SIZE for v in value
        )
        if not ok:
            what = "a list" if allow_empty else "a non-empty list"
            raise ConfigError(f"model.{key}: expected {what} of positive integers (at most 2**31 each), got {value!r}")
        return tuple(int(v) for v in value)

    dims = ints(latent_dims, "latent_dims", allow_empty=False)
    widths = ints(hidden, "hidden", allow_empty=True)
    if not isinstance(residual, bool):
        raise ConfigError(f"model.residual: expected true or false, got {residual!r}")
    if isinstance(min_scale, bool) or not isinstance(min_scale, (int, float)) or not 0 < min_scale < math.inf:
        raise ConfigError(f"model.min_scale: expected a positive number, got {min_scale!r}")
    if kl not in KL_MODES:
        raise ConfigError(f"model.kl: {kl!r} is not allowed.{did_you_mean(str(kl), KL_MODES)} Allowed: {one_of(KL_MODES)}")
    return dims, widths, float(min_scale)


def _check_size(data_shape: tuple[int, ...], dims: tuple[int, ...], widths: tuple[int, ...], out_size: int,
                activation: str) -> None:
    """Refuse a network too large to allocate, counting weights before building anything."""
    layers, up_w = [], math.prod(data_shape)
    up_widths = []
    for _ in dims:
        part, up_w = _block_weights(up_w, widths, "bottom-up", activation)
        layers += part
        up_widths.append(up_w)
    layers.append(linear_weights(up_widths[-1], 2 * dims[-1]))
    td = [0] * len(dims)
    part, td[-1] = _block_weights(dims[-1], widths, "top-down", activation)
    layers += part
    for i in range(len(dims) - 2, -1, -1):
        part, td[i] = _block_weights(dims[i] + td[i + 1], widths, "top-down", activation)
        layers += part
        layers += [linear_weights(td[i + 1], 2 * dims[i]), linear_weights(up_widths[i] + td[i + 1], 2 * dims[i])]
    layers.append(linear_weights(td[0], out_size))
    try:
        check_weights(layers, WHO, "model.hidden, model.latent_dims or data_shape")
    except ValueError as exc:
        raise ConfigError(f"model: {exc}") from None


def build_hierarchical(
    components: Any,
    *,
    data_shape: list[int],
    latent_dims: list[int],
    prior: Any,
    likelihood: Any,
    hidden: list[int] = [256],  # noqa: B006  (read only; the config's default)
    residual: bool = True,
    min_scale: float = 1e-4,
    kl: str = "auto",
    activation: str = "relu",
    blocks: str = "mlp",
    channels: list[int] = [32, 64],  # noqa: B006  (read only)
    kernel_size: int = 3,
    condition: Any = None,
) -> HierarchicalVAE:
    """L stochastic levels z_1 .. z_L generated top-down, MLP or conv blocks (the keys of ``model``).

    Parameters:

    * ``data_shape`` -- shape of one example, as for ``vae``.
    * ``latent_dims`` -- sizes of z_1 (bottom) .. z_L (top), e.g. ``[16, 8]``.
    * ``prior`` -- p(z_L), the top level's prior: any prior plugin (a VampPrior is bound to
      q(z_L|x), the bottom-up pass and the top head).
    * ``likelihood`` -- p(x|z), any likelihood plugin.
    * ``hidden`` -- ``mlp`` blocks: widths of every block (bottom-up, top-down); ``[]``: linear.
    * ``residual`` -- the posterior of each level relative to its conditional prior (NVAE):
      loc_p + dloc, scale_p · factor.
    * ``min_scale`` -- floor of every Gaussian scale.
    * ``kl`` -- as for ``vae``, for the top level; the lower levels' Normal-Normal KL is analytic
      (``mc``: Monte Carlo everywhere).
    * ``activation`` -- of every block: ``relu``, ``gelu``, ``silu``, ``tanh`` or ``elu``;
      ``mlp`` blocks also ``gated`` (as for the ``mlp`` nets).
    * ``blocks`` -- ``mlp``, or ``conv`` for images: level l lives at 1/2^l of the image's
      height and width (rounded up), its z_l has ``latent_dims[l-1]`` channels per position.
    * ``channels`` -- ``conv`` blocks: feature channels of each level, one per level.
    * ``kernel_size`` -- ``conv`` blocks: odd kernel size of the convolutions.
    * ``condition`` -- a conditional hierarchy: ``{classes: N}`` or ``{dim: C}``, y joined to x in
      the bottom-up pass and to z_L at the top of the top-down pass (``conv`` blocks: as C constant
      channels), so every level's prior and posterior and the likelihood see it; ``prior: true``
      also p(z_L|y).
    """
    dims, widths, min_scale = _check_params(latent_dims, hidden, residual, min_scale, kl)
    _check_activation(activation, blocks)
    cond = _check_condition(components, condition, blocks, prior)
    data_shape = tuple(data_shape)
    conv = _check_blocks(blocks, channels, kernel_size, dims, data_shape)
    lik = components("likelihood", likelihood)
    param_shape = tuple(lik.param_shape(data_shape))
    if conv:
        from ._conv_blocks import conv_weights, flat_dims

        try:
            check_weights(conv_weights(data_shape, dims, channels, param_shape[0], kernel_size,
                                       cond.size if cond is not None else 0), WHO,
                          "model.channels, model.latent_dims or data_shape")
        except ValueError as exc:
            raise ConfigError(f"model: {exc}") from None
        top_dim = flat_dims(data_shape, dims)[-1]
    else:
        _check_size(data_shape, dims, widths, math.prod(param_shape), activation)
        top_dim = dims[-1]
    pri = components("prior", prior, latent_dim=top_dim, **({CONDITION_DIM: cond.size} if cond is not None and cond.prior else {}))
    try:
        return HierarchicalVAE(pri, lik, data_shape=data_shape, latent_dims=dims, hidden=widths,
                               residual=residual, min_scale=min_scale, kl=kl, activation=activation,
                               blocks=blocks, channels=tuple(channels), kernel_size=kernel_size, condition=cond)
    except RuntimeError as exc:  # allocation (the VampPrior's pseudo-inputs, large layers)
        raise components.allocation_error(exc, "prior", prior) or exc


def check_hierarchical(components: Any, *, latent_dims: Any, prior: Any, likelihood: Any, hidden: Any = [256],  # noqa: B006
                       residual: Any = True, min_scale: Any = 1e-4, kl: Any = "auto", activation: Any = "relu",
                       blocks: Any = "mlp", channels: Any = [32, 64], kernel_size: Any = 3,  # noqa: B006
                       condition: Any = None, data_shape: Any = None) -> None:
    """Validate a ``hierarchical`` config without data: its own keys and the prior's and likelihood's names and parameters."""
    dims, _, _ = _check_params(latent_dims, hidden, residual, min_scale, kl)
    _check_activation(activation, blocks)
    cond = _check_condition(components, condition, blocks, prior)
    if blocks not in BLOCKS:
        _check_blocks(blocks, channels, kernel_size, dims, (1, 1, 1))
    components.check("likelihood", likelihood)
    components.check("prior", prior, latent_dim=dims[-1], **({CONDITION_DIM: cond.size} if cond is not None and cond.prior else {}))


def _check_condition(components: Any, condition: Any, blocks: Any, prior: Any) -> Condition | None:
    cond = parse_condition(condition)
    if cond is not None and cond.prior:
        check_conditionable(components, "prior", prior)
    return cond


BLOCKS = ("mlp", "conv")


def _check_blocks(blocks: Any, channels: Any, kernel_size: Any, dims: tuple[int, ...], data_shape: tuple[int, ...]) -> bool:
    """True for conv blocks, after checking their keys against the data and the levels."""
    if blocks not in BLOCKS:
        raise ConfigError(f"model.blocks: {blocks!r} is not allowed.{did_you_mean(str(blocks), BLOCKS)} Allowed: {one_of(BLOCKS)}")
    if blocks == "mlp":
        return False
    if len(data_shape) != 3:
        raise ConfigError(f"model.blocks: conv blocks need images (C, H, W), got data_shape {list(data_shape)}; use blocks: mlp")
    if not (isinstance(channels, (list, tuple)) and all(isinstance(c, int) and not isinstance(c, bool) and c > 0 for c in channels)):
        raise ConfigError(f"model.channels: expected a list of positive integers, got {channels!r}")
    if len(channels) != len(dims):
        raise ConfigError(
            f"model.channels: one width per level: {len(dims)} levels (model.latent_dims {list(dims)}), got {list(channels)}"
        )
    if isinstance(kernel_size, bool) or not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
        raise ConfigError(f"model.kernel_size: expected an odd positive integer (3, 5, ...), got {kernel_size!r}")
    return True


build_hierarchical.check_config = check_hierarchical  # type: ignore[attr-defined]
