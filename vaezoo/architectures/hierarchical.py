"""The ``hierarchical`` architecture: L stochastic levels z_1 (bottom) .. z_L (top), generated
top-down, in the style of the Ladder VAE (Sonderby et al. 2016, "Ladder variational
autoencoders") and VDVAE (Child 2021, "Very deep VAEs generalize autoregressive models").
MLP blocks (``blocks: mlp``), or conv blocks (``blocks: conv``: spatial latents, level l at
1/2**l of the image's resolution; ``vaezoo.architectures._conv_blocks``).

Generative model (top-down)::

    z_L ~ p(z_L)                              the ``prior`` plugin (normal, mixture, vamp)
    t_L = td_L(z_L)                           deterministic top-down state
    z_l ~ p(z_l | z_>l) = N(loc_p(t_{l+1}), diag scale_p(t_{l+1})^2)     for l = L-1 .. 1
    t_l = td_l([z_l, t_{l+1}])
    x   ~ p(x | z) = likelihood(out(t_1))     closed form; nothing is sampled after it

Inference shares the top-down pass (Sonderby et al. 2016, sec. 2.2): a bottom-up pass
b_0 = x, b_l = up_l(b_{l-1}) gives features b_1..b_L; q(z_L|x) is a diagonal Gaussian from b_L
and q(z_l | x, z_>l) one from [b_l, t_{l+1}]. With ``residual: true`` the posterior is
relative to the conditional prior (NVAE, Vahdat & Kautz 2020, sec. 3.2):
loc_q = loc_p + dloc, scale_q = scale_p * softplus(r + log(e - 1)) + min_scale, so that the
posterior starts out as the prior (factor 1 at r = 0).

Each block is, for every width in ``hidden``, Linear + ``activation`` (``hidden: []``: the
identity). With one level and the same widths and activation this is the flat ``vae`` with
``mlp`` encoder and decoder, weight for weight (a test maps one onto the other).
The ELBO's KL is the sum of one KL per level, KL(q(z_l|x,z_>l) || p(z_l|z_>l)) analytic
(Normal against Normal) at the sampled z_>l for l < L, and at the top analytic when
``torch.distributions.kl_divergence`` knows the pair, else Monte Carlo log q - log p at the
same z (Sonderby et al. 2016, eq. 10-11; ``kl: mc`` forces Monte Carlo everywhere).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.distributions import Distribution, Independent, Normal, kl_divergence
from torch.func import functional_call

from ..components import Likelihood, LogWeights, Model, Prior
from ..errors import ConfigError, did_you_mean, one_of
from ..nets.layers import DiagonalGaussianHead, check_dense_activation, dense_layers, make_activation
from ..conditioning import Condition
from ._common import KL_MODES, analytic_kl_known, as_input, bind_prior, detached, per_dim_kl, refuse_y

#: Decoder outputs per chunk of importance samples in ``log_likelihood``: each chunk runs the
#: whole top-down pass in Python, so small chunks cost overhead per sample (2**18: 2.4x slower
#: on a 784-pixel model with 256 rows) and large ones memory.
EVAL_CHUNK_ELEMENTS = 2**20

_SOFTPLUS_ONE = math.log(math.e - 1.0)  # softplus(_SOFTPLUS_ONE) == 1
WHO = "architecture 'hierarchical'"


def _live(module: nn.Module, *args: Tensor) -> Any:
    return module(*args)


def _fixed(module: nn.Module, *args: Tensor) -> Any:
    """``module(*args)`` with its parameters held fixed: gradients reach the inputs only."""
    return functional_call(module, {name: w.detach() for name, w in module.named_parameters()}, args)


def _block(n_in: int, hidden: Sequence[int], activation: str = "relu") -> tuple[nn.Module, int]:
    """A hidden layer (``dense_layers``) for every width in ``hidden`` (the identity for ``[]``) and its output width."""
    layers: list[nn.Module] = []
    for width in hidden:
        layers += dense_layers(n_in, width, activation, WHO)
        n_in = width
    return (nn.Sequential(*layers) if layers else nn.Identity()), n_in


class _TopPosterior(nn.Module):
    """q(z_L|x) as a module of its own (``forward(x)``, ``forward(x, y)`` in a conditional
    model): the bottom-up pass and the top head.

    What a prior that evaluates the encoder (the VampPrior) is bound to. It only refers to
    the model's modules; it is never registered as a submodule, so nothing is stored twice.
    ``join(h, y)`` is how the model adds y to the flattened input.
    """

    def __init__(self, up: nn.ModuleList, head: nn.Module, data_shape: tuple[int, ...], join: Any = None) -> None:
        super().__init__()
        self.up = up
        self.head = head
        self.data_shape = data_shape
        self.join = join

    def forward(self, x: Tensor, y: Tensor | None = None) -> Distribution:
        lead = x.shape[: x.dim() - len(self.data_shape)]
        h = x.reshape(-1, math.prod(self.data_shape))
        if y is not None:
            h = self.join(h, y.reshape(-1, y.shape[-1]))
        for block in self.up:
            h = block(h)
        return self.head(h.reshape(*lead, h.shape[-1]))


class HierarchicalVAE(Model):
    """A top-down hierarchical VAE with MLP blocks (architecture ``hierarchical``); see the module doc.

    ``latent_dims``: sizes of z_1 (bottom) .. z_L (top). ``prior``: p(z_L), a prior plugin.
    ``kl``: ``auto`` (top level analytic when torch.distributions knows the pair), ``analytic``
    or ``mc``. Build it with ``vaezoo.build_model(cfg)``.
    """

    def __init__(
        self,
        prior: Prior,
        likelihood: Likelihood,
        *,
        data_shape: tuple[int, ...],
        latent_dims: Sequence[int],
        hidden: Sequence[int] = (256,),
        residual: bool = True,
        min_scale: float = 1e-4,
        kl: str = "auto",
        activation: str = "relu",
        blocks: str = "mlp",
        channels: Sequence[int] = (32, 64),
        kernel_size: int = 3,
        condition: Condition | None = None,
    ) -> None:
        super().__init__()
        self.condition = condition
        extra = condition.size if condition is not None else 0  # y joins x (bottom-up) and z_L (top-down)
        _check_activation(activation, blocks)  # validate before building anything
        self.activation = activation
        self.blocks = blocks
        if kl not in KL_MODES:
            raise ValueError(f"kl must be one of {one_of(KL_MODES)}, got {kl!r}.{did_you_mean(kl, KL_MODES)}")
        self.data_shape = tuple(int(s) for s in data_shape)
        self.latent_dims = tuple(int(d) for d in latent_dims)
        self.hidden = tuple(int(h) for h in hidden)
        self.residual = bool(residual)
        self.min_scale = float(min_scale)
        self.kl_mode = kl
        self.prior = prior
        self.likelihood = likelihood
        self.config = None
        self.sources = {}
        self.param_shape = tuple(likelihood.param_shape(self.data_shape))
        self._y_sides: tuple[tuple[int, int], tuple[int, int]] | None = None  # conv: where y joins, (H, W) at the bottom and top
        if blocks == "conv":
            self._build_conv(tuple(channels), int(kernel_size), extra)
            return
        dims, n_levels = self.latent_dims, len(self.latent_dims)
        d_in = math.prod(self.data_shape)

        up, up_widths, width = [], [], d_in + extra
        for _ in range(n_levels):
            block, width = _block(width, self.hidden, activation)
            up.append(block)
            up_widths.append(width)
        self.up = nn.ModuleList(up)  # up[i]: b_i -> b_{i+1}
        self.top_head = DiagonalGaussianHead(up_widths[-1], dims[-1], self.min_scale)

        td: list[nn.Module] = [nn.Identity()] * n_levels
        td_widths = [0] * n_levels  # td_widths[i]: width of t_{i+1}
        td[-1], td_widths[-1] = _block(dims[-1] + extra, self.hidden, activation)
        for i in range(n_levels - 2, -1, -1):
            td[i], td_widths[i] = _block(dims[i] + td_widths[i + 1], self.hidden, activation)
        self.td = nn.ModuleList(td)  # td[i] gives t_{i+1}
        # level i < L-1 (z_{i+1}): prior from t_{i+2}, posterior from [b_{i+1}, t_{i+2}]
        self.prior_heads = nn.ModuleList(nn.Linear(td_widths[i + 1], 2 * dims[i]) for i in range(n_levels - 1))
        self.post_heads = nn.ModuleList(nn.Linear(up_widths[i] + td_widths[i + 1], 2 * dims[i]) for i in range(n_levels - 1))
        self.out = nn.Linear(td_widths[0], math.prod(self.param_shape))
        self._bind_prior()

    def _build_conv(self, channels: tuple[int, ...], kernel_size: int, condition_channels: int = 0) -> None:
        """Conv blocks (``vaezoo.architectures._conv_blocks``): ``latent_dims`` are channels per
        position; ``self.latent_dims`` becomes the flattened size of each spatial latent."""
        from ._conv_blocks import build_conv_blocks

        self.latent_channels = self.latent_dims
        self.channels, self.kernel_size = channels, kernel_size
        parts = build_conv_blocks(self.data_shape, self.latent_channels, channels, self.param_shape[0],
                                  kernel_size, self.activation, self.min_scale, WHO, condition_channels)
        self.latent_dims = parts.pop("dims")
        sides = parts.pop("sides")
        self._y_sides = (sides[0], sides[-1])
        for name, module in parts.items():
            setattr(self, name, module)
        self._bind_prior()

    def _bind_prior(self) -> None:
        """Bind the top prior to q(z_L|x) (q(z_L|x, y) in a conditional model)."""
        top = _TopPosterior(self.up, self.top_head, self.data_shape, self._with_y)
        object.__setattr__(self, "_top_posterior", top)
        bind_prior(self.prior, top, self.data_shape, self.condition)

    # -- the passes ------------------------------------------------------------------
    def _y(self, y: Any, x: Tensor) -> Tensor | None:
        """A conditional model's y as ``(B, C)`` vectors (None for an unconditional model, which refuses y)."""
        if self.condition is None:
            return refuse_y(y)
        return self.condition.vector(y, len(x), like=x)

    def _with_y(self, z: Tensor, yv: Tensor | None, where: int = 0) -> Tensor:
        """``[z, y]`` along the last dim, y broadcast over z's sample dims; for conv blocks y is a
        constant map of its C channels at that resolution (``where``: 0 the data's, -1 the top's)."""
        if yv is None:
            return z
        y = yv.to(z.dtype)
        if self._y_sides is not None:
            h, w = self._y_sides[where]
            y = y.repeat_interleave(h * w, dim=-1)  # channel-major, as a flattened (C, h, w) map
        return torch.cat([z, y.expand(*z.shape[:-1], y.shape[-1])], dim=-1)

    def _top_prior(self, yv: Tensor | None) -> Distribution:
        """p(z_L), or p(z_L|y) with ``model.condition.prior``."""
        if self.condition is not None and self.condition.prior:
            return self.prior.distribution(yv)
        return self.prior.distribution()

    def _bottom_up(self, x: Tensor, yv: Tensor | None = None) -> list[Tensor]:
        h = self._with_y(x.reshape(x.shape[0], -1), yv)
        feats = []
        for block in self.up:
            h = block(h)
            feats.append(h)
        return feats

    def _gaussian(self, raw: Tensor) -> tuple[Tensor, Tensor]:
        loc, r = raw.chunk(2, dim=-1)
        return loc, nn.functional.softplus(r) + self.min_scale

    def _conditional_prior(self, i: int, t: Tensor, temperature: float = 1.0, call: Any = _live) -> Independent:
        loc, scale = self._gaussian(call(self.prior_heads[i], t))
        if temperature != 1.0:
            scale = scale * temperature
        return Independent(Normal(loc, scale, validate_args=False), 1)

    def _posterior(self, i: int, b: Tensor, t: Tensor, p: Independent, call: Any = _live) -> Independent:
        b = b.expand(*t.shape[:-1], b.shape[-1])
        raw = call(self.post_heads[i], torch.cat([b, t], dim=-1))
        if not self.residual:
            loc, scale = self._gaussian(raw)
        else:
            dloc, r = raw.chunk(2, dim=-1)
            loc = p.base_dist.loc + dloc
            scale = p.base_dist.scale * nn.functional.softplus(r + _SOFTPLUS_ONE) + self.min_scale
        return Independent(Normal(loc, scale, validate_args=False), 1)

    def _infer(self, x: Tensor, k: int, draw: str, feats: list[Tensor] | None = None,
               yv: Tensor | None = None, decode: bool = True,
               ) -> tuple[list[tuple[Distribution, Distribution | None, Tensor]], Tensor | None]:
        """Run q top-down with ``k`` samples per example (``draw``: ``rsample``, ``sample`` or
        ``mean``). Returns ``[(q_l, p_l, z_l)]`` for l = 1..L (``p_L`` None: the prior plugin)
        with ``z_l (k, B, d_l)``, and the likelihood's parameters ``(k, B, *param_shape)``.
        ``feats``: the bottom-up features of ``x``, if already computed; ``yv``: a conditional
        model's y vectors; ``decode=False``: stop at z_1 (the parameters are None)."""
        if feats is None:
            feats = self._bottom_up(x, yv)
        q_top = self.top_head(feats[-1])
        z = self._draw(q_top, k, draw)
        levels: list[tuple[Distribution, Distribution | None, Tensor]] = [(q_top, None, z)]
        t = self.td[-1](self._with_y(z, yv, -1))
        for i in range(len(self.latent_dims) - 2, -1, -1):
            p = self._conditional_prior(i, t)
            q = self._posterior(i, feats[i], t, p)
            z = q.mean if draw == "mean" else (q.rsample() if draw == "rsample" else q.sample())
            levels.append((q, p, z))
            if i > 0 or decode:
                t = self.td[i](torch.cat([z, t], dim=-1))
        levels.reverse()
        return levels, (self._params(t) if decode else None)

    @staticmethod
    def _draw(q: Distribution, k: int, draw: str) -> Tensor:
        if draw == "mean":
            return q.mean.expand(k, *q.mean.shape)
        return q.rsample((k,)) if draw == "rsample" else q.sample((k,))

    def _params(self, t: Tensor) -> Tensor:
        return self.out(t).reshape(*t.shape[:-1], *self.param_shape)

    # -- the KL terms ----------------------------------------------------------------
    def _analytic_top(self, q: Distribution, p: Distribution) -> bool:
        return analytic_kl_known(q, p, self.kl_mode, " (the top level's prior)")

    def _level_kls(self, levels: list[tuple[Distribution, Distribution | None, Tensor]], want_dims: bool,
                   yv: Tensor | None = None) -> list[tuple[Tensor, Tensor | None]]:
        """``[(kl_l (B,), per-dim kl_l (B, d_l) or None)]`` for l = 1..L."""
        out: list[tuple[Tensor, Tensor | None]] = []
        for q, p, z in levels:
            if p is None:  # the top: q(z_L|x) against the prior plugin
                pd = self._top_prior(yv)
                if self._analytic_top(q, pd):
                    out.append((kl_divergence(q, pd), per_dim_kl(q, pd) if want_dims else None))
                else:
                    log_p = pd.log_prob(z) if self.condition is not None and self.condition.prior else self.prior.log_prob(z)
                    out.append(((q.log_prob(z) - log_p).mean(0), None))
            elif self.kl_mode == "mc":
                out.append(((q.log_prob(z) - p.log_prob(z)).mean(0), None))
            else:
                per_dim = kl_divergence(q.base_dist, p.base_dist).mean(0)  # (B, d_l), averaged over samples
                out.append((per_dim.sum(-1), per_dim if want_dims else None))
        return out

    # -- objectives ------------------------------------------------------------------
    def elbo(self, x: Tensor, num_samples: int = 1, beta: float = 1.0, *, free_bits: float = 0.0,
             y: Any = None) -> dict[str, Tensor]:
        """Per-example ELBO terms, each ``(B,)``, in nats.

        * ``log_px_z`` -- E_q[log p(x|z)], closed form, averaged over ``num_samples`` samples;
        * ``kl_1`` .. ``kl_L`` -- KL(q(z_l|x, z_>l) || p(z_l|z_>l)) of each level (see the module doc);
        * ``kl`` -- their sum (``kl_1 + kl_2 + ...``, in that order);
        * ``elbo`` -- ``log_px_z - kl``;
        * ``loss`` -- ``-(log_px_z - beta * sum_l kl_term_l)``, free bits per level (Kingma et al.
          2016): where the level's KL is known per dimension, each dimension's batch-mean KL is held
          at least at ``free_bits`` nats; else the level's batch-mean KL at least ``free_bits * d_l``.
        """
        k = _check_k(num_samples)
        x = as_input(x, self, self.data_shape)
        yv = self._y(y, x)
        levels, params = self._infer(x, k, "rsample", yv=yv)
        log_px = self.likelihood.log_prob(x, params).mean(0)
        kls = self._level_kls(levels, want_dims=free_bits > 0, yv=yv)
        kl = kls[0][0]
        for value, _ in kls[1:]:
            kl = kl + value
        kl_term = kl
        if free_bits > 0:
            for (value, per_dim), dim in zip(kls, self.latent_dims):
                if per_dim is not None:
                    mean_dim = per_dim.mean(0)
                    kl_term = kl_term + (torch.clamp(mean_dim, min=free_bits) - mean_dim).sum()
                else:
                    mean_total = value.mean()
                    kl_term = kl_term + (torch.clamp(mean_total, min=free_bits * dim) - mean_total)
        out = {"elbo": log_px - kl, "log_px_z": log_px, "kl": kl, "loss": -(log_px - beta * kl_term)}
        out.update({f"kl_{i + 1}": value for i, (value, _) in enumerate(kls)})
        return out

    def log_weights(self, x: Tensor, num_samples: int, *, detach_q: bool = False, y: Any = None) -> LogWeights:
        """K samples z ~ q(z|x) per example: log p(x|z), log p(z) = log p(z_L) + sum_l log p(z_l|z_>l),
        and log q(z|x) = sum_l log q(z_l|x, z_>l), each ``(K, B)``; ``z = [z_1 .. z_L]``.

        ``detach_q`` (for DReG): log q reaches no parameter directly, yet keeps its dependence on
        z_>l through q(z_l|x, z_>l); and each returned z_l is a fresh node on which only log w
        itself depends (the sampling chain z_>l -> z_l bypasses it), so a gradient hook on
        ``z_l`` sees the path derivative d log w / d z_l once. The log terms are re-evaluated
        at these z: log p with the parameters live, log q with them held fixed.
        """
        k = _check_k(num_samples)
        x = as_input(x, self, self.data_shape)
        yv = self._y(y, x)
        if detach_q:
            return self._path_log_weights(x, k, yv)
        levels, params = self._infer(x, k, "rsample", yv=yv)
        log_px_z = self.likelihood.log_prob(x, params)
        log_pz, log_qz = self._log_pq(levels, top=self._top_prior(yv) if yv is not None else None)
        return LogWeights(log_px_z, log_pz, log_qz, [z for _, _, z in levels])

    def _path_log_weights(self, x: Tensor, k: int, yv: Tensor | None) -> LogWeights:
        """``log_weights(..., detach_q=True)``: sample the chain, then evaluate log p (parameters
        live) and log q (parameters fixed) top-down at copies of its z."""
        feats = self._bottom_up(x, yv)
        levels, _ = self._infer(x, k, "rsample", feats, yv, decode=False)
        zs = [z.view_as(z) for _, _, z in levels]
        n = len(zs)
        log_pz = self._top_prior(yv).log_prob(zs[-1])
        log_qz = detached(levels[-1][0]).log_prob(zs[-1])
        t = self.td[-1](self._with_y(zs[-1], yv, -1))
        t_fixed = _fixed(self.td[-1], self._with_y(zs[-1], yv, -1))
        for i in range(n - 2, -1, -1):
            log_pz = log_pz + self._conditional_prior(i, t).log_prob(zs[i])
            p_fixed = self._conditional_prior(i, t_fixed, call=_fixed)
            log_qz = log_qz + self._posterior(i, feats[i].detach(), t_fixed, p_fixed, call=_fixed).log_prob(zs[i])
            t = self.td[i](torch.cat([zs[i], t], dim=-1))
            if i > 0:
                t_fixed = _fixed(self.td[i], torch.cat([zs[i], t_fixed], dim=-1))
        return LogWeights(self.likelihood.log_prob(x, self._params(t)), log_pz, log_qz, zs)

    def _log_pq(self, levels: list[tuple[Distribution, Distribution | None, Tensor]],
                top: Distribution | None = None) -> tuple[Tensor, Tensor]:
        """log p(z) and log q(z|x) summed over the levels, each ``(k, B)``; ``top``: the prior
        plugin's distribution, when already built (a VampPrior's runs the encoder)."""
        log_pz = log_qz = None
        top = self.prior.distribution() if top is None else top
        for q, p, z in reversed(levels):  # top first
            lp = top.log_prob(z) if p is None else p.log_prob(z)
            lq = q.log_prob(z)
            log_pz = lp if log_pz is None else log_pz + lp
            log_qz = lq if log_qz is None else log_qz + lq
        return log_pz, log_qz

    @torch.no_grad()
    def log_likelihood(self, x: Tensor, num_samples: int = 1000, *, batch_size: int | None = None, max_elements: int = 2**24,
                       y: Any = None) -> Tensor:
        """Importance-sampled log p(x) in nats, ``(B,)`` (Burda et al. 2016, eq. 8), q(z|x) the proposal.

        Examples and samples go in chunks of at most about ``min(max_elements,
        EVAL_CHUNK_ELEMENTS)`` decoder outputs, the chunks' log-sum-exps accumulated, so K=5000
        runs in bounded memory. The samples depend on the chunks (each draws all its levels in
        turn), so a recorded measurement reproduces with the same chunk size.
        """
        k = _check_k(num_samples)
        x = as_input(x, self, self.data_shape)
        yv = self._y(y, x)
        per_sample = max(1, math.prod(self.param_shape), sum(self.latent_dims))
        budget = min(int(max_elements), EVAL_CHUNK_ELEMENTS)
        rows = batch_size or max(1, min(len(x), budget // per_sample))
        results = [x.new_zeros((0,))]
        conditional_top = self.condition is not None and self.condition.prior
        top = None if conditional_top else self.prior.distribution()  # once: a VampPrior's runs the encoder
        for start in range(0, len(x), rows):
            xb = x[start : start + rows]
            yb = None if yv is None else yv[start : start + rows]
            chunk = max(1, min(k, budget // (per_sample * len(xb))))
            feats = self._bottom_up(xb, yb)
            top_b = self._top_prior(yb) if conditional_top else top
            total, done = None, 0
            with self.likelihood.same_data(xb):
                while done < k:
                    n = min(chunk, k - done)
                    levels, params = self._infer(xb, n, "sample", feats, yb)
                    log_pz, log_qz = self._log_pq(levels, top=top_b)
                    part = torch.logsumexp(self.likelihood.log_prob(xb, params) + log_pz - log_qz, dim=0)
                    total = part if total is None else torch.logaddexp(total, part)
                    done += n
            results.append(total - math.log(k))
        return torch.cat(results)

    # -- generation ------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, n: int, mean: bool = False, temperature: float = 1.0, y: Any = None) -> Tensor:
        """``n`` draws of x: z_L from the prior plugin, each z_l below from p(z_l|z_>l) with its
        scale multiplied by ``temperature``; x ~ p(x|z) (``mean=True``: the likelihood's mean).
        A conditional model needs ``y``: one label for all ``n``, or one per draw."""
        ref = next(self.parameters())
        yv = None
        if self.condition is None:
            refuse_y(y)
            z = self.prior.sample(int(n))
        else:
            yv = self.condition.vector(y, int(n), like=ref)
            z = self.prior.sample(int(n), yv) if self.condition.prior else self.prior.sample(int(n))
        z = z.to(ref)
        t = self.td[-1](self._with_y(z, yv, -1))
        for i in range(len(self.latent_dims) - 2, -1, -1):
            p = self._conditional_prior(i, t, float(temperature))
            t = self.td[i](torch.cat([p.sample(), t], dim=-1))
        params = self._params(t)
        return self.likelihood.mean(params) if mean else self.likelihood.sample(params)

    @torch.no_grad()
    def reconstruct(self, x: Tensor, mean: bool = True, y: Any = None) -> Tensor:
        """Decode the posterior means at every level (z_L = E q(z_L|x), z_l = E q(z_l|x, z_>l))."""
        x = as_input(x, self, self.data_shape)
        _, params = self._infer(x, 1, "mean", yv=self._y(y, x))
        params = params[0]
        return self.likelihood.mean(params) if mean else self.likelihood.sample(params)

    def extra_repr(self) -> str:
        cond = f", condition={self.condition.to_config()}" if self.condition is not None else ""
        return (f"data_shape={self.data_shape}, latent_dims={list(self.latent_dims)}, hidden={list(self.hidden)}, "
                f"residual={self.residual}, kl={self.kl_mode!r}{cond}")


def _check_k(num_samples: Any) -> int:
    k = int(num_samples)
    if k < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    return k


def _check_activation(activation: Any, blocks: Any) -> None:
    """MLP blocks take ``gated`` too (``GatedDense`` layers); conv blocks an elementwise activation."""
    try:
        if blocks == "conv":
            make_activation(activation, WHO)
        else:
            check_dense_activation(activation, WHO)
    except ValueError as exc:
        raise ConfigError(f"model.activation: {exc}") from None
