"""Conformance checks for objectives and architectures (the contracts of ``vaezoo.Objective`` and
``vaezoo.Model``): shapes, finite values and gradients, the schedule as tensors, save and load."""

from __future__ import annotations

import tempfile
from typing import Any

import torch
from torch import Tensor

from ._common import _Check, _seeded

SMALL_VAE = {
    "architecture": "vae",
    "data_shape": [1, 8, 8],
    "latent_dim": 3,
    "encoder": {"name": "mlp", "hidden": [16]},
    "decoder": {"name": "mlp", "hidden": [16]},
    "prior": "normal",
    "likelihood": "bernoulli",
}


def _batch(model: Any, n: int) -> Tensor:
    """``n`` examples the likelihood accepts: binary for a Bernoulli, else on the 8-bit grid inside (0, 1)."""
    u = torch.rand((n, *model.data_shape), dtype=_dtype(model))
    if type(model.likelihood).__name__ == "Bernoulli":
        return u.round()
    return (u * 255).round().clamp(1, 254) / 255


def _dtype(model: Any) -> torch.dtype:
    ref = next((p for p in model.parameters() if p.is_floating_point()), None)
    return ref.dtype if ref is not None else torch.float32


def check_objective(objective: Any, model: Any = None, *, batch_size: int = 6, seed: int = 0, **params: Any) -> Any:
    """Check an objective (a registered name plus ``params``, or an instance) on ``model``
    (default: a small ``vae`` on 8x8 data): ``setup`` and ``schedule`` as the trainer calls
    them, ``forward`` returning a finite scalar loss and ``(B,)`` metrics, finite gradients
    reaching the model, the schedule accepted as 0-d tensors (``train.compile``), the same
    metric names every call. Returns the objective."""
    from ..model import build_model, build_objective

    with _seeded(seed):
        if model is None:
            model = build_model(SMALL_VAE)
        label = objective if isinstance(objective, str) else type(objective).__name__
        c = _Check("objective", label)
        if isinstance(objective, str):
            objective = c.call("building it", build_objective, {"name": objective, **params}, model)
        else:
            c.call("check(model)", objective.check, model)
        c.call("setup", objective.setup, steps_per_epoch=3, dataset_size=4 * batch_size)
        schedule = c.call("schedule(0)", objective.schedule, 0)
        if not isinstance(schedule, dict) or not all(isinstance(v, (int, float)) for v in schedule.values()):
            c.fail(f"schedule(step) must return a dict of numbers, got {schedule!r}")
        x = _batch(model, batch_size)
        names = None
        for given in (schedule, {k: torch.tensor(float(v)) for k, v in schedule.items()}):
            model.zero_grad(set_to_none=True)
            out = c.call("forward(model, x, **schedule)", objective, model, x, **given)
            if not (isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], dict)):
                c.fail(f"forward must return (loss, metrics dict), got {type(out).__name__}")
            loss, metrics = out
            c.shape("the loss", loss, ())
            c.finite("the loss", loss.detach())
            for name, value in metrics.items():
                c.shape(f"metric {name!r}", value, (batch_size,), " -- one value per example")
                c.finite(f"metric {name!r}", value.detach())
            if names is not None and list(metrics) != names:
                c.fail(f"the metric names changed between calls: {names} then {list(metrics)}")
            names = list(metrics)
            c.call("loss.backward()", loss.backward)
            grads = [(n, p) for n, p in model.named_parameters() if p.grad is not None]
            if not grads:
                c.fail("the loss sends no gradient to the model's parameters")
            c.grads("the loss", grads)
    return objective


def check_architecture(config: dict[str, Any], *, batch_size: int = 4, num_samples: int = 3, seed: int = 0) -> Any:
    """Check the model an architecture builds from ``config`` (a model config, ``architecture``
    included): the ``vaezoo.Model`` terms and shapes, ELBO = log p(x|z) - KL, the IWAE bound and
    the importance-sampled log p(x) not below the ELBO on average over many samples, sampling and
    reconstruction shapes, and a save/load round trip that rebuilds the same outputs. Returns the model."""
    from ..components import Model
    from ..model import build_model
    from ..loading import from_pretrained

    c = _Check("architecture", str(config.get("architecture", "vae")))
    with _seeded(seed):
        model = c.call("build_model", build_model, config)
        if not isinstance(model, Model):
            c.fail(f"build_model returned a {type(model).__name__}, expected a vaezoo.Model")
        x = _batch(model, batch_size)
        b = (batch_size,)
        terms = c.call("elbo(x)", model.elbo, x)
        for key in ("elbo", "log_px_z", "kl", "loss"):
            if key not in terms:
                c.fail(f"elbo(x) has no {key!r} term; it must return elbo, log_px_z, kl and loss")
            c.shape(f"elbo(x)[{key!r}]", terms[key], b)
            c.finite(f"elbo(x)[{key!r}]", terms[key].detach())
        c.close("elbo must equal log_px_z - kl", terms["elbo"], terms["log_px_z"] - terms["kl"], rtol=1e-5, atol=1e-4)
        lw = c.call("log_weights(x, K)", model.log_weights, x, num_samples)
        for key in ("log_px_z", "log_pz", "log_qz"):
            c.shape(f"log_weights(x, K).{key}", getattr(lw, key), (num_samples, *b))
        with torch.no_grad():
            elbo = torch.stack([model.elbo(x)["elbo"] for _ in range(64)]).mean()
            bound = c.call("iwae_bound", model.iwae_bound, x, 64).mean()
            if bound < elbo - 0.05 * abs(float(elbo)) - 0.5:
                c.fail(f"the IWAE bound with K=64 ({float(bound):.3f}) lies below the ELBO ({float(elbo):.3f})")
            nll = c.call("log_likelihood(x, 16)", model.log_likelihood, x, 16)
            c.shape("log_likelihood(x, 16)", nll, b)
            c.shape("sample(5)", c.call("sample(5)", model.sample, 5), (5, *model.data_shape))
            c.shape("reconstruct(x)", c.call("reconstruct(x)", model.reconstruct, x), (batch_size, *model.data_shape))
        with tempfile.TemporaryDirectory() as folder:
            c.call("save_pretrained", model.save_pretrained, folder)
            again = c.call("from_pretrained", from_pretrained, folder)
        model.eval(), again.eval()
        with torch.no_grad(), _seeded(seed + 1):
            first = model.elbo(x)["elbo"]
        with torch.no_grad(), _seeded(seed + 1):
            second = again.elbo(x)["elbo"]
        c.close("a saved and loaded model gives other ELBO terms", second, first, rtol=1e-6, atol=1e-6)
    return model
