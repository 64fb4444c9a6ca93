"""The ``VAE``: any encoder, decoder, prior and likelihood, and its objectives in closed form.

The reconstruction term E_q[log p(x|z)] is the likelihood's closed-form log-density of
the decoder's output at x; nothing is sampled after the decoder to train or evaluate.
The KL term is analytic when ``torch.distributions.kl_divergence`` knows the pair of
distributions, and a Monte Carlo estimate from the same z otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn
from torch.distributions import Distribution, Independent, Normal, kl_divergence

from .components import Likelihood, Prior
from .priors.normal import StandardNormal
from .registry import KINDS
from .errors import ComponentParamError, ConfigError, PluginError, UnknownComponentError, did_you_mean, one_of

KL_MODES = ("auto", "analytic", "mc")
OBJECTIVES = ("elbo", "iwae")
COMPONENT_KEYS = KINDS  # the model config has one section per component kind
MODEL_KEYS = ("data_shape", "latent_dim", *COMPONENT_KEYS, "kl", "objective")
_KL_SUPPORT: dict[tuple[type, ...], bool] = {}
EVAL_PIECE_ELEMENTS = 2**18
"""``log_likelihood`` runs the decoder and likelihood over pieces of at most this many outputs."""
MAX_SIZE = 2**31
"""The most values ``model.data_shape`` (one example) or ``model.latent_dim`` may ask for: 2**31, 8 GiB as
float32 for a single example; anything larger is refused by ``model_config`` before anything is allocated."""


class VAE(nn.Module):
    """A variational autoencoder assembled from four components.

    Build it with ``vaezoo.build_model(cfg)``; the constructor takes the already built
    components. ``kl``: ``auto`` (analytic when known, else Monte Carlo), ``analytic`` or
    ``mc``. ``objective``: ``elbo`` or ``iwae`` (importance weighted bound, Burda et al. 2016).
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
        objective: str = "elbo",
        config: Mapping[str, Any] | None = None,
        sources: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if kl not in KL_MODES:
            raise ValueError(f"kl must be one of {one_of(KL_MODES)}, got {kl!r}.{did_you_mean(kl, KL_MODES)}")
        if objective not in OBJECTIVES:
            raise ValueError(
                f"objective must be one of {one_of(OBJECTIVES)}, got {objective!r}.{did_you_mean(objective, OBJECTIVES)}"
            )
        self.encoder = encoder
        self.decoder = decoder
        self.prior = prior
        self.likelihood = likelihood
        self.data_shape = tuple(int(s) for s in data_shape)
        self.latent_dim = int(latent_dim)
        self.kl_mode = kl
        self.objective = objective
        self.config = dict(config) if config is not None else None
        self.sources = dict(sources) if sources is not None else {}
        prior.bind(encoder, self.data_shape)

    # -- pieces ----------------------------------------------------------------------
    @property
    def event_dims(self) -> int:
        return len(self.data_shape)

    def encode(self, x: Tensor) -> Distribution:
        """q(z|x), batch shape ``(B,)``, event shape ``(latent_dim,)``."""
        return self.encoder(x)

    def decode(self, z: Tensor) -> Tensor:
        """Likelihood parameters for ``z (..., latent_dim)``."""
        return self.decoder(z)

    # -- objectives ------------------------------------------------------------------
    def elbo(
        self,
        x: Tensor,
        num_samples: int = 1,
        beta: float = 1.0,
        *,
        objective: str | None = None,
        free_bits: float = 0.0,
    ) -> dict[str, Tensor]:
        """Per-example terms of the objective, each of shape ``(B,)``, in nats.

        * ``log_px_z`` -- E_q[log p(x|z)], the closed-form log-density averaged over samples;
        * ``kl`` -- KL(q(z|x) || p(z)), analytic or Monte Carlo (see ``kl``);
        * ``elbo`` -- ``log_px_z - kl``; with ``objective="iwae"`` the importance weighted
          bound log (1/K) sum_k p(x, z_k)/q(z_k|x) with K = ``num_samples``;
        * ``loss`` -- what training minimises: ``-(log_px_z - beta * kl)`` with free bits
          (Kingma et al. 2016: each latent dimension's batch-mean KL is held at least at
          ``free_bits`` nats), or ``-iwae`` bound with ``beta`` weighting log p(z) - log q(z).
        """
        objective = objective or self.objective
        if objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {one_of(OBJECTIVES)}, got {objective!r}")
        if objective == "iwae" and free_bits > 0:
            raise ValueError("free_bits applies to the ELBO's KL term; the iwae objective has none -- set free_bits=0")
        k = int(num_samples)
        if k < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        x = _as_input(x, self, self.data_shape)
        q = self.encode(x)
        z = q.rsample((k,))  # (K, B, D)
        log_px_z = self.likelihood.log_prob(x, self.decode(z))  # (K, B)
        if objective == "iwae":
            log_ratio = self.prior.log_prob(z) - q.log_prob(z)  # (K, B)
            log_w = log_px_z + beta * log_ratio
            bound = torch.logsumexp(log_w, dim=0) - math.log(k)
            kl = -log_ratio.mean(0)
            out_elbo = bound if beta == 1.0 else torch.logsumexp(log_px_z + log_ratio, 0) - math.log(k)
            return {"elbo": out_elbo, "log_px_z": log_px_z.mean(0), "kl": kl, "loss": -bound}

        kl_per_dim = self._standard_normal_kl(q)
        if kl_per_dim is not None:  # the common case, without the distributions' dispatch (same numbers)
            kl = kl_per_dim.sum(-1)  # (B,)
        else:
            p = self.prior.distribution()
            if self._analytic_kl(q, p):
                kl = kl_divergence(q, p)  # (B,)
                kl_per_dim = _per_dim_kl(q, p) if free_bits > 0 else None
            else:
                kl = (q.log_prob(z) - self.prior.log_prob(z)).mean(0)
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

    def _standard_normal_kl(self, q: Distribution) -> Tensor | None:
        """KL(q || N(0, I)) per latent dimension, ``(B, D)``, when q is a diagonal Gaussian and the
        prior the built-in standard normal; else None.

        The same operations as ``kl_divergence(q, prior.distribution())`` (torch's Normal-Normal
        formula with loc 0 and scale 1, then the sum over the event), so the same numbers and
        gradients bit for bit, but without building the prior's distribution or dispatching on
        types every step (and without a graph break under ``torch.compile``).
        """
        if self.kl_mode == "mc" or type(self.prior) is not StandardNormal:
            return None
        if type(q) is not Independent or q.reinterpreted_batch_ndims != 1 or type(q.base_dist) is not Normal:
            return None
        loc, scale = q.base_dist.loc, q.base_dist.scale
        var_ratio = scale.pow(2)  # (scale / 1)^2
        t1 = loc.pow(2)  # ((loc - 0) / 1)^2
        return 0.5 * (var_ratio + t1 - 1 - var_ratio.log())

    def _analytic_kl(self, q: Distribution, p: Distribution) -> bool:
        if self.kl_mode == "mc":
            return False
        key = (type(q), type(getattr(q, "base_dist", None)), type(p), type(getattr(p, "base_dist", None)))
        known = _KL_SUPPORT.get(key)
        if known is None:
            try:
                kl_divergence(q, p)
                known = True
            except NotImplementedError:
                known = False
            _KL_SUPPORT[key] = known
        if not known and self.kl_mode == "analytic":
            raise ConfigError(
                f"model.kl='analytic', but torch.distributions has no KL formula for "
                f"{_dist_name(q)} against {_dist_name(p)}; use kl='auto' or 'mc'"
            )
        return known

    @torch.no_grad()
    def log_likelihood(
        self,
        x: Tensor,
        num_samples: int = 1000,
        *,
        batch_size: int | None = None,
        max_elements: int = 2**24,
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
        x = _as_input(x, self, self.data_shape)
        per_sample = max(1, math.prod(self.likelihood.param_shape(self.data_shape)))
        rows = batch_size or max(1, min(len(x), max_elements // per_sample))
        p = self.prior.distribution()
        results = [x.new_zeros((0,))]
        for start in range(0, len(x), rows):
            xb = x[start : start + rows]
            q = self.encode(xb)
            chunk = max(1, min(k, max_elements // (per_sample * len(xb))))
            total = None
            done = 0
            while done < k:
                n = min(chunk, k - done)
                z = q.sample((n,))
                log_w = self._log_px_z_in_pieces(xb, z, per_sample) + p.log_prob(z) - q.log_prob(z)
                part = torch.logsumexp(log_w, dim=0)
                total = part if total is None else torch.logaddexp(total, part)
                done += n
            results.append(total - math.log(k))
        return torch.cat(results)

    def _log_px_z_in_pieces(self, x: Tensor, z: Tensor, per_sample: int) -> Tensor:
        """``likelihood.log_prob(x, decode(z))`` for ``z (n, B, D)``, ``(n, B)``, computed over
        pieces of at most ``EVAL_PIECE_ELEMENTS`` decoder outputs (whole samples when one fits,
        else blocks of rows)."""
        n, b = z.shape[0], z.shape[1]
        pairs = max(1, EVAL_PIECE_ELEMENTS // per_sample)  # (sample, row) pairs per piece
        if n * b <= pairs:
            return self.likelihood.log_prob(x, self.decode(z))
        if b <= pairs:
            step = pairs // b
            return torch.cat([self.likelihood.log_prob(x, self.decode(z[i : i + step])) for i in range(0, n, step)])
        rows = [
            torch.cat([self.likelihood.log_prob(x[j : j + pairs], self.decode(z[i : i + 1, j : j + pairs])) for j in range(0, b, pairs)], dim=1)
            for i in range(n)
        ]
        return torch.cat(rows)

    def bits_per_dim(self, x: Tensor, num_samples: int = 1000, *, num_bins: int = 256, **kwargs: Any) -> Tensor:
        """-log p(x) / (D ln 2) per example, from ``log_likelihood``.

        For a continuous likelihood on data scaled to [0, 1] the density is turned into a
        probability of the ``num_bins`` quantisation bins first (adds D log num_bins nats),
        the usual convention for image models; discrete likelihoods need no correction.
        """
        nll = -self.log_likelihood(x, num_samples, **kwargs)
        d = math.prod(self.data_shape)
        if not getattr(self.likelihood, "discrete", False):
            nll = nll + d * math.log(num_bins)
        return nll / (d * math.log(2.0))

    # -- generation ------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, n: int, mean: bool = False) -> Tensor:
        """``n`` draws x ~ p(x|z), z ~ p(z); with ``mean=True`` the decoder's mean instead."""
        params = self.decode(self.prior.sample(int(n)))
        return self.likelihood.mean(params) if mean else self.likelihood.sample(params)

    @torch.no_grad()
    def reconstruct(self, x: Tensor, mean: bool = True) -> Tensor:
        """Decode the mean of q(z|x): the likelihood's mean (or a sample with ``mean=False``)."""
        x = _as_input(x, self, self.data_shape)
        params = self.decode(self.encode(x).mean)
        return self.likelihood.mean(params) if mean else self.likelihood.sample(params)

    def forward(self, x: Tensor) -> Tensor:
        """The per-example training loss, ``elbo(x)["loss"]``."""
        return self.elbo(x)["loss"]

    # -- persistence -----------------------------------------------------------------
    def save_pretrained(self, directory: str, **kwargs: Any) -> None:
        """Write ``config.json`` and ``model.safetensors`` into ``directory`` (see vaezoo.serialization)."""
        from .serialization import save_pretrained

        save_pretrained(self, directory, **kwargs)

    def extra_repr(self) -> str:
        return f"data_shape={self.data_shape}, latent_dim={self.latent_dim}, kl={self.kl_mode!r}, objective={self.objective!r}"


def _per_dim_kl(q: Distribution, p: Distribution) -> Tensor | None:
    if isinstance(q, Independent) and isinstance(p, Independent):
        try:
            return kl_divergence(q.base_dist, p.base_dist).expand(*q.batch_shape, q.event_shape[-1])
        except NotImplementedError:
            return None
    return None


def _dist_name(d: Distribution) -> str:
    base = getattr(d, "base_dist", None)
    return f"{type(d).__name__}({type(base).__name__})" if base is not None else type(d).__name__


def _as_input(x: Tensor, model: nn.Module, data_shape: tuple[int, ...]) -> Tensor:
    """``x`` checked for shape and moved to the model's floating dtype and device."""
    if not isinstance(x, Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if tuple(x.shape[1:]) != data_shape:
        raise ValueError(
            f"x has shape {tuple(x.shape)}, but this model takes (batch, {', '.join(map(str, data_shape))})"
        )
    ref = next((t for t in model.parameters() if t.is_floating_point()), None)
    if ref is not None and (x.dtype != ref.dtype or x.device != ref.device):
        x = x.to(device=ref.device, dtype=ref.dtype)
    return x


# -- building from a config --------------------------------------------------------------
def model_config(cfg: Any) -> dict[str, Any]:
    """The plain-dict model config from a dict or omegaconf object (``model:`` key accepted)."""
    try:
        from omegaconf import DictConfig, OmegaConf

        if isinstance(cfg, DictConfig):
            cfg = OmegaConf.to_container(cfg, resolve=True)
    except ImportError:  # pragma: no cover
        pass
    if not isinstance(cfg, Mapping):
        raise ConfigError(f"model config must be a mapping, got {type(cfg).__name__}")
    cfg = dict(cfg)
    prefix = "model"
    if "model" in cfg:
        cfg = cfg["model"]
        if not isinstance(cfg, Mapping):
            raise ConfigError(f"model: must be a mapping, got {type(cfg).__name__}")
        cfg = dict(cfg)
    for key in cfg:
        if key not in MODEL_KEYS:
            raise ConfigError(f"{prefix}.{key}: unknown key.{did_you_mean(key, MODEL_KEYS)} Allowed: {one_of(MODEL_KEYS)}")
    for key in ("data_shape", "latent_dim", *COMPONENT_KEYS):
        if key not in cfg or cfg[key] is None:
            raise ConfigError(f"{prefix}.{key}: missing; a model needs {', '.join(('data_shape', 'latent_dim', *COMPONENT_KEYS))}")
    shape = cfg["data_shape"]
    if isinstance(shape, int):
        shape = [shape]
    if not isinstance(shape, (list, tuple)) or not shape or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in shape):
        raise ConfigError(f"{prefix}.data_shape: expected a list of positive integers like [1, 28, 28] or [784], got {cfg['data_shape']!r}")
    cfg["data_shape"] = [int(s) for s in shape]
    if math.prod(cfg["data_shape"]) > MAX_SIZE:
        raise ConfigError(
            f"{prefix}.data_shape: {cfg['data_shape']} is {math.prod(cfg['data_shape']):,} values per example; "
            f"at most {MAX_SIZE:,} (2**31, 8 GiB as float32) are allowed"
        )
    latent = cfg["latent_dim"]
    if not isinstance(latent, int) or isinstance(latent, bool) or latent < 1:
        raise ConfigError(f"{prefix}.latent_dim: expected a positive integer, got {latent!r}")
    if latent > MAX_SIZE:
        raise ConfigError(f"{prefix}.latent_dim: {latent:,} is too large; at most {MAX_SIZE:,} (2**31) is allowed")
    for key in COMPONENT_KEYS:
        section = cfg[key]
        if isinstance(section, str):
            section = {"name": section}
        if not isinstance(section, Mapping) or not isinstance(section.get("name"), str):
            raise ConfigError(f"{prefix}.{key}: expected {{name: ..., <params>}} or a name, got {section!r}")
        cfg[key] = dict(section)
    cfg.setdefault("kl", "auto")
    cfg.setdefault("objective", "elbo")
    for key, allowed in (("kl", KL_MODES), ("objective", OBJECTIVES)):
        if cfg[key] not in allowed:
            raise ConfigError(f"{prefix}.{key}: {cfg[key]!r} is not allowed.{did_you_mean(str(cfg[key]), allowed)} Allowed: {one_of(allowed)}")
    return cfg


def build_model(cfg: Any) -> VAE:
    """Assemble a ``VAE`` from ``{data_shape, latent_dim, encoder, decoder, prior, likelihood}``.

    Each component section is ``{name: <registered name>, **params}``; optional ``kl``
    (``auto|analytic|mc``) and ``objective`` (``elbo|iwae``). Errors name the config path.
    """
    from .registry import get_registry

    cfg = model_config(cfg)
    registry = get_registry()
    data_shape = tuple(cfg["data_shape"])
    latent_dim = cfg["latent_dim"]

    def make(kind: str, **fixed: Any) -> Any:
        params = {k: v for k, v in cfg[kind].items() if k != "name"}
        clash = sorted(set(params) & set(fixed))
        if clash:
            raise ConfigError(f"model.{kind}.{clash[0]}: set by the model itself (from model.{clash[0]}); remove it here")
        try:
            return registry.build(kind, cfg[kind]["name"], fixed, params)
        except UnknownComponentError as exc:
            raise ConfigError(f"model.{kind}.name: {exc}") from exc
        except (ComponentParamError, PluginError) as exc:
            raise type(exc)(f"model.{kind}: {exc}") from exc
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"model.{kind}: {exc}") from exc
        except RuntimeError as exc:
            raise _allocation_error(exc, f"model.{kind}: {cfg[kind]['name']!r}") or exc

    likelihood = make("likelihood")
    param_shape = tuple(likelihood.param_shape(data_shape))
    encoder = make("encoder", data_shape=data_shape, latent_dim=latent_dim)
    decoder = make("decoder", latent_dim=latent_dim, param_shape=param_shape)
    prior = make("prior", latent_dim=latent_dim)
    sources = {}
    for kind in COMPONENT_KEYS:
        spec = registry.get(kind, cfg[kind]["name"])
        sources[kind] = {"name": spec.name, "qualified_name": spec.qualified_name, **spec.source.to_dict()}
    try:
        return VAE(
            encoder,
            decoder,
            prior,
            likelihood,
            data_shape=data_shape,
            latent_dim=latent_dim,
            kl=cfg["kl"],
            objective=cfg["objective"],
            config=cfg,
            sources=sources,
        )
    except RuntimeError as exc:  # prior.bind allocates (the VampPrior's pseudo-inputs)
        raise _allocation_error(exc, f"model.prior: {cfg['prior']['name']!r}") or exc


def _allocation_error(exc: RuntimeError, what: str) -> ConfigError | None:
    """A ``ConfigError`` for torch's "can't allocate memory" while building ``what``; None for any other error.

    The net for sizes no up-front check covers (a prior's ``components``, a plugin's
    parameters): the built-in networks refuse oversized layers before allocating.
    """
    import re

    text = str(exc)
    if not isinstance(exc, torch.OutOfMemoryError) and not re.search(r"can't allocate memory|not enough memory", text):
        return None
    asked = re.search(r"tried to allocate (\d+) bytes", text)
    size = f" ({int(asked.group(1)) / 2**30:,.1f} GiB)" if asked else ""
    return ConfigError(f"{what} asked for more memory{size} than this machine can allocate; lower its sizes")
