"""Extra likelihoods for vaezoo. The components live in submodules, imported only when used."""

__version__ = "0.1.0"
