"""Training: the generic ``Trainer`` loop and ``train(cfg)``, one whole run into a folder.

Modules: ``run`` (a run from a config), ``fitting`` (``vaezoo.fit``: a run from Python
objects), ``callbacks`` (events; early stopping and checkpoints), ``trainer`` (the loop), ``optim`` (optimizer,
schedules, EMA), ``checkpoint`` (pickle-free checkpoints), ``distributed`` (DDP plumbing),
``metrics`` (the run's loggers as one, progress bar). The PNG figures are in ``vaezoo.figures``.
"""

from .callbacks import Callback, Checkpoint, EarlyStopping
from .fitting import fit
from .run import RunResult, train
from .trainer import FitResult, NonFiniteLossError, Trainer

__all__ = ["Callback", "Checkpoint", "EarlyStopping", "FitResult", "NonFiniteLossError", "RunResult", "Trainer", "fit", "train"]
