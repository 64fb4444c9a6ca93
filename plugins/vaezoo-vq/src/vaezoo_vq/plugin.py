"""The vaezoo plugin module (entry point ``vq``): registers the architecture ``vqvae``, the
objective ``vq`` and the pretrained zoo entries of ``catalogue.json`` (weights in ``weights/``,
shipped as package data).

Factories are ``"module:attr"`` strings, so loading the plugin does not import torch; the
catalogue is read when the hook runs (the first time the registry is used).
"""

from vaezoo import hookimpl


@hookimpl
def vaezoo_register_architectures(register):
    register("vqvae", "vaezoo_vq.model:build_vqvae")


@hookimpl
def vaezoo_register_objectives(register):
    register("vq", "vaezoo_vq.objective:VQObjective")


@hookimpl
def vaezoo_register_pretrained(register):
    """Every entry of ``catalogue.json``; weights are ``package://vaezoo_vq/weights/<name>.safetensors``."""
    from vaezoo.zoo.catalogue import register_catalogue

    register_catalogue(register, "vaezoo_vq")
