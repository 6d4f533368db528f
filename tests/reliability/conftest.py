"""Fault-injection suite (issue #11 item 5): every case adds a row to a matrix printed at the end.

Run it with ``pytest tests/reliability`` (the kill -9 cases of ``posetrack predict`` and
``posetrack train`` are marked slow; CI runs them all). The matrix is kept as a table in
``docs/reliability.md``.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

FAULT_MATRIX = "fault_matrix"
"""User-property name of a matrix row (read by ``tests/conftest.py``)."""


@pytest.fixture
def matrix(request: pytest.FixtureRequest) -> Callable[[str, str, str], None]:
    """``matrix(area, case, outcome)`` adds a row for this test (its pass/fail is filled in later).

    Rows travel as the test report's user properties, so that the matrix printed by the root
    ``tests/conftest.py`` is whole also when pytest-xdist runs the tests in worker processes.
    """

    def record(area: str, case: str, outcome: str) -> None:
        request.node.user_properties.append((FAULT_MATRIX, (area, case, " ".join(outcome.split()))))

    return record
