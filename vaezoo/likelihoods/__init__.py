"""Built-in likelihoods, registered through the same hook as any plugin's."""

from ..hookspecs import hookimpl

BUILTIN_LIKELIHOODS = {
    "bernoulli": "vaezoo.likelihoods.bernoulli:Bernoulli",
    "autoregressive_bernoulli": "vaezoo.likelihoods.autoregressive:AutoregressiveBernoulli",
    "continuous_bernoulli": "vaezoo.likelihoods.bernoulli:ContinuousBernoulli",
    "gaussian": "vaezoo.likelihoods.location_scale:Gaussian",
    "laplace": "vaezoo.likelihoods.location_scale:Laplace",
    "discretized_logistic": "vaezoo.likelihoods.discretized_logistic:DiscretizedLogistic",
    "discretized_logistic_mixture": "vaezoo.likelihoods.discretized_logistic:DiscretizedLogisticMixture",
}


@hookimpl
def vaezoo_register_likelihoods(register):
    for name, factory in BUILTIN_LIKELIHOODS.items():
        register(name, factory)
