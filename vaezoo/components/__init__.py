"""The component contracts: ``Encoder``, ``Decoder``, ``Prior``, ``Likelihood``, ``Objective`` and
``Model`` (what an architecture builds). The table of kinds is ``vaezoo.kinds``."""

from .base import Decoder, Encoder, Likelihood, Prior, sum_event
from .model import LogWeights, Model
from .objective import Objective, warmup

__all__ = ["Decoder", "Encoder", "Likelihood", "LogWeights", "Model", "Objective", "Prior", "sum_event", "warmup"]
