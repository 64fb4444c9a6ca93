"""RealNVP prior (``prior: realnvp``): affine coupling layers over z on top of N(0, I).

The flow f maps base noise u ~ N(0, I) to z = f(u). Each coupling layer keeps one half of
the coordinates (a binary ``mask``) and moves the other half by a scale and shift computed
from the kept half (Dinh, Sohl-Dickstein & Bengio, "Density estimation using Real NVP",
ICLR 2017)::

    y = m * x + (1 - m) * (x * exp(s(m * x)) + t(m * x))

Both directions are one pass, so the density is exact by the change of variables

    log p(z) = log N(f^-1(z); 0, I) + log |det d f^-1 / dz|

and sampling is cheap. The layers alternate their masks, and ``s`` is bounded by
``scale_clamp * tanh(. / scale_clamp)``. The last layer of each coupling network starts at
zero, so the flow starts as the identity (the standard normal prior).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.distributions import Distribution, Independent, Normal, TransformedDistribution, constraints
from torch.distributions.transforms import Transform

from vaezoo import Prior
from vaezoo.validation import check_positive_float, check_positive_int

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


class AffineCoupling(nn.Module):
    """One coupling layer on ``dim`` coordinates; ``mask`` (1 = kept) selects the conditioning half."""

    def __init__(self, dim: int, mask: Tensor, hidden: int, scale_clamp: float) -> None:
        super().__init__()
        self.register_buffer("mask", mask, persistent=False)  # fixed by the config, not saved
        self.scale_clamp = scale_clamp
        self.net = nn.Sequential(
            nn.Linear(dim, hidden),
            nn.SiLU(),
            nn.Linear(hidden, hidden),
            nn.SiLU(),
            nn.Linear(hidden, 2 * dim),
        )
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def _scale_shift(self, kept: Tensor) -> tuple[Tensor, Tensor]:
        raw_s, t = self.net(kept).chunk(2, dim=-1)
        moved = 1 - self.mask
        s = self.scale_clamp * torch.tanh(raw_s / self.scale_clamp)
        return s * moved, t * moved

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Base side -> data side: ``(y, log|det dy/dx|)``, the log-det of shape ``x.shape[:-1]``."""
        s, t = self._scale_shift(x * self.mask)
        return x * torch.exp(s) + t, s.sum(-1)

    def inverse(self, y: Tensor) -> tuple[Tensor, Tensor]:
        """Data side -> base side: ``(x, log|det dx/dy|)``."""
        s, t = self._scale_shift(y * self.mask)  # y * mask == x * mask: the kept half is unchanged
        return (y - t) * torch.exp(-s), -s.sum(-1)


class RealNVPPrior(Prior):
    """p(z) = N(f^-1(z); 0, I) |det d f^-1/dz| with f a stack of affine couplings.

    Parameters:

    * ``layers`` -- number of coupling layers (alternating masks; at least 2 to move every
      coordinate when ``latent_dim > 1``).
    * ``hidden`` -- width of the two hidden layers of each coupling network.
    * ``scale_clamp`` -- bound on each coupling's log-scale ``|s| <= scale_clamp``.

    ``log_prob(z)``: ``(..., latent_dim) -> (...)``. ``sample(n)``: ``(n, latent_dim)``.
    ``distribution()``: a ``TransformedDistribution`` of N(0, I) (no closed-form KL, so the
    VAE uses a Monte Carlo KL).
    """

    def __init__(self, latent_dim: int, layers: int = 4, hidden: int = 64, scale_clamp: float = 2.0) -> None:
        super().__init__(check_positive_int(latent_dim, "latent_dim", "realnvp"))
        layers = check_positive_int(layers, "layers", "realnvp")
        hidden = check_positive_int(hidden, "hidden", "realnvp")
        self.layers, self.hidden = layers, hidden
        self.scale_clamp = check_positive_float(scale_clamp, "scale_clamp", "realnvp")
        parity = torch.arange(self.latent_dim) % 2
        self.couplings = nn.ModuleList(
            AffineCoupling(self.latent_dim, (parity == i % 2).to(torch.get_default_dtype()), hidden, self.scale_clamp)
            for i in range(layers)
        )

    def to_base(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """``(u, log|det du/dz|)`` with ``u = f^-1(z)``."""
        logdet = z.new_zeros(z.shape[:-1])
        for layer in reversed(self.couplings):
            z, ld = layer.inverse(z)
            logdet = logdet + ld
        return z, logdet

    def from_base(self, u: Tensor) -> tuple[Tensor, Tensor]:
        """``(z, log|det dz/du|)`` with ``z = f(u)``."""
        logdet = u.new_zeros(u.shape[:-1])
        for layer in self.couplings:
            u, ld = layer(u)
            logdet = logdet + ld
        return u, logdet

    def log_prob(self, z: Tensor) -> Tensor:
        if z.shape[-1] != self.latent_dim:
            raise ValueError(f"realnvp: z must end in latent_dim={self.latent_dim}, got shape {tuple(z.shape)}")
        u, logdet = self.to_base(z)
        return (-0.5 * u * u - _HALF_LOG_2PI).sum(-1) + logdet

    @torch.no_grad()
    def sample(self, n: int) -> Tensor:
        ref = self._reference()
        u = torch.randn(int(n), self.latent_dim, dtype=ref.dtype, device=ref.device)
        return self.from_base(u)[0]

    def distribution(self) -> Distribution:
        ref = self._reference()
        zeros = torch.zeros(self.latent_dim, dtype=ref.dtype, device=ref.device)
        base = Independent(Normal(zeros, torch.ones_like(zeros)), 1)
        return TransformedDistribution(base, [_FlowTransform(self)])

    def extra_repr(self) -> str:
        return f"latent_dim={self.latent_dim}, layers={self.layers}, hidden={self.hidden}, scale_clamp={self.scale_clamp}"


class _FlowTransform(Transform):
    """The flow as a ``torch.distributions`` bijection on vectors (event dim 1)."""

    domain = constraints.independent(constraints.real, 1)
    codomain = constraints.independent(constraints.real, 1)
    bijective = True

    def __init__(self, flow: RealNVPPrior) -> None:
        super().__init__(cache_size=1)
        self.flow = flow

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _FlowTransform) and other.flow is self.flow

    def _call(self, u: Tensor) -> Tensor:
        return self.flow.from_base(u)[0]

    def _inverse(self, z: Tensor) -> Tensor:
        return self.flow.to_base(z)[0]

    def log_abs_det_jacobian(self, u: Tensor, z: Tensor) -> Tensor:
        return -self.flow.to_base(z)[1]
