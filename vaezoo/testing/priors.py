"""``check_prior``: the ``vaezoo.Prior`` contract."""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.distributions import Distribution, Independent, Normal

from ..components import Encoder, Prior
from ._common import (
    NORM_TOL,
    PRIOR_EXTREME,
    _Check,
    _float_params,
    _integrate_1d,
    _perturb,
    _resolve,
    _roundtrip,
    _seeded,
    _shape,
    _zero_grads,
)


class _TinyEncoder(Encoder):
    """A linear diagonal-Gaussian encoder, for binding priors that need one (VampPrior)."""

    def __init__(self, data_shape: tuple[int, ...], latent_dim: int) -> None:
        super().__init__(data_shape, latent_dim)
        self.net = nn.Linear(math.prod(self.data_shape), 2 * self.latent_dim)

    def forward(self, x: Tensor) -> Distribution:
        lead = x.shape[: x.dim() - len(self.data_shape)]
        loc, raw = self.net(x.reshape(*lead, -1)).chunk(2, dim=-1)
        return Independent(Normal(loc, nn.functional.softplus(raw) + 0.3), 1)


def check_prior(
    prior: str | Prior,
    latent_dim: int = 2,
    *,
    data_shape: Sequence[int] = (1, 4, 4),
    perturb: float = 0.2,
    seed: int = 0,
    **params: Any,
) -> Prior:
    """Check a prior against the ``vaezoo.Prior`` contract; returns the instance.

    ``prior``: a registered name (built with ``latent_dim`` and ``**params``) or an instance.
    The prior is first bound (``bind``) to a small encoder for ``data_shape``, as a ``VAE``
    does. Checked: ``distribution()`` has batch shape ``()`` and event shape
    ``(latent_dim,)``; ``sample(n)`` is ``(n, latent_dim)`` and finite; ``log_prob`` keeps
    leading dims, agrees with ``distribution().log_prob`` and has finite values and
    gradients, also at ``|z| = 10``; float64; for ``latent_dim <= 2`` exp(log_prob)
    integrates to 1 (quadrature) and the mean of ``sample`` matches the density's mean;
    a ``state_dict`` round trip.
    """
    data_shape = tuple(int(s) for s in data_shape)
    fixed = {"latent_dim": int(latent_dim)}
    prior, label, make = _resolve("prior", prior, fixed, params, "check_prior")
    c = _Check("prior", label)
    d_lat = int(getattr(prior, "latent_dim", latent_dim))
    with _seeded(seed):
        encoder = _TinyEncoder(data_shape, d_lat)
        work = make()
        c.call(f"bind(encoder, {data_shape})", work.bind, encoder, data_shape)
        _perturb(work, perturb)
        _prior_shapes(c, work, d_lat)
        _prior_extremes(c, work, d_lat)

        def fresh_bound() -> tuple[Prior, nn.Module]:
            enc = copy.deepcopy(encoder)
            fresh = make()
            c.call(f"bind(encoder, {data_shape})", fresh.bind, enc, data_shape)
            _perturb(fresh, perturb)
            return fresh, enc

        z = torch.randn(5, d_lat)
        p2, _ = fresh_bound()
        _roundtrip(c, work, p2, lambda m: [m.log_prob(z)])
        p64, enc64 = fresh_bound()
        c.call("load_state_dict", p64.load_state_dict, work.state_dict())
        enc64.double()
        p64.double()
        _prior_float64(c, p64, work, d_lat)
        if d_lat <= 2:
            _prior_normalisation(c, p64, d_lat)
    return prior


def _prior_shapes(c: _Check, prior: Prior, d: int) -> None:
    dist = c.call("distribution()", prior.distribution)
    if not isinstance(dist, Distribution):
        c.fail(f"distribution() returned a {type(dist).__name__}, expected a torch.distributions.Distribution")
    if _shape(dist.batch_shape) != () or _shape(dist.event_shape) != (d,):
        c.fail(
            f"distribution() has batch shape {_shape(dist.batch_shape)} and event shape "
            f"{_shape(dist.event_shape)}, expected () and {(d,)}"
        )
    s = c.call("sample(5)", prior.sample, 5)
    c.shape("sample(5)", s, (5, d))
    c.dtype("sample(5)", s, torch.float32)
    c.finite("sample(5)", s)
    z = s.detach().clone().requires_grad_(True)
    lp = c.call("log_prob(z) for z (5, latent_dim)", prior.log_prob, z)
    c.shape("log_prob(z) for z (5, latent_dim)", lp, (5,), " -- sum over the latent dim")
    c.dtype("log_prob", lp, torch.float32)
    c.finite("log_prob", lp, " at its own samples")
    c.call("backward through log_prob", lp.sum().backward)
    c.grads("log_prob", [("z", z), *_float_params(prior)])
    _zero_grads(prior)
    with torch.no_grad():
        zk = torch.randn(3, 4, d)
        lpk = c.call("log_prob(z) for z (3, 4, latent_dim)", prior.log_prob, zk)
        c.shape("log_prob(z) for z (3, 4, latent_dim)", lpk, (3, 4), " -- keep leading dims")
        dlp = c.call("distribution().log_prob(z)", prior.distribution().log_prob, zk)
        c.close("distribution().log_prob(z) differs from log_prob(z)", dlp, lpk, rtol=1e-4, atol=1e-4)


def _prior_extremes(c: _Check, prior: Prior, d: int) -> None:
    signs = torch.randint(0, 2, (4, d)).float() * 2 - 1
    for label, value in (
        (f"+{PRIOR_EXTREME:g}", torch.full((4, d), PRIOR_EXTREME)),
        (f"-{PRIOR_EXTREME:g}", torch.full((4, d), -PRIOR_EXTREME)),
        (f"±{PRIOR_EXTREME:g}", signs * PRIOR_EXTREME),
    ):
        z = value.clone().requires_grad_(True)
        lp = c.call(f"log_prob at z={label}", prior.log_prob, z)
        c.finite("log_prob", lp.detach(), f" at z={label}")
        c.call(f"backward through log_prob at z={label}", lp.sum().backward)
        c.grads("log_prob", [("z", z), *_float_params(prior)], f" at z={label}")
        _zero_grads(prior)


def _prior_float64(c: _Check, p64: Prior, p32: Prior, d: int) -> None:
    with torch.no_grad():
        s = c.call("sample(5) after .double()", p64.sample, 5)
        c.dtype("sample(5)", s, torch.float64)
        lp = c.call("log_prob after .double()", p64.log_prob, s)
        c.dtype("log_prob", lp, torch.float64)
        c.finite("log_prob in float64", lp)
        dlp = c.call("distribution().log_prob(z) in float64", p64.distribution().log_prob, s)
        c.close("distribution().log_prob(z) differs from log_prob(z) in float64", dlp, lp, rtol=1e-6, atol=1e-6)
        lp32 = c.call("log_prob", p32.log_prob, s.float())
        c.close("log_prob in float32 and in float64 disagree", lp32.double(), lp, rtol=1e-3, atol=1e-3)


def _prior_normalisation(c: _Check, prior: Prior, d: int) -> None:
    n = 4000
    with torch.no_grad():
        samples = c.call(f"sample({n})", prior.sample, n)
        c.finite(f"sample({n})", samples)

        def logpdf(points: Tensor) -> Tensor:
            return torch.cat([prior.log_prob(chunk) for chunk in points.split(8192)])

        if d == 1:
            integral, first, (lo, hi) = c.call(
                "log_prob on a quadrature grid", _integrate_1d, lambda t: logpdf(t[:, None]), samples, None, None
            )
            box = f"[{lo:.4g}, {hi:.4g}]"
            mean = first.reshape(1)
        else:
            lo, hi = samples.min(0).values, samples.max(0).values
            spread = (hi - lo).clamp(min=1e-6)
            lo, hi = lo - 0.25 * spread, hi + 0.25 * spread
            m = 241
            axes = [lo[j] + (hi[j] - lo[j]) * (torch.arange(m, dtype=torch.float64) + 0.5) / m for j in range(2)]
            grid = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, 2)
            cell = ((hi - lo) / m).prod()
            p = c.call("log_prob on a quadrature grid", logpdf, grid).exp()
            integral = (p.sum() * cell)
            mean = (p[:, None] * grid).sum(0) * cell / integral
            box = f"[{lo[0]:.3g}, {hi[0]:.3g}] x [{lo[1]:.3g}, {hi[1]:.3g}]"
        if not abs(integral.item() - 1) <= NORM_TOL:
            c.fail(
                f"exp(log_prob) integrates to {integral.item():.4g} over {box} (expected 1): log_prob "
                f"is not a normalised density (a missing log-det-Jacobian or normalising constant?)"
            )
        if d == 1:
            mean = mean / integral
        stderr = samples.std(0) / math.sqrt(n)
        gap = (samples.mean(0) - mean).abs()
        if (gap > 6 * stderr + 1e-3).any():
            c.fail(
                f"the mean of sample({n}) is {samples.mean(0).tolist()} but the density exp(log_prob) "
                f"has mean {mean.tolist()}: sample and log_prob describe different distributions"
            )
