"""vaezoo's own pretrained models, registered through ``vaezoo_register_pretrained``."""

from ..hookspecs import hookimpl


@hookimpl
def vaezoo_register_pretrained(register):
    """No packaged models yet."""
