"""Labels <-> napari layer data: pure conversions, no Qt, no viewer."""

from __future__ import annotations

import numpy as np
import pytest

from napari_posetrack.core.labels import (
    NO_LINK,
    NO_TRACK,
    PREDICTED,
    USER,
    Labels,
    Skeleton,
    Suggestion,
    Video,
    assert_labels_equal,
)
from napari_posetrack.layers import (
    METADATA_KEY,
    POINT_FEATURES,
    PREDICTED_SYMBOL,
    USER_SYMBOL,
    blank_video_layer,
    empty_points_for_skeleton,
    frame_window,
    labels_to_layers,
    labels_to_points,
    labels_to_tracks,
    layers_to_labels,
    points_layers_to_labels,
    points_per_frame,
    skeleton_vectors,
    track_paths,
    unmatched_rows,
)


def assert_store_identical(a: Labels, b: Labels) -> None:
    """Everything, not only what assert_labels_equal compares: ids, links, flags, videos, metadata."""
    assert_labels_equal(a, b, check_ids=True)
    assert a.skeleton == b.skeleton
    assert [s for s in a.skeletons[1:]] == [s for s in b.skeletons[1:]]
    assert [(t.name, t.spawned_on, t.color) for t in a.tracks] == [(t.name, t.spawned_on, t.color) for t in b.tracks]
    assert a.videos == b.videos
    assert a.suggestions == b.suggestions
    assert a.provenance == b.provenance
    ta, tb = a.instances, b.instances
    oa, ob = np.argsort(ta.instance_id), np.argsort(tb.instance_id)
    for name in (
        "tracking_score",
        "from_predicted",
        "rejected",
        "complete",
        "visible",
        "kind",
        "track",
        "frame",
        "video",
    ):
        assert np.array_equal(ta.column(name)[oa], tb.column(name)[ob]), name
    for name in ("score", "point_scores", "points"):
        assert np.array_equal(ta.column(name)[oa], tb.column(name)[ob], equal_nan=True), name


def make_store() -> Labels:
    """Two videos, two tracks, user and predicted instances with every corner case a file can hold."""
    sk = Skeleton(["head", "thorax", "tail"], [("thorax", "head"), ("thorax", "tail")], [], name="fly")
    lab = Labels(
        sk,
        videos=[
            Video("/nowhere/a.mp4", n_frames=20, shape=(64, 48, 1), fps=25.0),
            Video("/nowhere/b.mp4", n_frames=5),
        ],
        suggestions=[Suggestion(0, 3), Suggestion(1, 2, 1)],
        provenance={"source": "hand-built", "n": [1, 2]},
    )
    lab.add_track("female")
    lab.add_track("male")
    p = np.array([[10.0, 20.0], [12.0, 22.0], [14.5, 24.25]])
    # user instance, tracked, tail occluded (coordinates kept, visible False)
    lab.add_instances(0, 0, p, track=0, visible=[True, True, False])
    # user instance with a missing node (NaN) and the 'complete' flag on some nodes
    q = p + 30
    q[2] = np.nan
    lab.add_instances(0, 0, q, track=1, complete=[True, True, False])
    # predictions with point scores and instance scores, one untracked
    lab.add_instances(
        0,
        [1, 1],
        np.stack([p + 1, p + 31]),
        kind="predicted",
        track=[0, NO_TRACK],
        score=[0.9, 0.4],
        point_scores=[[0.9, 0.8, 0.1], [0.5, 0.4, 0.3]],
        tracking_score=[0.7, 0.2],
    )
    # a prediction shadowed by the user instance made from it: hidden in the view, kept in the store
    (pid,) = lab.add_instances(
        0, 2, p + 2, kind="predicted", score=0.8, point_scores=[0.7, 0.6, 0.5], track=0
    )
    lab.promote_prediction(int(lab.row_of_id(pid)[0]))
    # an instance with no point at all (a placeholder) and a missing point that keeps a score
    lab.add_instances(0, 3, np.full((3, 2), np.nan), kind="predicted", score=0.1)
    r = p + 5
    r[1] = np.nan
    lab.add_instances(0, 4, r, kind="predicted", score=0.3, point_scores=[0.2, 0.05, 0.3])
    # the second video
    lab.add_instances(1, [0, 2], np.stack([p + 100, p + 200]), track=[1, 0])
    return lab


def test_points_schema():
    lab = make_store()
    data, features, metadata = labels_to_points(lab, 0)
    assert data.shape[1] == 3
    assert set(POINT_FEATURES) <= set(features)
    assert all(len(v) == len(data) for v in features.values())
    # rows: 3 + 2 (missing tail absent) + 3 + 3 + 3 (promoted user) + 0 (placeholder) + 2 ; shadowed hidden
    assert len(data) == 16
    first = lab.instances.instance_id[0]
    mine = features["instance"] == first
    assert data[mine].tolist() == [[0, 20, 10], [0, 22, 12], [0, 24.25, 14.5]]  # [frame, y, x]
    assert features["node"][mine].tolist() == ["head", "thorax", "tail"]
    assert features["visible"][mine].tolist() == [True, True, False]
    assert set(features["track"][mine]) == {"female"}
    assert set(features["kind"]) == {"user", "predicted"}
    assert np.isnan(features["score"][features["kind"] == "user"]).all()
    pred = features["kind"] == "predicted"
    assert np.isfinite(features["score"][pred]).all()
    assert "" in set(features["track"])  # the untracked prediction
    assert metadata[METADATA_KEY]["video_index"] == 0
    assert metadata[METADATA_KEY]["skeleton"]["nodes"] == ["head", "thorax", "tail"]


def test_styles_occluded_hollow_and_symbol_by_kind():
    lab = make_store()
    layers, _missing = labels_to_layers(lab)
    pts = next(kw for _, kw, kind in layers if kind == "points")
    f = pts["features"]
    face, border = pts["face_color"], pts["border_color"]
    hidden = ~f["visible"]
    assert hidden.any()
    assert np.all(face[hidden, 3] == 0) and np.all(border[hidden, 3] == 1)
    assert np.all(face[~hidden, 3] == 1)
    sym = np.asarray(pts["symbol"])
    assert set(sym[f["kind"] == "user"]) == {USER_SYMBOL}
    assert set(sym[f["kind"] == "predicted"]) == {PREDICTED_SYMBOL}
    # tracked: colour by track, so both female points share one colour and male another
    fem = (f["track"] == "female") & f["visible"]
    male = (f["track"] == "male") & f["visible"]
    assert len(np.unique(face[fem], axis=0)) == 1
    assert not np.allclose(face[fem][0], face[male][0])


def test_colour_by_node_when_untracked():
    lab = make_store()
    lab.remove_tracks()
    _data, features, _metadata = labels_to_points(lab, 0)
    layers, _ = labels_to_layers(lab, load_video=False)
    face = next(kw for _, kw, k in layers if k == "points")["face_color"]
    vis = features["visible"]
    heads = face[(features["node"] == "head") & vis]
    assert len(np.unique(heads[:, :3], axis=0)) == 1
    assert not np.allclose(heads[0], face[(features["node"] == "thorax") & vis][0])
    assert not any(k == "tracks" for _, _, k in layers)


def test_single_video_round_trip_is_exact():
    lab = make_store()
    for v in range(2):
        back = layers_to_labels(*labels_to_points(lab, v))
        assert_store_identical(lab.subset(lab.rows(video=v)), back)


def test_all_videos_round_trip_through_layer_tuples():
    lab = make_store()
    layers, missing = labels_to_layers(lab)
    assert missing == ["video not found: /nowhere/a.mp4", "video not found: /nowhere/b.mp4"]
    assert not any(kind == "image" for _, _, kind in layers)
    names = [kw["name"] for _, kw, _ in layers]
    assert names == [
        "tracks: a.mp4",
        "skeleton: a.mp4",
        "poses: a.mp4",
        "tracks: b.mp4",
        "skeleton: b.mp4",
        "poses: b.mp4",
    ]
    points = [(d, kw["features"], kw["metadata"]) for d, kw, k in layers if k == "points"]
    assert_store_identical(lab, points_layers_to_labels(points))


def test_edits_are_applied():
    lab = make_store()
    data, features, metadata = labels_to_points(lab, 0)
    data = data.copy()
    features = {k: v.copy() for k, v in features.items()}
    ids = lab.instances.instance_id
    first, second, pred = int(ids[0]), int(ids[1]), int(ids[2])
    # move the first instance's head
    row = np.flatnonzero((features["instance"] == first) & (features["node"] == "head"))[0]
    data[row, 1:] = [99.0, 77.0]
    # delete one point of the prediction and every point of the second user instance
    drop = ((features["instance"] == pred) & (features["node"] == "tail")) | (features["instance"] == second)
    data, features = data[~drop], {k: v[~drop] for k, v in features.items()}
    # rename the prediction's track to a new identity
    features["track"][features["instance"] == pred] = "intruder"
    # add: a point copied from the first instance but on frame 7 (napari copies the last features),
    # a second 'thorax' for the first instance on its own frame, and a point with no instance (NaN)
    add = np.array([[7, 1.0, 2.0], [0, 3.0, 4.0], [8, 5.0, 6.0]])
    new_feat = {
        "instance": np.array([first, first, np.nan]),
        "track": np.array(["female", "female", ""], dtype=object),
        "node": np.array(["head", "thorax", "tail"], dtype=object),
        "score": np.array([np.nan, np.nan, np.nan]),
        "kind": np.array(["user", "user", "user"], dtype=object),
        "visible": np.array([True, True, True]),
        "rejected": np.array(["", "", ""], dtype=object),
    }
    data = np.concatenate([data, add])
    features = {k: np.concatenate([features[k].astype(object), new_feat[k].astype(object)]) for k in features}
    back = layers_to_labels(data, features, metadata)

    t = back.instances
    r0 = back.row_of_id(first)[0]
    assert t.points[r0, 0].tolist() == [77.0, 99.0]  # x, y
    assert t.frame[r0] == 0 and t.points[r0, 1].tolist() == [12.0, 22.0]
    assert back.row_of_id(second)[0] == -1  # every point deleted -> instance gone
    rp = back.row_of_id(pred)[0]
    assert np.isnan(t.points[rp, 2]).all() and not t.visible[rp, 2] and np.isnan(t.point_scores[rp, 2])
    assert t.score[rp] == pytest.approx(0.9) and t.tracking_score[rp] == pytest.approx(0.7)
    assert back.tracks[t.track[rp]].name == "intruder" and len(back.tracks) == 3
    new = t.instance_id >= lab.instances.next_id
    assert new.sum() == 3
    assert sorted(t.frame[new].tolist()) == [0, 7, 8]
    dup = np.flatnonzero(new & (t.frame == 0))[0]
    assert t.points[dup, 1].tolist() == [4.0, 3.0] and back.tracks[t.track[dup]].name == "female"
    assert t.kind[new].tolist() == [USER] * 3
    # untouched instances stay exactly as they were, the hidden ones included
    untouched = [i for i in ids.tolist() if i not in (first, second, pred)]
    for i in untouched:
        ra, rb = lab.row_of_id(i)[0], back.row_of_id(i)[0]
        if lab.instances.video[ra] != 0:
            continue
        assert np.array_equal(lab.instances.points[ra], t.points[rb], equal_nan=True)
        assert lab.instances.kind[ra] == t.kind[rb] and lab.instances.track[ra] == t.track[rb]
        assert lab.instances.from_predicted[ra] == t.from_predicted[rb]


def test_unknown_node_and_kind_rejected():
    lab = make_store()
    data, features, metadata = labels_to_points(lab, 0)
    bad = dict(features, node=np.where(features["node"] == "head", "wing", features["node"]))
    with pytest.raises(ValueError, match="wing"):
        layers_to_labels(data, bad, metadata)
    bad = dict(features, kind=np.full(len(data), "guess", dtype=object))
    with pytest.raises(ValueError, match="guess"):
        layers_to_labels(data, bad, metadata)


def test_skeleton_vectors_follow_points():
    lab = make_store()
    data, features, metadata = labels_to_points(lab, 1)
    vectors, colours = skeleton_vectors(data, features, metadata)
    assert vectors.shape == (4, 2, 3) and colours.shape == (4, 4)  # 2 instances x 2 edges
    # thorax -> head of the first instance: starts at thorax, points to head
    assert vectors[0, 0].tolist() == [0, 122.0, 112.0]
    assert vectors[0, 1].tolist() == [0, -2.0, -2.0]
    # an instance missing one end of an edge draws only the other edge
    data0, f0, m0 = labels_to_points(lab, 0)
    v0, _ = skeleton_vectors(data0, f0, m0)
    second = f0["instance"] == lab.instances.instance_id[1]
    assert (np.isin(v0[:, 0, 1:], data0[second, 1:]).all(axis=1)).sum() == 1
    # move a point: the vector moves with it
    data[0, 1:] += 10
    moved, _ = skeleton_vectors(data, features, metadata)
    assert moved[0, 1].tolist() == [0, 8.0, 8.0]


def test_track_paths_one_row_per_identity_and_frame():
    lab = make_store()
    data, features, metadata = labels_to_points(lab, 0)
    tracks, props = track_paths(data, features, metadata)
    pairs = tracks[:, :2]
    assert len(np.unique(pairs, axis=0)) == len(pairs)
    assert set(props["track"]) == {"female", "male"}
    # frame 0, female: centroid of the first instance's three points
    row = np.flatnonzero((tracks[:, 0] == 0) & (tracks[:, 1] == 0))[0]
    assert tracks[row, 2:].tolist() == pytest.approx([22.0 + 0.25 / 3, 12.0 + 0.5 / 3])
    # anchor node instead of centroid
    anchored, _ = track_paths(data, features, metadata, anchor="thorax")
    assert anchored[row, 2:].tolist() == [22.0, 12.0]
    # frame 2: the user instance wins over nothing else (its prediction is hidden)
    assert ((tracks[:, 0] == 0) & (tracks[:, 1] == 2)).sum() == 1


def test_frames_given_become_video_layer_and_transforms_copied():
    lab = make_store()
    frames = np.zeros((20, 64, 48), dtype=np.uint8)
    layers, missing = labels_to_layers(
        lab, videos=[0], frames={0: frames}, scale=(1, 2, 2), translate=(0, 5, 5)
    )
    assert missing == []
    kinds = [k for _, _, k in layers]
    assert kinds == ["image", "tracks", "vectors", "points"]
    image_kw = layers[0][1]
    assert image_kw["name"] == "video: a.mp4" and image_kw["contrast_limits"] == (0, 255)
    assert image_kw["metadata"]["fps"] == 25.0
    assert all(kw["scale"] == (1, 2, 2) and kw["translate"] == (0, 5, 5) for _, kw, _ in layers)


def test_skeleton_only_layer_then_labelled():
    sk = Skeleton(["a", "b"], [("a", "b")], name="pair")
    data, kw, kind = empty_points_for_skeleton(sk)
    assert kind == "points" and data.shape == (0, 3) and kw["name"] == "poses: pair"
    assert kw["metadata"][METADATA_KEY]["skeleton"]["nodes"] == ["a", "b"]
    features = {
        "node": np.array(["a", "b", "a"], dtype=object),
        "instance": np.array([np.nan, np.nan, np.nan]),
    }
    back = layers_to_labels(
        np.array([[3, 1.0, 2.0], [3, 4.0, 5.0], [4, 0.0, 0.0]]),
        features,
        kw["metadata"],
        video=Video("v.mp4"),
    )
    assert back.skeleton == sk and back.videos[0].path == "v.mp4"
    # rows without an instance id: one new instance per frame and node rank
    assert back.n_instances == 2
    r = back.rows(frame=3)[0]
    assert back.instances.points[r].tolist() == [[2.0, 1.0], [5.0, 4.0]]
    assert (back.instances.kind == USER).all() and (back.instances.track == NO_TRACK).all()
    assert (back.instances.from_predicted == NO_LINK).all()


def test_plain_points_layer_without_metadata():
    data = np.array([[0, 1.0, 2.0], [0, 3.0, 4.0]])
    back = layers_to_labels(data, {"node": np.array(["x", "y"])}, {})
    assert back.skeleton.nodes == ["x", "y"] and back.n_instances == 1
    with pytest.raises(ValueError, match="no 'node' feature"):
        layers_to_labels(data, {}, {})


def test_prediction_kind_preserved_for_many_instances():
    sk = Skeleton(["a", "b"], [("a", "b")])
    lab = Labels(sk, videos=[Video("v.mp4")])
    rng = np.random.default_rng(0)
    n = 500
    pts = rng.uniform(0, 100, (n, 2, 2)).round(2)
    pts[rng.random((n, 2)) < 0.1] = np.nan
    lab.add_instances(
        0, rng.integers(0, 50, n), pts, kind="predicted", score=rng.random(n), point_scores=rng.random((n, 2))
    )
    back = layers_to_labels(*labels_to_points(lab, 0))
    assert_store_identical(lab, back)
    assert (back.instances.kind == PREDICTED).all()


# --------------------------------------------------------------------------- real files


def _load(path):
    from napari_posetrack.core.io.slp import load_slp

    return load_slp(path)


def _round_trip(lab: Labels) -> Labels:
    layers, _ = labels_to_layers(lab, load_video=False)
    return points_layers_to_labels(
        [(d, kw["features"], kw["metadata"]) for d, kw, k in layers if k == "points"]
    )


@pytest.mark.parametrize(
    "name",
    [
        "clip.slp",
        "clip.2node.slp",
        "clip.predictions.slp",
        "centered_pair_predictions.slp",
        "minimal_instance.pkg.slp",
    ],
)
def test_real_files_round_trip_losslessly(flies, name):
    lab = _load(flies / name)
    back = _round_trip(lab)
    assert_labels_equal(lab, back, check_ids=True)
    t, b = lab.instances, back.instances
    oa, ob = np.argsort(t.instance_id), np.argsort(b.instance_id)
    assert np.array_equal(t.tracking_score[oa], b.tracking_score[ob], equal_nan=True)
    assert np.array_equal(t.from_predicted[oa], b.from_predicted[ob])
    assert np.array_equal(t.complete[oa], b.complete[ob])
    assert lab.videos == back.videos and lab.skeleton == back.skeleton
    assert [tr.name for tr in lab.tracks] == [tr.name for tr in back.tracks]


def test_real_user_and_predictions_in_two_videos_with_occlusion(flies):
    """Ground truth on one video, predictions (point scores, 27 tracks of another file) on a second."""
    lab = _load(flies / "clip.2node.slp")
    preds = _load(flies / "clip.predictions.slp")
    preds.replace_video(0, str(flies / "centered_pair_low_quality.mp4"))
    lab.merge(preds)
    assert len(lab.videos) == 2
    # mark every 7th user head as occluded (coordinates kept): drawn hollow, kept on the way back
    user = np.flatnonzero(lab.instances.kind == USER)[::7]
    lab.instances.visible[user, 0] = False
    layers, problems = labels_to_layers(lab, load_video=False)
    assert problems == []
    points = [(d, kw) for d, kw, k in layers if k == "points"]
    assert [kw["name"] for _, kw in points] == ["poses: clip.mp4", "poses: centered_pair_low_quality.mp4"]
    f0 = points[0][1]["features"]
    assert (~f0["visible"]).sum() == (~np.isnan(lab.instances.points[user, 0, 0])).sum()
    assert (points[0][1]["face_color"][~f0["visible"], 3] == 0).all()
    f1 = points[1][1]["features"]
    assert set(f1["kind"]) == {"predicted"} and np.isfinite(f1["score"]).all()
    back = points_layers_to_labels([(d, kw["features"], kw["metadata"]) for d, kw in points])
    assert_labels_equal(lab, back, check_ids=True)
    assert lab.videos == back.videos
    # the skeleton and tracks layers exist per video
    kinds = [(kw["name"], k) for _, kw, k in layers]
    assert ("skeleton: clip.mp4", "vectors") in kinds and (
        "tracks: centered_pair_low_quality.mp4",
        "tracks",
    ) in kinds


# --------------------------------------------------------------------------- a window of a long video


def test_a_window_holds_its_frames_and_rebuilds_the_whole_video():
    lab = make_store()
    data, features, metadata = labels_to_points(lab, 0, window=(1, 3))
    assert set(data[:, 0].tolist()) == {1.0, 2.0}
    expected, expected_features, _ = labels_to_points(lab, 0, np.array([1, 2]))
    np.testing.assert_array_equal(data, expected)
    for name in POINT_FEATURES:
        np.testing.assert_array_equal(features[name], expected_features[name])
    # the metadata keeps the instances of the other frames: the whole video comes back exactly
    assert_store_identical(lab.subset(lab.rows(video=0)), layers_to_labels(data, features, metadata))
    # edits in the window apply; the frames outside it stay as they were
    moved = data.copy()
    moved[0, 1:] += [1.0, -2.0]
    back = layers_to_labels(moved, features, metadata)
    instance = int(features["instance"][0])
    row, back_row = lab.row_of_id(np.array([instance]))[0], back.row_of_id(np.array([instance]))[0]
    node = lab.skeleton.node_index(str(features["node"][0]))
    np.testing.assert_allclose(back.instances.points[back_row, node], lab.instances.points[row, node] + [-2.0, 1.0])
    others = lab.rows(video=0)[~np.isin(lab.instances.frame[lab.rows(video=0)], [1, 2])]
    for r in others:
        b = back.row_of_id(lab.instances.instance_id[[r]])[0]
        np.testing.assert_array_equal(back.instances.points[b], lab.instances.points[r])
    # an empty window is a layer with no rows that still rebuilds the video
    empty = labels_to_points(lab, 0, window=(10, 20))
    assert len(empty[0]) == 0
    assert_store_identical(lab.subset(lab.rows(video=0)), layers_to_labels(*empty))


def test_a_window_of_a_real_file_round_trips(flies):
    lab = _load(flies / "centered_pair_predictions.slp")
    counts = points_per_frame(lab, 0)
    start, stop = frame_window(counts, 600, 5_000)
    data, features, metadata = labels_to_points(lab, 0, window=(start, stop))
    assert len(data) == counts[start:stop].sum() <= 5_000
    assert set(np.unique(data[:, 0]).astype(int)) <= set(range(start, stop))
    assert_labels_equal(lab, layers_to_labels(data, features, metadata), check_ids=True)


def test_points_per_frame_counts_the_rows_of_each_frame():
    lab = make_store()
    data, _, _ = labels_to_points(lab, 0)
    counts = points_per_frame(lab, 0, n_frames=20)
    assert len(counts) == 20
    np.testing.assert_array_equal(counts, np.bincount(data[:, 0].astype(int), minlength=20))
    assert counts[2] == 3  # the shadowed prediction is not drawn, its user copy is
    assert len(points_per_frame(lab, 0)) == 5  # past the last labelled frame by default


def test_frame_window_is_the_widest_within_budget_around_the_frame():
    rng = np.random.default_rng(0)
    counts = rng.integers(0, 60, size=500)
    for frame, budget in [(250, 1_000), (3, 1_000), (497, 1_000), (100, 10), (100, 10**9)]:
        start, stop = frame_window(counts, frame, budget)
        assert start <= frame < stop
        total = counts[start:stop].sum()
        assert total <= budget or stop - start == 1  # one frame over budget is still shown
        if (start, stop) != (0, len(counts)):
            # one more frame on each side (where there is one) would be over budget
            wider = counts[max(start - 1, 0) : min(stop + 1, len(counts))].sum()
            assert wider > budget or (stop - start == 1 and total > budget)
        half = frame - start, stop - 1 - frame
        assert min(half) == max(half) or start == 0 or stop == len(counts)  # centred unless at an end
    assert frame_window(counts, 100, 10**9) == (0, 500)
    assert frame_window(np.zeros(0, dtype=int), 0, 100) == (0, 1)
    start, stop = frame_window(counts, 700, 1_000)  # past the end (a video longer than its labels)
    assert start <= 700 < stop == 701


def test_tracks_from_the_store_equal_tracks_from_the_points():
    lab = make_store()
    # a second track with the same name is the same identity on the layer: also from the store
    lab.add_track("female")
    lab.add_instances(0, 7, np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.5]]), track=2)
    for video in range(2):
        for anchor in (None, "thorax", "nowhere"):
            expected = track_paths(*labels_to_points(lab, video), anchor=anchor)
            got = labels_to_tracks(lab, video, anchor)
            np.testing.assert_array_equal(got[0], expected[0])
            np.testing.assert_array_equal(got[1]["track"], expected[1]["track"])
    untracked = Labels(lab.skeleton, [Video("/nowhere/c.mp4")])
    untracked.add_instances(0, 0, np.zeros((3, 2)))
    assert labels_to_tracks(untracked, 0)[0].shape == (0, 4)


@pytest.mark.parametrize("name", ["clip.slp", "clip.predictions.slp", "centered_pair_predictions.slp"])
def test_tracks_from_the_store_equal_tracks_from_the_points_on_real_files(flies, name):
    lab = _load(flies / name)
    expected = track_paths(*labels_to_points(lab, 0))
    got = labels_to_tracks(lab, 0)
    assert len(got[0]) > 0
    np.testing.assert_array_equal(got[0], expected[0])  # bit for bit: the same sums in the same order
    np.testing.assert_array_equal(got[1]["track"], expected[1]["track"])


def test_unmatched_rows_finds_added_removed_and_changed_points():
    lab = make_store()
    data, features, _ = labels_to_points(lab, 0, np.array([0]))
    n = len(data)

    def rows(mask):
        return data[mask], {k: v[mask] for k, v in features.items()}

    same = unmatched_rows(data, features, data.copy(), {k: v.copy() for k, v in features.items()})
    assert not same[0].any() and not same[1].any()  # NaN scores of user points equal themselves
    first_two = np.arange(n) < 2
    old, new = unmatched_rows(*rows(~first_two), data, features)  # two rows added
    assert not old.any() and new.tolist() == first_two.tolist()
    old, new = unmatched_rows(data, features, *rows(~first_two))  # two rows removed
    assert old.tolist() == first_two.tolist() and not new.any()
    hidden = {k: v.copy() for k, v in features.items()}
    hidden["visible"][1] = not hidden["visible"][1]
    moved = data.copy()
    moved[3, 2] += 0.5
    old, new = unmatched_rows(data, features, moved, hidden)
    assert np.flatnonzero(old).tolist() == [1, 3] and np.flatnonzero(new).tolist() == [1, 3]


def test_blank_video_layer_holds_no_frames_in_memory():
    frames, kwargs, kind = blank_video_layer(30_000, 1024, 1280, "video: a.mp4 (not found)")
    assert kind == "image" and frames.shape == (30_000, 1024, 1280) and frames.dtype == np.uint8
    assert frames.strides == (0, 0, 0) and not frames[123].any()
    assert kwargs["name"] == "video: a.mp4 (not found)" and kwargs["contrast_limits"] == (0, 255)


def test_rejected_instances_are_drawn_apart_and_survive_the_round_trip_windowed_or_not() -> None:
    """Item 1 of issue #12: instances the tracker rejected have a ``rejected`` feature (the reason),
    a faint face, a red border and a faint skeleton; the layer -> labels write-back keeps the code
    (also for rejected instances outside the layer's window), and putting one on a track in the
    layer clears it. A track's chosen colour colours its points."""
    from napari_posetrack.core.labels import REJECT_SURPLUS
    from napari_posetrack.layers import REJECTED_ALPHA, REJECTED_BORDER, points_style

    lab = make_store()
    lab.tracks[1].color = (0.0, 0.5, 1.0)
    t = lab.instances
    pts = np.array([[30.0, 40.0], [31.0, 41.0], [32.0, 42.0]])
    ids = lab.add_instances(0, 4, pts, kind=PREDICTED, score=0.4)
    far = lab.add_instances(0, 15, pts + 1, kind=PREDICTED, score=0.3)
    rows = lab.row_of_id(np.concatenate([ids, far]))
    t.rejected[rows] = REJECT_SURPLUS
    data, features, metadata = labels_to_points(lab, 0)
    mine = features["instance"] == ids[0]
    assert set(features["rejected"][mine]) == {"surplus"}
    assert set(features["rejected"][~mine & (features["instance"] != far[0])]) == {""}
    style = points_style(features, metadata)
    assert np.allclose(style["face_color"][mine, 3], REJECTED_ALPHA)
    assert np.allclose(style["border_color"][mine], REJECTED_BORDER)
    male = features["track"] == "male"
    assert male.any() and np.allclose(style["face_color"][male, :3], (0.0, 0.5, 1.0))
    for rows_, alpha in ((mine, REJECTED_ALPHA), (features["instance"] == t.instance_id[0], 1.0)):
        _, colours = skeleton_vectors(data[rows_], {k: v[rows_] for k, v in features.items()}, metadata)
        assert len(colours) and np.allclose(colours[:, 3], alpha)

    assert_store_identical(layers_to_labels(data, features, metadata), lab.subset(lab.rows(video=0)))
    for window in [(0, 10), (10, 20)]:
        back = layers_to_labels(*labels_to_points(lab, 0, window=window))
        r = back.row_of_id(np.concatenate([ids, far]))
        assert back.instances.rejected[r].tolist() == [REJECT_SURPLUS, REJECT_SURPLUS]
        assert back.tracks[1].color == (0.0, 0.5, 1.0)
    # napari's writers join the layers of every video: the codes are kept there too
    joined = points_layers_to_labels([labels_to_points(lab, v) for v in range(len(lab.videos))])
    assert joined.instances.rejected[joined.row_of_id(ids)].tolist() == [REJECT_SURPLUS]
    # the user puts the rejected instance on a track in the layer: no longer rejected
    features = {k: v.copy() for k, v in features.items()}
    features["track"] = features["track"].astype(object)
    features["track"][mine] = "female"
    back = layers_to_labels(data, features, metadata)
    r = back.row_of_id(ids)[0]
    assert back.instances.rejected[r] == 0 and back.tracks[back.instances.track[r]].name == "female"
    assert back.instances.rejected[back.row_of_id(far)[0]] == REJECT_SURPLUS
