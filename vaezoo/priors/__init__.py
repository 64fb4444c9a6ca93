"""Built-in priors, registered through the same hook as any plugin's."""

from ..hookspecs import hookimpl


@hookimpl
def vaezoo_register_priors(register):
    register("normal", "vaezoo.priors.normal:StandardNormal")
    register("mixture", "vaezoo.priors.mixture:GaussianMixture")
    register("vamp", "vaezoo.priors.vamp:VampPrior")
    register("categorical", "vaezoo.priors.categorical:CategoricalPrior")
