"""The vaezoo plugin module (entry point ``flows``): registers the flow priors and the
pretrained zoo entries of ``catalogue.json`` (weights in ``weights/``, shipped as package data).

Factories are ``"module:attr"`` strings, so loading the plugin does not import torch; the
catalogue is read when the hook runs (the first time the registry is used).
"""

from vaezoo import hookimpl


@hookimpl
def vaezoo_register_priors(register):
    register("realnvp", "vaezoo_flows.realnvp:RealNVPPrior")


@hookimpl
def vaezoo_register_pretrained(register):
    """Every entry of ``catalogue.json``; weights are ``package://vaezoo_flows/weights/<name>.safetensors``."""
    from vaezoo.zoo.catalogue import register_catalogue

    register_catalogue(register, "vaezoo_flows")
