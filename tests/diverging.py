"""Overrides that make a tiny run diverge on its first steps: a learning rate of 1e30 on a
Gaussian likelihood (whose scale can blow up), logged every step."""

DIVERGING_RUN = [
    "train.lr=1e30",
    "train.warmup_epochs=0",
    "train.epochs=3",
    "log.interval=1",
    "model.likelihood.name=gaussian",
    "data.binarize=none",
]
