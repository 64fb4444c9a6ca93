"""The ``vae`` architecture: one latent vector z, q(z|x) -> p(x|z), with the prior p(z).

The reconstruction term E_q[log p(x|z)] is the likelihood's closed-form log-density of
the decoder's output at x; nothing is sampled after the decoder to train or evaluate.
The KL term is analytic when ``torch.distributions.kl_divergence`` knows the pair of
distributions (vaezoo registers its own pairs with ``register_kl``), and a Monte Carlo
estimate from the same z otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn
from torch.distributions import Distribution, kl_divergence

from ..components import Likelihood, LogWeights, Model, Prior
from ..conditioning import Condition, check_conditionable, parse_condition
from ..errors import ConfigError, did_you_mean, one_of
from ..kinds import CONDITION_DIM
from ._common import KL_MODES, analytic_kl_known, as_input, bind_prior, detached, per_dim_kl, refuse_y

EVAL_PIECE_ELEMENTS = 2**18
"""``log_likelihood`` runs the decoder and likelihood over pieces of at most this many outputs."""


class VAE(Model):
    """A variational autoencoder with one latent vector z: encoder q(z|x), prior p(z), decoder
    and likelihood p(x|z) (architecture ``vae``).

    Build it with ``vaezoo.build_model(cfg)``; the constructor takes the already built
    components. ``kl``: ``auto`` (analytic when torch.distributions knows the pair, else
    Monte Carlo), ``analytic`` or ``mc``.
    """

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        prior: Prior,
        likelihood: Likelihood,
        *,
        data_shape: tuple[int, ...],
        latent_dim: int,
        kl: str = "auto",
        condition: Condition | None = None,
        config: Mapping[str, Any] | None = None,
        sources: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if kl not in KL_MODES:
            raise ValueError(f"kl must be one of {one_of(KL_MODES)}, got {kl!r}.{did_you_mean(kl, KL_MODES)}")
        self.encoder = encoder
        self.decoder = decoder
        self.prior = prior
        self.likelihood = likelihood
        self.data_shape = tuple(int(s) for s in data_shape)
        self.latent_dim = int(latent_dim)
        self.kl_mode = kl
        self.condition = condition
        self.config = dict(config) if config is not None else None
        self.sources = dict(sources) if sources is not None else {}
        bind_prior(prior, encoder, self.data_shape, condition)

    # -- pieces ----------------------------------------------------------------------
    @property
    def event_dims(self) -> int:
        return len(self.data_shape)

    def encode(self, x: Tensor, y: Any = None) -> Distribution:
        """q(z|x) (q(z|x, y) for a conditional model), batch shape ``(B,)``, event shape ``(latent_dim,)``."""
        if self.condition is None:
            refuse_y(y)
            return self.encoder(x)
        return self.encoder(x, self.condition.vector(y, len(x), like=x))

    def decode(self, z: Tensor, y: Any = None) -> Tensor:
        """Likelihood parameters for ``z (..., B, latent_dim)`` (and y of the B examples)."""
        if self.condition is None:
            refuse_y(y)
            return self.decoder(z)
        return self.decoder(z, self.condition.vector(y, z.shape[-2] if z.dim() > 1 else None, like=z))

    def _vectors(self, y: Any, x: Tensor) -> Any:
        """y as the nets' ``(B, C)`` vectors, converted (and checked) once per call; unchanged for an unconditional model."""
        return y if self.condition is None else self.condition.vector(y, len(x), like=x)

    def prior_distribution(self, y: Any = None) -> Distribution:
        """p(z), or p(z|y) for a conditional prior (batch shape ``(B,)``)."""
        if self.condition is None or not self.condition.prior:
            return self.prior.distribution()
        return self.prior.distribution(self.condition.vector(y, like=self.prior._reference()))

    def prior_log_prob(self, z: Tensor, y: Any = None) -> Tensor:
        """log p(z) (log p(z|y) for a conditional prior) of ``z (..., B, latent_dim)``."""
        if self.condition is None or not self.condition.prior:
            return self.prior.log_prob(z)
        return self.prior.log_prob(z, self.condition.vector(y, z.shape[-2], like=z))

    # -- objectives ------------------------------------------------------------------
    def elbo(
        self,
        x: Tensor,
        num_samples: int = 1,
        beta: float = 1.0,
        *,
        free_bits: float = 0.0,
        y: Any = None,
    ) -> dict[str, Tensor]:
        """Per-example ELBO terms, each of shape ``(B,)``, in nats (``y``: a conditional model's condition).

        * ``log_px_z`` -- E_q[log p(x|z)], the closed-form log-density averaged over samples;
        * ``kl`` -- KL(q(z|x) || p(z)), analytic or Monte Carlo from the same z (see ``kl``);
        * ``elbo`` -- ``log_px_z - kl``;
        * ``loss`` -- ``-(log_px_z - beta * kl)`` with free bits (Kingma et al. 2016: each
          latent dimension's batch-mean KL is held at least at ``free_bits`` nats).
        """
        y = self._vectors(y, x)
        q, z, log_px_z = self._sampled(x, num_samples, y)
        p = self.prior_distribution(y)
        if self._analytic_kl(q, p):
            kl = kl_divergence(q, p)  # (B,)
            kl_per_dim = per_dim_kl(q, p) if free_bits > 0 else None
        else:
            kl = (q.log_prob(z) - self.prior_log_prob(z, y)).mean(0)
            kl_per_dim = None
        log_px = log_px_z.mean(0)
        kl_term = kl
        if free_bits > 0:
            if kl_per_dim is not None:
                mean_dim = kl_per_dim.mean(0)  # (D,)
                kl_term = kl + (torch.clamp(mean_dim, min=free_bits) - mean_dim).sum()
            else:
                mean_total = kl.mean()
                floor = free_bits * self.latent_dim
                kl_term = kl + (torch.clamp(mean_total, min=floor) - mean_total)
        loss = -(log_px - beta * kl_term)
        return {"elbo": log_px - kl, "log_px_z": log_px, "kl": kl, "loss": loss}

    def _sampled(self, x: Tensor, num_samples: int, y: Any = None) -> tuple[Distribution, Tensor, Tensor]:
        """``(q(z|x), z (K, B, D) reparameterised, log p(x|z) (K, B))`` for ``K = num_samples``."""
        k = int(num_samples)
        if k < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        x = as_input(x, self, self.data_shape)
        q = self.encode(x, y)
        z = q.rsample((k,))
        return q, z, self.likelihood.log_prob(x, self.decode(z, y))

    def kl(self, q: Distribution, z: Tensor, y: Any = None) -> Tensor:
        """KL(q(z|x) || p(z)) per example ``(B,)``: analytic when known (see ``kl``), else the
        Monte Carlo estimate from the samples ``z (K, B, latent_dim)``."""
        if self.condition is not None:
            y = self.condition.vector(y, z.shape[-2], like=z)
        p = self.prior_distribution(y)
        if self._analytic_kl(q, p):
            return kl_divergence(q, p)
        return (q.log_prob(z) - self.prior_log_prob(z, y)).mean(0)

    def log_weights(self, x: Tensor, num_samples: int, *, detach_q: bool = False, y: Any = None) -> LogWeights:
        """K samples z_k ~ q(z|x) per example and their log p(x|z_k), log p(z_k), log q(z_k|x), each ``(K, B)``."""
        y = self._vectors(y, x)
        q, z, log_px_z = self._sampled(x, num_samples, y)
        q_eval = detached(q) if detach_q else q
        return LogWeights(log_px_z, self.prior_log_prob(z, y), q_eval.log_prob(z), [z])

    def _analytic_kl(self, q: Distribution, p: Distribution) -> bool:
        return analytic_kl_known(q, p, self.kl_mode)

    @torch.no_grad()
    def log_likelihood(
        self,
        x: Tensor,
        num_samples: int = 1000,
        *,
        batch_size: int | None = None,
        max_elements: int = 2**24,
        y: Any = None,
    ) -> Tensor:
        """Importance-sampled log p(x) in nats, shape ``(B,)`` (Burda et al. 2016, eq. 8).

        Uses q(z|x) as proposal with ``num_samples`` samples per example. Examples and
        samples are drawn in chunks holding at most about ``max_elements`` decoder outputs
        at a time, so K=5000 runs in bounded memory; the decoder and the likelihood then run
        over pieces of at most ``EVAL_PIECE_ELEMENTS`` outputs, small enough to stay in the
        CPU's caches (the samples, and so the estimate, do not depend on the pieces).
        """
        k = int(num_samples)
        if k < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        x = as_input(x, self, self.data_shape)
        yv = self.condition.vector(y, len(x), like=x) if self.condition is not None else refuse_y(y)
        per_sample = max(1, math.prod(self.likelihood.param_shape(self.data_shape)))
        rows = batch_size or max(1, min(len(x), max_elements // per_sample))
        p = self.prior_distribution(yv) if self.condition is None or not self.condition.prior else None
        results = [x.new_zeros((0,))]
        for start in range(0, len(x), rows):
            xb = x[start : start + rows]
            yb = None if yv is None else yv[start : start + rows]
            q = self.encode(xb, yb)
            pb = p if p is not None else self.prior_distribution(yb)
            chunk = max(1, min(k, max_elements // (per_sample * len(xb))))
            total = None
            done = 0
            with self.likelihood.same_data(xb):
                while done < k:
                    n = min(chunk, k - done)
                    z = q.sample((n,))
                    log_w = self._log_px_z_in_pieces(xb, z, per_sample, yb) + pb.log_prob(z) - q.log_prob(z)
                    part = torch.logsumexp(log_w, dim=0)
                    total = part if total is None else torch.logaddexp(total, part)
                    done += n
            results.append(total - math.log(k))
        return torch.cat(results)

    def _log_px_z_in_pieces(self, x: Tensor, z: Tensor, per_sample: int, y: Tensor | None = None) -> Tensor:
        """``likelihood.log_prob(x, decode(z, y))`` for ``z (n, B, D)``, ``(n, B)``, computed over
        pieces of at most ``EVAL_PIECE_ELEMENTS`` decoder outputs (whole samples when one fits,
        else blocks of rows)."""
        n, b = z.shape[0], z.shape[1]
        pairs = max(1, EVAL_PIECE_ELEMENTS // per_sample)  # (sample, row) pairs per piece
        if n * b <= pairs:
            return self.likelihood.log_prob(x, self.decode(z, y))
        if b <= pairs:
            step = pairs // b
            return torch.cat([self.likelihood.log_prob(x, self.decode(z[i : i + step], y)) for i in range(0, n, step)])
        rows = [
            torch.cat([self.likelihood.log_prob(x[j : j + pairs], self.decode(z[i : i + 1, j : j + pairs], None if y is None else y[j : j + pairs]))
                       for j in range(0, b, pairs)], dim=1)
            for i in range(n)
        ]
        return torch.cat(rows)

    # -- generation ------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, n: int, mean: bool = False, y: Any = None) -> Tensor:
        """``n`` draws x ~ p(x|z), z ~ p(z); with ``mean=True`` the decoder's mean instead.

        A conditional model needs ``y``: one label (or covariate vector) for all ``n``, or one per draw.
        """
        n = int(n)
        if self.condition is None:
            refuse_y(y)
            z = self.prior.sample(n)
        else:
            y = self.condition.vector(y, n, like=self.prior._reference())
            z = self.prior.sample(n, y) if self.condition.prior else self.prior.sample(n)
        params = self.decode(z, y)
        return self.likelihood.mean(params) if mean else self.likelihood.sample(params)

    @torch.no_grad()
    def reconstruct(self, x: Tensor, mean: bool = True, y: Any = None) -> Tensor:
        """Decode the mean of q(z|x): the likelihood's mean (or a sample with ``mean=False``)."""
        x = as_input(x, self, self.data_shape)
        params = self.decode(self.encode(x, y).mean, y)
        return self.likelihood.mean(params) if mean else self.likelihood.sample(params)

    def extra_repr(self) -> str:
        cond = f", condition={self.condition.to_config()}" if self.condition is not None else ""
        return f"data_shape={self.data_shape}, latent_dim={self.latent_dim}, kl={self.kl_mode!r}{cond}"


def _name(section: Any) -> Any:
    return section.get("name") if isinstance(section, Mapping) else section


def build_vae(
    components: Any,
    *,
    data_shape: list[int],
    latent_dim: int,
    encoder: Any,
    decoder: Any,
    prior: Any,
    likelihood: Any,
    kl: str = "auto",
    condition: Any = None,
) -> VAE:
    """One latent vector z: encoder q(z|x), decoder, prior p(z), likelihood p(x|z) (the keys of ``model``).

    Parameters:

    * ``data_shape`` -- shape of one example, e.g. ``[1, 8, 8]``; ``vaezoo train`` takes it from
      the data (if given, it must match).
    * ``latent_dim`` -- size of z.
    * ``encoder`` -- q(z|x): ``name`` of a registered encoder, then its parameters.
    * ``decoder`` -- z -> the likelihood's parameters: ``name``, then its parameters.
    * ``prior`` -- p(z): ``name`` of a registered prior (``normal``, ``mixture``, ``vamp``, ...),
      then its parameters.
    * ``likelihood`` -- p(x|z): ``name`` of a registered likelihood (``bernoulli``, ``gaussian``,
      ``discretized_logistic``, ...), then its parameters.
    * ``kl`` -- how KL(q(z|x) || p(z)) is computed: ``auto`` (closed form when
      ``torch.distributions.kl_divergence`` knows the pair, else Monte Carlo from the same z),
      ``analytic`` (an error when no formula is known) or ``mc``.
    * ``condition`` -- a conditional VAE: ``{classes: N}`` (labels, one-hot) or ``{dim: C}`` (a
      covariate vector) given to the encoder and decoder, and with ``prior: true`` to the prior,
      p(z|y) (see vaezoo.conditioning); null: unconditional.
    """
    latent_dim = check_latent_dim(latent_dim)
    _choice("kl", kl, KL_MODES)
    cond = _check_condition(components, condition, encoder, decoder, prior)
    extra = {CONDITION_DIM: cond.size} if cond is not None else {}
    data_shape = tuple(data_shape)
    lik = components("likelihood", likelihood)
    param_shape = tuple(lik.param_shape(data_shape))
    enc = components("encoder", encoder, data_shape=data_shape, latent_dim=latent_dim, **extra)
    dec = components("decoder", decoder, latent_dim=latent_dim, param_shape=param_shape, **extra)
    pri = components("prior", prior, latent_dim=latent_dim, **(extra if cond is not None and cond.prior else {}))
    try:
        return VAE(enc, dec, pri, lik, data_shape=data_shape, latent_dim=latent_dim, kl=kl, condition=cond)
    except RuntimeError as exc:  # prior.bind allocates (the VampPrior's pseudo-inputs)
        raise components.allocation_error(exc, "prior", prior) or exc


def check_vae(components: Any, *, latent_dim: int, encoder: Any, decoder: Any, prior: Any, likelihood: Any,
              kl: str = "auto", condition: Any = None, data_shape: Any = None) -> None:
    """Validate a ``vae`` config without data: names and parameters of every component."""
    latent_dim = check_latent_dim(latent_dim)
    _choice("kl", kl, KL_MODES)
    cond = _check_condition(components, condition, encoder, decoder, prior)
    extra = {CONDITION_DIM: cond.size} if cond is not None else {}
    components.check("likelihood", likelihood)
    components.check("encoder", encoder, data_shape=(1,), latent_dim=latent_dim, **extra)
    components.check("decoder", decoder, latent_dim=latent_dim, param_shape=(1,), **extra)
    components.check("prior", prior, latent_dim=latent_dim, **(extra if cond is not None and cond.prior else {}))


def _check_condition(components: Any, condition: Any, encoder: Any, decoder: Any, prior: Any) -> Condition | None:
    """``model.condition`` parsed, and every component it reaches able to take y."""
    cond = parse_condition(condition)
    if cond is not None:
        check_conditionable(components, "encoder", encoder)
        check_conditionable(components, "decoder", decoder)
        if cond.prior:
            check_conditionable(components, "prior", prior)
    return cond


build_vae.check_config = check_vae  # type: ignore[attr-defined]


def check_latent_dim(latent: Any) -> int:
    from ..model import MAX_SIZE

    if not isinstance(latent, int) or isinstance(latent, bool) or latent < 1:
        raise ConfigError(f"model.latent_dim: expected a positive integer, got {latent!r}")
    if latent > MAX_SIZE:
        raise ConfigError(f"model.latent_dim: {latent:,} is too large; at most {MAX_SIZE:,} (2**31) is allowed")
    return latent


def _choice(key: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(
            f"model.{key}: {value!r} is not allowed.{did_you_mean(str(value), allowed)} Allowed: {one_of(allowed)}"
        )
