"""``check_encoder`` and ``check_decoder``: the ``vaezoo.Encoder`` and ``vaezoo.Decoder`` contracts."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.distributions import Distribution

from ._common import _Check, _float_params, _perturb, _resolve, _roundtrip, _seeded, _shape, _zero_grads


def check_encoder(
    encoder: str | nn.Module,
    data_shape: Sequence[int] = (1, 8, 8),
    latent_dim: int = 3,
    *,
    perturb: float = 0.2,
    seed: int = 0,
    **params: Any,
) -> nn.Module:
    """Check an encoder against the ``vaezoo.Encoder`` contract; returns the instance.

    ``encoder``: a registered name (built with ``data_shape``, ``latent_dim``, ``**params``)
    or an instance. Checked: ``forward(x)`` for ``x (B, *data_shape)`` in [0, 1] (B = 4 and
    1) returns a ``Distribution`` with batch shape ``(B,)``, event shape ``(latent_dim,)``,
    a ``mean`` and a reparameterised ``rsample`` (gradients reach the encoder's parameters);
    ``rsample((K,))`` and ``log_prob`` keep leading dims; finite values and gradients;
    float64; a ``state_dict`` round trip.
    """
    fixed = {"data_shape": tuple(int(s) for s in data_shape), "latent_dim": int(latent_dim)}
    encoder, label, make = _resolve("encoder", encoder, fixed, params, "check_encoder")
    c = _Check("encoder", label)
    data_shape = tuple(int(s) for s in getattr(encoder, "data_shape", data_shape))
    d = int(getattr(encoder, "latent_dim", latent_dim))
    with _seeded(seed):
        work = make()
        _perturb(work, perturb)
        for b in (4, 1):
            x = torch.rand(b, *data_shape)
            what = f"forward(x) for x {(b, *data_shape)}"
            q = c.call(what, work, x)
            if not isinstance(q, Distribution):
                c.fail(f"{what} returned a {type(q).__name__}, expected a torch.distributions.Distribution")
            if _shape(q.batch_shape) != (b,) or _shape(q.event_shape) != (d,):
                c.fail(
                    f"{what} gave a distribution with batch shape {_shape(q.batch_shape)} and event "
                    f"shape {_shape(q.event_shape)}, expected {(b,)} and {(d,)}"
                )
        if not q.has_rsample:
            c.fail("forward(x) returned a distribution without rsample; q(z|x) must be reparameterised")
        x = torch.rand(4, *data_shape)
        q = work(x)
        z = c.call("rsample()", q.rsample)
        c.shape("rsample()", z, (4, d))
        c.dtype("rsample()", z, torch.float32)
        c.finite("rsample()", z)
        if not z.requires_grad:
            c.fail("rsample() carries no gradient to the encoder; q(z|x) must be reparameterised (rsample, not sample)")
        zk = c.call("rsample((3,))", q.rsample, (3,))
        c.shape("rsample((3,))", zk, (3, 4, d), " -- (K, B, latent_dim)")
        lp = c.call("log_prob(z) for z (3, 4, latent_dim)", q.log_prob, zk)
        c.shape("log_prob(z) for z (3, 4, latent_dim)", lp, (3, 4))
        c.finite("log_prob of its own samples", lp)
        mean = c.call("mean of q(z|x)", lambda: q.mean)
        c.shape("mean of q(z|x)", mean, (4, d))
        c.finite("mean of q(z|x)", mean)
        c.call("backward through rsample and log_prob", (zk.square().sum() + lp.sum()).backward)
        c.grads("rsample and log_prob", _float_params(work))
        if not any(p.grad is not None and p.grad.abs().sum() > 0 for _, p in _float_params(work)):
            c.fail("no gradient reaches the encoder's parameters through rsample(); q(z|x) must depend on them differentiably")
        _zero_grads(work)

        w64 = copy.deepcopy(work).double()
        with torch.no_grad():
            q64 = c.call("forward(x) in float64", w64, x.double())
            z64 = c.call("rsample() in float64", q64.rsample)
            c.dtype("rsample()", z64, torch.float64)
            c.close("q(z|x).mean in float32 and in float64 disagree", q64.mean, q.mean.detach().double(), rtol=1e-3, atol=1e-3)

        fresh = make()
        _perturb(fresh, perturb)
        zfix = torch.randn(4, d)
        _roundtrip(c, work, fresh, lambda m: [m(x).mean, m(x).log_prob(zfix)])
    return encoder


def check_decoder(
    decoder: str | nn.Module,
    latent_dim: int = 3,
    param_shape: Sequence[int] = (2, 8, 8),
    *,
    perturb: float = 0.2,
    seed: int = 0,
    **params: Any,
) -> nn.Module:
    """Check a decoder against the ``vaezoo.Decoder`` contract; returns the instance.

    ``decoder``: a registered name (built with ``latent_dim``, ``param_shape``, ``**params``)
    or an instance. Checked: ``forward(z)`` maps ``(B, latent_dim)`` to ``(B, *param_shape)``
    (B = 4 and 1) and ``(K, B, latent_dim)`` to ``(K, B, *param_shape)``, the same as
    decoding each ``z[k]``; finite values and gradients (w.r.t. z and the parameters);
    float64; a ``state_dict`` round trip.
    """
    fixed = {"latent_dim": int(latent_dim), "param_shape": tuple(int(s) for s in param_shape)}
    decoder, label, make = _resolve("decoder", decoder, fixed, params, "check_decoder")
    c = _Check("decoder", label)
    d = int(getattr(decoder, "latent_dim", latent_dim))
    ps = tuple(int(s) for s in getattr(decoder, "param_shape", param_shape))
    with _seeded(seed):
        work = make()
        _perturb(work, perturb)
        for b in (4, 1):
            out = c.call(f"forward(z) for z {(b, d)}", work, torch.randn(b, d))
            c.shape(f"forward(z) for z {(b, d)}", out, (b, *ps))
        z = torch.randn(3, 4, d, requires_grad=True)
        out = c.call(f"forward(z) for z {(3, 4, d)}", work, z)
        c.shape(f"forward(z) for z {(3, 4, d)}", out, (3, 4, *ps), " -- any number of leading dims")
        c.dtype("forward(z)", out, torch.float32)
        c.finite("forward(z)", out)
        c.call("backward through forward", out.square().sum().backward)
        c.grads("forward(z)", [("z", z), *_float_params(work)])
        if z.grad is None or not z.grad.abs().sum() > 0:
            c.fail("forward(z) does not depend on z (no or zero gradient)")
        _zero_grads(work)
        work.eval()
        with torch.no_grad():
            each = torch.stack([work(z[i]) for i in range(3)])
            c.close(f"forward(z) for z {(3, 4, d)} differs from decoding each z[k] alone", work(z), each, rtol=1e-4, atol=1e-5)
            w64 = copy.deepcopy(work).double()
            out64 = c.call("forward(z) in float64", w64, z.detach().double())
            c.dtype("forward(z)", out64, torch.float64)
            c.close("forward(z) in float32 and in float64 disagree", out64, work(z).double(), rtol=1e-3, atol=1e-3)
        fresh = make()
        _perturb(fresh, perturb)
        zfix = torch.randn(4, d)
        _roundtrip(c, work, fresh, lambda m: [m(zfix)])
    return decoder
