"""The vaezoo plugin module (entry point ``vq``): registers the architecture ``vqvae``, the
objective ``vq`` and the pretrained zoo entries of ``catalogue.json`` (weights in ``weights/``,
shipped as package data).

Factories are ``"module:attr"`` strings, so loading the plugin does not import torch; the
catalogue is read when the hook runs (the first time the registry is used).
"""

import json
from importlib.resources import files

from vaezoo import hookimpl

CATALOGUE = "catalogue.json"  #: written by python -m vaezoo.zoo.publish ... --catalogue src/vaezoo_vq/catalogue.json


@hookimpl
def vaezoo_register_architectures(register):
    register("vqvae", "vaezoo_vq.model:build_vqvae")


@hookimpl
def vaezoo_register_objectives(register):
    register("vq", "vaezoo_vq.objective:VQObjective")


@hookimpl
def vaezoo_register_pretrained(register):
    """Every entry of ``catalogue.json``; weights are ``package://vaezoo_vq/weights/<name>.safetensors``."""
    resource = files("vaezoo_vq").joinpath(CATALOGUE)
    data = json.loads(resource.read_text(encoding="utf-8"))
    if data.get("format") != 1 or not isinstance(data.get("entries"), dict):
        raise ValueError(f'{resource}: expected {{"format": 1, "entries": {{...}}}}')
    for name, fields in sorted(data["entries"].items()):
        register(name, fields)
