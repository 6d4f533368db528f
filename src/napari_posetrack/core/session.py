"""An editing session over one :class:`Labels`: undoable edits, dirty tracking, save and autosave.

The napari layers only *view* ``session.labels``; every change the user makes goes through a
method here, which records a small undo record (only the affected rows' columns) so the GUI can
offer undo/redo (napari has none for points) and an autosave can recover work after a crash.

Instances are identified by their stable ``instance_id`` (rows move when instances are deleted);
undoing a deletion puts the rows back with their original ids and restores the ``from_predicted``
links the deletion cleared.
"""

from __future__ import annotations

import abc
import os
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from napari_posetrack.core.labels import COLUMN_NAMES, NO_TRACK, USER, Labels, Track

DEFAULT_HISTORY = 500
# default ``merge_key`` of drag edits: derived from the instance and nodes being dragged
_AUTO_MERGE: Hashable = object()


@dataclass
class Change:
    """What an edit (or its undo/redo) touched, passed to every ``changed`` callback.

    ``frames`` holds the ``(video, frame)`` pairs whose display must be refreshed.
    """

    action: str
    instance_ids: np.ndarray
    frames: set[tuple[int, int]] = field(default_factory=set)
    whole: bool = False  # the whole store was exchanged (everything must be redrawn)
    tracks_changed: bool = False  # the track list changed (names, colours, tracks added or removed)


# --------------------------------------------------------------------------- undo records


def _rows_of(labels: Labels, ids: np.ndarray) -> np.ndarray:
    rows = labels.row_of_id(ids)
    if (rows < 0).any():
        missing = np.asarray(ids)[rows < 0]
        raise KeyError(f"no instance with id {missing.tolist()} in these labels")
    return rows


def _frames_of(video: np.ndarray, frame: np.ndarray) -> set[tuple[int, int]]:
    return set(zip(np.asarray(video).tolist(), np.asarray(frame).tolist()))


def _snapshot(labels: Labels, rows: np.ndarray) -> dict[str, np.ndarray]:
    """Copies of every column of ``rows`` (enough to put the rows back exactly)."""
    t = labels.instances
    return {name: t.column(name)[rows].copy() for name in COLUMN_NAMES}


def _insert(labels: Labels, snapshot: dict[str, np.ndarray]) -> None:
    """Put snapshotted rows back under their original instance ids."""
    labels.insert_rows(**snapshot)


class _Command(abc.ABC):
    """One undoable edit; ``apply`` and ``revert`` return the :class:`Change` they caused."""

    action = "edit"
    merge_key: Hashable | None = None
    serial = 0  # set when recorded; identifies the state of the labels after this command

    @abc.abstractmethod
    def apply(self, labels: Labels) -> Change:
        """Make the edit."""

    @abc.abstractmethod
    def revert(self, labels: Labels) -> Change:
        """Undo the edit."""


class _Update(_Command):
    """Set some columns of some instances; keeps the old and new values of just those cells."""

    def __init__(
        self,
        action: str,
        labels: Labels,
        ids: np.ndarray,
        new: dict[str, np.ndarray],
        merge_key: Hashable | None = None,
    ) -> None:
        self.action = action
        self.ids = np.asarray(ids, dtype=np.int64)
        rows = _rows_of(labels, self.ids)
        self.old = {name: labels.instances.column(name)[rows].copy() for name in new}
        self.new = {name: np.array(val, copy=True) for name, val in new.items()}
        self.merge_key = merge_key

    def _set(self, labels: Labels, values: dict[str, np.ndarray]) -> Change:
        rows = _rows_of(labels, self.ids)
        labels.update(rows, **values)
        t = labels.instances
        return Change(self.action, self.ids.copy(), _frames_of(t.video[rows], t.frame[rows]))

    def apply(self, labels: Labels) -> Change:
        return self._set(labels, self.new)

    def revert(self, labels: Labels) -> Change:
        return self._set(labels, self.old)

    def absorb(self, later: _Update) -> None:
        """Fold a later edit of the same cells into this one (one undo step for a whole drag)."""
        for name, val in later.new.items():
            if name not in self.old:
                self.old[name] = later.old[name]
            self.new[name] = val


class _Insert(_Command):
    """Instances that were added; undo removes them, redo puts them back with the same ids."""

    def __init__(self, action: str, snapshot: dict[str, np.ndarray]) -> None:
        self.action = action
        self.rows = snapshot

    def _change(self) -> Change:
        return Change(
            self.action, self.rows["instance_id"].copy(), _frames_of(self.rows["video"], self.rows["frame"])
        )

    def apply(self, labels: Labels) -> Change:
        _insert(labels, self.rows)
        return self._change()

    def revert(self, labels: Labels) -> Change:
        labels.delete(_rows_of(labels, self.rows["instance_id"]))
        return self._change()


class _Delete(_Command):
    """Instances that were deleted, with the ``from_predicted`` links that pointed at them."""

    def __init__(self, action: str, labels: Labels, rows: np.ndarray) -> None:
        self.action = action
        t = labels.instances
        self.rows = _snapshot(labels, rows)
        gone = np.zeros(len(t), dtype=bool)
        gone[rows] = True
        # user instances outside the deletion that link to a deleted prediction lose that link
        linked = ~gone & np.isin(t.from_predicted, self.rows["instance_id"])
        self.linked_ids = t.instance_id[linked].copy()
        self.linked_from = t.from_predicted[linked].copy()

    def _change(self) -> Change:
        ids = np.concatenate([self.rows["instance_id"], self.linked_ids])
        return Change(self.action, ids, _frames_of(self.rows["video"], self.rows["frame"]))

    def apply(self, labels: Labels) -> Change:
        labels.delete(_rows_of(labels, self.rows["instance_id"]))
        return self._change()

    def revert(self, labels: Labels) -> Change:
        _insert(labels, self.rows)
        if len(self.linked_ids):
            labels.update(_rows_of(labels, self.linked_ids), from_predicted=self.linked_from)
        return self._change()


class _Replace(_Command):
    """A whole-store edit: the labels' contents were exchanged with a processed copy."""

    def __init__(self, action: str, other: Labels) -> None:
        self.action = action
        self.other = other  # holds the contents not currently in the session's labels

    def _swap(self, labels: Labels) -> Change:
        labels.swap_contents(self.other)
        return Change(self.action, np.zeros(0, dtype=np.int64), set(), whole=True)

    def apply(self, labels: Labels) -> Change:
        return self._swap(labels)

    def revert(self, labels: Labels) -> Change:
        return self._swap(labels)


class _Identities(_Command):
    """An identity edit (proofreading): the ``track`` and ``rejected`` values of the rows that changed,
    before and after, and the track list before and after when it changed."""

    def __init__(
        self,
        action: str,
        ids: np.ndarray,
        old: tuple[np.ndarray, np.ndarray],
        new: tuple[np.ndarray, np.ndarray],
        tracks: tuple[list[Track], list[Track]] | None,
        frames: set[tuple[int, int]],
    ) -> None:
        self.action = action
        self.ids = ids
        self.old, self.new = old, new
        self.tracks = tracks
        self.frames = frames

    def _set(self, labels: Labels, values: tuple[np.ndarray, np.ndarray], tracks: list[Track] | None) -> Change:
        if tracks is not None:
            labels.tracks = [t.copy() for t in tracks]
        rows = _rows_of(labels, self.ids)
        labels.instances.track[rows] = values[0]
        labels.instances.rejected[rows] = values[1]
        return Change(self.action, self.ids.copy(), set(self.frames), tracks_changed=tracks is not None)

    def apply(self, labels: Labels) -> Change:
        return self._set(labels, self.new, None if self.tracks is None else self.tracks[1])

    def revert(self, labels: Labels) -> Change:
        return self._set(labels, self.old, None if self.tracks is None else self.tracks[0])


# --------------------------------------------------------------------------- recovery files


def _same_file(path: str | list[str], other: Path) -> bool:
    return isinstance(path, str) and os.path.abspath(path) == os.path.abspath(other)


def autosave_path(path: str | os.PathLike[str]) -> Path:
    """The recovery file of project ``path``: ``.<name>.autosave.slp`` in the same folder."""
    p = Path(path)
    return p.parent / f".{p.name}.autosave.slp"


def find_autosave(path: str | os.PathLike[str]) -> Path | None:
    """The recovery file of project ``path`` if it exists and is newer than the project (else ``None``)."""
    recovery = autosave_path(path)
    if not recovery.exists():
        return None
    project = Path(path)
    if project.exists() and project.stat().st_mtime >= recovery.stat().st_mtime:
        return None
    return recovery


# --------------------------------------------------------------------------- session


class LabelsSession:
    """One :class:`Labels` with an undo/redo history, a dirty flag, saving and autosave.

    Parameters
    ----------
    labels
        The store being edited (edited in place; the session is its only writer).
    path
        The project file (used by :meth:`save` with no argument and by :meth:`autosave`).
    max_history
        How many undo steps are kept; the oldest are forgotten first.

    Attributes
    ----------
    changed
        Callbacks ``f(change: Change)`` run after every edit, undo and redo.
    """

    def __init__(
        self, labels: Labels, path: str | os.PathLike[str] | None = None, max_history: int = DEFAULT_HISTORY
    ) -> None:
        self.labels = labels
        self.path: Path | None = Path(path) if path is not None else None
        self.changed: list[Callable[[Change], Any]] = []
        self._undo: deque[_Command] = deque(maxlen=int(max_history))
        self._redo: list[_Command] = []
        self._sealed = True  # a new edit never merges into one made before a seal
        # Dirty tracking: every recorded state of the labels has a token, the serial of the command on
        # top of the undo stack (``_floor`` when the stack is empty: the serial of the last command
        # dropped off the bounded history). Undoing back to the saved state makes the session clean.
        self._serial = 0
        self._floor = 0
        self._saved_token = 0
        self._autosaved_token = 0

    # history -------------------------------------------------------------------
    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    @property
    def dirty(self) -> bool:
        """True when the labels differ from what was last saved (undoing back to it clears it)."""
        return self._token() != self._saved_token

    def _token(self) -> int:
        return self._undo[-1].serial if self._undo else self._floor

    def _next_serial(self) -> int:
        self._serial += 1
        return self._serial

    def seal(self) -> None:
        """End the current drag: the next edit starts a new undo step even with the same ``merge_key``."""
        self._sealed = True

    def undo(self) -> Change | None:
        if not self._undo:
            return None
        cmd = self._undo.pop()
        change = cmd.revert(self.labels)
        self._redo.append(cmd)
        self._sealed = True
        return self._after(change)

    def redo(self) -> Change | None:
        if not self._redo:
            return None
        cmd = self._redo.pop()
        change = cmd.apply(self.labels)
        self._undo.append(cmd)
        self._sealed = True
        return self._after(change)

    def _after(self, change: Change) -> Change:
        for callback in list(self.changed):
            callback(change)
        return change

    def _record(self, cmd: _Command, change: Change) -> Change:
        """Push an already applied command, merging it into the previous one when their keys match."""
        self._redo.clear()
        top = self._undo[-1] if self._undo else None
        if (
            not self._sealed
            and cmd.merge_key is not None
            and isinstance(top, _Update)
            and isinstance(cmd, _Update)
            and top.merge_key == cmd.merge_key
        ):
            top.absorb(cmd)
            top.serial = self._next_serial()  # the merged step is a new state of the labels
        else:
            cmd.serial = self._next_serial()
            if len(self._undo) == self._undo.maxlen:
                self._floor = self._undo[0].serial  # about to be forgotten; its state stays applied
            self._undo.append(cmd)
        self._sealed = cmd.merge_key is None
        return self._after(change)

    def _update(
        self, action: str, ids: np.ndarray, merge_key: Hashable | None = None, **new: np.ndarray
    ) -> Change:
        cmd = _Update(action, self.labels, ids, new, merge_key)
        return self._record(cmd, cmd.apply(self.labels))

    # edits -----------------------------------------------------------------------
    def add_instance(
        self,
        video: int,
        frame: int,
        points: np.ndarray,
        visible: np.ndarray | None = None,
        track: int = NO_TRACK,
    ) -> int:
        """Add one user instance (``points`` is ``(n_nodes, 2)``, NaN = missing); returns its id."""
        new_id = self.labels.add_instances(video, frame, points, kind=USER, visible=visible, track=track)
        rows = _rows_of(self.labels, new_id)
        cmd = _Insert("add", _snapshot(self.labels, rows))
        self._record(cmd, cmd._change())
        return int(new_id[0])

    def move_points(
        self,
        instance_id: int,
        node_indices: Sequence[int] | np.ndarray,
        new_xy: np.ndarray,
        merge_key: Hashable | None = _AUTO_MERGE,
    ) -> Change:
        """Move some nodes of one instance to ``new_xy`` (``(k, 2)``).

        Moved points of a user instance become ``complete`` (verified); a node that was missing
        becomes visible. Consecutive moves of the same nodes merge into one undo step until
        :meth:`seal` is called (pass ``merge_key=None`` to never merge).
        """
        nodes = np.atleast_1d(np.asarray(node_indices, dtype=np.int64))
        row = _rows_of(self.labels, np.array([instance_id]))[0]
        t = self.labels.instances
        points = t.points[row].copy()
        visible = t.visible[row].copy()
        complete = t.complete[row].copy()
        was_missing = np.isnan(points[nodes]).any(axis=-1)
        points[nodes] = np.asarray(new_xy, dtype=np.float64).reshape(len(nodes), 2)
        visible[nodes[was_missing]] = True
        if t.kind[row] == USER:
            complete[nodes] = True
        if merge_key is _AUTO_MERGE:
            merge_key = ("move_points", int(instance_id), tuple(nodes.tolist()))
        return self._update(
            "move_points",
            np.array([instance_id]),
            merge_key,
            points=points[None],
            visible=visible[None],
            complete=complete[None],
        )

    def move_instance(
        self, instance_id: int, dxy: Sequence[float] | np.ndarray, merge_key: Hashable | None = _AUTO_MERGE
    ) -> Change:
        """Translate a whole instance by ``dxy``; consecutive moves merge until :meth:`seal`."""
        row = _rows_of(self.labels, np.array([instance_id]))[0]
        points = self.labels.instances.points[row] + np.asarray(dxy, dtype=np.float64).reshape(1, 2)
        if merge_key is _AUTO_MERGE:
            merge_key = ("move_instance", int(instance_id))
        return self._update("move_instance", np.array([instance_id]), merge_key, points=points[None])

    def set_visible(self, instance_id: int, node_index: int, visible: bool) -> Change:
        """Mark one node visible or occluded."""
        row = _rows_of(self.labels, np.array([instance_id]))[0]
        vis = self.labels.instances.visible[row].copy()
        vis[int(node_index)] = bool(visible)
        return self._update("set_visible", np.array([instance_id]), visible=vis[None])

    def set_track(self, instance_id: int | Sequence[int], track: int) -> Change:
        """Assign instance(s) to a track (``-1`` = none)."""
        ids = np.atleast_1d(np.asarray(instance_id, dtype=np.int64))
        if track >= len(self.labels.tracks):
            raise IndexError(
                f"track index {track} out of range (labels hold {len(self.labels.tracks)} tracks)"
            )
        return self._update("set_track", ids, track=np.full(len(ids), track, dtype=np.int32))

    def edit_identities(self, action: str, edit: Callable[[Labels], Any]) -> Any:
        """Run an identity edit (e.g. from :mod:`napari_posetrack.core.tracking.proofread`) as one undo step.

        ``edit(labels)`` may change the ``track`` and ``rejected`` columns and the track list, nothing
        else; its return value is returned. When it raises, the labels are put back as they were. An
        edit that changes nothing records no step.
        """
        labels = self.labels
        t = labels.instances
        n = len(t)
        old_track, old_rejected = t.track.copy(), t.rejected.copy()
        old_tracks = [tr.copy() for tr in labels.tracks]
        try:
            result = edit(labels)
            if len(labels.instances) != n or labels.instances is not t:
                raise RuntimeError(f"identity edit {action!r} added or removed instances")
        except BaseException:
            labels.instances = t
            t.track[:] = old_track
            t.rejected[:] = old_rejected
            labels.tracks = old_tracks
            raise
        changed = np.flatnonzero((t.track != old_track) | (t.rejected != old_rejected))
        tracks_changed = [(tr.name, tr.spawned_on, tr.color) for tr in labels.tracks] != [
            (tr.name, tr.spawned_on, tr.color) for tr in old_tracks
        ]
        if len(changed) == 0 and not tracks_changed:
            return result
        cmd = _Identities(
            action,
            t.instance_id[changed].copy(),
            (old_track[changed], old_rejected[changed]),
            (t.track[changed].copy(), t.rejected[changed].copy()),
            (old_tracks, [tr.copy() for tr in labels.tracks]) if tracks_changed else None,
            _frames_of(t.video[changed], t.frame[changed]),
        )
        change = Change(action, cmd.ids.copy(), set(cmd.frames), tracks_changed=tracks_changed)
        self._record(cmd, change)
        return result

    def delete_instances(self, instance_ids: int | Sequence[int] | np.ndarray) -> Change:
        """Delete instances by id (undo puts them back with the same ids)."""
        ids = np.unique(np.atleast_1d(np.asarray(instance_ids, dtype=np.int64)))
        rows = _rows_of(self.labels, ids)
        cmd = _Delete("delete", self.labels, rows)
        return self._record(cmd, cmd.apply(self.labels))

    def delete_predictions(
        self,
        video: int | None = None,
        frames: tuple[int, int] | None = None,
        below_score: float | None = None,
    ) -> int:
        """Bulk-delete predicted instances (in a video, a frame range ``[start, stop)``, below a score).

        One undo step; returns how many were removed.
        """
        rows = self.labels.prediction_rows(video, frames, below_score)
        if len(rows) == 0:
            return 0
        cmd = _Delete("delete_predictions", self.labels, rows)
        self._record(cmd, cmd.apply(self.labels))
        return len(rows)

    def promote_prediction(self, instance_id: int) -> int:
        """Copy a prediction into a new user instance linked to it; returns the new id."""
        row = int(_rows_of(self.labels, np.array([instance_id]))[0])
        new_id = self.labels.promote_prediction(row)
        cmd = _Insert("promote", _snapshot(self.labels, _rows_of(self.labels, np.array([new_id]))))
        self._record(cmd, cmd._change())
        return new_id

    def replace_all(self, new_labels: Labels, action: str = "replace") -> Change:
        """Make the labels hold ``new_labels``' contents in one undoable step.

        For whole-store edits computed on a copy (predictions and tracks added, suggestions,
        skeleton edits, merges). ``new_labels`` is consumed: it holds the old contents afterwards.
        The returned change has no instance ids or frames: everything must be redrawn.
        """
        if new_labels is self.labels:
            raise ValueError("replace_all needs a different Labels object (a processed copy)")
        cmd = _Replace(action, new_labels)
        return self._record(cmd, cmd.apply(self.labels))

    def clear_points(self, instance_id: int, node_indices: Sequence[int] | np.ndarray) -> Change:
        """Remove some nodes of one instance (they become missing, as if never placed)."""
        nodes = np.atleast_1d(np.asarray(node_indices, dtype=np.int64))
        row = _rows_of(self.labels, np.array([instance_id]))[0]
        t = self.labels.instances
        points = t.points[row].copy()
        visible = t.visible[row].copy()
        points[nodes] = np.nan
        visible[nodes] = False
        return self._update("clear_points", np.array([instance_id]), points=points[None], visible=visible[None])

    # files -------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str] | None = None, **kw: Any) -> Path:
        """Write the labels atomically (format by extension), clear ``dirty``, drop the autosave."""
        from napari_posetrack.core.io import save_labels

        target = Path(path) if path is not None else self.path
        if target is None:
            raise ValueError("no path to save to: pass one or open the session with a path")
        save_labels(self.labels, target, **kw)
        self.path = target
        self._saved_token = self._autosaved_token = self._token()
        recovery = autosave_path(target)
        if target.name.lower().endswith(".slp"):
            # a recovered package reads its embedded frames from the autosave; .slp writers carry
            # embedded frames over, so the project file now holds them
            for video in self.labels.videos:
                if video.backend == "embedded" and _same_file(video.path, recovery):
                    video.path = os.path.abspath(target)
        if recovery.exists() and not any(_same_file(v.path, recovery) for v in self.labels.videos):
            recovery.unlink()
        return target

    def autosave(self, path: str | os.PathLike[str] | None = None) -> Path | None:
        """Write a recovery file (``.<name>.autosave.slp`` beside the project) if there are unsaved edits.

        Returns the file written, or ``None`` when nothing changed since the last save/autosave.
        """
        from napari_posetrack.core.io import save_labels

        project = Path(path) if path is not None else self.path
        if project is None:
            raise ValueError("no project path to autosave beside")
        if not self.dirty or self._token() == self._autosaved_token:
            return None
        target = autosave_path(project)
        save_labels(self.labels, target, format="slp")
        self._autosaved_token = self._token()
        return target

    find_autosave = staticmethod(find_autosave)
    autosave_path = staticmethod(autosave_path)

    @classmethod
    def recover(cls, path: str | os.PathLike[str], **kw: Any) -> LabelsSession:
        """A session on the autosave of project ``path`` (dirty, saving goes to ``path``)."""
        from napari_posetrack.core.io import load_labels

        recovery = autosave_path(path)
        labels = load_labels(recovery, **kw)
        session = cls(labels, path)
        session._saved_token = -1  # recovered edits are not in the project file yet
        return session


__all__ = ["Change", "LabelsSession", "autosave_path", "find_autosave"]
