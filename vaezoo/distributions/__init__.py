"""Latent distributions of vaezoo's own components: ``torch.distributions`` classes whose KL
formulas are registered with ``torch.distributions.register_kl`` when their module is imported."""
