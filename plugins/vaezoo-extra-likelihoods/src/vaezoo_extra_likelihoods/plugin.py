"""The vaezoo plugin module (entry point ``extra_likelihoods``): registers the likelihoods.

Factories are ``"module:attr"`` strings, so loading the plugin does not import torch.
"""

from vaezoo import hookimpl


@hookimpl
def vaezoo_register_likelihoods(register):
    register("student_t", "vaezoo_extra_likelihoods.student_t:StudentT")
