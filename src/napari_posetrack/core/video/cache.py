"""What the readers learn about a video file, kept between sessions.

One small JSON file per video file in the user cache folder
(``$POSETRACK_VIDEO_CACHE``, else ``$XDG_CACHE_HOME/napari-posetrack/video``, else
``~/.cache/napari-posetrack/video``). It holds the seek points found unable to stand alone
(so a later session seeks around them at once) and the last ``posetrack info --check`` result
(so napari can mark damaged frames without decoding the file again). An entry belongs to one
version of a file: its absolute path, size and modification time name it, so a file rewritten
in place gets a fresh entry. The cache sits outside the video's folder because video folders
are often read-only (shared drives, data sets).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

CACHE_VERSION = 1
_lock = threading.Lock()


def cache_dir() -> Path:
    """The folder holding the per-video entries (not created here)."""
    explicit = os.environ.get("POSETRACK_VIDEO_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "napari-posetrack" / "video"


def file_identity(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Absolute path, size and modification time (ns) of a file: what an entry is valid for."""
    absolute = os.path.abspath(os.fspath(path))
    st = os.stat(absolute)
    return {"path": absolute, "size": int(st.st_size), "mtime_ns": int(st.st_mtime_ns)}


def entry_path(path: str | os.PathLike[str]) -> Path:
    """Where the entry of this version of ``path`` lives."""
    ident = file_identity(path)
    key = hashlib.sha1(f"{ident['path']}\0{ident['size']}\0{ident['mtime_ns']}".encode()).hexdigest()
    return cache_dir() / f"{key}.json"


def load_entry(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The cached facts about ``path`` (an empty dict when there are none or they are stale).

    A damaged or foreign entry is ignored rather than raised: the cache only saves work.
    """
    try:
        target = entry_path(path)
        with open(target, encoding="utf-8") as f:
            entry = json.load(f)
    except (OSError, ValueError):
        return {}
    if not isinstance(entry, dict) or entry.get("version") != CACHE_VERSION:
        return {}
    if entry.get("identity") != file_identity(path):
        return {}  # a hash collision or a copied cache folder: never trust another file's facts
    return entry


def update_entry(path: str | os.PathLike[str], **fields: Any) -> bool:
    """Merge ``fields`` into the entry of ``path``; returns False when it could not be written.

    Writing goes through a temporary file and a rename, so a reader in another process never
    sees half an entry. A cache folder that cannot be written (read-only home) is not an error
    for the caller: the facts are simply learned again next time.
    """
    with _lock:
        try:
            entry = load_entry(path) or {"version": CACHE_VERSION, "identity": file_identity(path)}
            entry.update(fields)
            target = entry_path(path)
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=".json")
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    json.dump(entry, f)
                os.replace(tmp, target)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        except OSError:
            return False
    return True
