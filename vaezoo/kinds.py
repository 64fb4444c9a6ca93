"""The kinds of component, declared once: the registry, plugin loading, ``vaezoo list``, the
testing kit, the model config and the docs all read this table (no torch import here).

Each kind has a hook that registers it (``register(name, factory)``, see ``hookspecs.py``), a
base class that its factories must return an instance of, the constructor arguments that
vaezoo supplies itself (the user's config supplies the rest), and the conformance check of
``vaezoo.testing`` that exercises its contract (None where there is none yet).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Kind:
    """One kind of component."""

    name: str  #: singular, as in config sections and ``kind`` arguments: ``"prior"``
    hook: str  #: the hook that registers it
    base: str  #: ``"module:Class"`` its factories must return an instance of
    fixed: tuple[str, ...]  #: constructor arguments vaezoo supplies (not given in the config)
    check: str | None  #: ``"module:function"`` of the conformance check in ``vaezoo.testing``
    summary: str  #: one line for ``vaezoo list`` and the docs

    @property
    def plural(self) -> str:
        return self.name + "s"

    def base_class(self) -> type:
        return _resolve(self.base)

    def check_function(self) -> Any:
        return _resolve(self.check) if self.check else None


TABLE: tuple[Kind, ...] = (
    Kind(
        "encoder", "vaezoo_register_encoders", "torch.nn:Module", ("data_shape", "latent_dim"),
        "vaezoo.testing.nets:check_encoder", "q(z|x): x -> a torch.distributions.Distribution over z",
    ),
    Kind(
        "decoder", "vaezoo_register_decoders", "torch.nn:Module", ("latent_dim", "param_shape"),
        "vaezoo.testing.nets:check_decoder", "z -> the likelihood's parameters",
    ),
    Kind(
        "prior", "vaezoo_register_priors", "vaezoo.components:Prior", ("latent_dim",),
        "vaezoo.testing.priors:check_prior", "p(z): density, samples, its torch distribution",
    ),
    Kind(
        "likelihood", "vaezoo_register_likelihoods", "vaezoo.components:Likelihood", (),
        "vaezoo.testing.likelihoods:check_likelihood", "p(x|z): a closed-form density of the decoder's output",
    ),
    Kind(
        "objective", "vaezoo_register_objectives", "vaezoo.components:Objective", (),
        "vaezoo.testing.objectives:check_objective", "model + batch -> the loss to minimise and per-example metrics",
    ),
    Kind(
        "architecture", "vaezoo_register_architectures", "vaezoo.components:Model", ("components",),
        "vaezoo.testing.objectives:check_architecture", "how the components assemble into a model",
    ),
    Kind(
        "logger", "vaezoo_register_loggers", "vaezoo.loggers.base:Logger", (),
        "vaezoo.testing.loggers:check_logger", "where a run's metrics, figures and model are tracked (log.loggers)",
    ),
)

KINDS: tuple[str, ...] = tuple(k.name for k in TABLE)
KIND: dict[str, Kind] = {k.name: k for k in TABLE}

#: The constructor argument vaezoo supplies to the encoder, decoder and (with ``prior: true``) prior of a
#: conditional model (``model.condition``): the length of y. Components that accept it can be conditioned.
CONDITION_DIM = "condition_dim"

#: The kinds that are sections of the model config (``model.encoder``, ...) of the ``vae`` architecture.
NET_KINDS: tuple[str, ...] = ("encoder", "decoder", "prior", "likelihood")


def _resolve(path: str) -> Any:
    module, _, attr = path.partition(":")
    obj: Any = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj
