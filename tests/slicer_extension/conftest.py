"""The Slicer module's tests. The Lib tests here (``test_lib_*.py``) need the standard library and
pytest only on the client side, so that they also run under Slicer's Pythons (3.9 and 3.12, see
the Makefile); what needs Slicer's libraries or Qt is in ``module/`` (its own conftest)."""

from __future__ import annotations

from typing import Any

import pytest

from _server_side import task


@pytest.fixture(scope="session")
def server_tables() -> dict[str, Any]:
    """The server's label, segment and report tables, read once on the server's Python."""
    return dict(task("server_tables"))
