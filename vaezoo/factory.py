"""Models by name: ``create_model`` and ``list_models``.

A name is a pretrained model (a zoo name, or anything ``vaezoo.from_pretrained`` takes: a
model or run folder) or a registered architecture (``vae``, ``hierarchical``, a plugin's).

    vaezoo.create_model("mlp-bernoulli.digits")                      # the zoo model, verified weights
    vaezoo.create_model("mlp-bernoulli.digits", pretrained=False)    # same config, fresh weights
    vaezoo.create_model("mlp-bernoulli.digits", pretrained=False, latent_dim=8)
    vaezoo.create_model("vae", data_shape=[1, 8, 8], latent_dim=4, encoder="mlp", decoder="mlp",
                        prior="normal", likelihood="bernoulli")
    vaezoo.list_models("mlp-*")                                      # zoo names (and architectures)
"""

from __future__ import annotations

import fnmatch
from typing import Any

from .errors import ConfigError, did_you_mean


def list_models(pattern: str = "*", pretrained: bool = False) -> list[str]:
    """Sorted names ``create_model`` takes that match the glob ``pattern``: the zoo's models,
    and with ``pretrained=False`` also the registered architectures."""
    from .zoo.api import list_pretrained

    names = set(list_pretrained(pattern))
    if not pretrained:
        names |= {n for n in _architectures() if fnmatch.fnmatchcase(n, pattern)}
    return sorted(names)


def create_model(name: str, pretrained: bool = True, **overrides: Any) -> Any:
    """A model by name (see the module doc).

    ``overrides`` replace top-level keys of the model config (a component section is replaced
    whole: ``prior={"name": "vamp"}``). ``pretrained=True`` needs a pretrained name and loads
    its weights strictly, so overrides that change the network's shapes are refused with the
    differing tensors named; ``pretrained=False`` builds the config with fresh weights.
    """
    from .model import build_model, init_weights

    if not isinstance(name, str) or not name:
        raise ConfigError(f"create_model: expected a model name, got {name!r}")
    if name in _architectures() and not _is_pretrained(name):
        if pretrained:
            raise ConfigError(
                f"create_model: {name!r} is an architecture, which has no pretrained weights; pass "
                f"pretrained=False and its config, or a pretrained name ({', '.join(list_models(pretrained=True)) or 'none installed'})"
            )
        return build_model({"architecture": name, **overrides})
    config = _pretrained_config(name)
    model = build_model({**config, **overrides})
    if pretrained:
        init_weights(model, name, where=f"create_model({name!r})")
    return model


def _architectures() -> list[str]:
    from .registry import get_registry

    return sorted(get_registry().names("architecture"))


def _is_pretrained(name: str) -> bool:
    from .zoo.api import list_pretrained

    return name in list_pretrained()


def _pretrained_config(name: str) -> dict[str, Any]:
    """The model config of a pretrained name, without loading its weights when it is a zoo entry."""
    from .loading import from_pretrained, resolve

    try:
        where = resolve(name)
    except KeyError:
        known = list_models()
        raise ConfigError(f"create_model: unknown model {name!r}.{did_you_mean(name, known)} "
                          f"Known: {', '.join(known)} (vaezoo.list_models())") from None
    if isinstance(where, str):
        from .zoo.api import get_entry

        config = get_entry(where).config
        return dict(config.get("model", config))
    return dict(from_pretrained(where).config)
