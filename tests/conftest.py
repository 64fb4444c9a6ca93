"""Test-suite isolation: the user's installed vaezoo plugins never leak into tests.

Every test starts with ``VAEZOO_PLUGINS`` set to empty (built-ins only) and a fresh
process registry; a test that wants entry points sets ``VAEZOO_PLUGINS`` itself.
"""

import pytest

from vaezoo.registry import reset_registry


@pytest.fixture(autouse=True)
def _isolated_plugins(monkeypatch):
    monkeypatch.setenv("VAEZOO_PLUGINS", "")
    monkeypatch.delenv("VAEZOO_STRICT_PLUGINS", raising=False)
    reset_registry()
    yield
    reset_registry()
