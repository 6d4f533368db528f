"""Save a DeepLabCut project back into its own files, keeping everything they held.

A project opened from ``config.yaml`` or from one ``CollectedData_<scorer>.csv``/``.h5`` is saved
with :func:`save_dlc_in_place`: every table of the project (the ``.csv`` and its ``.h5`` sibling,
each read from disk again) is rewritten with the labels' user instances merged into it. What the
file held and the labels do not describe stays as it was:

- the header rows, scorer(s), column order, individuals, the row order and the row key style
  (one ``labeled-data/<video>/<image>`` string or DeepLabCut 2.3's three index columns, Windows
  separators included);
- rows of images without labels, NaNs, body parts the skeleton does not have, ``likelihood``
  columns, and for the HDF5 file its key and PyTables layout (``table`` or ``fixed``);
- a cell is rewritten only when the labels' point differs from what the file held (a point the
  file had as a half-missing ``x``/``y`` pair and the labels as missing is left as it was).

Labels that the file lacks are added: a row for a newly labelled image (at the end, keyed like the
other rows), columns for a body part or an individual that gets its first point (after that
individual's block; new individuals before DeepLabCut's unique-bodyparts individual ``single``).
Frames of videos that no table of the project holds get a new table (``.csv`` and ``.h5``) in
``labeled-data/<video>``, as :func:`~napari_posetrack.core.io.dlc.save_dlc_project` writes them.

Which cells an instance fills: the row of its image (path relative to the project, as DeepLabCut
writes it; ``labeled-data/<stem>/img<frame:05d>.png`` for frames of video files), the individual
of its track in multi-animal tables (an untracked instance takes the first individual free on its
image), the column pair of each node. A deleted instance empties its cells. Every file is written
atomically (temporary file, then ``os.replace``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from napari_posetrack.core.errors import FileFormatError, atomic_write
from napari_posetrack.core.io.dlc import (
    UNIQUE_INDIVIDUAL,
    _posix_relpath,
    _project_folder,
    _project_root,
    _read_csv_table,
    _read_h5_frame,
    _split_key,
    _Table,
    _table_from_frame,
    _three_part,
    _write_csv_table,
    find_dlc_config,
    load_dlc_config,
    save_dlc,
)
from napari_posetrack.core.labels import USER, Labels, Video

__all__ = ["is_dlc_project_file", "project_tables", "save_dlc_in_place", "table_files"]

_TABLE_SUFFIXES = (".csv", ".h5")
_FRAME_IMAGE = re.compile(r"img(\d+)\.png", re.IGNORECASE)


def is_dlc_project_file(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names a DeepLabCut project file that saves in place.

    ``config.yaml`` (any ``.yaml``/``.yml``) and ``CollectedData*.csv``/``.h5``/``.hdf5``.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix in (".yaml", ".yml"):
        return True
    return p.name.lower().startswith("collecteddata") and suffix in (".csv", ".h5", ".hdf5")


def table_files(table: str | os.PathLike[str]) -> list[Path]:
    """The table and its sibling with the other extension (``.csv`` <-> ``.h5``) when it exists."""
    table = Path(table)
    out = [table]
    for suffix in _TABLE_SUFFIXES:
        sibling = table.with_suffix(suffix)
        if sibling != table and sibling.is_file():
            out.append(sibling)
    return out


def project_tables(config: str | os.PathLike[str]) -> list[Path]:
    """The table each ``labeled-data/<folder>`` of a project is read from (CSV preferred)."""
    config = Path(config)
    tables: list[Path] = []
    for folder in sorted((config.parent / "labeled-data").glob("*")):
        if not folder.is_dir():
            continue
        found = sorted(folder.glob("CollectedData*.csv")) or sorted(folder.glob("CollectedData*.h5"))
        tables.extend(found[:1])
    return tables


# --------------------------------------------------------------------------- keys of frames


def _frame_text(video: Video, frame: int, root: Path) -> str:
    """The row key (POSIX path relative to ``root``) of one frame, as DeepLabCut writes it."""
    if video.backend == "images" and isinstance(video.path, list):
        return _posix_relpath(video.path[frame], root)
    stem = Path(video.filename.replace("\\", "/")).stem or "video"
    return f"labeled-data/{stem}/img{frame:05d}.png"


def _row_frames(labels: Labels, split: list[tuple[str, str]], root: Path) -> np.ndarray:
    """``(n_rows, 2)`` (video, frame) of each table row; ``-1`` for rows no video of the labels has."""
    known: dict[str, tuple[int, int]] = {}
    video_stems: dict[str, int] = {}
    for v, video in enumerate(labels.videos):
        if video.backend == "images" and isinstance(video.path, list):
            for f, image in enumerate(video.path):
                known.setdefault(_posix_relpath(image, root).lower(), (v, f))
        else:
            video_stems.setdefault(
                f"labeled-data/{Path(video.filename.replace(chr(92), '/')).stem}".lower(), v
            )
    out = np.full((len(split), 2), -1, dtype=np.int64)
    for i, (folder, name) in enumerate(split):
        hit = known.get(f"{folder}/{name}".lower() if folder else name.lower())
        if hit is None and folder.lower() in video_stems:
            m = _FRAME_IMAGE.fullmatch(name)
            if m:
                hit = (video_stems[folder.lower()], int(m.group(1)))
        if hit is not None:
            out[i] = hit
    return out


# --------------------------------------------------------------------------- one file


class _Merge:
    """The user instances of ``labels`` merged into one table file (read, then written by :meth:`write`)."""

    def __init__(self, labels: Labels, path: Path, config_path: Path | None, rows: np.ndarray) -> None:
        self.path = path
        self.is_h5 = path.suffix.lower() in (".h5", ".hdf5")
        self.frame: Any = None
        if self.is_h5:
            self.frame, self.key, self.layout = _read_h5_frame(path)
            table = _table_from_frame(self.frame, path)
        else:
            table = _read_csv_table(path)
        self.table = table
        split = [_split_key(k) for k in table.keys]
        self.root = _project_root(path, config_path, split[0] if split else None)
        t = labels.instances

        # the instances this table holds: those whose image folder is one of the table's folders
        folders = {f.lower() for f, _ in split} | {_posix_relpath(str(path.parent), self.root).lower()}
        pairs, inverse = (
            np.unique(np.stack([t.video[rows], t.frame[rows]], axis=1), axis=0, return_inverse=True)
            if len(rows)
            else (np.zeros((0, 2), dtype=np.int64), np.zeros(0, dtype=np.int64))
        )
        inverse = np.asarray(inverse).reshape(-1)
        texts = [_frame_text(labels.videos[int(v)], int(f), self.root) for v, f in pairs]
        pair_claimed = np.array([tx.rpartition("/")[0].lower() in folders for tx in texts], dtype=bool)
        self.claimed = pair_claimed[inverse] if len(rows) else np.zeros(0, dtype=bool)
        mine = rows[self.claimed]

        # rows: existing rows keep their place; newly labelled images are appended
        row_vf = _row_frames(labels, split, self.root)
        row_of = {(int(v), int(f)): i for i, (v, f) in enumerate(row_vf) if v >= 0}
        pts = t.points[mine].copy()
        pts[~t.visible[mine]] = np.nan
        has_point = ~np.isnan(pts).any(axis=-1).all(axis=-1) if len(mine) else np.zeros(0, dtype=bool)
        new_keys: list[tuple[str, ...]] = []
        pair_row = np.full(len(pairs), -1, dtype=np.int64)
        for p in np.flatnonzero(pair_claimed):
            key = (int(pairs[p, 0]), int(pairs[p, 1]))
            if key in row_of:
                pair_row[p] = row_of[key]
        mine_pair = inverse[self.claimed] if len(rows) else np.zeros(0, dtype=np.int64)
        needs_row = np.unique(mine_pair[has_point & (pair_row[mine_pair] < 0)])
        for p in needs_row:
            pair_row[p] = len(table.keys) + len(new_keys)
            new_keys.append(self._key_in_style(texts[p]))
        self.new_keys = new_keys
        n_rows = len(table.keys) + len(new_keys)
        inst_row = pair_row[mine_pair]
        keep = inst_row >= 0  # empty instances on unlisted images write nothing
        mine, pts, inst_row = mine[keep], pts[keep], inst_row[keep]

        # individuals
        individuals: list[str | None] = (
            list(dict.fromkeys(ind for ind, _, _ in table.columns)) if table.multianimal else [None]
        )
        if table.multianimal:
            ind_of_inst = self._individual_of(labels, mine, inst_row, individuals)
        else:
            ind_of_inst = np.zeros(len(mine), dtype=np.int64)
            if len(inst_row):
                r, counts = np.unique(inst_row, return_counts=True)
                if counts.max() > 1:
                    raise FileFormatError(
                        path,
                        f"image {'/'.join(self._all_keys()[int(r[np.argmax(counts)])])} has {counts.max()} "
                        "user instances; a single-animal DeepLabCut table holds one per image",
                    )

        # columns: the file's, then a pair for each (individual, body part) that gets its first point
        nodes = labels.skeleton.nodes
        grid = np.full((n_rows, len(individuals), len(nodes), 2), np.nan)
        grid[inst_row, ind_of_inst] = pts
        columns = list(table.columns)
        col_index = {c: j for j, c in enumerate(columns)}
        filled = ~np.isnan(grid).any(axis=-1).all(axis=0)  # (individual, node) with a point
        wanted: dict[str | None, list[tuple[str | None, str, str]]] = {}
        for k, n in zip(*np.nonzero(filled)):
            ind = individuals[k]
            if (ind, nodes[n], "x") not in col_index:
                wanted.setdefault(ind, []).extend([(ind, nodes[n], "x"), (ind, nodes[n], "y")])
        final = self._place_columns(columns, wanted)
        old_pos = np.array([final.index(c) for c in columns], dtype=np.int64)
        values = np.full((n_rows, len(final)), np.nan)
        values[: len(table.keys), old_pos] = table.values

        # cells: rewrite (x, y) pairs of mapped rows whose point differs from the file's
        final_index = {c: j for j, c in enumerate(final)}
        pi, pn, cx, cy = [], [], [], []
        for k, ind in enumerate(individuals):
            for n, node in enumerate(nodes):
                jx, jy = final_index.get((ind, node, "x")), final_index.get((ind, node, "y"))
                if jx is not None and jy is not None:
                    pi.append(k), pn.append(n), cx.append(jx), cy.append(jy)
        mapped = np.zeros(n_rows, dtype=bool)
        mapped[: len(table.keys)] = row_vf[:, 0] >= 0
        mapped[len(table.keys) :] = True
        if pi:
            cx_a, cy_a = np.array(cx), np.array(cy)
            old = np.stack([values[:, cx_a], values[:, cy_a]], axis=-1)
            new = grid[:, np.array(pi), np.array(pn)]
            old_missing = np.isnan(old).any(axis=-1)
            new_missing = np.isnan(new).any(axis=-1)
            same = (old_missing & new_missing) | (~old_missing & ~new_missing & (old == new).all(axis=-1))
            change = ~same & mapped[:, None]
            self.n_changed = int(change.sum())
            values[:, cx_a] = np.where(change, new[..., 0], values[:, cx_a])
            values[:, cy_a] = np.where(change, new[..., 1], values[:, cy_a])
        else:
            self.n_changed = 0
        self.columns = final
        self.values = values

    # ------------------------------------------------------------------ helpers
    def _all_keys(self) -> list[tuple[str, ...]]:
        return list(self.table.keys) + list(getattr(self, "new_keys", []))

    def _key_in_style(self, text: str) -> tuple[str, ...]:
        """A new row key written like the file's other keys (style and path separator)."""
        parts = tuple(text.split("/"))
        if self.table.index_style == "multi":
            return _three_part(parts)
        keys = [k[0] for k in self.table.keys]
        windows = bool(keys) and all("\\" in k and "/" not in k for k in keys)
        return (("\\" if windows else "/").join(parts),)

    def _individual_of(
        self, labels: Labels, rows: np.ndarray, inst_row: np.ndarray, individuals: list[str | None]
    ) -> np.ndarray:
        """Individual (index into ``individuals``, extended in place) of each instance."""
        t = labels.instances
        names = [tr.name for tr in labels.tracks]
        track = t.track[rows].astype(np.int64)
        out = np.full(len(rows), -1, dtype=np.int64)
        for k in np.unique(track[track >= 0]):
            name = names[int(k)]
            if name not in individuals:
                individuals.append(name)
            out[track == k] = individuals.index(name)
        taken = {(int(r), int(i)) for r, i in zip(inst_row[out >= 0], out[out >= 0])}
        if len(taken) < int((out >= 0).sum()):
            pairs, counts = np.unique(np.stack([inst_row, out], axis=1)[out >= 0], axis=0, return_counts=True)
            r, i = pairs[np.argmax(counts)]
            raise FileFormatError(
                self.path,
                f"image {'/'.join(self._all_keys()[int(r)])} has {counts.max()} user instances of "
                f"individual {individuals[int(i)]!r}; a DeepLabCut table holds one per individual",
            )
        regular = [k for k, ind in enumerate(individuals) if ind != UNIQUE_INDIVIDUAL]
        for j in np.flatnonzero(out < 0):  # untracked: the first individual free on the image
            r = int(inst_row[j])
            free = next((k for k in regular if (r, k) not in taken), None)
            if free is None:
                n = len(individuals) + 1
                while f"individual{n}" in individuals:
                    n += 1
                individuals.append(f"individual{n}")
                free = len(individuals) - 1
                regular.append(free)
            out[j] = free
            taken.add((r, free))
        return out

    def _place_columns(
        self,
        columns: list[tuple[str | None, str, str]],
        wanted: dict[str | None, list[tuple[str | None, str, str]]],
    ) -> list[tuple[str | None, str, str]]:
        """The file's columns with new ones after their individual's block (new individuals before ``single``)."""
        present = {c[0] for c in columns}
        new_inds = [c for ind, cols in wanted.items() if ind not in present for c in cols]
        last = {c[0]: j for j, c in enumerate(columns)}
        out: list[tuple[str | None, str, str]] = []
        placed = False
        for j, c in enumerate(columns):
            if c[0] == UNIQUE_INDIVIDUAL and not placed:
                out += new_inds
                placed = True
            out.append(c)
            if last[c[0]] == j:
                out += wanted.get(c[0], []) if c[0] in present else []
        if not placed:
            out += new_inds
        return out

    # ------------------------------------------------------------------ writing
    def write(self) -> None:
        scorers = self.table.column_scorers or [self.table.scorer] * len(self.table.columns)
        scorer_of = dict(zip(self.table.columns, scorers))
        block_scorer = {c[0]: s for c, s in zip(self.table.columns, scorers)}
        column_scorers = [scorer_of.get(c, block_scorer.get(c[0], self.table.scorer)) for c in self.columns]
        if self.is_h5:
            self._write_h5(column_scorers)
            return
        table = _Table(
            self._all_keys(),
            self.columns,
            self.values,
            self.table.index_style,
            self.table.scorer,
            self.table.multianimal,
        )
        table.column_scorers = column_scorers
        _write_csv_table(table, self.path)

    def _write_h5(self, column_scorers: list[str]) -> None:
        import pandas as pd

        df = self.frame
        index = df.index
        if self.new_keys:
            added = (
                pd.MultiIndex.from_tuples(self.new_keys, names=index.names)
                if isinstance(index, pd.MultiIndex)
                else pd.Index([k[0] for k in self.new_keys], name=index.name)
            )
            index = index.append(added)
        columns = df.columns
        if self.columns != list(self.table.columns):
            old = dict(zip(self.table.columns, df.columns))
            tuples = [
                old.get(c) or ((s, c[0], c[1], c[2]) if self.table.multianimal else (s, c[1], c[2]))
                for c, s in zip(self.columns, column_scorers)
            ]
            columns = pd.MultiIndex.from_tuples(tuples, names=df.columns.names)
        out = pd.DataFrame(self.values, index=index, columns=columns)
        with pd.HDFStore(self.path, mode="r") as store:
            others = {k: store[k] for k in store.keys() if k != self.key}  # noqa: SIM118 (HDFStore)
            other_layouts = {k: "table" if store.get_storer(k).is_table else "fixed" for k in others}
        with atomic_write(self.path) as tmp:
            out.to_hdf(tmp, key=self.key.lstrip("/"), mode="w", format=self.layout)
            for k, frame in others.items():  # anything else the file held is kept
                frame.to_hdf(tmp, key=k.lstrip("/"), mode="a", format=other_layouts[k])


# --------------------------------------------------------------------------- the project


def save_dlc_in_place(labels: Labels, path: str | os.PathLike[str]) -> list[Path]:
    """Merge the user instances of ``labels`` into the DeepLabCut project files they came from.

    Parameters
    ----------
    labels
        The labels (predictions are not written: DeepLabCut trains from user labels).
    path
        ``config.yaml`` (every table of the project) or one ``CollectedData_<scorer>.csv``/``.h5``
        (that table and its sibling with the other extension). A table that does not exist yet is
        written new with :func:`~napari_posetrack.core.io.dlc.save_dlc`.

    Returns
    -------
    list of Path
        The files written.

    Raises
    ------
    FileFormatError
        A table cannot hold the labels (two instances of one individual on an image, several
        animals in a single-animal table), instances have no table (a lone table outside a
        project), or a new table would overwrite a file the project was not opened from. The
        message names the file; no file is changed then.
    """
    path = Path(path)
    t = labels.instances
    user = np.flatnonzero(t.kind == USER)
    if path.suffix.lower() in (".yaml", ".yml"):
        config_path: Path | None = path
        groups = [table_files(tb) for tb in project_tables(path)]
    else:
        if not path.is_file():
            save_dlc(labels, path)
            return [path]
        config_path = find_dlc_config(path)
        groups = [table_files(path)]
    cfg = load_dlc_config(config_path) if config_path is not None else None

    # read and merge every file first, so a table that cannot hold the labels changes nothing
    merges = [_Merge(labels, f, config_path, user) for group in groups for f in group]
    held = np.zeros(len(user), dtype=bool)
    for m in merges:
        held |= m.claimed
    rest = user[~held]
    new_tables: list[tuple[Labels, Path]] = []
    if len(rest):
        videos = sorted({labels.videos[int(v)].name for v in t.video[rest]})
        if config_path is None:
            raise FileFormatError(
                path,
                f"user labels on video(s) {videos} have no row in this table and no DeepLabCut project "
                "(config.yaml) was found to add a table to; save as .slp or open the project's config.yaml",
            )
        root = config_path.resolve().parent
        scorer = (cfg or {}).get("scorer") or (merges[0].table.scorer if merges else None) or "posetrack"
        for v in np.unique(t.video[rest]):
            video = labels.videos[int(v)]
            folder = _project_folder(video, root)
            out = root / folder / f"CollectedData_{scorer}.csv"
            for f in (out, out.with_suffix(".h5")):
                if f.exists():
                    raise FileFormatError(
                        f,
                        f"labels of video {video.name!r} would go into this table, which the project was "
                        "not opened from; open the project's config.yaml to save into it",
                    )
            new_tables.append((labels.subset(rest[t.video[rest] == v]), out))
    written: list[Path] = []
    for m in merges:
        m.write()
        written.append(m.path)
    if new_tables:
        style = merges[0].table.index_style if merges else None
        multi = any(m.table.multianimal for m in merges) or bool(cfg and cfg["multianimalproject"]) or None
        for subset, out in new_tables:
            for f in (out, out.with_suffix(".h5")):
                save_dlc(
                    subset,
                    f,
                    scorer=out.stem[len("CollectedData_") :],
                    project_dir=root,
                    multianimal=multi,
                    index_style=style,
                    extract_frames=f.suffix == ".csv",
                )
                written.append(f)
    return written
