"""What a plugin author uses to test a plugin: isolated registries and conformance checks.

Registries::

    with isolated_registry(my_plugin):          # built-ins + my_plugin, no installed entry points
        check_likelihood("cauchy", data_shape=(1, 8, 8))

    with registered_plugin(my_plugin, name="mine"):   # the current registry + my_plugin
        model = vaezoo.build_model({...})

Conformance checks (``check_likelihood``, ``check_prior``, ``check_encoder``,
``check_decoder``) take a registered name plus the factory's parameters, or an already built
instance. They check the contracts of ``vaezoo.Likelihood``, ``vaezoo.Prior``,
``vaezoo.Encoder`` and ``vaezoo.Decoder``: shapes (with leading sample dimensions),
normalisation, finite values and gradients at extreme inputs, float64 support and a
``state_dict`` round trip through safetensors. Each violated contract raises an
``AssertionError`` with a one-line message saying which contract and how, for example::

    likelihood 'cauchy': log_prob returned shape (4, 9), expected (4,) -- sum over the event dims

``check_logger`` runs a ``vaezoo.Logger`` through start, records, a figure, a model folder and
close in a temporary run folder.

The checks run on copies of the component, with the torch RNG seeded (``seed``) and restored
afterwards, so they are deterministic and leave the caller's state alone. Parameters of the
component are first perturbed with N(0, ``perturb``^2) noise, so that code which is only
right at its initial values (an identity flow, zero weights) is exercised too. The
``state_dict`` round trip loads into a freshly built instance when the component is given
by name (as ``vaezoo.from_pretrained`` does), into a deep copy when it is given as an
instance; check by name to also catch state that a fresh instance would lack.
"""

from __future__ import annotations

from ._common import (  # noqa: F401  (tolerances)
    EXTREME,
    LOG_SCALE_RANGE,
    MASS_TOL,
    NORM_TOL,
    PRIOR_EXTREME,
    PRIOR_SAMPLES,
    SAMPLE_FALSE_ALARM,
)
from .checks import check_component, check_plugin
from .likelihoods import check_likelihood
from .loggers import check_logger
from .nets import check_decoder, check_encoder
from .objectives import check_architecture, check_objective
from .priors import check_prior
from .registries import isolated_registry, registered_plugin

__all__ = [
    "check_architecture",
    "check_objective",
    "isolated_registry",
    "registered_plugin",
    "check_likelihood",
    "check_logger",
    "check_prior",
    "check_encoder",
    "check_decoder",
    "check_component",
    "check_plugin",
]
