# Two entry points for a fresh clone: `make train` and `make test`.
# Both create the virtual environment in .venv on first use and install what they need.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch and torchvision are installed first, pinned to the versions vaezoo is tested with;
# override for another platform, e.g. `make test TORCH="torch torchvision"`.
TORCH ?= torch==2.14.1 torchvision==0.29.1
PLUGINS := plugins/vaezoo-flows plugins/vaezoo-extra-likelihoods plugins/vaezoo-vq

.PHONY: train test env clean-env

$(VENV)/.installed: pyproject.toml $(addsuffix /pyproject.toml,$(PLUGINS))
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e ".[test,hub,tensorboard,mlflow,wandb]" $(addprefix -e ,$(PLUGINS))
	touch $@

env: $(VENV)/.installed

train: $(VENV)/.installed
	$(BIN)/vaezoo train

test: $(VENV)/.installed
	$(BIN)/python -m pytest

clean-env:
	rm -rf $(VENV)
