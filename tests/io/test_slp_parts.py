"""SLEAP files, every part kept (issue #11 item 4), with sleap-io 0.9.5 as the oracle.

A file sleap-io writes with every part it knows (negative and empty frames, ROIs, masks, bounding
boxes, centroids, label images, identities, categories, embeddings, events, recording sessions
with 3D points) goes through our reader, an edit and our writer, and sleap-io must read back the
same parts, re-linked to what the edit left. Unknown datasets and attributes come back unchanged,
embedded frames stored as pixel arrays are read, and format 3 files are refused by name.
"""

from __future__ import annotations

import copy
import json
import shutil
import sys
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest

from napari_posetrack.core.errors import FileFormatError
from napari_posetrack.core.io.slp import NEWEST_KNOWN_FORMAT, load_slp, save_slp
from napari_posetrack.core.io.slp_carry import CARRY_KEY, SlpCarried
from napari_posetrack.core.io.slp_embedded import EmbeddedFrameReader
from napari_posetrack.core.labels import USER, Labels

sys.path.insert(0, str(Path(__file__).parent))
from sleap_oracle import assert_same_as_sleap_io
from sleap_parts import parts_of, save_rich_file

sio = pytest.importorskip("sleap_io")
pytest.importorskip("shapely")


def quiet_load(path) -> Labels:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return load_slp(path)


def sio_load(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sio.load_slp(str(path), open_videos=False)


@pytest.fixture
def rich(flies, tmp_path) -> Path:
    return save_rich_file(flies, tmp_path / "rich.slp")


def row_of(lab: Labels, video: int, frame: int, track: str) -> int:
    names = [t.name for t in lab.tracks]
    rows = lab.rows(video=video, frame=frame, track=names.index(track))
    assert len(rows) == 1
    return int(rows[0])


# --------------------------------------------------------------------------- every part, no edit


def test_every_part_survives_our_load_and_save(rich, tmp_path):
    lab = load_slp(rich)
    assert isinstance(lab.provenance[CARRY_KEY], SlpCarried)
    out = tmp_path / "ours.slp"
    save_slp(lab, out)
    theirs, ours = sio_load(rich), sio_load(out)
    assert_same_as_sleap_io(lab, ours)
    expected, got = parts_of(theirs), parts_of(ours)
    for part in expected:
        assert got[part] == expected[part], part
    # the parts are really there (a test of the oracle helper, too)
    assert expected["frames"][(0, 9)] == (0, True) and expected["frames"][(0, 12)] == (0, False)
    assert len(expected["rois"]) == 1 and len(expected["static_rois"]) == 1 and len(expected["masks"]) == 2
    assert expected["sessions"][0][2][3][0][2] == np.arange(9.0).reshape(3, 3).tolist()
    assert ours.provenance["made_by"] == "tests/io/sleap_parts.py"
    with h5py.File(out, "r") as f:
        assert float(f["metadata"].attrs["format_id"]) == 2.8  # readers look for the 2.x parts


def test_saving_twice_keeps_everything(rich, tmp_path):
    """A saved file is itself a source: load -> save -> load -> save gives the same parts."""
    first, second = tmp_path / "first.slp", tmp_path / "second.slp"
    save_slp(load_slp(rich), first)
    save_slp(quiet_load(first), second)
    assert parts_of(sio_load(second)) == parts_of(sio_load(rich))


# --------------------------------------------------------------------------- edits re-link the parts


def test_deleted_instances_unlink_and_frames_of_annotations_stay(rich, tmp_path):
    lab = load_slp(rich)
    expected = parts_of(sio_load(rich))
    b0 = (0, 3, "male", "user")
    p0 = (0, 4, "female", "predicted")
    lab.delete([row_of(lab, 0, 3, "male"), row_of(lab, 0, 4, "female")])
    lab.add_instances(0, 20, np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]), kind=USER)
    out = tmp_path / "edited.slp"
    save_slp(lab, out)
    got = parts_of(sio_load(out))

    def unlink(item):
        return tuple(None if x in (b0, p0) else x for x in item)

    expected["frames"].update({(0, 3): (1, False), (0, 4): (0, False), (0, 20): (1, False)})
    for part in ("rois", "masks", "bboxes", "centroids"):
        expected[part] = sorted((unlink(x) for x in expected[part]), key=repr)
    del expected["instance_links"][b0]  # its identity link goes with it
    session = expected["sessions"][0][2][3]
    session[1] = ((("right", (1, 3, "male", "user")),), *session[1][1:])
    expected["sessions"][0][2][3] = sorted(session)
    for part in expected:
        assert got[part] == expected[part], part
    assert got["bboxes"][0][4] is None and got["frames"][(0, 4)] == (0, False)


def test_retracking_keeps_the_tracks_annotations_name(rich, tmp_path):
    """Tracks reordered, and one dropped that only a label image used: references follow the names."""
    lab = load_slp(rich)
    names = [t.name for t in lab.tracks]
    assert names == ["female", "male", "ghost"]
    new_order = [1, 0]  # male, female; ghost is gone from the store
    remap = np.full(len(names) + 1, -1)
    remap[new_order] = np.arange(len(new_order))
    lab.instances.track[:] = remap[lab.instances.track]
    lab.tracks = [lab.tracks[i] for i in new_order]
    out = tmp_path / "retracked.slp"
    save_slp(lab, out)
    assert [t.name for t in sio_load(out).tracks] == ["male", "female", "ghost"]
    assert parts_of(sio_load(out)) == parts_of(sio_load(rich))


def test_skeleton_edits_move_3d_points_with_their_nodes(rich, tmp_path):
    from napari_posetrack.core.skeleton_edit import add_node, apply_skeleton_edit, move_node

    lab = load_slp(rich)
    lab = apply_skeleton_edit(lab, move_node(lab.skeleton, "abdomen", 0))  # abdomen, head, thorax
    lab = apply_skeleton_edit(lab, add_node(lab.skeleton, "tail", parent="abdomen"))
    out = tmp_path / "nodes.slp"
    save_slp(lab, out)
    points = parts_of(sio_load(out))["sessions"][0][2][3]
    with_3d = [g for g in points if g[2] is not None]
    old = np.arange(9.0).reshape(3, 3)  # rows head, thorax, abdomen
    np.testing.assert_array_equal(
        np.asarray(with_3d[0][2], float), np.vstack([old[[2, 0, 1]], np.full(3, np.nan)])
    )


def test_edits_through_napari_layers_keep_the_parts(rich, tmp_path):
    """The GUI path: store -> Points layers -> edits -> store -> save."""
    from napari_posetrack.layers import labels_to_points, points_layers_to_labels

    lab = load_slp(rich)
    layers = [labels_to_points(lab, v) for v in range(len(lab.videos))]
    data, features, metadata = layers[0]
    features = {k: np.asarray(v) for k, v in features.items()}
    keep = ~((data[:, 0] == 3) & (features["track"] == "male"))  # delete b0's points
    layers[0] = (data[keep], {k: v[keep] for k, v in features.items()}, metadata)
    back = points_layers_to_labels(layers)
    assert isinstance(back.provenance[CARRY_KEY], SlpCarried)
    out = tmp_path / "from_layers.slp"
    save_slp(back, out)
    got = parts_of(sio_load(out))
    assert (0, 3, "male", "user") not in got["instance_links"]
    assert got["rois"][0][4] is None  # the ROI was tied to b0
    assert got["centroids"] == parts_of(sio_load(rich))["centroids"]  # tied to a0, which stayed


def test_copies_share_the_record_and_other_writers_skip_it(rich, tmp_path):
    from napari_posetrack.core.io.analysis_h5 import save_analysis_h5

    lab = load_slp(rich)
    assert copy.deepcopy(lab.provenance)[CARRY_KEY] is lab.provenance[CARRY_KEY]
    assert lab.copy().provenance[CARRY_KEY] is lab.provenance[CARRY_KEY]
    save_analysis_h5(lab, tmp_path / "a.h5")
    with h5py.File(tmp_path / "a.h5", "r") as f:
        assert CARRY_KEY not in json.loads(f["provenance"][()])
    with h5py.File(tmp_path / "ours.slp", "w"):
        pass
    save_slp(lab, tmp_path / "ours.slp")
    assert CARRY_KEY not in sio_load(tmp_path / "ours.slp").provenance


# --------------------------------------------------------------------------- sessions of older files


def test_inline_sessions_of_older_files_are_relinked(rich, tmp_path):
    """Before format 2.8, frame groups lived inside sessions_json; they are re-linked there too."""
    old = tmp_path / "inline.slp"
    shutil.copy(rich, old)
    with h5py.File(old, "r+") as f:
        sd = f["session_data"]
        groups, members = sd["instance_groups"][()], sd["instance_group_members"][()]
        points = sd["points_3d"][()]
        session = json.loads(f["sessions_json"][0])
        fg_rows = sd["frame_groups"][()][session.pop("fg_start") : session.pop("fg_end")]
        session["frame_group_dicts"] = [
            {
                "frame_idx": int(fg["frame_idx"]),
                "instance_groups": [
                    {
                        "camcorder_to_lf_and_inst_idx_map": {
                            str(m["camera"]): [int(m["lf"]), int(m["inst"])]
                            for m in members[g["member_start"] : g["member_end"]]
                        },
                        **(
                            {"points": points[g["pts3d_start"] : g["pts3d_end"]].tolist()}
                            if g["pts3d_start"] >= 0
                            else {}
                        ),
                    }
                    for g in groups[fg["ig_start"] : fg["ig_end"]]
                ],
            }
            for fg in fg_rows
        ]
        del f["session_data"]
        f["sessions_json"][0] = json.dumps(session)
        f["metadata"].attrs["format_id"] = 2.7
    before = parts_of(sio_load(old))["sessions"][0][2]
    lab = load_slp(old)
    lab.delete([row_of(lab, 1, 3, "female")])  # a1, seen by the right camera in group 0
    out = tmp_path / "inline_out.slp"
    save_slp(lab, out)
    after = parts_of(sio_load(out))["sessions"][0][2]
    assert after[3][1] == before[3][1]
    assert after[3][0][0] == (("left", (0, 3, "female", "user")),)


# --------------------------------------------------------------------------- unknown members, attributes


def add_unknowns(path: Path) -> None:
    with h5py.File(path, "r+") as f:
        grp = f.create_group("my_lab")
        ds = grp.create_dataset("notes", data=np.arange(12, dtype=np.int16).reshape(3, 4), compression="gzip")
        ds.attrs["author"] = "me"
        grp.attrs["version"] = 7
        f.create_dataset("calibration_blob", data=np.frombuffer(b"\x00\x01binary", np.uint8))
        f.attrs["lab_tag"] = "rig-3"
        f["frames"].attrs["checked_by"] = "qa"
        f["metadata"].attrs["extra_flag"] = np.int64(1)
        md = json.loads(f["metadata"].attrs["json"])
        md["future_key"] = {"nested": [1, 2]}
        md["negative_anchors"] = {"0": [[5, 10.0, 20.0]]}
        f["metadata"].attrs["json"] = np.bytes_(json.dumps(md))


def snapshot_unknowns(path: Path) -> dict:
    with h5py.File(path, "r") as f:
        md = json.loads(f["metadata"].attrs["json"])
        return {
            "notes": f["my_lab/notes"][()].tolist(),
            "notes_attrs": dict(f["my_lab/notes"].attrs),
            "notes_gzip": f["my_lab/notes"].compression,
            "group_attrs": {k: int(v) for k, v in f["my_lab"].attrs.items()},
            "blob": bytes(f["calibration_blob"][()]),
            "root": dict(f.attrs),
            "frames_attr": dict(f["frames"].attrs),
            "metadata_flag": int(f["metadata"].attrs["extra_flag"]),
            "future_key": md["future_key"],
            "negative_anchors": md["negative_anchors"],
        }


@pytest.mark.parametrize("source", ["minimal_instance.slp", "rich"])
def test_unknown_datasets_and_attributes_come_back_unchanged(flies, rich, tmp_path, source):
    src = tmp_path / "with_unknowns.slp"
    shutil.copy(rich if source == "rich" else flies / source, src)
    add_unknowns(src)
    expected = snapshot_unknowns(src)
    lab = quiet_load(src)
    lab.add_instances(0, 77, np.full((lab.n_nodes, 2), 3.0))  # an edit in between
    out = tmp_path / "out.slp"
    save_slp(lab, out)
    assert snapshot_unknowns(out) == expected
    again = tmp_path / "again.slp"
    save_slp(quiet_load(out), again)
    assert snapshot_unknowns(again) == expected
    assert_same_as_sleap_io(quiet_load(again), sio_load(again))


def test_plain_files_carry_nothing(flies):
    assert CARRY_KEY not in load_slp(flies / "clip.2node.slp").provenance


# --------------------------------------------------------------------------- embedded pixel arrays


@pytest.mark.parametrize("channels", [1, 3])
def test_embedded_frames_stored_as_pixel_arrays(flies, tmp_path, channels):
    src = tmp_path / "raw.pkg.slp"
    shutil.copy(flies / "minimal_instance.pkg.slp", src)
    with EmbeddedFrameReader(quiet_load(src).videos[0]) as reader:
        gray = reader.frame(0)
    pixels = np.concatenate([gray, gray // 2, 255 - gray], axis=2)[:, :, :channels]
    with h5py.File(src, "r+") as f:
        del f["video0/video"]
        f["video0"].create_dataset("video", data=pixels[None])  # no "format": pixels, not PNG
        vj = json.loads(f["videos_json"][0])
        vj["backend"]["shape"] = [1100, 384, 384, channels]
        vj["backend"]["grayscale"] = channels == 1
        del f["videos_json"]
        f.create_dataset("videos_json", data=[json.dumps(vj)], dtype=h5py.string_dtype())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = sio.load_slp(str(src))
        np.testing.assert_array_equal(theirs.videos[0][0], pixels)
        theirs.videos[0].close()
    lab = quiet_load(src)
    with EmbeddedFrameReader(lab.videos[0]) as reader:
        assert reader.image_format == "hdf5" and reader.shape == (384, 384, channels)
        np.testing.assert_array_equal(reader.frame(0), pixels)
    out = tmp_path / "again.pkg.slp"
    save_slp(lab, out)
    with EmbeddedFrameReader(quiet_load(out).videos[0]) as reader:
        np.testing.assert_array_equal(reader.frame(0), pixels)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        back = sio.load_slp(str(out))
        np.testing.assert_array_equal(back.videos[0][0], pixels)
        back.videos[0].close()


def test_pixel_arrays_of_unsupported_types_are_refused_by_name(flies, tmp_path):
    src = tmp_path / "float.pkg.slp"
    shutil.copy(flies / "minimal_instance.pkg.slp", src)
    with h5py.File(src, "r+") as f:
        del f["video0/video"]
        f["video0"].create_dataset("video", data=np.zeros((1, 8, 8, 1), np.float32))
    with pytest.raises(FileFormatError, match="float32") as err:
        EmbeddedFrameReader(quiet_load(src).videos[0])
    assert str(src) in str(err.value)


# --------------------------------------------------------------------------- format 3


@pytest.mark.parametrize("format_id", [3.0, 3.1])
def test_format_3_is_refused_naming_both_versions(flies, tmp_path, format_id):
    path = tmp_path / "v3.slp"
    shutil.copy(flies / "minimal_instance.slp", path)
    with h5py.File(path, "r+") as f:
        f["metadata"].attrs["format_id"] = format_id
    with pytest.raises(FileFormatError) as err:
        load_slp(path)
    message = str(err.value)
    assert str(path) in message and f"format {format_id:g}" in message
    assert f"highest supported format is {NEWEST_KNOWN_FORMAT:g}" in message
    with pytest.raises(ValueError, match="newer than this version of sleap-io"):
        sio.load_slp(str(path), open_videos=False)  # the oracle refuses it as well


def test_later_2x_formats_are_read_and_their_additions_kept(flies, tmp_path):
    path = tmp_path / "v29.slp"
    shutil.copy(flies / "minimal_instance.slp", path)
    with h5py.File(path, "r+") as f:
        f["metadata"].attrs["format_id"] = 2.9
        f.create_dataset("new_in_2_9", data=np.arange(3))
    lab = quiet_load(path)
    out = tmp_path / "out.slp"
    save_slp(lab, out)
    with h5py.File(out, "r") as f:
        assert f["new_in_2_9"][()].tolist() == [0, 1, 2]
        assert float(f["metadata"].attrs["format_id"]) == pytest.approx(2.9)


def test_video_crops_are_kept_and_reported(flies, tmp_path):
    """sleap-io's virtual crops: we show whole frames (and say so) but write the crop back."""
    src = tmp_path / "cropped.slp"
    shutil.copy(flies / "minimal_instance.slp", src)
    with h5py.File(src, "r+") as f:
        f.create_dataset(
            "video_crops", data=np.bytes_(json.dumps([{"video": 0, "crop": [10, 20, 110, 220], "fill": 0}]))
        )
        f["metadata"].attrs["format_id"] = 2.3
    with pytest.warns(UserWarning, match=r"video 0 is shown cropped to x 10\.\.110, y 20\.\.220"):
        lab = load_slp(src, search_paths=[flies])
    out = tmp_path / "out.slp"
    save_slp(lab, out)
    assert sio_load(out).videos[0].backend_metadata["crop"] == [10, 20, 110, 220]
