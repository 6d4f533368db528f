"""The columnar pose store: queries, edits, shadowing, merge, dense view."""

from __future__ import annotations

import numpy as np
import pytest

from napari_posetrack.core.labels import (
    NO_LINK,
    PREDICTED,
    USER,
    Labels,
    Skeleton,
    Video,
    assert_labels_equal,
)


def make_labels() -> Labels:
    sk = Skeleton(["head", "thorax", "tail"], [("head", "thorax"), ("thorax", "tail")], name="fly")
    lab = Labels(sk, videos=[Video("a.mp4", n_frames=10), Video("b.mp4", n_frames=5)])
    lab.add_track("f")
    lab.add_track("m")
    return lab


def pose(x: float) -> np.ndarray:
    return np.array([[x, 0.0], [x, 1.0], [x, 2.0]])


def test_skeleton_validation():
    with pytest.raises(ValueError, match="used twice"):
        Skeleton(["a", "a"])
    with pytest.raises(ValueError, match="no node named 'zz'"):
        Skeleton(["a", "b"], [("a", "zz")])
    with pytest.warns(UserWarning, match="2 root nodes"):
        Skeleton(["a", "b", "c"], [("a", "c"), ("b", "c")])
    sk = Skeleton(["l", "r", "c"], [("c", "l"), ("c", "r")], symmetries=[("l", "r")])
    assert sk.roots() == [2]
    assert list(sk.flip_permutation()) == [1, 0, 2]


def test_add_query_delete():
    lab = make_labels()
    ids = lab.add_instances(
        [0, 0, 0, 1], [3, 3, 4, 3], np.stack([pose(i) for i in range(4)]), track=[0, 1, 0, 0]
    )
    assert list(ids) == [0, 1, 2, 3]
    assert list(lab.rows(video=0, frame=3)) == [0, 1]
    assert list(lab.rows(video=0, track=0)) == [0, 2]
    assert lab.labeled_frames().tolist() == [[0, 3], [0, 4], [1, 3]]
    lab.delete([1])
    assert list(lab.instances.instance_id) == [0, 2, 3]
    assert list(lab.rows(video=0, frame=3)) == [0]
    assert lab.row_of_id([3, 1]).tolist() == [2, -1]


def test_growth_keeps_data():
    lab = make_labels()
    for i in range(100):
        lab.add_instances(0, i % 10, pose(i), kind="predicted", score=0.5)
    assert lab.n_instances == 100
    assert np.allclose(lab.instances.points[:, 0, 0], np.arange(100))
    assert (lab.instances.kind == PREDICTED).all()


def test_user_instance_shadows_its_prediction():
    lab = make_labels()
    (pid,) = lab.add_instances(0, 2, pose(1), kind="predicted", score=0.9)
    lab.add_instances(0, 2, pose(5), kind="predicted", score=0.8)
    uid = lab.promote_prediction(int(lab.row_of_id(pid)[0]))
    shown = lab.frame_rows(0, 2)
    assert set(lab.instances.instance_id[shown]) == {1, uid}
    assert lab.instances.from_predicted[lab.row_of_id(uid)[0]] == pid
    # deleting the prediction clears the link rather than leaving it dangling
    lab.delete(lab.row_of_id(pid))
    assert lab.instances.from_predicted[lab.row_of_id(uid)[0]] == NO_LINK


def test_delete_predictions_bulk():
    lab = make_labels()
    lab.add_instances(
        0,
        np.arange(10),
        np.stack([pose(i) for i in range(10)]),
        kind="predicted",
        score=np.linspace(0, 1, 10),
    )
    lab.add_instances(0, 0, pose(0))
    assert lab.delete_predictions(frames=(0, 3)) == 3
    assert lab.delete_predictions(below_score=0.5) == 2
    assert (lab.instances.kind == USER).sum() == 1
    assert lab.n_instances == 6


def test_merge_reorders_nodes_and_matches_videos():
    a = make_labels()
    a.add_instances(0, 1, pose(1), kind="predicted", score=0.5, track=0)
    sk_b = Skeleton(["tail", "head", "thorax"], [("head", "thorax"), ("thorax", "tail")], name="fly")
    b = Labels(sk_b, videos=[Video("c.mp4"), Video("a.mp4")])
    b.add_track("m")
    p = pose(1)[[2, 0, 1]]
    b.add_instances(1, 1, p, track=0)  # user instance on top of a's prediction -> replaces it
    b.add_instances(0, 0, pose(7)[[2, 0, 1]])
    summary = a.merge(b)
    assert summary["replaced_predictions"] == 1
    assert [v.path for v in a.videos] == ["a.mp4", "b.mp4", "c.mp4"]
    assert a.n_instances == 2
    r = a.rows(video=0, frame=1)
    assert a.instances.kind[r[0]] == USER and a.instances.track[r[0]] == 1
    assert np.allclose(a.instances.points[r[0]], pose(1))
    r2 = a.rows(video=2, frame=0)
    assert np.allclose(a.instances.points[r2[0]], pose(7))


def test_merge_rejects_other_skeleton():
    a = make_labels()
    b = Labels(Skeleton(["x", "y"]), videos=[Video("a.mp4")])
    with pytest.raises(ValueError, match="skeleton nodes differ"):
        a.merge(b)


def test_dense_view_prefers_user_and_hides_invisible():
    lab = make_labels()
    lab.add_instances(0, 2, pose(1), kind="predicted", score=0.3, track=0)
    lab.add_instances(0, 2, pose(2), kind="user", track=0, visible=[True, False, True])
    lab.add_instances(0, 4, pose(3), kind="predicted", score=0.9, track=1)
    coords, occ = lab.dense(0)
    assert coords.shape == (10, 2, 3, 2)
    assert occ[2, 0] and occ[4, 1] and occ.sum() == 2
    assert coords[2, 0, 0, 0] == 2 and np.isnan(coords[2, 0, 1]).all()


def test_copy_subset_equal():
    lab = make_labels()
    lab.add_instances(0, [1, 2], np.stack([pose(1), pose(2)]))
    c = lab.copy()
    assert_labels_equal(lab, c, check_ids=True)
    c.update(0, points=pose(9))
    with pytest.raises(AssertionError, match="points differ"):
        assert_labels_equal(lab, c)
    assert lab.subset([1]).n_instances == 1


def test_replace_missing_video(tmp_path):
    lab = make_labels()
    assert lab.missing_videos() == [0, 1]
    f = tmp_path / "a.mp4"
    f.write_bytes(b"")
    lab.replace_video("a.mp4", str(f))
    assert lab.missing_videos() == [1]


def test_table_adopts_columns_without_copying():
    from napari_posetrack.core.labels import COLUMN_NAMES, InstanceTable

    n, k = 5, 3
    cols = {
        "video": np.zeros(n, np.int32),
        "frame": np.arange(n, dtype=np.int64),
        "kind": np.ones(n, np.int8),
        "track": np.full(n, -1, np.int32),
        "score": np.ones(n, np.float32),
        "tracking_score": np.zeros(n, np.float32),
        "from_predicted": np.full(n, -1, np.int64),
        "points": np.zeros((n, k, 2)),
        "visible": np.ones((n, k), bool),
        "complete": np.zeros((n, k), bool),
        "point_scores": np.ones((n, k), np.float32),
    }
    t = InstanceTable.from_columns(k, **cols)
    assert np.shares_memory(t.points, cols["points"]) and len(t) == n and t.next_id == n
    assert set(t.columns()) == set(COLUMN_NAMES)
    t.append(1, frame=[9], points=np.ones((1, k, 2)))  # grows past the adopted arrays
    assert t.frame.tolist() == [0, 1, 2, 3, 4, 9] and t.kind[-1] == 0 and t.instance_id[-1] == 5
    with pytest.raises(TypeError, match="missing instance columns"):
        InstanceTable.from_columns(k, frame=np.arange(2))
