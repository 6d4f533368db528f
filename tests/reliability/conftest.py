"""Fault-injection suite (issue #11 item 5): every case adds a row to a matrix printed at the end.

Run it with ``pytest tests/reliability`` (the kill -9 cases of ``posetrack predict`` and
``posetrack train`` are marked slow; CI runs them all). The matrix is kept as a table in
``docs/reliability.md``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest


@dataclass
class MatrixRow:
    area: str
    case: str
    outcome: str
    nodeid: str


ROWS: list[MatrixRow] = []
RESULTS: dict[str, str] = {}


@pytest.fixture
def matrix(request: pytest.FixtureRequest) -> Callable[[str, str, str], None]:
    """``matrix(area, case, outcome)`` adds a row for this test (its pass/fail is filled in later)."""

    def record(area: str, case: str, outcome: str) -> None:
        ROWS.append(MatrixRow(area, case, " ".join(outcome.split()), request.node.nodeid))

    return record


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" or report.outcome != "passed":
        RESULTS[report.nodeid] = report.outcome


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    if not ROWS:
        return
    write = terminalreporter.write_line
    terminalreporter.section("fault matrix (tests/reliability)")
    width = max(len(r.case) for r in ROWS)
    area_width = max(len(r.area) for r in ROWS)
    for r in ROWS:
        status = RESULTS.get(r.nodeid, "?")
        outcome = r.outcome if len(r.outcome) <= 160 else r.outcome[:157] + "..."
        write(f"{status:7} | {r.area:{area_width}} | {r.case:{width}} | {outcome}")
