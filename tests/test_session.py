"""LabelsSession: every edit undoes to exactly the original store and redoes to the edited one."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

from napari_posetrack.core.errors import FileFormatError
from napari_posetrack.core.io import load_labels
from napari_posetrack.core.labels import COLUMN_NAMES, NO_LINK, PREDICTED, USER, Labels, assert_labels_equal
from napari_posetrack.core.session import Change, LabelsSession, autosave_path, find_autosave


@pytest.fixture(scope="module")
def _predictions(flies: Path) -> Labels:
    return load_labels(flies / "clip.predictions.slp")


@pytest.fixture(scope="module")
def _user(flies: Path) -> Labels:
    return load_labels(flies / "clip.slp")


@pytest.fixture
def predictions(_predictions: Labels) -> Labels:
    return _predictions.copy()


@pytest.fixture
def user(_user: Labels) -> Labels:
    return _user.copy()


def assert_same(a: Labels, b: Labels) -> None:
    """Every column equal, rows matched by instance id (stricter than assert_labels_equal)."""
    assert_labels_equal(a, b, check_ids=True)
    ta, tb = a.instances, b.instances
    oa, ob = np.argsort(ta.instance_id), np.argsort(tb.instance_id)
    for name in COLUMN_NAMES:
        np.testing.assert_array_equal(ta.column(name)[oa], tb.column(name)[ob], err_msg=name)


def check_undo_redo(session: LabelsSession, before: Labels, steps: int = 1) -> Labels:
    """Undo ``steps`` edits (must give ``before``) and redo them (must give the edited store back)."""
    after = session.labels.copy()
    for _ in range(steps):
        session.undo()
    assert_same(session.labels, before)
    for _ in range(steps):
        session.redo()
    assert_same(session.labels, after)
    assert not session.can_redo
    return after


def test_add_instance_undo_redo(user: Labels) -> None:
    before = user.copy()
    session = LabelsSession(user)
    seen: list[Change] = []
    session.changed.append(seen.append)
    pts = np.full((user.n_nodes, 2), np.nan)
    pts[:3] = [[10.0, 20.0], [30.0, 40.0], [50.0, 60.0]]
    new_id = session.add_instance(0, 7, pts, track=1)
    row = user.row_of_id(new_id)[0]
    assert user.instances.kind[row] == USER and user.instances.track[row] == 1
    assert user.instances.visible[row].sum() == 3
    assert seen[-1].action == "add" and (0, 7) in seen[-1].frames
    assert session.dirty and session.can_undo
    check_undo_redo(session, before)
    assert len(seen) == 3  # edit, undo, redo each notify
    assert user.row_of_id(new_id)[0] >= 0  # redo restored the same id


def test_move_points_marks_complete_and_undoes(user: Labels) -> None:
    before = user.copy()
    session = LabelsSession(user)
    iid = int(user.instances.instance_id[5])
    session.move_points(iid, [0, 2], np.array([[1.0, 2.0], [3.0, 4.0]]))
    row = user.row_of_id(iid)[0]
    np.testing.assert_array_equal(user.instances.points[row, [0, 2]], [[1.0, 2.0], [3.0, 4.0]])
    assert user.instances.complete[row, [0, 2]].all()
    check_undo_redo(session, before)


def test_consecutive_drags_merge_into_one_step(user: Labels) -> None:
    before = user.copy()
    session = LabelsSession(user)
    iid = int(user.instances.instance_id[10])
    for k in range(20):
        session.move_points(iid, [1], np.array([[100.0 + k, 50.0]]))
    assert len(session._undo) == 1
    session.seal()  # mouse released: the next drag is a new step
    session.move_points(iid, [1], np.array([[5.0, 5.0]]))
    session.move_points(iid, [3], np.array([[6.0, 6.0]]))  # another node: another step
    assert len(session._undo) == 3
    row = user.row_of_id(iid)[0]
    session.undo()
    session.undo()
    np.testing.assert_array_equal(user.instances.points[row, 1], [119.0, 50.0])
    session.undo()
    assert_same(user, before)
    assert not session.can_undo


def test_move_instance_set_visible_set_track(user: Labels) -> None:
    before = user.copy()
    session = LabelsSession(user)
    iid = int(user.instances.instance_id[42])
    session.move_instance(iid, (2.0, -1.0))
    session.move_instance(iid, (2.0, -1.0))  # merged drag
    np.testing.assert_allclose(
        user.instances.points[user.row_of_id(iid)[0]],
        before.instances.points[before.row_of_id(iid)[0]] + [4.0, -2.0],
    )
    session.seal()
    session.set_visible(iid, 4, False)
    assert not user.instances.visible[user.row_of_id(iid)[0], 4]
    session.set_track(iid, 0)
    assert user.instances.track[user.row_of_id(iid)[0]] == 0
    with pytest.raises(IndexError):
        session.set_track(iid, 5)
    check_undo_redo(session, before, steps=3)


def test_delete_instances_restores_ids(user: Labels) -> None:
    before = user.copy()
    session = LabelsSession(user)
    ids = user.instances.instance_id[[0, 100, 2999]]
    session.delete_instances(ids)
    assert user.n_instances == before.n_instances - 3
    assert (user.row_of_id(ids) == -1).all()
    check_undo_redo(session, before)
    with pytest.raises(KeyError):
        session.delete_instances([10**9])


def test_promote_then_delete_prediction_restores_link(predictions: Labels) -> None:
    before = predictions.copy()
    session = LabelsSession(predictions)
    pred_id = int(predictions.instances.instance_id[3])
    new_id = session.promote_prediction(pred_id)
    row = predictions.row_of_id(new_id)[0]
    assert predictions.instances.kind[row] == USER
    assert predictions.instances.from_predicted[row] == pred_id
    promoted = check_undo_redo(session, before)
    # deleting the prediction clears the user instance's link; undo must put the link back
    session.delete_instances([pred_id])
    assert predictions.instances.from_predicted[predictions.row_of_id(new_id)[0]] == NO_LINK
    check_undo_redo(session, promoted)
    check_undo_redo(session, before, steps=2)


def test_bulk_delete_predictions_undo(predictions: Labels) -> None:
    before = predictions.copy()
    session = LabelsSession(predictions)
    assert session.delete_predictions(below_score=-1.0) == 0 and not session.can_undo  # nothing matched
    t = predictions.instances
    expected = int(((t.score < 0.7) & (t.frame >= 100) & (t.frame < 200)).sum())
    assert expected > 0
    assert session.delete_predictions(video=0, frames=(100, 200), below_score=0.7) == expected
    start = time.perf_counter()
    removed = session.delete_predictions()
    assert predictions.n_instances == 0 and removed > 0
    session.undo()
    session.undo()
    assert time.perf_counter() - start < 2.0  # vectorised: well under a second for 2948 rows
    assert predictions.n_instances == 2948
    assert_same(predictions, before)
    session.redo()
    session.redo()
    assert predictions.n_instances == 0
    assert (before.instances.kind == PREDICTED).all()


def test_history_is_bounded_and_new_edit_clears_redo(user: Labels) -> None:
    session = LabelsSession(user, max_history=5)
    ids = user.instances.instance_id[:8]
    for k, iid in enumerate(ids):
        session.set_track(int(iid), k % 2)
    assert len(session._undo) == 5
    for _ in range(5):
        assert session.undo() is not None
    assert not session.can_undo and session.undo() is None
    # the three oldest edits are beyond the history and stay applied
    np.testing.assert_array_equal(user.instances.track[user.row_of_id(ids[:3])], [0, 1, 0])
    assert session.can_redo
    session.set_visible(int(ids[0]), 0, False)
    assert not session.can_redo and session.redo() is None


def test_save_is_atomic_and_clears_dirty(user: Labels, tmp_path: Path) -> None:
    target = tmp_path / "project.slp"
    session = LabelsSession(user, target)
    assert not session.dirty
    iid = int(user.instances.instance_id[0])
    session.move_points(iid, [0], np.array([[11.0, 12.0]]))
    assert session.dirty
    session.autosave()
    assert autosave_path(target).exists()
    session.save()
    assert not session.dirty and not autosave_path(target).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["project.slp"]  # no temporary left behind
    assert_labels_equal(load_labels(target), user)
    # a failed save leaves the previous file untouched, no temporary behind, and the session dirty
    session.set_track(iid, 1)
    good = target.read_bytes()
    blocker = tmp_path / "blocked.slp"
    blocker.mkdir()  # replacing a folder with the written file fails after writing
    with pytest.raises(IsADirectoryError):
        session.save(blocker)
    with pytest.raises(FileFormatError, match="unknown labels format"):
        session.save(tmp_path / "project.unknownformat")
    assert blocker.is_dir() and list(blocker.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocked.slp", "project.slp"]
    assert target.read_bytes() == good and session.dirty and session.path == target


def test_autosave_and_recover(user: Labels, tmp_path: Path) -> None:
    target = tmp_path / "project.slp"
    session = LabelsSession(user, target)
    session.save()
    assert session.autosave() is None  # nothing to autosave when clean
    assert find_autosave(target) is None
    session.delete_instances(user.instances.instance_id[:10])
    session.move_instance(int(user.instances.instance_id[0]), (1.5, 2.5))
    written = session.autosave()
    assert written == autosave_path(target) and written.name == ".project.slp.autosave.slp"
    assert session.autosave() is None  # unchanged since the last autosave
    # make the autosave strictly newer than the project (coarse file-system clocks)
    t = target.stat().st_mtime
    os.utime(written, (t + 5, t + 5))
    assert find_autosave(target) == written
    assert LabelsSession.find_autosave(target) == written
    recovered = LabelsSession.recover(target)
    assert recovered.dirty and recovered.path == target
    assert_labels_equal(recovered.labels, user)
    recovered.save()
    assert find_autosave(target) is None and not recovered.dirty
    assert_labels_equal(load_labels(target), user)
    # an autosave older than the project is not offered
    session.set_track(int(user.instances.instance_id[0]), 0)
    old = session.autosave()
    os.utime(old, (t - 100, t - 100))
    assert find_autosave(target) is None


def test_dirty_follows_undo_to_the_saved_state(user: Labels, tmp_path: Path) -> None:
    session = LabelsSession(user, tmp_path / "p.slp", max_history=3)
    iid = int(user.instances.instance_id[0])
    session.set_track(iid, 1)
    session.save()
    session.set_track(iid, 0)
    assert session.dirty
    session.undo()
    assert not session.dirty  # back at what is on disk
    session.undo()
    assert session.dirty
    session.redo()
    assert not session.dirty
    # a drag merged into the saved step makes a new state
    session.seal()
    session.move_points(iid, [0], np.array([[1.0, 1.0]]))
    session.save()
    session.move_points(iid, [0], np.array([[2.0, 1.0]]))
    assert session.dirty and len(session._undo) == 2
    # edits that fall off the bounded history keep the state dirty after undoing everything kept
    for k in range(5):
        session.set_visible(iid, 1, bool(k % 2))
    while session.can_undo:
        session.undo()
    assert session.dirty


def test_recovered_package_keeps_its_embedded_frames(flies: Path, tmp_path: Path) -> None:
    from napari_posetrack.core.video import open_video

    project = tmp_path / "minimal.pkg.slp"
    project.write_bytes((flies / "minimal_instance.pkg.slp").read_bytes())
    session = LabelsSession(load_labels(project), project)
    session.move_instance(int(session.labels.instances.instance_id[0]), (1.0, 1.0))
    session.autosave()
    os.utime(autosave_path(project), (time.time() + 5, time.time() + 5))
    assert find_autosave(project) == autosave_path(project)
    recovered = LabelsSession.recover(project)
    recovered.save()
    assert not autosave_path(project).exists()
    assert recovered.labels.videos[0].path == str(project.resolve())
    with open_video(recovered.labels.videos[0]) as reader:
        assert reader.frame(0).shape == (384, 384, 1)
    assert_labels_equal(load_labels(project), session.labels)


def test_replace_all_is_one_undoable_step_and_keeps_the_object(user: Labels) -> None:
    session = LabelsSession(user)
    original = user.copy()
    holder = session.labels
    processed = user.copy()
    processed.delete(np.arange(10))
    processed.tracks = []
    seen: list[Change] = []
    session.changed.append(seen.append)
    change = session.replace_all(processed, "predict")
    assert change.whole and seen[-1] is change
    assert session.labels is holder and holder.n_instances == original.n_instances - 10
    assert session.dirty
    session.undo()
    assert_same(holder, original)
    assert not session.dirty
    session.redo()
    assert holder.n_instances == original.n_instances - 10 and holder.tracks == []
    with pytest.raises(ValueError, match="different Labels"):
        session.replace_all(holder)


def test_clear_points_makes_nodes_missing_and_undoes(user: Labels) -> None:
    session = LabelsSession(user)
    instance_id = int(user.instances.instance_id[3])
    before = user.instances.points[3].copy()
    session.clear_points(instance_id, [0, 2])
    row = user.row_of_id(np.array([instance_id]))[0]
    assert np.isnan(user.instances.points[row, [0, 2]]).all()
    assert not user.instances.visible[row, [0, 2]].any()
    np.testing.assert_array_equal(user.instances.points[row, 1], before[1])
    session.undo()
    np.testing.assert_array_equal(user.instances.points[row], before)
