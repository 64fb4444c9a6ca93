"""Every hook a vaezoo plugin can implement.

A plugin is a module (or any object) with functions decorated by ``vaezoo.hookimpl``
whose names match the specifications below. Install it with an entry point in the
``vaezoo`` group::

    [project.entry-points.vaezoo]
    my_plugin = "my_package.plugin"

Each hook receives a ``register`` callback and calls it once per thing it provides.
vaezoo owns naming, conflicts and listing; hooks return nothing. A hook is called once,
the first time the registry is used, never at ``import vaezoo``.

``register(name, factory)`` for the component kinds (the table in ``vaezoo/kinds.py``:
encoders, decoders, priors, likelihoods, objectives, architectures, loggers):

* ``name`` -- lower-case identifier (letters, digits, ``_``, ``-``, ``.``), unique per kind.
  The component is also reachable as ``<entry-point-name>/<name>``.
* ``factory`` -- a class or callable that builds the component, or a ``"module:attr"``
  string that is imported only when the component is first created (keeps start-up fast).
  The factory's keyword arguments are the component's config parameters.

The contracts each factory must honour are in the base classes ``vaezoo.Encoder``,
``vaezoo.Decoder``, ``vaezoo.Prior``, ``vaezoo.Likelihood``, ``vaezoo.Objective``,
``vaezoo.Model`` (what an architecture returns) and ``vaezoo.Logger``.
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("vaezoo")
hookimpl = pluggy.HookimplMarker("vaezoo")


@hookspec
def vaezoo_register_encoders(register):
    """Register encoders q(z|x).

    ``register(name, factory)``; ``factory(data_shape, latent_dim, **params)`` returns a
    ``torch.nn.Module`` whose ``forward(x)`` gives a ``torch.distributions.Distribution``
    with batch shape ``(B,)``, event shape ``(latent_dim,)`` and ``rsample``.
    """


@hookspec
def vaezoo_register_decoders(register):
    """Register decoders z -> likelihood parameters.

    ``register(name, factory)``; ``factory(latent_dim, param_shape, **params)`` returns a
    ``torch.nn.Module`` whose ``forward(z)`` maps ``(..., latent_dim)`` to
    ``(..., *param_shape)``; any number of leading sample dimensions is allowed.
    """


@hookspec
def vaezoo_register_priors(register):
    """Register priors p(z).

    ``register(name, factory)``; ``factory(latent_dim, **params)`` returns a ``vaezoo.Prior``:
    ``distribution()``, ``log_prob(z)`` and ``sample(n)``. A prior that needs the model's
    encoder (such as the VampPrior) implements ``Prior.bind(encoder, data_shape,
    condition=None)``, which the architecture calls once when it is assembled; in a
    conditional model ``condition`` says what the encoder's y is. A prior of latents other than real vectors
    lists their families in ``Prior.latents`` (matched against ``Encoder.latent``).
    """


@hookspec
def vaezoo_register_likelihoods(register):
    """Register likelihoods p(x|z), each a closed-form density of the decoder's output.

    ``register(name, factory)``; ``factory(**params)`` returns a ``vaezoo.Likelihood``:
    ``param_shape(data_shape)``, ``log_prob(x, params)``, ``distribution(params)``,
    ``mean(params)``, ``sample(params)`` and ``check_data(x)``.
    """


@hookspec
def vaezoo_register_objectives(register):
    """Register objectives: what training minimises.

    ``register(name, factory)``; ``factory(**params)`` returns a ``vaezoo.Objective`` whose
    ``forward(model, x, **schedule)`` gives ``(loss, metrics)``: a scalar to minimise and
    per-example ``(B,)`` tensors by name. ``schedule(step)`` returns step-dependent values
    (a KL weight under warm-up), ``setup(steps_per_epoch=, dataset_size=)`` is called once
    before training, and ``check(model)`` refuses a model the objective cannot train.
    """


@hookspec
def vaezoo_register_architectures(register):
    """Register architectures: how components assemble into a model.

    ``register(name, factory)``; ``factory(components, **params)`` returns a ``vaezoo.Model``.
    ``params`` are the keys of the ``model:`` config other than ``architecture``;
    ``components(kind, section, **fixed)`` builds one component of the registry from its
    config section (``{name: ..., **params}`` or a name) with the arguments the architecture
    supplies (``data_shape``, ``latent_dim``, ``param_shape``), errors naming ``model.<kind>``.
    """


@hookspec
def vaezoo_register_loggers(register):
    """Register loggers: trackers that receive a run's metrics, figures and final model.

    ``register(name, factory)``; ``factory(**params)`` returns a ``vaezoo.Logger``:
    ``start(run_dir, config)``, ``log_metrics(record)``, ``log_images(name, path, step)``,
    ``log_model(folder)`` and ``close()``, called on the main process only. ``params`` are
    the keys of its ``log.loggers`` item other than ``name``; the factory does no I/O, and a
    logger whose ``library`` is not installed stops ``vaezoo train`` before it writes anything.
    """


@hookspec
def vaezoo_register_pretrained(register):
    """Register pretrained models for the zoo.

    ``register(name, entry)``: ``name`` in ``architecture.tag`` style (for example
    ``mlp-bernoulli.fashion_mnist``); ``entry`` a ``vaezoo.zoo.PretrainedEntry`` or a
    mapping with the same fields (config, weights location, full sha256 and meta).
    """
