"""Test-suite isolation: the user's installed vaezoo plugins never leak into tests.

Every test starts with ``VAEZOO_PLUGINS`` set to empty (built-ins only) and a fresh
process registry; a test that wants entry points sets ``VAEZOO_PLUGINS`` itself.
``one_thread``: a module of tiny models asks for it with
``pytestmark = pytest.mark.usefixtures("one_thread")``.
"""

import pytest
import torch

from vaezoo.registry import reset_registry


@pytest.fixture(autouse=True)
def _isolated_plugins(monkeypatch):
    monkeypatch.setenv("VAEZOO_PLUGINS", "")
    monkeypatch.delenv("VAEZOO_STRICT_PLUGINS", raising=False)
    reset_registry()
    yield
    reset_registry()


@pytest.fixture(scope="module")
def one_thread():
    """Tiny tensors: one torch thread is much faster than two contending ones on a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
