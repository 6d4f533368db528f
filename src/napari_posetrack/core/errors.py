"""Errors raised for bad input, and the atomic write every saver uses."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


class PoseTrackError(Exception):
    """Base class of errors shown to users: the message names the file and the problem."""


class FileFormatError(PoseTrackError, ValueError):
    """A file exists but is not what it claims to be (corrupt, truncated, wrong header)."""

    def __init__(self, path: str | os.PathLike[str], problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class MissingFileError(PoseTrackError, FileNotFoundError):
    """A file the user named (or a labels file references) is not on disk."""

    def __init__(self, path: str | os.PathLike[str], problem: str = "no such file") -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class ConfigError(PoseTrackError, ValueError):
    """An invalid configuration value; the message names the field."""


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one step.

    On any exception the temporary file is removed and ``path`` is left as it was.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=suffix if suffix is not None else target.suffix + ".tmp", dir=target.parent
    )
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise
