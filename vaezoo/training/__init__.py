"""Training: the generic ``Trainer`` loop and ``train(cfg)``, one whole run into a folder.

Modules: ``run`` (a run from a config), ``trainer`` (the loop), ``optim`` (optimizer,
schedules, EMA), ``checkpoint`` (pickle-free checkpoints), ``distributed`` (DDP plumbing),
``metrics`` (JSON lines, TensorBoard, progress bar). The PNG figures are in ``vaezoo.figures``.
"""

from .run import RunResult, train
from .trainer import FitResult, NonFiniteLossError, Trainer

__all__ = ["FitResult", "NonFiniteLossError", "RunResult", "Trainer", "train"]
