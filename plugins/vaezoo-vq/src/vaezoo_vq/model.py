"""The ``vqvae`` architecture: a VQ-VAE (van den Oord et al. 2017, arXiv:1711.00937) as a ``vaezoo.Model``.

x -> encoder -> z_e, one D-vector per latent position (L of them) -> nearest of K codes, z_q
(``vaezoo_vq.quantizer``) -> decoder -> the likelihood's parameters, p(x|z_q) closed form (any
registered likelihood). The codes c have a prior p(c) (``vaezoo_vq.prior``): uniform, or an
autoregressive transformer learned on the (detached) codes.

The bound, reported like every other model's: the posterior q(c|x) puts all its mass on the
nearest codes c*(x), so its entropy is 0 and KL(q || p) = -log p(c*); with the uniform prior
that is L log K. Then

    ELBO = log p(x | z_q) - KL = log p(x, c*) <= log sum_c p(x, c) = log p(x),

a lower bound because p(x, c*) is one term of the sum over all K^L code grids. With a point-mass
proposal every importance sample is c*, so ``log_likelihood(x, K)`` (and the IWAE bound) equals
the ELBO for every K.

What is minimised (``loss``): -(log p(x|z_q) - beta KL) + commitment_cost ||z_e - sg[e]||^2,
+ ||sg[z_e] - e||^2 when the codebook is learned by the loss; the KL's gradient reaches only the
prior (the codes are detached), so the prior learns the codes alongside the autoencoder.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from vaezoo.components import LogWeights, Model
from vaezoo.errors import ComponentParamError, ConfigError, DataError, did_you_mean, one_of

from .nets import NETS, ConvDecoder, ConvEncoder, MLPDecoder, MLPEncoder, grid_shape
from .prior import PRIORS
from .quantizer import UPDATES, Quantized, VectorQuantizer

WHO = "architecture 'vqvae'"
MAX_SIZE = 2**31  #: the most values a codebook or a code grid (times D) may hold
EVAL_ROWS = 1024  #: ``log_likelihood`` and ``sample`` run at most this many examples at a time


class VQVAE(Model):
    """A VQ-VAE: ``encoder`` x -> (B, L, D), ``quantizer``, ``decoder`` (B, L, D) -> likelihood
    parameters, ``prior`` over the (B, L) codes, ``likelihood`` p(x|z_q). Build it with
    ``vaezoo.build_model({"architecture": "vqvae", ...})``; see the module doc for the bound."""

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        quantizer: VectorQuantizer,
        prior: nn.Module,
        likelihood: nn.Module,
        *,
        data_shape: Sequence[int],
        grid: Sequence[int],
        commitment_cost: float = 0.25,
    ) -> None:
        super().__init__()
        self.encoder, self.decoder, self.quantizer, self.prior = encoder, decoder, quantizer, prior
        self.likelihood = likelihood
        self.data_shape = tuple(int(s) for s in data_shape)
        self.grid = tuple(int(g) for g in grid)  #: the code grid: (h, w) for conv nets, (L,) for MLP nets
        self.positions = math.prod(self.grid)
        self.num_codes = quantizer.num_codes
        self.commitment_cost = float(commitment_cost)
        self.config = None
        self.sources = {}
        self.condition = None  # not a conditional model: every method refuses a y

    # -- pieces ----------------------------------------------------------------------
    def embed(self, x: Tensor) -> Tensor:
        """The encoder's continuous embeddings z_e of ``x``: ``(B, L, D)``."""
        return self.encoder(self._input(x))

    @torch.no_grad()
    def codes(self, x: Tensor) -> Tensor:
        """The nearest codes c*(x), ``(B, L)`` in raster order (the statistics stay put)."""
        z_e = self.embed(x)
        return self.quantizer.nearest(z_e.reshape(-1, z_e.shape[-1])).view(len(z_e), self.positions)

    def decode_codes(self, codes: Tensor) -> Tensor:
        """The likelihood's parameters for a grid of codes ``(B, L)``: ``(B, *param_shape)``."""
        return self.decoder(self.quantizer.lookup(codes))

    def _terms(self, x: Tensor, train_autoencoder: bool) -> tuple[Quantized, Tensor, Tensor]:
        """``(quantised, log p(x|z_q) (B,), log p(c*) (B,))``; the autoencoder without gradients
        (and its statistics unchanged) unless ``train_autoencoder``."""
        x = self._input(x)
        with contextlib.nullcontext() if train_autoencoder else torch.no_grad():
            q = self.quantizer(self.encoder(x))
            log_px_z = self.likelihood.log_prob(x, self.decoder(q.z_q))
        return q, log_px_z, self.prior.log_prob(q.codes).to(log_px_z.dtype)

    def _penalty(self, q: Quantized) -> Tensor:
        """The quantiser's terms of the loss, ``(B,)``: commitment, and the codebook term for ``codebook: loss``."""
        out = self.commitment_cost * q.commitment
        return out + q.codebook if self.quantizer.update == "loss" else out

    # -- the Model contract ------------------------------------------------------------
    def elbo(self, x: Tensor, num_samples: int = 1, beta: Any = 1.0, *, free_bits: float = 0.0, y: Any = None,
             train_autoencoder: bool = True) -> dict[str, Tensor]:
        """Per-example ``(B,)`` terms in nats: ``log_px_z`` (log p(x|z_q)), ``kl`` (-log p(c*)),
        ``elbo`` (their difference), ``loss`` (see the module doc; with ``train_autoencoder=False``
        only ``beta * kl``, for the prior alone), ``quantization_error`` (||z_e - z_q||^2 summed
        over positions), and the batch's ``perplexity`` and ``dead_codes`` (see ``vaezoo_vq.quantizer``)
        repeated per example, so that averaging gives per-batch averages.

        The posterior is deterministic: ``num_samples`` changes nothing. ``free_bits`` must be 0
        (the KL does not depend on the encoder's spread; there is none).
        """
        _no_condition(y)
        _check_num_samples(num_samples)
        if free_bits:
            raise ValueError(f"{WHO}: free_bits={free_bits!r} has no meaning for a VQ-VAE (its KL, -log p(c), "
                             "does not depend on a posterior spread); set objective.free_bits: 0")
        q, log_px_z, log_pz = self._terms(x, bool(train_autoencoder))
        kl = -log_pz
        if train_autoencoder:
            loss = -(log_px_z - beta * kl) + self._penalty(q)
        else:
            loss = beta * kl
        b = log_px_z.shape[0]
        return {"elbo": log_px_z - kl, "log_px_z": log_px_z, "kl": kl, "loss": loss,
                "quantization_error": q.commitment.detach(), "perplexity": q.perplexity.expand(b),
                "dead_codes": q.dead.expand(b)}

    def log_weights(self, x: Tensor, num_samples: int, *, detach_q: bool = False, y: Any = None) -> LogWeights:
        """K copies of the one importance weight: ``log_px_z`` = log p(x|z_q), ``log_pz`` = log p(c*),
        ``log_qz`` = 0 (a point mass), ``z`` = [z_q (K, B, L, D)], detached (no reparameterised
        path: q has no spread), so ``detach_q`` changes nothing.

        With gradients enabled ``log_px_z`` also carries the gradient of minus the quantiser's
        terms, its value unchanged: the K weights coincide, so objective ``iwae`` then trains a
        VQ-VAE exactly as ``elbo`` does (its bound is the ELBO).
        """
        _no_condition(y)
        k = _check_num_samples(num_samples)
        q, log_px_z, log_pz = self._terms(x, True)
        if torch.is_grad_enabled():
            penalty = self._penalty(q)
            log_px_z = log_px_z - (penalty - penalty.detach())
        zero = torch.zeros_like(log_px_z)
        z = q.z_q.detach()
        return LogWeights(log_px_z.expand(k, -1), log_pz.expand(k, -1), zero.expand(k, -1), [z.expand(k, *z.shape)])

    @torch.no_grad()
    def log_likelihood(self, x: Tensor, num_samples: int = 1000, *, y: Any = None, batch_size: int | None = None,
                       **kwargs: Any) -> Tensor:
        """log p(x, c*) = the ELBO, ``(B,)``: the importance-sampled estimate with the point-mass
        proposal q(c|x), for any ``num_samples`` a lower bound on log p(x) (see the module doc)."""
        _no_condition(y)
        _check_num_samples(num_samples)
        x = self._input(x)
        rows = int(batch_size or EVAL_ROWS)
        parts = [self.elbo(x[i : i + rows])["elbo"] for i in range(0, len(x), rows)]
        return torch.cat(parts) if parts else x.new_zeros((0,))

    @torch.no_grad()
    def sample(self, n: int, mean: bool = False, *, y: Any = None) -> Tensor:
        """``n`` draws: codes c ~ p(c) (uniform, or the autoregressive prior), decoded; then x ~ p(x|z_q),
        or with ``mean=True`` the likelihood's mean."""
        _no_condition(y)
        device = self.quantizer.codebook.device
        out = []
        for start in range(0, int(n), EVAL_ROWS):
            params = self.decode_codes(self.prior.sample(min(EVAL_ROWS, int(n) - start), device))
            out.append(self.likelihood.mean(params) if mean else self.likelihood.sample(params))
        if not out:
            return torch.zeros((0, *self.data_shape), dtype=self.quantizer.codebook.dtype, device=device)
        return torch.cat(out)

    @torch.no_grad()
    def reconstruct(self, x: Tensor, mean: bool = True, *, y: Any = None) -> Tensor:
        """Decode z_q of ``x``: the likelihood's mean (or a sample with ``mean=False``)."""
        _no_condition(y)
        params = self.decode_codes(self.codes(x))
        return self.likelihood.mean(params) if mean else self.likelihood.sample(params)

    def _input(self, x: Tensor) -> Tensor:
        """``x`` checked for shape and moved to the model's floating dtype and device."""
        if not isinstance(x, Tensor):
            raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
        if tuple(x.shape[1:]) != self.data_shape:
            raise ValueError(f"x has shape {tuple(x.shape)}, but this model takes (batch, {', '.join(map(str, self.data_shape))})")
        ref = self.quantizer.codebook
        if x.dtype != ref.dtype or x.device != ref.device:
            x = x.to(device=ref.device, dtype=ref.dtype)
        return x

    def extra_repr(self) -> str:
        return f"data_shape={self.data_shape}, grid={self.grid}, num_codes={self.num_codes}, commitment_cost={self.commitment_cost}"


def _no_condition(y: Any) -> None:
    if y is not None:
        raise DataError(f"{WHO} is not conditional: y must be None, got a {type(y).__name__} (model.condition is not supported)")


def _check_num_samples(num_samples: Any) -> int:
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
        raise ValueError(f"num_samples must be an integer >= 1, got {num_samples!r}")
    return num_samples


# -- building from the config ----------------------------------------------------------------
def build_vqvae(
    components: Any,
    *,
    data_shape: list[int],
    likelihood: Any,
    prior: Any = "uniform",
    net: str = "conv",
    codebook_size: int = 64,
    embedding_dim: int = 16,
    codebook: str = "ema",
    commitment_cost: float = 0.25,
    decay: float = 0.99,
    epsilon: float = 1e-5,
    dead_threshold: float = 0.01,
    channels: int = 64,
    res_blocks: int = 2,
    downsample: int = 2,
    hidden: list[int] = [512],  # noqa: B006  (read only; the config's default)
    positions: int = 16,
) -> VQVAE:
    """A VQ-VAE: encoder to L code positions of ``embedding_dim`` numbers, nearest of ``codebook_size`` codes, decoder (the keys of ``model``).

    Parameters:

    * ``data_shape`` -- shape of one example; ``vaezoo train`` takes it from the data.
    * ``likelihood`` -- p(x|z_q): any registered likelihood (``bernoulli``, ...), then its parameters.
    * ``prior`` -- p(codes): ``uniform`` (KL = L log K), or ``{name: transformer, width: 128,
      layers: 2, heads: 4}``, an autoregressive prior over the raster-ordered codes.
    * ``net`` -- ``conv`` (a grid of H/2^downsample x W/2^downsample positions) or ``mlp``
      (``positions`` positions).
    * ``codebook_size`` -- K, the number of codes.
    * ``embedding_dim`` -- D, the size of each code and of each encoder output.
    * ``codebook`` -- how the codes are learned: ``ema`` (exponential moving averages of the
      vectors assigned to them) or ``loss`` (the term ||sg[z_e] - e||^2).
    * ``commitment_cost`` -- beta, the weight of the commitment term ||z_e - sg[e]||^2.
    * ``decay`` -- of the moving averages (the code usage; with ``ema`` the codebook too).
    * ``epsilon`` -- Laplace smoothing of the EMA cluster sizes.
    * ``dead_threshold`` -- a code whose moving-average usage (vectors per batch) falls below
      this is dead and restarted at a random encoder output of the batch (0: never).
    * ``channels`` -- ``conv``: feature channels of every layer.
    * ``res_blocks`` -- ``conv``: residual blocks in the encoder and in the decoder.
    * ``downsample`` -- ``conv``: stride-2 layers; height and width must be divisible by 2^downsample.
    * ``hidden`` -- ``mlp``: widths of the encoder's hidden layers (the decoder's, reversed).
    * ``positions`` -- ``mlp``: the number of latent positions L.
    """
    data_shape = tuple(data_shape)
    p = _check_params(net=net, codebook_size=codebook_size, embedding_dim=embedding_dim, codebook=codebook,
                      commitment_cost=commitment_cost, decay=decay, epsilon=epsilon, dead_threshold=dead_threshold,
                      channels=channels, res_blocks=res_blocks, downsample=downsample, hidden=hidden, positions=positions)
    grid = _grid(p, data_shape)
    prior_name, prior_params = _check_prior(prior, p["codebook_size"], math.prod(grid))
    lik = components("likelihood", likelihood)
    param_shape = tuple(lik.param_shape(data_shape))
    k, d = p["codebook_size"], p["embedding_dim"]
    try:
        if p["net"] == "conv":
            encoder = ConvEncoder(data_shape, d, p["channels"], p["res_blocks"], p["downsample"])
            decoder = ConvDecoder(grid, d, param_shape, p["channels"], p["res_blocks"], p["downsample"])
        else:
            encoder = MLPEncoder(data_shape, p["positions"], d, p["hidden"])
            decoder = MLPDecoder(p["positions"], d, param_shape, tuple(reversed(p["hidden"])))
        quantizer = VectorQuantizer(k, d, update=p["codebook"], decay=p["decay"], epsilon=p["epsilon"],
                                    dead_threshold=p["dead_threshold"])
        code_prior = PRIORS[prior_name](k, math.prod(grid), **prior_params)
    except RuntimeError as exc:  # sizes too large for this machine
        raise components.allocation_error(exc, "architecture", "vqvae", "model") or exc
    return VQVAE(encoder, decoder, quantizer, code_prior, lik, data_shape=data_shape, grid=grid,
                 commitment_cost=p["commitment_cost"])


def check_vqvae(components: Any, *, likelihood: Any, prior: Any = "uniform", data_shape: Any = None, **params: Any) -> None:
    """Validate a ``vqvae`` config without data: its own keys, the prior's section and the likelihood's name and parameters."""
    p = _check_params(**params)
    _check_prior(prior, p["codebook_size"], p["positions"] if p["net"] == "mlp" else 1)
    components.check("likelihood", likelihood)


build_vqvae.check_config = check_vqvae  # type: ignore[attr-defined]

DEFAULTS = {
    "net": "conv", "codebook_size": 64, "embedding_dim": 16, "codebook": "ema", "commitment_cost": 0.25, "decay": 0.99,
    "epsilon": 1e-5, "dead_threshold": 0.01, "channels": 64, "res_blocks": 2, "downsample": 2, "hidden": [512],
    "positions": 16,
}


def _check_params(**given: Any) -> dict[str, Any]:
    """The architecture's own keys, checked (one-line ``ConfigError`` naming ``model.<key>``) and completed with the defaults."""
    p = {**DEFAULTS, **given}
    _choice("net", p["net"], NETS)
    _choice("codebook", p["codebook"], UPDATES)
    _int("codebook_size", p["codebook_size"], 2, "a codebook needs at least 2 codes")
    for key in ("embedding_dim", "channels", "positions"):
        _int(key, p[key], 1)
    for key in ("res_blocks", "downsample"):
        _int(key, p[key], 0)
    hidden = p["hidden"]
    if not isinstance(hidden, (list, tuple)) or not all(isinstance(h, int) and not isinstance(h, bool) and h > 0 for h in hidden):
        raise ConfigError(f"model.hidden: expected a list of positive integers like [512, 256] ([] for linear maps), got {hidden!r}")
    p["hidden"] = tuple(hidden)
    _number("commitment_cost", p["commitment_cost"], "a number >= 0", lambda v: v >= 0)
    _number("decay", p["decay"], "a number in (0, 1), e.g. 0.99", lambda v: 0 < v < 1)
    _number("epsilon", p["epsilon"], "a positive number, e.g. 1e-5", lambda v: v > 0)
    _number("dead_threshold", p["dead_threshold"], "a number >= 0 (0: never restart codes)", lambda v: v >= 0)
    if p["codebook_size"] * p["embedding_dim"] > MAX_SIZE:
        raise ConfigError(f"model.codebook_size: {p['codebook_size']:,} codes of {p['embedding_dim']:,} numbers are "
                          f"more than {MAX_SIZE:,} (2**31) values; lower codebook_size or embedding_dim")
    return p


def _grid(p: dict[str, Any], data_shape: tuple[int, ...]) -> tuple[int, ...]:
    """The code grid for the data: ``(positions,)`` for ``mlp``, ``(H/2^d, W/2^d)`` for ``conv``."""
    if p["net"] == "mlp":
        grid: tuple[int, ...] = (p["positions"],)
    else:
        if len(data_shape) != 3:
            raise ConfigError(f"model.net: 'conv' needs images (C, H, W), but data_shape is {list(data_shape)}; use net: mlp")
        d = p["downsample"]
        if data_shape[1] % 2**d or data_shape[2] % 2**d:
            fits = max(i for i in range(d + 1) if data_shape[1] % 2**i == 0 and data_shape[2] % 2**i == 0)
            raise ConfigError(f"model.downsample: {d} halvings need height and width divisible by {2**d}, but the "
                              f"images are {data_shape[1]}x{data_shape[2]}; allowed: downsample <= {fits}")
        grid = grid_shape(data_shape, d)
    if math.prod(grid) * p["embedding_dim"] > MAX_SIZE:
        raise ConfigError(f"model.embedding_dim: {math.prod(grid):,} positions of {p['embedding_dim']:,} numbers are "
                          f"more than {MAX_SIZE:,} (2**31) values per example")
    return grid


def _check_prior(section: Any, num_codes: int, positions: int) -> tuple[str, dict[str, Any]]:
    """``(name, params)`` of the ``model.prior`` section, checked against the prior's constructor."""
    from vaezoo.registry import check_params

    if isinstance(section, str):
        section = {"name": section}
    if not isinstance(section, Mapping) or not isinstance(section.get("name"), str):
        raise ConfigError(f"model.prior: expected {{name: ..., <params>}} or a name ({one_of(PRIORS)}), got {section!r}")
    name = section["name"]
    if name not in PRIORS:
        raise ConfigError(f"model.prior.name: {name!r} is not a prior of {WHO}.{did_you_mean(name, PRIORS)} "
                          f"Allowed: {one_of(PRIORS)}")
    params = {k: v for k, v in section.items() if k != "name"}
    fixed = {"num_codes": num_codes, "positions": positions}
    clash = sorted(set(params) & set(fixed))
    if clash:
        raise ConfigError(f"model.prior.{clash[0]}: set by the model itself; remove it here")
    try:
        check_params(PRIORS[name], {**fixed, **params}, f"prior {name!r}", hidden=set(fixed))
    except ComponentParamError as exc:
        raise ConfigError(f"model.prior: {exc}") from None
    if name == "transformer":
        for key in ("width", "layers", "heads"):
            if key in params:
                _int(f"prior.{key}", params[key], 1)
        width, heads = params.get("width", 128), params.get("heads", 4)
        if width % heads:
            raise ConfigError(f"model.prior.heads: {heads} heads must divide width {width}; e.g. heads: "
                              f"{max(h for h in range(1, min(heads, width) + 1) if width % h == 0)}")
    return name, params


def _choice(key: str, value: Any, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ConfigError(f"model.{key}: {value!r} is not allowed.{did_you_mean(str(value), allowed)} Allowed: {one_of(allowed)}")


def _int(key: str, value: Any, minimum: int, why: str = "") -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"model.{key}: expected an integer >= {minimum}{f' ({why})' if why else ''}, got {value!r}")


def _number(key: str, value: Any, what: str, ok: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not ok(value):
        raise ConfigError(f"model.{key}: expected {what}, got {value!r}")
