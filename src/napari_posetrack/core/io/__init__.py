"""Reading and writing pose files: one module per format, one entry point for all.

:func:`load_labels` and :func:`save_labels` pick the format from the file name (and, where one
extension serves two formats, from the file's content or name):

============================  ==========  ===========================================
file                          format      module
============================  ==========  ===========================================
``*.slp``, ``*.pkg.slp``      ``slp``     :mod:`.slp` (SLEAP labels, embedded frames)
``CollectedData*.csv|h5``     ``dlc``     :mod:`.dlc` (DeepLabCut / Lightning Pose table)
``config.yaml``               ``dlc``     every ``labeled-data/*/CollectedData*`` of the project
other ``*.h5``, ``*.hdf5``    ``analysis`` :mod:`.analysis_h5` (SLEAP analysis HDF5)
other ``*.csv``               ``tidy``    :mod:`.analysis_h5` (one row per point; write only)
``*.json``                    ``skeleton`` :mod:`.skeleton_json` (a skeleton, no instances)
============================  ==========  ===========================================

When loading, an ``.h5`` file is told apart by content (an analysis file has ``tracks`` and
``node_names`` datasets; a DeepLabCut file is a pandas table) and a ``.csv`` by its first cell
(``scorer`` for DeepLabCut). Format modules are imported only when used, so importing this
package stays cheap.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from napari_posetrack.core.errors import FileFormatError, MissingFileError
from napari_posetrack.core.labels import Labels

FORMATS = ("slp", "dlc", "analysis", "tidy", "skeleton")
LABELS_SUFFIXES = (".slp", ".csv", ".h5", ".hdf5", ".yaml", ".yml", ".json")
_H5_SUFFIXES = (".h5", ".hdf5")

__all__ = [
    "FORMATS",
    "LABELS_SUFFIXES",
    "detect_format",
    "load_labels",
    "save_labels",
    "sniff_csv",
    "sniff_h5",
]


def sniff_csv(path: str | os.PathLike[str]) -> str | None:
    """``"dlc"`` when the first cell of a CSV is ``scorer`` (DeepLabCut header), ``"tidy"`` otherwise.

    Returns ``None`` when the file cannot be read as text.
    """
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            first = fh.readline(4096)
    except (OSError, UnicodeDecodeError):
        return None
    cell = first.split(",", 1)[0].strip().strip('"').lower()
    return "dlc" if cell == "scorer" else "tidy"


def sniff_h5(path: str | os.PathLike[str]) -> str | None:
    """``"analysis"`` (SLEAP analysis HDF5), ``"dlc"`` (pandas table) or ``None`` (neither / unreadable)."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            if "tracks" in f and "node_names" in f:
                return "analysis"
            for key in f:
                if "pandas_type" in f[key].attrs:
                    return "dlc"
    except (OSError, ValueError):
        return None
    return None


def _is_dlc_name(path: Path) -> bool:
    return path.name.lower().startswith("collecteddata")


def detect_format(path: str | os.PathLike[str], *, for_writing: bool = False) -> str:
    """The format of a labels file from its name (and its content when reading).

    Raises
    ------
    FileFormatError
        The extension is not a labels format, or an ``.h5`` file is neither kind.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix == ".slp":
        return "slp"
    if suffix == ".json":
        return "skeleton"
    if suffix in (".yaml", ".yml"):
        return "dlc"
    if suffix == ".csv":
        if for_writing or not p.is_file():
            return "dlc" if _is_dlc_name(p) else "tidy"
        return sniff_csv(p) or "tidy"
    if suffix in _H5_SUFFIXES:
        if for_writing or not p.is_file():
            return "dlc" if _is_dlc_name(p) else "analysis"
        kind = sniff_h5(p)
        if kind is None:
            raise FileFormatError(p, "HDF5 file is neither a SLEAP analysis file nor a DeepLabCut table")
        return kind
    raise FileFormatError(
        p, f"unknown labels format {suffix or '(no extension)'!r}; use one of {', '.join(LABELS_SUFFIXES)}"
    )


def _load_dlc_project(config: Path) -> Labels:
    """Every labelled folder of a DeepLabCut project (CSV preferred, it round-trips exactly)."""
    from napari_posetrack.core.io.dlc import load_dlc, load_dlc_config
    from napari_posetrack.core.io.dlc_inplace import project_tables

    load_dlc_config(config)  # a broken config is reported before any table is read
    tables = project_tables(config)
    if not tables:
        raise FileFormatError(config, "the project has no labeled-data/*/CollectedData_*.csv or .h5 file")
    parts = [load_dlc(table, config=config) for table in tables]
    # a table may hold body parts the config lacks (they load as extra nodes): every table gets
    # the union, in the order first seen, so that the tables can merge; absent nodes are empty
    nodes = list(dict.fromkeys(n for part in parts for n in part.skeleton.nodes))
    labels = _with_nodes(parts[0], nodes)
    for part in parts[1:]:
        labels.merge(_with_nodes(part, nodes))
    unique = [n for part in parts for n in part.provenance.get("dlc_uniquebodyparts", [])]
    if unique:
        labels.provenance["dlc_uniquebodyparts"] = list(dict.fromkeys(unique))
    labels.provenance["source"] = str(config)
    return labels


def _with_nodes(labels: Labels, nodes: list[str]) -> Labels:
    """``labels`` with the skeleton nodes ``nodes`` (a superset of its own, its edges kept)."""
    from napari_posetrack.core.labels import Skeleton

    own = labels.skeleton
    if own.nodes == nodes:
        return labels
    order = [own.node_index(n) if n in own.nodes else -1 for n in nodes]
    edges = [(nodes.index(own.nodes[a]), nodes.index(own.nodes[b])) for a, b in own.edges]
    symmetries = [(nodes.index(own.nodes[a]), nodes.index(own.nodes[b])) for a, b in own.symmetries]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # DLC skeletons may have several roots
        skeleton = Skeleton(nodes, edges, symmetries, name=own.name)
    labels.instances = labels.instances.reorder_nodes(order, len(nodes))
    labels.skeletons[0] = skeleton
    return labels


def load_labels(
    path: str | os.PathLike[str], *, search_paths: Sequence[str | os.PathLike[str]] = (), **kw: Any
) -> Labels:
    """Load a labels file of any supported format (see the module docstring).

    Parameters
    ----------
    path
        The file.
    search_paths
        Folders where videos that moved are looked for (file name and stored relative path).
    **kw
        Passed to the format's loader (e.g. ``config=`` for DeepLabCut tables).

    Raises
    ------
    MissingFileError
        ``path`` does not exist.
    FileFormatError
        Unknown extension, or a file that is not what its name says.
    """
    p = Path(path)
    if not p.exists():
        raise MissingFileError(p)
    fmt = detect_format(p)
    if fmt == "slp":
        from napari_posetrack.core.io.slp import load_slp

        return load_slp(p, search_paths=tuple(os.fspath(s) for s in search_paths), **kw)
    if fmt == "skeleton":
        from napari_posetrack.core.io.skeleton_json import load_skeleton_json

        return Labels(load_skeleton_json(p), provenance={"source": str(p)})
    if fmt == "dlc":
        if p.suffix.lower() in (".yaml", ".yml"):
            labels = _load_dlc_project(p)
        else:
            from napari_posetrack.core.io.dlc import load_dlc

            labels = load_dlc(p, **kw)
    elif fmt == "analysis":
        from napari_posetrack.core.io.analysis_h5 import load_analysis_h5

        labels = load_analysis_h5(p, **kw)
    else:
        raise FileFormatError(p, "a CSV that is not a DeepLabCut table (no 'scorer' header) cannot be loaded")
    if search_paths:
        from napari_posetrack.core.io.video_paths import resolve_video_paths

        resolve_video_paths(labels, p, search_paths, warn=False)
    return labels


def save_labels(
    labels: Labels, path: str | os.PathLike[str], *, format: str | None = None, **kw: Any
) -> None:
    """Write ``labels`` in the format named by ``format`` or, by default, by the file name.

    ``.csv``/``.h5`` files whose name starts with ``CollectedData`` are DeepLabCut tables (an
    existing one, or a project's ``config.yaml``, is saved in place: see
    :mod:`.dlc_inplace`); other
    ``.csv`` files get the tidy export and other ``.h5`` files the SLEAP analysis format. Every
    writer is atomic. ``**kw`` goes to the format's saver (``embed=`` for SLEAP, ``video=`` for
    analysis HDF5, ``scorer=`` for DeepLabCut, ...).

    Raises
    ------
    FileFormatError
        Unknown extension or format name.
    """
    p = Path(path)
    fmt = format or detect_format(p, for_writing=True)
    if fmt not in FORMATS:
        raise FileFormatError(p, f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    if fmt == "slp":
        from napari_posetrack.core.io.slp import save_slp

        save_slp(labels, p, **kw)
    elif fmt == "dlc":
        from napari_posetrack.core.io.dlc_inplace import is_dlc_project_file, save_dlc_in_place

        if not kw and is_dlc_project_file(p) and (p.is_file() or p.suffix.lower() in (".yaml", ".yml")):
            # an existing project file: merged in place, keeping everything it held
            save_dlc_in_place(labels, p)
        else:
            from napari_posetrack.core.io.dlc import save_dlc

            save_dlc(labels, p, **kw)
    elif fmt == "analysis":
        from napari_posetrack.core.io.analysis_h5 import save_analysis_h5

        save_analysis_h5(labels, p, **kw)
    elif fmt == "tidy":
        from napari_posetrack.core.io.analysis_h5 import save_tidy_csv

        save_tidy_csv(labels, p, **kw)
    else:
        from napari_posetrack.core.io.skeleton_json import save_skeleton_json

        save_skeleton_json(labels.skeleton, p, **kw)
