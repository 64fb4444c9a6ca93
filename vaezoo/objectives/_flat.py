"""What the objectives that look inside q(z|x) need from a model: one latent vector."""

from __future__ import annotations

from torch import nn

from ..errors import ConfigError

FLAT_METHODS = ("encode", "decode", "prior", "likelihood")


def require_flat_latent(model: nn.Module, who: str) -> None:
    """``ConfigError`` unless ``model`` has one latent vector: ``encode``, ``decode``, ``prior``, ``likelihood``,
    and a prior that does not depend on y (``model.condition.prior`` is not supported here)."""
    condition = getattr(model, "condition", None)
    if condition is not None and getattr(condition, "prior", False):
        raise ConfigError(f"objective {who!r} needs a prior p(z) that does not depend on y; remove model.condition.prior "
                          "or train with objective elbo or iwae")
    missing = [m for m in FLAT_METHODS if not hasattr(model, m)]
    if missing:
        arch = (getattr(model, "config", None) or {}).get("architecture", type(model).__name__)
        raise ConfigError(
            f"objective {who!r} needs a model with one latent vector z (encode, decode, prior, likelihood, as "
            f"architecture 'vae' has); architecture {arch!r} has no {', '.join(missing)}"
        )
