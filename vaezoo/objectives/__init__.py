"""Built-in objectives, registered through the same hook as any plugin's."""

from ..hookspecs import hookimpl


@hookimpl
def vaezoo_register_objectives(register):
    register("elbo", "vaezoo.objectives.elbo:ELBO")
    register("iwae", "vaezoo.objectives.iwae:IWAE")
    register("beta_tc", "vaezoo.objectives.beta_tc:BetaTC")
    register("mmd", "vaezoo.objectives.mmd:MMD")
