"""VQ-VAE for vaezoo: the architecture ``vqvae`` and the objective ``vq``. The implementations
live in submodules, imported only when a component is first built."""

__version__ = "0.1.0"
