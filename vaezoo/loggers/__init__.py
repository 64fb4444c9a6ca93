"""Built-in loggers (trackers), registered through the same hook as any plugin's; the
``Logger`` contract is in ``vaezoo.loggers.base``, building them from ``log.loggers`` in
``vaezoo.loggers.config``."""

from ..hookspecs import hookimpl
from .base import Logger  # noqa: F401


@hookimpl
def vaezoo_register_loggers(register):
    register("jsonl", "vaezoo.loggers.jsonl:JsonlLogger")
    register("tensorboard", "vaezoo.loggers.tensorboard:TensorBoardLogger")
    register("mlflow", "vaezoo.loggers.mlflow:MlflowLogger")
    register("wandb", "vaezoo.loggers.wandb:WandbLogger")
