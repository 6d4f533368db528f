"""Merge several labels files into one: ``posetrack merge A.slp B.slp ... -o OUT.slp``."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from napari_posetrack.core.errors import FileFormatError
from napari_posetrack.core.labels import Labels


def merge_files(
    paths: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    search_paths: Sequence[str | os.PathLike[str]] = (),
) -> dict[str, Any]:
    """Load every labels file in ``paths``, merge them in order with ``Labels.merge`` and save to ``out``.

    The first file is the base; user instances of later files replace matching predictions of earlier
    ones (see ``Labels.merge``). The output is written atomically by ``save_labels``.

    Returns
    -------
    dict
        ``{"files": n, "instances": total rows, "added": rows merged in,
        "replaced_predictions": predictions dropped, "videos": n videos, "output": str}``.

    Raises
    ------
    FileFormatError
        Fewer than one input, or two files whose skeletons have different nodes (both are named).
    """
    from napari_posetrack.core.io import load_labels, save_labels

    files = [Path(p) for p in paths]
    if not files:
        raise FileFormatError(out, "no input files to merge")
    first = load_labels(files[0], search_paths=search_paths)
    merged, summary = _merge_in(first, files[1:], search_paths, f"those of {files[0]}")
    save_labels(merged, out)
    return {**summary, "files": len(files), "output": os.fspath(out)}


def merge_into(
    base: Labels,
    paths: Sequence[str | os.PathLike[str]],
    *,
    search_paths: Sequence[str | os.PathLike[str]] = (),
) -> tuple[Labels, dict[str, Any]]:
    """Merge labels files into a copy of ``base`` (e.g. the open project), in order.

    Same rules as :func:`merge_files`; ``base`` is not modified.

    Returns
    -------
    (Labels, dict)
        The merged copy and a summary ``{"files", "instances", "added", "replaced_predictions",
        "videos"}`` (``files`` counts the inputs, ``base`` not included).

    Raises
    ------
    FileFormatError
        A file's skeleton has other nodes than ``base`` (both are named).
    MissingFileError
        A file does not exist.
    """
    return _merge_in(base.copy(), paths, search_paths, "the open project's")


def _merge_in(
    merged: Labels,
    paths: Sequence[str | os.PathLike[str]],
    search_paths: Sequence[str | os.PathLike[str]],
    base_name: str,
) -> tuple[Labels, dict[str, Any]]:
    """Merge each file of ``paths`` into ``merged`` in place; ``base_name`` names it in errors."""
    from napari_posetrack.core.io import load_labels

    added = replaced = 0
    for path in paths:
        other = load_labels(path, search_paths=search_paths)
        if not merged.skeleton.same_nodes(other.skeleton):
            raise FileFormatError(
                path,
                f"skeleton nodes {list(other.skeleton.nodes)} differ from {base_name} "
                f"{list(merged.skeleton.nodes)}; cannot merge",
            )
        summary = merged.merge(other)
        added += int(summary["added"])
        replaced += int(summary["replaced_predictions"])
    return merged, {
        "files": len(paths),
        "instances": merged.n_instances,
        "added": added,
        "replaced_predictions": replaced,
        "videos": len(merged.videos),
    }


def add_merge_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``merge`` subcommand on an argparse ``subparsers`` object."""
    p = subparsers.add_parser(
        "merge",
        help="merge several labels files into one",
        description="Merge labels files (same skeleton nodes); later user labels replace earlier predictions.",
    )
    p.add_argument("inputs", nargs="+", help="labels files to merge, the first is the base")
    p.add_argument("-o", "--output", required=True, help="where to write the merged labels")
    p.add_argument(
        "--search-path",
        dest="search_paths",
        action="append",
        default=[],
        help="folder to look for moved videos",
    )
    p.add_argument("--quiet", action="store_true", help="print no summary")
    p.set_defaults(func=run_merge)
    return p


def run_merge(args: argparse.Namespace) -> int:
    """Entry point of ``posetrack merge``."""
    summary = merge_files(args.inputs, args.output, search_paths=args.search_paths)
    if not args.quiet:
        print(
            f"merged {summary['files']} files: {summary['instances']} instances "
            f"({summary['replaced_predictions']} predictions replaced) -> {summary['output']}"
        )
    return 0
