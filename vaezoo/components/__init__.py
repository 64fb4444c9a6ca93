"""The component contracts: ``Encoder``, ``Decoder``, ``Prior``, ``Likelihood``."""

from .base import BASE_CLASS_FOR_KIND, Decoder, Encoder, Likelihood, Prior, sum_event

__all__ = ["BASE_CLASS_FOR_KIND", "Decoder", "Encoder", "Likelihood", "Prior", "sum_event"]
