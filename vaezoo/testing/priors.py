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
    MASS_TOL,
    NORM_TOL,
    PRIOR_EXTREME,
    PRIOR_SAMPLES,
    SAMPLE_FALSE_ALARM,
    _Check,
    _float_params,
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
    The prior is first bound (``bind``) to a small diagonal-Gaussian encoder for
    ``data_shape``, as a ``VAE`` does (a prior whose ``latents`` leave out ``"real"`` is
    checked unbound). Checked: ``distribution()`` has batch shape ``()`` and event shape
    ``(latent_dim,)``; ``sample(n)`` is ``(n, latent_dim)`` and finite; ``log_prob`` keeps
    leading dims, agrees with ``distribution().log_prob`` and has finite values and
    gradients, also at ``|z| = 10``; float64; for ``latent_dim <= 2`` exp(log_prob)
    integrates to 1 (quadrature; else the failure names log_prob) and ``sample`` draws from
    it (the samples' CDF along 1-D projections stays within a DKW bound of the density's,
    false alarms below ``SAMPLE_FALSE_ALARM``; else the failure names sample()); a
    ``state_dict`` round trip. A discrete prior (``distribution().has_enumerate_support``)
    is checked on its support instead of by quadrature, in any dimension: its mass over
    ``enumerate_support()`` (at most ``MAX_SUPPORT`` points) sums to 1 and ``sample`` draws
    from it (``_prior_mass``).
    """
    data_shape = tuple(int(s) for s in data_shape)
    fixed = {"latent_dim": int(latent_dim)}
    prior, label, make = _resolve("prior", prior, fixed, params, "check_prior")
    c = _Check("prior", label)
    d_lat = int(getattr(prior, "latent_dim", latent_dim))
    with _seeded(seed):
        encoder = _TinyEncoder(data_shape, d_lat)
        work = make()
        binds = "real" in getattr(work, "latents", ("real",))  # else: a prior of other latents, checked unbound
        if binds:
            c.call(f"bind(encoder, {data_shape})", work.bind, encoder, data_shape)
        _perturb(work, perturb)
        _prior_shapes(c, work, d_lat)
        _prior_extremes(c, work, d_lat)

        def fresh_bound() -> tuple[Prior, nn.Module]:
            enc = copy.deepcopy(encoder)
            fresh = make()
            if binds:
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
        if getattr(p64.distribution(), "has_enumerate_support", False):
            _prior_mass(c, p64)
        elif d_lat <= 2:
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


MAX_SUPPORT = 4096  #: the most points of a discrete prior's support that ``_prior_mass`` checks


def _prior_mass(c: _Check, prior: Prior) -> None:
    """A discrete prior (float64): exp(log_prob) sums to 1 over ``distribution().enumerate_support()``
    (within ``MASS_TOL`` in log space; else the failure names log_prob), and ``PRIOR_SAMPLES``
    draws of ``sample()`` are points of the support whose empirical CDF, over the support in
    its listed order, stays within ``eps = sqrt(log(2 / SAMPLE_FALSE_ALARM) / (2 n))`` of the
    mass's (the Dvoretzky-Kiefer-Wolfowitz bound holds for discrete distributions too; else the
    failure names sample()). Skipped when the support has more than ``MAX_SUPPORT`` points.
    """
    with torch.no_grad():
        try:
            support = prior.distribution().enumerate_support(expand=False)
        except (ValueError, NotImplementedError):  # too many points to list
            return
        points = support.reshape(len(support), -1)
        if len(points) > MAX_SUPPORT:
            return
        what = f"log_prob on the {len(points)} points of distribution().enumerate_support()"
        lp = c.call(what, prior.log_prob, points)
        c.shape(what, lp, (len(points),))
        total = float(torch.logsumexp(lp, 0))
        if not abs(total) <= MASS_TOL:
            c.fail(
                f"exp(log_prob) sums to {math.exp(total):.6g} over the {len(points)} points of "
                f"distribution().enumerate_support() (expected 1): log_prob is not a normalised mass"
            )
        n = PRIOR_SAMPLES
        samples = c.call(f"sample({n})", prior.sample, n)
        c.shape(f"sample({n})", samples, (n, points.shape[1]))
        where = {tuple(p): i for i, p in enumerate(points.tolist())}
        found = [where.get(tuple(s)) for s in samples.to(points.dtype).tolist()]
        if None in found:
            c.fail(f"sample({n}) drew {samples[found.index(None)].tolist()}, which is not a point of distribution().enumerate_support()")
        mass = (lp - total).exp()
        counts = torch.bincount(torch.tensor(found), minlength=len(points)).to(mass.dtype)
        gap = float((counts.cumsum(0) / n - mass.cumsum(0)).abs().max())
        eps = math.sqrt(math.log(2 / SAMPLE_FALSE_ALARM) / (2 * n))
        if gap > eps:
            c.fail(
                f"sample({n}) does not draw from exp(log_prob): over the points of enumerate_support() the "
                f"samples' CDF is off by {gap:.3f} (allowed {eps:.3f})"
            )


_AXIS = {1: (400, 32), 2: (64, 3)}  # per axis: quantile intervals, midpoints in each
_ADAPT_STEPS = 6  # at most this many grids after the first
_QUADRATURE_SLACK = 0.005  # allowance for the midpoint rule's own error in a projected CDF
_H = math.sqrt(0.5)
_DIRECTIONS = {
    1: [("z", (1.0,))],
    2: [("z[0]", (1.0, 0.0)), ("z[1]", (0.0, 1.0)),
        ("(z[0] + z[1])/sqrt(2)", (_H, _H)), ("(z[0] - z[1])/sqrt(2)", (_H, -_H))],
}


def _prior_normalisation(c: _Check, prior: Prior, d: int) -> None:
    """exp(log_prob) integrates to 1, then sample() draws from it (``latent_dim <= 2``, float64).

    The integral is a midpoint rule on a product grid whose knots sit at the quantiles of the
    draws of ``sample()`` and ``distribution().sample()`` (so a wrong ``sample()`` alone cannot
    misplace it), extended by their range on each side; when the integral is off, the grid is
    rebuilt at the quantiles of the density itself and, if mass is still missing, reaches
    further out. A density that is still not normalised fails, naming log_prob.

    Then, along each coordinate (and both diagonals of a 2-D latent), the empirical CDF of
    ``PRIOR_SAMPLES`` draws of ``sample()`` must stay within
    ``eps = sqrt(log(2 k / SAMPLE_FALSE_ALARM) / (2 n))`` (k directions) of the density's CDF,
    else the check fails naming sample(). By the Dvoretzky-Kiefer-Wolfowitz inequality with
    Massart's constant, a right sampler exceeds ``eps`` with probability below
    ``SAMPLE_FALSE_ALARM``. The density's CDF is bracketed by the grid cells lying wholly
    below a value and those reaching below it, so the grid's coarseness adds no false alarms.
    """
    n = PRIOR_SAMPLES
    with torch.no_grad():
        samples = c.call(f"sample({n})", prior.sample, n)
        c.shape(f"sample({n})", samples, (n, d))
        c.finite(f"sample({n})", samples)
        samples = samples.to(torch.float64)
        draws = [samples]
        try:
            more = prior.distribution().sample((n,))
            if _shape(more.shape) == (n, d) and torch.isfinite(more).all():
                draws.append(more.to(torch.float64))
        except Exception:  # no sampler there: the grid starts from sample() alone
            pass
        grid = _quadrature(c, prior, torch.cat(draws))
        if not abs(grid.integral - 1) <= NORM_TOL:
            c.fail(
                f"exp(log_prob) integrates to {grid.integral:.4g} over {grid.box} (expected 1): log_prob "
                f"is not a normalised density (a missing log-det-Jacobian or normalising constant?)"
            )
        _compare_samples(c, samples, grid)


class _Grid:
    """A product midpoint grid: ``points`` (N, d), cell ``widths`` (N, d), ``mass`` of exp(log_prob) per cell."""

    def __init__(self, axes: list[tuple[Tensor, Tensor]]) -> None:
        self.axes = axes
        self.points = torch.stack(torch.meshgrid(*[a for a, _ in axes], indexing="ij"), dim=-1).reshape(-1, len(axes))
        self.widths = torch.stack(torch.meshgrid(*[h for _, h in axes], indexing="ij"), dim=-1).reshape(-1, len(axes))
        self.box = " x ".join(f"[{float(a[0] - h[0] / 2):.4g}, {float(a[-1] + h[-1] / 2):.4g}]" for a, h in axes)
        self.mass = torch.zeros(len(self.points), dtype=torch.float64)
        self.integral = 0.0

    def marginal_quantiles(self, j: int, levels: Tensor) -> Tensor:
        """Quantiles of the grid's mass along axis ``j`` (mass spread evenly over each cell)."""
        mids, h = self.axes[j]
        shape = [len(a) for a, _ in self.axes]
        m = self.mass.reshape(shape)
        m = m.sum(dim=tuple(k for k in range(len(shape)) if k != j)) if len(shape) > 1 else m
        cdf = torch.cat([torch.zeros(1, dtype=torch.float64), m.cumsum(0) / m.sum()])
        edges = torch.cat([mids[:1] - h[:1] / 2, mids + h / 2])
        i = torch.searchsorted(cdf, levels).clamp(1, len(mids))
        frac = (levels - cdf[i - 1]) / (cdf[i] - cdf[i - 1]).clamp(min=1e-300)
        return edges[i - 1] + frac.clamp(0, 1) * (edges[i] - edges[i - 1])


def _levels(intervals: int) -> Tensor:
    """Quantile levels of the knots: evenly spaced, plus finer ones in both tails."""
    tail = torch.tensor([1e-4, 3e-4, 1e-3, 2e-3, 4e-3, 7e-3], dtype=torch.float64)
    even = torch.linspace(0, 1, intervals + 1, dtype=torch.float64)
    return torch.unique(torch.cat([even, tail[tail < 1 / intervals], 1 - tail[tail < 1 / intervals]]))


def _axis(anchors: Tensor, intervals: int, per: int, reach: float) -> tuple[Tensor, Tensor]:
    """Midpoints and widths along one axis: knots at quantiles of ``anchors``, then steps out to
    ``reach`` times their range beyond them on each side."""
    knots = torch.quantile(anchors, _levels(intervals))
    lo, hi = knots[0], knots[-1]
    spread = (hi - lo).clamp(min=1e-6) * reach
    out = spread * torch.tensor([0.125, 0.25, 0.5, 1.0], dtype=torch.float64)
    knots = torch.unique(torch.cat([lo - out, knots, hi + out]))
    widths = knots[1:] - knots[:-1]
    offsets = (torch.arange(per, dtype=torch.float64) + 0.5) / per
    mids = (knots[:-1, None] + widths[:, None] * offsets).flatten()
    return mids, (widths[:, None] / per).expand(-1, per).flatten()


def _quadrature(c: _Check, prior: Prior, draws: Tensor) -> _Grid:
    """The grid on which exp(log_prob) is integrated, adapted until it integrates to 1 or no better."""
    d = draws.shape[1]
    intervals, per = _AXIS[d]
    levels = _levels(intervals).clamp(1e-6, 1 - 1e-6)
    anchors = [draws[:, j] for j in range(d)]
    reach, widened, refitted = 1.0, 0, False
    for attempt in range(_ADAPT_STEPS + 1):
        grid = _Grid([_axis(a, intervals, per, reach) for a in anchors])
        lp = torch.cat([c.call("log_prob on a quadrature grid", prior.log_prob, chunk) for chunk in grid.points.split(8192)])
        nan = torch.isnan(lp)
        if nan.any():
            c.fail(f"log_prob is NaN at z={grid.points[nan][0].tolist()} (a point of the quadrature grid over {grid.box})")
        grid.mass = lp.exp() * grid.widths.prod(dim=1)
        grid.integral = float(grid.mass.sum())
        if abs(grid.integral - 1) <= NORM_TOL or attempt == _ADAPT_STEPS:
            break
        if not grid.integral > 1e-12:  # no mass on the grid: look further out
            reach *= 4
        elif not refitted:  # put the knots where the density has its mass
            anchors = [grid.marginal_quantiles(j, levels) for j in range(d)]
            reach, refitted = 1.0, True
        elif grid.integral < 1 and widened < 2:  # mass still missing: look further out (a far mode?)
            reach, widened, refitted = reach * 3, widened + 1, False
        else:
            break
    return grid


def _compare_samples(c: _Check, samples: Tensor, grid: _Grid) -> None:
    """Fail when along some direction the samples' empirical CDF leaves the density's by more than allowed."""
    n, d = samples.shape
    directions = _DIRECTIONS[d]
    eps = math.sqrt(math.log(2 * len(directions) / SAMPLE_FALSE_ALARM) / (2 * n))
    allowed = eps + abs(grid.integral - 1) + _QUADRATURE_SLACK
    mass = grid.mass / grid.integral
    rank = torch.arange(1, n + 1, dtype=torch.float64) / n
    zero = torch.zeros(1, dtype=torch.float64)
    worst: tuple[float, str, float, Tensor, Tensor, Tensor] | None = None
    for label, direction in directions:
        w = torch.tensor(direction, dtype=torch.float64)
        t = grid.points @ w
        r = (grid.widths * w.abs()).sum(1) / 2  # half the extent of each cell along w
        s = (samples @ w).sort().values

        def mass_below(edge: Tensor) -> Tensor:  # CDF at s of the cells' mass, each cell placed at ``edge``
            e, order = edge.sort()
            return torch.cat([zero, mass[order].cumsum(0)])[torch.searchsorted(e, s, right=True)]

        upper = mass_below(t - r)  # cells reaching into (-inf, s]
        lower = mass_below(t + r)  # cells wholly inside it
        gaps = torch.maximum(rank - upper, lower - (rank - 1 / n))
        i = int(gaps.argmax())
        if gaps[i] > allowed and (worst is None or gaps[i] > worst[0]):
            worst = (float(gaps[i]), label, float(s[i]), s, t, mass)
    if worst is not None:
        gap, label, at, s, t, m = worst
        mean = float((m * t).sum())
        sd = float((m * (t - mean) ** 2).sum().sqrt())
        unit = max(sd, float(s.std()), 1e-12)
        num = lambda v: f"{v:.3g}" if abs(v) >= 1e-4 * unit else "0"  # noqa: E731
        c.fail(
            f"sample({n}) does not draw from exp(log_prob), which integrates to 1: along {label} "
            f"the samples' CDF is off by {gap:.3f} at {num(at)} (allowed {allowed:.3f}); the samples "
            f"have mean {num(float(s.mean()))} and sd {float(s.std()):.3g}, the density mean "
            f"{num(mean)} and sd {sd:.3g}"
        )
