"""vaezoo: variational autoencoders in which every part is a plugin.

``import vaezoo`` is cheap: plugins are discovered on first use of the registry, and the
heavier submodules load when one of their names is first accessed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .hookspecs import hookimpl

__version__ = "0.1.0"

_LAZY = {
    "list_components": "vaezoo.registry",
    "create": "vaezoo.registry",
    "Encoder": "vaezoo.components",
    "Decoder": "vaezoo.components",
    "Prior": "vaezoo.components",
    "Likelihood": "vaezoo.components",
    "Objective": "vaezoo.components",
    "Model": "vaezoo.components",
    "Logger": "vaezoo.loggers.base",
    "VAE": "vaezoo.architectures.vae",
    "build_model": "vaezoo.model",
    "build_objective": "vaezoo.model",
    "from_pretrained": "vaezoo.loading",
    "create_model": "vaezoo.factory",
    "list_models": "vaezoo.factory",
    "list_pretrained": "vaezoo.zoo.api",
    "VaezooError": "vaezoo.errors",
    "fit": "vaezoo.training.fitting",
    "Callback": "vaezoo.training.callbacks",
    "EarlyStopping": "vaezoo.training.callbacks",
    "Checkpoint": "vaezoo.training.callbacks",
}

__all__ = ["__version__", "hookimpl", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'vaezoo' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:  # pragma: no cover
    from .architectures.vae import VAE
    from .components import Decoder, Encoder, Likelihood, Model, Objective, Prior
    from .errors import VaezooError
    from .loggers.base import Logger
    from .model import build_model, build_objective
    from .registry import create, list_components
    from .factory import create_model, list_models
    from .loading import from_pretrained
    from .training.callbacks import Callback, Checkpoint, EarlyStopping
    from .training.fitting import fit
