"""The ``outputs`` section: where the run folder goes and which checkpoints are kept."""

from __future__ import annotations

from dataclasses import dataclass

KEEP_CHECKPOINTS = ("best", "last", "both")


@dataclass
class OutputsConfig:
    """Where the run folder is written and what is kept."""

    runs_folder: str = "models"
    run_name_prefix: str = ""
    run_name: str | None = None
    keep: str = "best"
