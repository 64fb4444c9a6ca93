"""Built-in architectures, registered through the same hook as any plugin's."""

from ..hookspecs import hookimpl


@hookimpl
def vaezoo_register_architectures(register):
    register("vae", "vaezoo.architectures.vae:build_vae")
    register("hierarchical", "vaezoo.architectures.hierarchical_factory:build_hierarchical")
