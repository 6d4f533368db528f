"""Merging labels files: split a real file by frame into two halves and merge them back."""

from __future__ import annotations

import numpy as np
import pytest

from napari_posetrack.core.errors import FileFormatError
from napari_posetrack.core.io import load_labels, save_labels
from napari_posetrack.core.labels import assert_labels_equal
from napari_posetrack.core.tools.merge import merge_files


def test_merge_two_halves_gives_back_the_whole(flies, tmp_path):
    whole = load_labels(flies / "clip.2node.slp")
    frames = whole.instances.frame
    middle = int(np.median(frames))
    first, second = tmp_path / "first.slp", tmp_path / "second.slp"
    save_labels(whole.subset(np.flatnonzero(frames <= middle)), first)
    save_labels(whole.subset(np.flatnonzero(frames > middle)), second)

    summary = merge_files([first, second], tmp_path / "merged.slp")

    merged = load_labels(tmp_path / "merged.slp")
    assert summary["files"] == 2
    assert summary["instances"] == whole.n_instances == merged.n_instances
    assert summary["added"] == int((frames > middle).sum())
    assert_labels_equal(whole, merged)


def test_merge_refuses_different_skeletons_naming_both_files(flies, tmp_path):
    out = tmp_path / "merged.slp"
    with pytest.raises(FileFormatError) as info:
        merge_files([flies / "clip.2node.slp", flies / "clip.slp"], out)
    message = str(info.value)
    assert "clip.2node.slp" in message and "clip.slp" in message
    assert not out.exists()


def test_cli_subcommand(flies, tmp_path):
    import argparse

    from napari_posetrack.core.tools.merge import add_merge_parser

    parser = argparse.ArgumentParser(prog="posetrack")
    add_merge_parser(parser.add_subparsers(dest="command"))
    out = tmp_path / "merged.slp"
    args = parser.parse_args(["merge", str(flies / "clip.2node.slp"), "-o", str(out), "--quiet"])
    assert args.func(args) == 0
    assert_labels_equal(load_labels(flies / "clip.2node.slp"), load_labels(out))
