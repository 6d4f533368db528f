"""DeepLabCut labelled data: ``CollectedData_*.csv`` / ``.h5`` and the project ``config.yaml``.

Layout of a DeepLabCut project::

    project/config.yaml
    project/labeled-data/<video>/CollectedData_<scorer>.csv   (and .h5, the same table)
    project/labeled-data/<video>/img0000.png ...

The table has three header rows (``scorer``, ``bodyparts``, ``coords``) for single-animal
projects and four (``scorer``, ``individuals``, ``bodyparts``, ``coords``) for multi-animal
ones, where DeepLabCut's "unique bodyparts" (scene points such as arena corners) sit under the
individual ``single``. Rows are keyed by the image path relative to the project, either as one
string column (``labeled-data/m4s1/img0000.png``) or as DeepLabCut 2.3's three index columns
(``labeled-data``, ``m4s1``, ``img0000.png``). Lightning Pose uses the same table.

How a table maps onto :class:`~napari_posetrack.core.labels.Labels`:

- each folder of images (``labeled-data/<video>``) becomes one Video with backend ``"images"``
  whose path is the naturally sorted list of **all** images in that folder (labelled or not),
  so the frame you see is the frame you labelled; a labelled row's frame index is its image's
  position in that list. When the folder is not on disk the list holds only the labelled images;
- every row (and, for multi-animal tables, every individual with at least one coordinate) is one
  user instance; a NaN pair is a missing node; rows with no coordinate at all are skipped;
- individuals become tracks (in header order); the unique-bodyparts individual ``single`` is a
  track called ``single`` whose instances hold only the unique bodyparts;
- the skeleton's nodes come from ``config.yaml`` (``bodyparts``, or ``multianimalbodyparts`` then
  ``uniquebodyparts``) and its edges from the config's ``skeleton``; without a config the nodes
  come from the header and there are no edges.

DeepLabCut's analysis output (``<video stem>DLC_<network>.h5``/``.csv``: rows are frame numbers,
coords ``x, y, likelihood``) loads too: one Video (``<video stem>.mp4`` or another video
extension beside the table) and predicted instances whose point scores are the likelihoods.

Coordinates are parsed with correctly rounded decimal conversion and written with Python's
shortest round-trip ``repr``, so a CSV read and written back holds bitwise the same values.
"""

from __future__ import annotations

import csv
import os
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from napari_posetrack.core.errors import FileFormatError, MissingFileError, atomic_write
from napari_posetrack.core.labels import NO_TRACK, PREDICTED, USER, Labels, Skeleton, Track, Video

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".mpg", ".mpeg")
UNIQUE_INDIVIDUAL = "single"
H5_KEY = "df_with_missing"

__all__ = ["find_dlc_config", "load_dlc", "load_dlc_config", "save_dlc"]


# --------------------------------------------------------------------------- config


def load_dlc_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a DeepLabCut ``config.yaml`` and check the fields that describe the skeleton.

    Returns
    -------
    dict
        The parsed YAML with these keys normalised: ``bodyparts`` (list of str; empty for a
        multi-animal project whose config says ``MULTI!``), ``multianimalbodyparts``,
        ``uniquebodyparts``, ``individuals`` (lists of str, possibly empty), ``skeleton``
        (list of ``[a, b]`` name pairs), ``multianimalproject`` (bool), ``scorer`` (str or None).

    Raises
    ------
    MissingFileError
        The file does not exist.
    FileFormatError
        Not YAML, not a mapping, no body parts, or a skeleton edge naming an unknown body part.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(path, "DeepLabCut config.yaml not found")
    try:
        with open(path, encoding="utf-8") as fh:
            cfg = yaml.safe_load(fh)
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise FileFormatError(path, f"not a valid YAML file ({exc})") from exc
    if not isinstance(cfg, dict):
        raise FileFormatError(path, "a DeepLabCut config.yaml must be a mapping of settings")

    def name_list(key: str) -> list[str]:
        value = cfg.get(key)
        if value is None or value == "MULTI!":
            return []
        if isinstance(value, str) or not isinstance(value, Sequence):
            raise FileFormatError(path, f"'{key}' must be a list of names, got {value!r}")
        return [str(v) for v in value]

    out = dict(cfg)
    out["bodyparts"] = name_list("bodyparts")
    out["multianimalbodyparts"] = name_list("multianimalbodyparts")
    out["uniquebodyparts"] = name_list("uniquebodyparts")
    out["individuals"] = name_list("individuals")
    out["multianimalproject"] = bool(cfg.get("multianimalproject")) or bool(out["multianimalbodyparts"])
    out["scorer"] = None if cfg.get("scorer") is None else str(cfg["scorer"])
    nodes = _config_nodes(out)
    if not nodes:
        raise FileFormatError(path, "no body parts: 'bodyparts' (or 'multianimalbodyparts') is empty")
    edges = cfg.get("skeleton") or []
    if not isinstance(edges, Sequence) or isinstance(edges, str):
        raise FileFormatError(path, f"'skeleton' must be a list of [bodypart, bodypart] pairs, got {edges!r}")
    pairs: list[list[str]] = []
    for edge in edges:
        if not isinstance(edge, Sequence) or isinstance(edge, str) or len(edge) != 2:
            raise FileFormatError(path, f"skeleton edge {edge!r} is not a pair of body parts")
        a, b = (str(e) for e in edge)
        unknown = [n for n in (a, b) if n not in nodes]
        if unknown:
            raise FileFormatError(path, f"skeleton edge {[a, b]} names unknown body part(s) {unknown}")
        pairs.append([a, b])
    out["skeleton"] = pairs
    return out


def _config_nodes(cfg: dict[str, Any]) -> list[str]:
    if cfg["multianimalproject"]:
        return list(cfg["multianimalbodyparts"]) + [
            n for n in cfg["uniquebodyparts"] if n not in cfg["multianimalbodyparts"]
        ]
    return list(cfg["bodyparts"])


def find_dlc_config(table_path: str | os.PathLike[str]) -> Path | None:
    """The ``config.yaml`` of the project a labels table belongs to, or ``None``.

    Looks two folders above ``labeled-data/<video>/CollectedData_*.csv`` (the project folder),
    then beside the table.
    """
    table_path = Path(table_path).resolve()
    candidates = []
    if len(table_path.parents) > 2 and table_path.parents[1].name == "labeled-data":
        candidates.append(table_path.parents[2] / "config.yaml")
    candidates.append(table_path.parent / "config.yaml")
    return next((c for c in candidates if c.is_file()), None)


# --------------------------------------------------------------------------- reading the table


class _Table:
    """A DeepLabCut table reduced to plain arrays (shared by the CSV and HDF5 readers).

    ``keys``: one tuple of path parts per row; ``columns``: ``(individual or None, bodypart,
    coord)`` per data column; ``values``: ``(n_rows, n_columns)`` float64; ``index_style``:
    ``"single"`` (one string column) or ``"multi"`` (three index columns); ``scorer``.
    """

    def __init__(
        self,
        keys: list[tuple[str, ...]],
        columns: list[tuple[str | None, str, str]],
        values: np.ndarray,
        index_style: str,
        scorer: str,
        multianimal: bool,
    ) -> None:
        self.keys = keys
        self.columns = columns
        self.values = values
        self.index_style = index_style
        self.scorer = scorer
        self.multianimal = multianimal
        self.column_scorers: list[str] | None = None  # per column, when read from a file


def _to_float(cells: np.ndarray, path: Path) -> np.ndarray:
    """Correctly rounded decimal -> float64 conversion; empty cells are NaN."""
    cells = np.char.strip(cells.astype(str))
    cells = np.where(cells == "", "nan", cells)
    try:
        return cells.astype(np.float64)
    except ValueError as exc:
        raise FileFormatError(path, f"a coordinate cell is not a number ({exc})") from exc


def _read_csv_table(path: Path) -> _Table:
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.reader(fh))
    except UnicodeDecodeError as exc:
        raise FileFormatError(path, f"not a text CSV file ({exc})") from exc
    rows = [r for r in rows if any(c.strip() for c in r)]
    if not rows:
        raise FileFormatError(path, "empty file, expected DeepLabCut header rows (scorer, bodyparts, coords)")
    header_names: list[str] = []
    for r in rows:
        name = r[0].strip().lower()
        if name in ("scorer", "individuals", "bodyparts", "coords"):
            header_names.append(name)
            if name == "coords":
                break
        else:
            break
    n_header = len(header_names)
    if header_names not in (
        ["scorer", "bodyparts", "coords"],
        ["scorer", "individuals", "bodyparts", "coords"],
    ):
        found = [r[0] for r in rows[: max(n_header, 1)]]
        raise FileFormatError(
            path,
            "not a DeepLabCut labels table: expected header rows 'scorer', ['individuals',] 'bodyparts', "
            f"'coords' in the first column, found {found}",
        )
    header = rows[:n_header]
    width = max(len(r) for r in header)
    header = [r + [""] * (width - len(r)) for r in header]
    # DLC 2.3 writes the row index as three columns: the header rows are blank there
    n_index = 1
    while n_index < width and all(h[n_index].strip() == "" for h in header):
        n_index += 1
    if n_index not in (1, 3):
        raise FileFormatError(path, f"expected 1 or 3 index columns before the coordinates, found {n_index}")
    data = rows[n_header:]
    # pandas writes the names of a named row index as one more row; skip such a row
    if (
        data
        and all(c.strip() == "" for c in data[0][n_index:])
        and not data[0][n_index - 1].lower().endswith(IMAGE_EXTENSIONS)
    ):
        data = data[1:]
    levels = {name: [c.strip() for c in header[i][n_index:]] for i, name in enumerate(header_names)}
    n_cols = width - n_index
    multianimal = "individuals" in levels
    columns = [
        (levels["individuals"][j] if multianimal else None, levels["bodyparts"][j], levels["coords"][j])
        for j in range(n_cols)
    ]
    scorers = {s for s in levels["scorer"] if s}
    cells = np.full((len(data), n_cols), "", dtype=object)
    keys: list[tuple[str, ...]] = []
    for i, r in enumerate(data):
        if len(r) > width:
            raise FileFormatError(
                path, f"data row {i + n_header + 1} has {len(r)} cells, the header has {width}"
            )
        keys.append(tuple(c.strip() for c in r[:n_index]))
        vals = r[n_index:]
        cells[i, : len(vals)] = vals
    values = _to_float(cells, path) if len(data) else np.zeros((0, n_cols))
    table = _Table(
        keys,
        columns,
        values,
        "multi" if n_index == 3 else "single",
        next(iter(sorted(scorers)), ""),
        multianimal,
    )
    table.column_scorers = levels["scorer"]
    return table


def _read_h5_frame(path: Path) -> tuple[Any, str, str]:
    """The pandas table of a DeepLabCut HDF5 file, its key and its PyTables layout (``table``/``fixed``)."""
    import pandas as pd

    try:
        with pd.HDFStore(path, mode="r") as store:
            keys = store.keys()
            key = "/" + H5_KEY if "/" + H5_KEY in keys else (keys[0] if len(keys) == 1 else None)
            if key is None:
                raise FileFormatError(
                    path, f"expected one table (DeepLabCut writes '{H5_KEY}') in the HDF5 file, found {keys}"
                )
            df = store[key]
            layout = "table" if store.get_storer(key).is_table else "fixed"
    except FileFormatError:
        raise
    except Exception as exc:  # pandas/pytables raise many types for non-pandas HDF5 files
        raise FileFormatError(path, f"not a pandas HDF5 table written by DeepLabCut ({exc})") from exc
    return df, key, layout


def _table_from_frame(df: Any, path: Path) -> _Table:
    """A DeepLabCut pandas table (MultiIndex columns) as a :class:`_Table`."""
    import pandas as pd

    if not isinstance(df, pd.DataFrame) or not isinstance(df.columns, pd.MultiIndex):
        raise FileFormatError(path, "the table has no DeepLabCut column header (scorer/bodyparts/coords)")
    names = [str(n).lower() if n is not None else "" for n in df.columns.names]
    if names not in (["scorer", "bodyparts", "coords"], ["scorer", "individuals", "bodyparts", "coords"]):
        raise FileFormatError(
            path,
            f"column header levels are {df.columns.names}, expected scorer, [individuals,] bodyparts, coords",
        )
    multianimal = "individuals" in names
    levels = {name: [str(v) for v in df.columns.get_level_values(i)] for i, name in enumerate(names)}
    columns = [
        (levels["individuals"][j] if multianimal else None, levels["bodyparts"][j], levels["coords"][j])
        for j in range(df.shape[1])
    ]
    if isinstance(df.index, pd.MultiIndex):
        keys = [tuple(str(p) for p in k) for k in df.index]
        style = "multi"
    else:
        keys = [(str(k),) for k in df.index]
        style = "single"
    try:
        values = df.to_numpy(dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise FileFormatError(path, f"the table holds non-numeric coordinates ({exc})") from exc
    scorers = sorted(set(levels["scorer"]))
    table = _Table(keys, columns, values, style, scorers[0] if scorers else "", multianimal)
    table.column_scorers = levels["scorer"]
    return table


def _read_h5_table(path: Path) -> _Table:
    return _table_from_frame(_read_h5_frame(path)[0], path)


# --------------------------------------------------------------------------- table -> Labels


def _natural_key(name: str) -> list[Any]:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def _split_key(key: tuple[str, ...]) -> tuple[str, str]:
    """``(folder, file name)`` of a row key, POSIX separators (DLC on Windows writes backslashes)."""
    joined = "/".join(p.replace("\\", "/") for p in key if p != "")
    folder, _, name = joined.rpartition("/")
    return folder, name


def _project_root(table_path: Path, config_path: Path | None, first_key: tuple[str, str] | None) -> Path:
    """The folder row keys are relative to: the first candidate where the first image exists."""
    table_path = table_path.resolve()
    candidates: list[Path] = []
    if config_path is not None:
        candidates.append(config_path.resolve().parent)
    if len(table_path.parents) > 2 and table_path.parents[1].name == "labeled-data":
        candidates.append(table_path.parents[2])
    candidates.append(table_path.parent)
    if first_key is not None:
        folder, name = first_key
        for root in candidates:
            if (root / folder / name).exists():
                return root
    return candidates[0]


def _folder_images(folder: Path) -> list[str]:
    if not folder.is_dir():
        return []
    return [e.name for e in os.scandir(folder) if e.is_file() and e.name.lower().endswith(IMAGE_EXTENSIONS)]


def load_dlc(
    path: str | os.PathLike[str], config: str | os.PathLike[str] | dict[str, Any] | None = None
) -> Labels:
    """Load DeepLabCut (or Lightning Pose) labelled frames from ``CollectedData_*.csv`` or ``.h5``.

    Parameters
    ----------
    path
        The labels table (``.csv``, or ``.h5``/``.hdf5`` written by pandas).
    config
        The project's ``config.yaml`` (path or an already loaded dict). When ``None`` it is looked
        for two folders above ``labeled-data/<video>/`` and beside the table; without one, node
        names come from the header and the skeleton has no edges.

    Returns
    -------
    Labels
        One image-list Video per labelled image folder, user instances, tracks for individuals.

    Raises
    ------
    MissingFileError
        ``path`` (or an explicitly given config) does not exist.
    FileFormatError
        A wrong or incomplete header, non-numeric coordinates, or body parts that the config does
        not list.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(path, "DeepLabCut labels file not found")
    if path.suffix.lower() in (".h5", ".hdf5"):
        table = _read_h5_table(path)
    else:
        table = _read_csv_table(path)

    config_path: Path | None = None
    if isinstance(config, dict):
        cfg: dict[str, Any] | None = config
    else:
        config_path = Path(config) if config is not None else find_dlc_config(path)
        cfg = load_dlc_config(config_path) if config_path is not None else None

    skeleton, unique_parts = _skeleton_for(table, cfg, path, config_path)
    labels = _table_to_labels(table, skeleton, unique_parts, path, config_path)
    labels.provenance.update(
        {
            "source": str(path),
            "format": "dlc",
            "dlc_scorer": table.scorer,
            "dlc_index_style": table.index_style,
            "dlc_multianimal": table.multianimal,
            "dlc_uniquebodyparts": unique_parts,
        }
    )
    if config_path is not None:
        labels.provenance["dlc_config"] = str(config_path)
    return labels


def _skeleton_for(
    table: _Table, cfg: dict[str, Any] | None, path: Path, config_path: Path | None
) -> tuple[Skeleton, list[str]]:
    coords = {c for _, _, c in table.columns}
    if not {"x", "y"} <= coords or not coords <= {"x", "y", "likelihood"}:
        raise FileFormatError(
            path, f"the 'coords' header row must hold x and y (and likelihood), found {sorted(coords)}"
        )
    seen: set[tuple[str | None, str, str]] = set()
    repeated = [c for c in table.columns if c in seen or seen.add(c)]
    if repeated:
        raise FileFormatError(path, f"header columns repeat (individual, bodypart, coord): {repeated[:4]}")
    header_parts: list[str] = []
    header_unique: list[str] = []
    for ind, part, _ in table.columns:
        target = header_unique if ind == UNIQUE_INDIVIDUAL else header_parts
        if part not in target:
            target.append(part)
    if cfg is None:
        nodes = header_parts + [p for p in header_unique if p not in header_parts]
        unique = list(header_unique)
        edges: list[list[str]] = []
        name = path.stem
    else:
        where = str(config_path) if config_path is not None else "the given config"
        if cfg["multianimalproject"] and not table.multianimal:
            raise FileFormatError(
                path, f"{where} describes a multi-animal project but the table has no 'individuals' row"
            )
        nodes = _config_nodes(cfg)
        unique = list(cfg["uniquebodyparts"]) if cfg["multianimalproject"] else []
        expected_main = cfg["multianimalbodyparts"] if cfg["multianimalproject"] else cfg["bodyparts"]
        # a config may list body parts added after labelling (they load as missing); body parts of
        # the table that the config does not list load as extra nodes, so nothing of the file is
        # hidden and saving in place writes them back
        extra = [p for p in header_parts if p not in expected_main and p not in nodes]
        extra_unique = [p for p in header_unique if p not in unique and p not in nodes + extra]
        if extra or extra_unique:
            warnings.warn(
                f"{path}: body parts {extra + extra_unique} are in the table but not in {where} "
                f"(which lists {nodes}); they are shown as extra nodes",
                UserWarning,
                stacklevel=3,
            )
            nodes = nodes + extra + extra_unique
            unique = unique + extra_unique
        edges = cfg["skeleton"]
        name = str(cfg.get("Task") or path.stem)
    with warnings.catch_warnings():
        # DLC skeletons are undirected drawing aids: several roots are normal there
        warnings.simplefilter("ignore", UserWarning)
        skeleton = Skeleton(nodes, [tuple(e) for e in edges], name=name)
    return skeleton, unique


def _analysis_video(path: Path) -> Video:
    """The video a DeepLabCut analysis table belongs to: ``<stem>DLC_...h5`` sits beside ``<stem>.mp4``."""
    stem = path.stem.split("DLC_")[0] if "DLC_" in path.stem else path.stem
    for ext in VIDEO_EXTENSIONS:
        for candidate in (path.with_name(stem + ext), path.with_name(stem + ext.upper())):
            if candidate.is_file():
                return Video(str(candidate))
    return Video(str(path.with_name(stem + ".mp4")))  # not on disk: the user relinks it


def _table_to_labels(
    table: _Table, skeleton: Skeleton, unique_parts: list[str], path: Path, config_path: Path | None
) -> Labels:
    n_rows = len(table.keys)
    if n_rows and all(len(k) == 1 and k[0].isdigit() for k in table.keys):
        # an analysis (prediction) table of a video: rows are frame numbers
        videos = [_analysis_video(path)]
        video_of_row = np.zeros(n_rows, dtype=np.int64)
        frame_of_row = np.array([int(k[0]) for k in table.keys], dtype=np.int64)
        return _instances_from_table(table, skeleton, videos, video_of_row, frame_of_row)
    split = [_split_key(k) for k in table.keys]
    root = _project_root(path, config_path, split[0] if split else None)

    # videos: one per image folder, frames = naturally sorted images of the folder
    folders = list(dict.fromkeys(f for f, _ in split))
    videos: list[Video] = []
    folder_index: dict[str, dict[str, int]] = {}
    for folder in folders:
        on_disk = _folder_images(root / folder)
        labelled = [n for f, n in split if f == folder]
        names = sorted(set(on_disk) | set(labelled), key=_natural_key)
        folder_index[folder] = {n: i for i, n in enumerate(names)}
        videos.append(
            Video(
                [os.path.normpath(root / folder / n) for n in names],
                n_frames=len(names),
                backend="images",
                backend_metadata={"dlc_folder": folder},
            )
        )
    video_of_row = np.array([folders.index(f) for f, _ in split], dtype=np.int64)
    frame_of_row = np.array([folder_index[f][n] for f, n in split], dtype=np.int64)
    dup = (
        {k for k, c in zip(*np.unique([f"{f}/{n}" for f, n in split], return_counts=True)) if c > 1}
        if n_rows
        else set()
    )
    if dup:
        raise FileFormatError(path, f"image(s) labelled in more than one row: {sorted(dup)[:5]}")
    # a labelled-data table holds user labels even with a likelihood column (kept as point scores)
    user = path.name.lower().startswith("collecteddata")
    return _instances_from_table(table, skeleton, videos, video_of_row, frame_of_row, user=user)


def _instances_from_table(
    table: _Table,
    skeleton: Skeleton,
    videos: list[Video],
    video_of_row: np.ndarray,
    frame_of_row: np.ndarray,
    *,
    user: bool = False,
) -> Labels:
    n_rows = len(table.keys)

    # individuals -> tracks; single-animal tables have one anonymous individual
    individuals = list(dict.fromkeys(ind for ind, _, _ in table.columns)) if table.multianimal else [None]
    n_ind = len(individuals)
    ind_of_col = np.array([individuals.index(ind) for ind, _, _ in table.columns], dtype=np.int64)
    node_of_col = np.array([skeleton.node_index(p) for _, p, _ in table.columns], dtype=np.int64)
    coord_names = [c for _, _, c in table.columns]
    points = np.full((n_rows, n_ind, skeleton.n_nodes, 2), np.nan)
    likelihood = np.full((n_rows, n_ind, skeleton.n_nodes), np.nan, dtype=np.float32)
    for axis, coord in enumerate(("x", "y")):
        cols = np.array([j for j, c in enumerate(coord_names) if c == coord], dtype=np.int64)
        points[:, ind_of_col[cols], node_of_col[cols], axis] = table.values[:, cols]
    lik_cols = np.array([j for j, c in enumerate(coord_names) if c == "likelihood"], dtype=np.int64)
    has_likelihood = len(lik_cols) > 0
    if has_likelihood:
        likelihood[:, ind_of_col[lik_cols], node_of_col[lik_cols]] = table.values[:, lik_cols]
    # a half-missing pair is a missing node
    half = np.isnan(points).any(axis=-1)
    points[half] = np.nan

    tracks = [Track(str(ind)) for ind in individuals] if table.multianimal else []
    labels = Labels(skeleton, videos, tracks)
    present = ~half.all(axis=-1)  # (rows, individuals) with at least one node
    r, k = np.nonzero(present)
    if len(r):
        pts = points[r, k]
        scores = likelihood[r, k]
        kind = PREDICTED if has_likelihood and not user else USER
        labels.add_instances(
            video_of_row[r],
            frame_of_row[r],
            pts,
            kind=kind,
            track=k if table.multianimal else NO_TRACK,
            score=np.nanmean(np.where(half[r, k], np.nan, scores), axis=1) if kind == PREDICTED else np.nan,
            point_scores=scores if has_likelihood else None,
        )
    return labels


# --------------------------------------------------------------------------- Labels -> table


def _default_project_root(out_path: Path) -> Path:
    out_path = out_path.resolve()
    if len(out_path.parents) > 2 and out_path.parents[1].name == "labeled-data":
        return out_path.parents[2]
    return out_path.parent


def _posix_relpath(target: str, root: Path) -> str:
    try:
        rel = os.path.relpath(os.path.abspath(target), root)
    except ValueError:  # another drive on Windows: no relative path exists
        return Path(target).as_posix()
    return Path(rel).as_posix()


def save_dlc(
    labels: Labels,
    path: str | os.PathLike[str],
    *,
    scorer: str | None = None,
    project_dir: str | os.PathLike[str] | None = None,
    multianimal: bool | None = None,
    index_style: str | None = None,
    extract_frames: bool = False,
) -> None:
    """Write the user instances of ``labels`` as a DeepLabCut labels table (``.csv`` or ``.h5``).

    Parameters
    ----------
    labels
        The labels; only user instances are written (predictions are not training data).
    path
        Output file: ``.h5``/``.hdf5`` writes a pandas table under key ``df_with_missing`` (as
        DeepLabCut does), anything else a CSV.
    scorer
        The scorer name in the header; defaults to the scorer the labels were loaded with, else
        the ``CollectedData_<scorer>`` part of the file name, else ``"posetrack"``.
    project_dir
        The folder image paths are written relative to. Defaults to the project folder when
        ``path`` is ``<project>/labeled-data/<video>/...``, else the folder of ``path``.
    multianimal
        Write the four-row multi-animal header. Defaults to true when the labels have tracks,
        several user instances on one frame, or came from a multi-animal table.
    index_style
        ``"single"`` (one ``labeled-data/<video>/<image>`` column) or ``"multi"`` (DeepLabCut
        2.3's three index columns). Defaults to the style the labels were loaded with, else single.
    extract_frames
        For frames of real videos (not image lists), also write the labelled frames as
        ``<project>/labeled-data/<video stem>/img{frame:05d}.png``. Rows for video frames always
        use that naming, so DeepLabCut needs those images: extract them here or with DeepLabCut.

    Notes
    -----
    Untracked instances in a multi-animal table fill individuals ``individual<k>`` in frame order;
    the unique-bodyparts track ``single`` is written under the individual ``single``. Two user
    instances with the same track on one frame cannot be represented and raise ``ValueError``.
    """
    path = Path(path)
    root = Path(project_dir).resolve() if project_dir is not None else _default_project_root(path)
    if scorer is None:
        scorer = labels.provenance.get("dlc_scorer") or None
    if scorer is None and path.stem.startswith("CollectedData_"):
        scorer = path.stem[len("CollectedData_") :]
    scorer = scorer or "posetrack"
    style = index_style or labels.provenance.get("dlc_index_style") or "single"
    if style not in ("single", "multi"):
        raise ValueError(f"index_style must be 'single' or 'multi', got {style!r}")

    t = labels.instances
    rows = np.flatnonzero(t.kind == USER)
    rows = rows[np.lexsort((t.frame[rows], t.video[rows]))]
    unique_parts = [p for p in labels.provenance.get("dlc_uniquebodyparts", []) if p in labels.skeleton.nodes]
    per_frame = (
        np.unique(np.stack([t.video[rows], t.frame[rows]]), axis=1, return_counts=True)[1]
        if len(rows)
        else []
    )
    if multianimal is None:
        multianimal = (
            bool(labels.tracks)
            or bool(len(per_frame) and max(per_frame) > 1)
            or bool(labels.provenance.get("dlc_multianimal"))
        )

    # individual (column block) of each written instance
    if multianimal:
        individuals, ind_of_row = _individuals_of(labels, rows)
    else:
        if len(per_frame) and max(per_frame) > 1:
            raise ValueError(
                "several user instances on one frame need a multi-animal table (multianimal=True)"
            )
        individuals, ind_of_row = [None], np.zeros(len(rows), dtype=np.int64)

    # frame keys: one per (video, frame) with user instances
    pairs, row_key = (
        np.unique(np.stack([t.video[rows], t.frame[rows]], axis=1), axis=0, return_inverse=True)
        if len(rows)
        else (np.zeros((0, 2), dtype=np.int64), np.zeros(0, dtype=np.int64))
    )
    row_key = np.asarray(row_key).reshape(-1)
    keys = [_frame_key(labels.videos[int(v)], int(f), root) for v, f in pairs]

    main_parts = [n for n in labels.skeleton.nodes if n not in unique_parts]
    columns: list[tuple[str | None, str, str]] = []
    col_node: list[int] = []
    col_ind: list[int] = []
    for k, ind in enumerate(individuals):
        parts = (
            unique_parts
            if ind == UNIQUE_INDIVIDUAL and unique_parts
            else (main_parts if multianimal else labels.skeleton.nodes)
        )
        for part in parts:
            for coord in ("x", "y"):
                columns.append((ind, part, coord))
                col_node.append(labels.skeleton.node_index(part))
                col_ind.append(k)
    pts = t.points[rows].copy()
    pts[~t.visible[rows]] = np.nan
    grid = np.full((len(pairs), len(individuals), labels.n_nodes, 2), np.nan)
    grid[row_key, ind_of_row] = pts
    col_node_a = np.asarray(col_node, dtype=np.int64)
    col_ind_a = np.asarray(col_ind, dtype=np.int64)
    col_xy = np.array([0 if c == "x" else 1 for _, _, c in columns], dtype=np.int64)
    values = grid[:, col_ind_a, col_node_a, col_xy] if len(columns) else np.zeros((len(pairs), 0))

    if extract_frames:
        _extract_frames(labels, pairs, keys, root)

    table = _Table(keys, columns, values, style, scorer, multianimal)
    if path.suffix.lower() in (".h5", ".hdf5"):
        _write_h5_table(table, path)
    else:
        _write_csv_table(table, path)


def save_dlc_project(
    labels: Labels,
    project_dir: str | os.PathLike[str],
    *,
    scorer: str | None = None,
    multianimal: bool | None = None,
    extract_frames: bool = False,
) -> list[Path]:
    """Write user instances into a DeepLabCut project, one table per labelled-image folder.

    DeepLabCut expects ``<project>/labeled-data/<video>/CollectedData_<scorer>.csv`` and ``.h5``
    (its training reads the ``.h5``), so both are written for every video with user instances.
    The table of an image-list video inside ``labeled-data`` goes to its own folder; images
    elsewhere keep relative paths to where they are, in a table in ``labeled-data/<folder name>``.
    A video file's table goes to ``labeled-data/<video stem>`` with frames named
    ``img{frame:05d}.png``, which ``extract_frames=True`` writes (see :func:`save_dlc`).
    ``config.yaml`` is not written: create the project with DeepLabCut and list the same body parts.

    Parameters
    ----------
    scorer
        Defaults to the ``scorer`` of ``<project>/config.yaml`` when there is one, else as in
        :func:`save_dlc`.
    multianimal
        As in :func:`save_dlc`, decided once for the whole project so every table has the same header.

    Returns
    -------
    list of Path
        The tables written.
    """
    root = Path(project_dir).resolve()
    if scorer is None and (root / "config.yaml").is_file():
        scorer = load_dlc_config(root / "config.yaml")["scorer"]
    scorer = scorer or labels.provenance.get("dlc_scorer") or "posetrack"
    t = labels.instances
    user = t.kind == USER
    if multianimal is None:
        vf = np.stack([t.video[user], t.frame[user]], axis=1)
        crowded = len(vf) > 0 and np.unique(vf, axis=0, return_counts=True)[1].max() > 1
        multianimal = bool(labels.tracks) or bool(crowded) or bool(labels.provenance.get("dlc_multianimal"))
    written: list[Path] = []
    for v, video in enumerate(labels.videos):
        rows = np.flatnonzero(user & (t.video == v))
        if len(rows) == 0:
            continue
        folder = _project_folder(video, root)
        subset = labels.subset(rows)
        for ext in (".csv", ".h5"):
            out = root / folder / f"CollectedData_{scorer}{ext}"
            save_dlc(
                subset,
                out,
                scorer=scorer,
                project_dir=root,
                multianimal=multianimal,
                extract_frames=extract_frames and ext == ".csv",
            )
            written.append(out)
    return written


def _project_folder(video: Video, root: Path) -> str:
    """``labeled-data/<name>`` folder of a video inside a DeepLabCut project."""
    if video.backend == "images" and isinstance(video.path, list) and video.path:
        parent = Path(os.path.abspath(video.path[0])).parent
        rel = _posix_relpath(str(parent), root)
        if rel.startswith("labeled-data/") and rel.count("/") == 1:
            return rel
        return f"labeled-data/{parent.name}"
    return f"labeled-data/{Path(video.filename.replace(chr(92), '/')).stem or 'video'}"


def _individuals_of(labels: Labels, rows: np.ndarray) -> tuple[list[str], np.ndarray]:
    t = labels.instances
    names = [tr.name for tr in labels.tracks]
    ind = t.track[rows].astype(np.int64)
    tracked = ind >= 0
    key = np.stack([t.video[rows], t.frame[rows], ind], axis=1)[tracked]
    if len(key):
        uniq, counts = np.unique(key, axis=0, return_counts=True)
        if counts.max() > 1:
            v, f, k = uniq[np.argmax(counts)]
            raise ValueError(
                f"video {v} frame {f} has {counts.max()} user instances of track {names[k]!r}; "
                "a DeepLabCut table holds one per individual"
            )
    untracked = np.flatnonzero(~tracked)
    if len(untracked):
        # rank of each untracked instance among the untracked ones of its frame
        vf = np.stack([t.video[rows][untracked], t.frame[rows][untracked]], axis=1)
        _, _first, inverse = np.unique(vf, axis=0, return_index=True, return_inverse=True)
        inverse = np.asarray(inverse).reshape(-1)
        order = np.argsort(inverse, kind="stable")
        starts = np.searchsorted(inverse[order], inverse[order])
        rank = np.empty(len(untracked), dtype=np.int64)
        rank[order] = np.arange(len(untracked)) - starts
        extra = [f"individual{k + 1}" for k in range(int(rank.max()) + 1)]
        extra_names = []
        for e in extra:
            while e in names or e in extra_names:
                e += "_"
            extra_names.append(e)
        ind[untracked] = len(names) + rank
        names = names + extra_names
    # DLC puts the unique-bodyparts block last
    if UNIQUE_INDIVIDUAL in names and names[-1] != UNIQUE_INDIVIDUAL:
        old = names.index(UNIQUE_INDIVIDUAL)
        perm = [i for i in range(len(names)) if i != old] + [old]
        remap = np.empty(len(names), dtype=np.int64)
        remap[perm] = np.arange(len(names))
        names = [names[i] for i in perm]
        ind = remap[ind]
    return names, ind


def _frame_key(video: Video, frame: int, root: Path) -> tuple[str, ...]:
    if video.backend == "images" and isinstance(video.path, list):
        if not 0 <= frame < len(video.path):
            raise ValueError(f"frame {frame} is outside the {len(video.path)} images of video {video.name!r}")
        rel = _posix_relpath(video.path[frame], root)
    else:
        stem = Path(video.filename.replace("\\", "/")).stem or "video"
        rel = f"labeled-data/{stem}/img{frame:05d}.png"
    return tuple(rel.split("/"))


def _extract_frames(labels: Labels, pairs: np.ndarray, keys: list[tuple[str, ...]], root: Path) -> None:
    import cv2

    from napari_posetrack.core.video import open_video

    by_video: dict[int, list[tuple[int, tuple[str, ...]]]] = {}
    for (v, f), key in zip(pairs, keys):
        if labels.videos[int(v)].backend != "images":
            by_video.setdefault(int(v), []).append((int(f), key))
    for v, items in by_video.items():
        with open_video(labels.videos[v]) as reader:
            for f, key in items:
                image = reader.frame(f)
                if image.shape[-1] == 3:
                    image = image[..., ::-1]  # RGB -> BGR for OpenCV
                ok, buf = cv2.imencode(".png", image)
                if not ok:
                    raise ValueError(f"could not encode frame {f} of {labels.videos[v].name} as PNG")
                target = root.joinpath(*key)
                with atomic_write(target) as tmp:
                    tmp.write_bytes(buf.tobytes())


def _three_part(key: tuple[str, ...]) -> tuple[str, str, str]:
    """A row key as DeepLabCut 2.3's three index cells (leading folders joined, blanks in front)."""
    if len(key) >= 3:
        return ("/".join(key[:-2]), key[-2], key[-1])
    return tuple([""] * (3 - len(key)) + list(key))  # type: ignore[return-value]


def _format_value(v: float) -> str:
    return "" if np.isnan(v) else repr(float(v))


def _write_csv_table(table: _Table, path: Path) -> None:
    n_index = 3 if table.index_style == "multi" else 1
    pad = [""] * (n_index - 1)
    scorers = table.column_scorers or [table.scorer] * len(table.columns)
    level_rows = [["scorer", *pad] + list(scorers)]
    if table.multianimal:
        level_rows.append(["individuals", *pad] + [str(c[0]) for c in table.columns])
    level_rows.append(["bodyparts", *pad] + [c[1] for c in table.columns])
    level_rows.append(["coords", *pad] + [c[2] for c in table.columns])
    with atomic_write(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerows(level_rows)
        for key, row in zip(table.keys, table.values):
            if n_index == 3:
                key_cells = list(_three_part(key))
            else:
                key_cells = ["/".join(key)]
            writer.writerow(key_cells + [_format_value(v) for v in row])


def _write_h5_table(table: _Table, path: Path) -> None:
    import pandas as pd

    names = (
        ["scorer", "individuals", "bodyparts", "coords"]
        if table.multianimal
        else ["scorer", "bodyparts", "coords"]
    )
    tuples = [
        ((table.scorer, str(c[0]), c[1], c[2]) if table.multianimal else (table.scorer, c[1], c[2]))
        for c in table.columns
    ]
    columns = pd.MultiIndex.from_tuples(tuples, names=names)
    if table.index_style == "multi":
        index: Any = pd.MultiIndex.from_tuples([_three_part(k) for k in table.keys])
    else:
        index = pd.Index(["/".join(k) for k in table.keys])
    df = pd.DataFrame(table.values, index=index, columns=columns)
    with atomic_write(path) as tmp:
        # PyTables' "table" layout cannot hold a row MultiIndex together with column levels
        df.to_hdf(tmp, key=H5_KEY, mode="w", format="fixed" if table.index_style == "multi" else "table")
