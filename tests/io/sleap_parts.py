"""A sleap-io 0.9.5 labels file holding every part sleap-io writes (test helper; sleap-io is the oracle).

One function builds it: two videos that two cameras of a recording session see, user and
predicted instances with tracks, identities, categories and appearance embeddings on instances,
a negative frame and an empty frame, ROIs (on a frame, tied to an instance, and static), masks
(user and predicted, with a score map and a ``from_predicted`` link), bounding boxes, centroids,
label images with per-object instance links, an event catalog and events, and a session whose
frame group ties instances of both views together with triangulated 3D points.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np


def build_rich_sleap_io_labels(flies: Path):
    """A sleap-io ``Labels`` with every part (see the module docstring), videos from ``flies``."""
    import shapely
    import sleap_io as sio
    from sleap_io.model.bbox import UserBoundingBox
    from sleap_io.model.camera import Camera, CameraGroup, FrameGroup, InstanceGroup, RecordingSession
    from sleap_io.model.category import Category
    from sleap_io.model.centroid import UserCentroid
    from sleap_io.model.embedding import Embedding
    from sleap_io.model.event import EventType, UserEvent
    from sleap_io.model.identity import Identity
    from sleap_io.model.instance import Instance3D
    from sleap_io.model.label_image import UserLabelImage
    from sleap_io.model.mask import PredictedSegmentationMask, UserSegmentationMask
    from sleap_io.model.roi import UserROI

    skeleton = sio.Skeleton(["head", "thorax", "abdomen"], edges=[("thorax", "head"), ("thorax", "abdomen")])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        videos = [
            sio.Video(filename=str(flies / "centered_pair_low_quality.mp4"), open_backend=False),
            sio.Video(filename=str(flies / "centered_pair_small.mp4"), open_backend=False),
        ]
    for v in videos:
        v.backend_metadata.update({"shape": [1100, 384, 384, 1], "fps": 15.0})
    tracks = [sio.Track("female"), sio.Track("male"), sio.Track("ghost")]
    alice, bob = Identity("alice", metadata={"sex": "f"}), Identity("bob")
    fly = Category("fly", metadata={"order": "diptera"})

    def user(xy, track=None):
        return sio.Instance.from_numpy(np.asarray(xy, float), skeleton=skeleton, track=track)

    def pred(xy, score, track=None):
        return sio.PredictedInstance.from_numpy(
            np.asarray(xy, float),
            point_scores=np.full(len(xy), 0.5),
            score=score,
            skeleton=skeleton,
            track=track,
        )

    # video 0: frame 3 has two user instances, frame 4 a prediction, frame 9 is negative, frame 12 empty
    a0 = user([[10, 20], [15, 25], [20, 30]], tracks[0])
    b0 = user([[100, 120], [105, 125], [np.nan, np.nan]], tracks[1])
    p0 = pred([[11, 21], [16, 26], [21, 31]], 0.9, tracks[0])
    a0.identity, a0.identity_score = alice, 0.75
    b0.identity = bob
    a0.category, a0.category_score = fly, 0.5
    a0.identity_embedding = Embedding(np.arange(4, dtype=np.float32))
    lf3 = sio.LabeledFrame(videos[0], 3, instances=[a0, b0])
    lf4 = sio.LabeledFrame(videos[0], 4, instances=[p0])
    neg = sio.LabeledFrame(videos[0], 9, instances=[], is_negative=True)
    empty = sio.LabeledFrame(videos[0], 12, instances=[])
    # video 1 (the second camera) sees the same two flies on frame 3
    a1 = user([[30, 40], [35, 45], [40, 50]], tracks[0])
    b1 = user([[130, 140], [135, 145], [140, 150]], tracks[1])
    lf3b = sio.LabeledFrame(videos[1], 3, instances=[a1, b1])

    # annotations on frames
    lf3.rois.append(
        UserROI(
            geometry=shapely.box(5, 5, 30, 40), name="arena-a", video=videos[0], track=tracks[0], instance=b0
        )
    )
    mask = np.zeros((16, 16), bool)
    mask[4:9, 3:7] = True
    predicted_mask = PredictedSegmentationMask.from_numpy(
        mask, score=0.8, name="pm", track=tracks[1], instance=b0
    )
    predicted_mask.score_map = np.linspace(0, 1, 256, dtype=np.float32).reshape(16, 16)
    user_mask = UserSegmentationMask.from_numpy(mask, name="um", instance=a0)
    user_mask.from_predicted = predicted_mask
    user_mask.identity = alice
    lf3.masks.extend([predicted_mask, user_mask])
    lf4.bboxes.append(UserBoundingBox.from_xyxy(1, 2, 30, 40, track=tracks[0], instance=p0, name="box"))
    lf3.centroids.append(UserCentroid(x=12.0, y=22.0, track=tracks[0], instance=a0))
    labels_img = np.zeros((16, 16), np.int32)
    labels_img[1:4, 1:4] = 1
    labels_img[8:12, 8:12] = 2
    lf3b.label_images.append(
        UserLabelImage(
            data=labels_img,
            objects={
                1: UserLabelImage.Info(track=tracks[0], instance=a1, name="o1"),
                2: UserLabelImage.Info(track=tracks[2], instance=b1, name="o2", category="fly"),
            },
        )
    )

    labels = sio.Labels(
        labeled_frames=[lf3, lf4, neg, empty, lf3b],
        videos=videos,
        skeletons=[skeleton],
        tracks=tracks,
        identities=[alice, bob],
        categories=[fly],
        rois=[UserROI(geometry=shapely.box(0, 0, 384, 384), name="arena", video=videos[1])],
        provenance={"made_by": "tests/io/sleap_parts.py"},
    )

    courtship = EventType("courtship", description="wing extension")
    labels.event_types.append(courtship)
    labels.events.append(
        UserEvent(
            type=courtship,
            video=videos[0],
            start_frame=3,
            end_frame=8,
            subject=tracks[1],
            target=alice,
            name="c1",
        )
    )

    cams = [
        Camera(
            name="left",
            matrix=np.eye(3),
            dist=np.zeros(5),
            size=(384, 384),
            rvec=np.zeros(3),
            tvec=np.zeros(3),
        ),
        Camera(
            name="right",
            matrix=np.eye(3),
            dist=np.zeros(5),
            size=(384, 384),
            rvec=np.zeros(3),
            tvec=np.array([1.0, 0, 0]),
        ),
    ]
    session = RecordingSession(camera_group=CameraGroup(cameras=cams), metadata={"rig": "two-view"})
    session.add_video(videos[0], cams[0])
    session.add_video(videos[1], cams[1])
    groups = [
        InstanceGroup(
            instance_by_camera={cams[0]: a0, cams[1]: a1},
            score=0.5,
            instance_3d=Instance3D(points=np.arange(9, dtype=float).reshape(3, 3), skeleton=skeleton),
            identity=alice,
        ),
        InstanceGroup(instance_by_camera={cams[0]: b0, cams[1]: b1}, metadata={"note": "b"}),
    ]
    session.frame_groups[3] = FrameGroup(
        frame_idx=3, instance_groups=groups, labeled_frame_by_camera={cams[0]: lf3, cams[1]: lf3b}
    )
    labels.sessions.append(session)
    return labels


def save_rich_file(flies: Path, path: Path) -> Path:
    """Write :func:`build_rich_sleap_io_labels` with sleap-io (embedding vectors included)."""
    import sleap_io as sio

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sio.save_slp(
            build_rich_sleap_io_labels(flies),
            str(path),
            embed=False,
            verbose=False,
            save_embedding_vectors=True,
        )
    return path


# --------------------------------------------------------------------------- comparing files through sleap-io


def _instance_key(labels, inst) -> tuple | None:
    """An instance by what it is, not where it is stored: (video, frame, track, kind)."""
    import sleap_io as sio

    if inst is None:
        return None
    for lf in labels.labeled_frames:
        for other in lf.instances:
            if other is inst:
                return (
                    labels.videos.index(lf.video),
                    int(lf.frame_idx),
                    inst.track.name if inst.track is not None else None,
                    "predicted" if isinstance(inst, sio.PredictedInstance) else "user",
                )
    return ("not in labels",)


def _name(obj) -> str | None:
    return None if obj is None else obj.name


def _num(x) -> float | None:
    return None if x is None or (isinstance(x, float) and np.isnan(x)) else round(float(x), 5)


def parts_of(labels) -> dict:
    """Every part of a sleap-io ``Labels`` beyond the pose values, with references spelled out.

    References to instances become :func:`_instance_key` tuples, to tracks/identities/categories
    their names, to videos their index; annotations are listed per ``(video, frame)``. Two files
    hold the same parts exactly when the dictionaries are equal.
    """
    vid = labels.videos.index

    def key(inst):
        return _instance_key(labels, inst)

    out: dict = {"frames": {}, "rois": [], "masks": [], "bboxes": [], "centroids": [], "label_images": []}
    for lf in labels.labeled_frames:
        where = (vid(lf.video), int(lf.frame_idx))
        n, neg = out["frames"].get(where, (0, False))
        out["frames"][where] = (n + len(lf.instances), neg or bool(lf.is_negative))
        for r in lf.rois:
            out["rois"].append(
                (where, r.geometry.wkt, r.name, _name(r.track), key(r.instance), type(r).__name__)
            )
        masks = list(lf.masks)
        for m in masks:
            src = getattr(m, "from_predicted", None)
            out["masks"].append(
                (
                    where,
                    m.name,
                    m.height,
                    m.width,
                    np.asarray(m.rle_counts).tolist(),
                    _name(m.track),
                    key(m.instance),
                    _name(m.identity),
                    type(m).__name__,
                    _num(getattr(m, "score", None)),
                    None
                    if getattr(m, "score_map", None) is None
                    else np.asarray(m.score_map).round(5).tolist(),
                    None if src is None else src.name,
                )
            )
        for b in lf.bboxes:
            out["bboxes"].append((where, (b.x1, b.y1, b.x2, b.y2), b.name, _name(b.track), key(b.instance)))
        for c in lf.centroids:
            out["centroids"].append((where, (c.x, c.y), _name(c.track), key(c.instance)))
        for li in lf.label_images:
            objects = {
                int(k): (_name(v.track), key(v.instance), v.name, v.category)
                for k, v in sorted(li.objects.items())
            }
            out["label_images"].append((where, np.asarray(li.data).tolist(), objects))
    for name in ("rois", "masks", "bboxes", "centroids", "label_images"):
        out[name].sort(key=repr)
    out["static_rois"] = [
        (r.geometry.wkt, r.name, vid(r.video) if r.video is not None else None) for r in labels.static_rois
    ]
    out["tracks"] = sorted(t.name for t in labels.tracks)
    out["identities"] = [(i.name, dict(i.metadata)) for i in labels.identities]
    out["categories"] = [(c.name, dict(c.metadata)) for c in labels.categories]
    links: dict = {}
    for lf in labels.labeled_frames:
        for inst in lf.instances:
            entry = (
                _name(getattr(inst, "identity", None)),
                _num(getattr(inst, "identity_score", None)),
                _name(getattr(inst, "category", None)),
                _num(getattr(inst, "category_score", None)),
                None
                if getattr(inst, "identity_embedding", None) is None
                else inst.identity_embedding.vector.tolist(),
            )
            if entry != (None, None, None, None, None):
                links[key(inst)] = entry
    out["instance_links"] = links
    out["event_types"] = [(e.name, e.description, dict(e.metadata)) for e in labels.event_types]
    out["events"] = [
        (
            _name(e.type),
            vid(e.video),
            e.start_frame,
            e.end_frame,
            (type(e.subject).__name__, _name(e.subject)),
            (type(e.target).__name__, _name(e.target)),
            e.name,
        )
        for e in labels.events
    ]
    sessions = []
    for s in labels.sessions:
        cams = s.camera_group.cameras
        groups = {}
        for frame_idx, fg in s.frame_groups.items():
            groups[int(frame_idx)] = sorted(
                (
                    tuple(sorted((cam.name, key(inst)) for cam, inst in ig.instance_by_camera.items())),
                    _num(ig.score),
                    None if ig.instance_3d is None else np.asarray(ig.instance_3d.points).round(6).tolist(),
                    _name(ig.identity),
                    tuple(sorted(ig.metadata.items())),
                )
                for ig in fg.instance_groups
            )
        sessions.append(
            (
                [(c.name, np.asarray(c.matrix).tolist(), np.asarray(c.tvec).tolist()) for c in cams],
                {c.name: vid(s.get_video(c)) for c in cams if s.get_video(c) is not None},
                groups,
                dict(s.metadata),
            )
        )
    out["sessions"] = sessions
    return out
