"""The vaezoo plugin module (entry point ``flows``): registers the flow priors.

Factories are ``"module:attr"`` strings, so loading the plugin does not import torch.
"""

from vaezoo import hookimpl


@hookimpl
def vaezoo_register_priors(register):
    register("realnvp", "vaezoo_flows.realnvp:RealNVPPrior")
