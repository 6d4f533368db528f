"""Letterbox resizing in training: the transform, the frame cache, errors in original pixels, a real run.

The label set is generated here: two image-folder videos of different sizes (one landscape, one
portrait) with a disc of a known grey level drawn at every keypoint, so where a keypoint lands in a
letterboxed image can be read off the pixels.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_posetrack.core.config import TrainingConfig
from napari_posetrack.core.errors import ConfigError
from napari_posetrack.core.labels import Labels, Skeleton, Video
from napari_posetrack.core.training import data as tdata

SKELETON = Skeleton(["head", "thorax", "tail"], [("thorax", "head"), ("thorax", "tail")], name="disc")
GREY = np.array([90.0, 170.0, 250.0])  # node n is a disc of grey level GREY[n]
RADIUS = 7.0
SIZES = [(120, 200), (150, 90)]  # (height, width): landscape and portrait
INPUT_SIZE = (64, 64)
N_FRAMES = 6


@pytest.fixture(autouse=True)
def _few_threads():
    # the machine's cores are shared: one thread avoids oversubscription
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def draw_discs(points: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A (H, W) uint8 image with a disc of GREY[n] around node n of ``points`` (nodes, 2)."""
    rows, cols = np.mgrid[: size[0], : size[1]]
    image = np.zeros(size, dtype=np.uint8)
    for (x, y), grey in zip(points, GREY):
        image[(cols - x) ** 2 + (rows - y) ** 2 <= RADIUS**2] = grey
    return image


def random_pose(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """Head, thorax and tail in a line through a random centre, 26 px apart, discs inside the frame."""
    height, width = size
    angle = rng.uniform(-np.pi, np.pi)
    step = 26.0 * np.array([np.cos(angle), np.sin(angle)])
    margin = 26.0 + RADIUS + 2
    centre = rng.uniform([margin, margin], [width - 1 - margin, height - 1 - margin])
    return np.stack([centre + step, centre, centre - step])


@pytest.fixture(scope="module")
def mixed_sizes(tmp_path_factory) -> Labels:
    """Two image-folder videos of different sizes, every frame labelled with one known pose."""
    import cv2

    root = tmp_path_factory.mktemp("letterbox")
    rng = np.random.default_rng(5)
    labels = Labels(SKELETON)
    for v, size in enumerate(SIZES):
        folder = root / f"camera{v}"
        folder.mkdir()
        poses = np.stack([random_pose(rng, size) for _ in range(N_FRAMES)])
        paths = [str(folder / f"img{f:03d}.png") for f in range(N_FRAMES)]
        for path, pose in zip(paths, poses):
            cv2.imwrite(path, draw_discs(pose, size))  # PNG: lossless, the discs stay exact
        labels.videos.append(Video(paths, n_frames=N_FRAMES, shape=(*size, 1), backend="images"))
        labels.add_instances(np.full(N_FRAMES, v), np.arange(N_FRAMES), poses)
    return labels


# --------------------------------------------------------------------------- the transform


@pytest.mark.parametrize("target", [(256, 256), (192, 320)])
def test_letterbox_round_trip_and_fit_on_mixed_sizes(target):
    rng = np.random.default_rng(0)
    for height, width in [(300, 500), (480, 640), (1024, 1024), (500, 300), (640, 480), (37, 911)]:
        g = tdata.frame_geometry(height, width, input_size=target)
        h, w = g.size
        # fits inside, fills one side, keeps the aspect ratio (to the rounding of one pixel), centred
        assert g.canvas == target and h <= target[0] and w <= target[1]
        assert h == target[0] or w == target[1]
        assert abs(h / w - height / width) <= 1.0 / min(h, w) * (height / width) + 1e-9
        top, left = g.pad
        assert top == (target[0] - h) // 2 and left == (target[1] - w) // 2
        # pixel edges: the frame's outer edges land on the resized image's outer edges
        edges = np.array([[-0.5, -0.5], [width - 0.5, height - 0.5]])
        np.testing.assert_allclose(g.to_input(edges), [[left - 0.5, top - 0.5], [left + w - 0.5, top + h - 0.5]])
        points = rng.uniform([-0.5, -0.5], [width - 0.5, height - 0.5], size=(50, 3, 2))
        back = g.to_original(g.to_input(points))
        assert np.abs(back - points).max() < 1e-4
        # the same transform on torch tensors (how inference maps peaks back)
        as_torch = g.to_original(g.to_input(torch.as_tensor(points, dtype=torch.float64)))
        assert float((as_torch - torch.as_tensor(points)).abs().max()) < 1e-4


def test_plain_input_scaling_keeps_its_convention():
    g = tdata.frame_geometry(1024, 1024, input_scaling=0.1)
    assert g.size == g.canvas == (102, 102) and g.pad == (0, 0)
    np.testing.assert_array_equal(g.to_input(np.array([[10.0, 20.0]])), [[1.0, 2.0]])


def test_centered_instance_models_do_not_letterbox():
    cfg = TrainingConfig()
    cfg.data.input_size = [256, 256]
    for pipeline, expected in [("single_instance", (256, 256)), ("bottomup", (256, 256)),
                               ("centroid", (256, 256)), ("centered_instance", None)]:
        cfg.model.pipeline = pipeline
        assert tdata.letterbox_size(cfg) == expected


def test_input_scaling_beside_an_input_size_warns_and_is_not_used():
    cfg = TrainingConfig()
    cfg.model.pipeline = "single_instance"
    cfg.data.input_size = [128, 128]
    cfg.data.input_scaling = 0.5
    with pytest.warns(UserWarning, match=r"data\.input_scaling \(0\.5\) is not used"):
        assert tdata.frame_scaling(cfg) == (1.0, (128, 128))
    cfg.model.pipeline = "centroid"  # in a top-down job this scaling is the crops' own: no warning
    assert tdata.frame_scaling(cfg) == (1.0, (128, 128))


# --------------------------------------------------------------------------- the frame cache


def _disc_centre(image: np.ndarray, xy: np.ndarray, radius: float) -> np.ndarray:
    """Intensity-weighted centre of the marker around ``xy`` (x, y) in a (H, W, 1) image."""
    x0, y0 = np.floor(xy - radius - 1).astype(int)
    x1, y1 = np.ceil(xy + radius + 2).astype(int)
    patch = image[max(y0, 0) : y1, max(x0, 0) : x1, 0].astype(np.float64)
    rows, cols = np.mgrid[max(y0, 0) : y1, max(x0, 0) : x1]
    return np.array([(patch * cols).sum(), (patch * rows).sum()]) / patch.sum()


def test_frame_cache_letterboxes_and_keypoints_land_on_the_markers(mixed_sizes):
    labels = mixed_sizes
    frames = tdata.labelled_frames(labels)
    cache = tdata.build_frame_cache(labels, frames, input_size=INPUT_SIZE, stride=16)
    assert cache.images.shape == (2 * N_FRAMES, *INPUT_SIZE, 1)
    for row, (video, _) in enumerate(frames.pairs):
        g = tdata.frame_geometry(*SIZES[video], input_size=INPUT_SIZE)
        np.testing.assert_allclose(cache.scale[row], g.scale) and np.testing.assert_allclose(cache.offset[row], g.offset)
        (h, w), (top, left) = g.size, g.pad
        # black outside the letterboxed image, the image itself inside
        inside = np.zeros(INPUT_SIZE, dtype=bool)
        inside[top : top + h, left : left + w] = True
        assert not cache.images[row, ~inside].any() and cache.images[row, inside].any()
        # every keypoint sits on its own disc: the disc's grey level there, its centre within 0.3 px
        for node, xy in enumerate(cache.points[row, 0]):
            col, r = np.round(xy).astype(int)
            assert abs(float(cache.images[row, r, col, 0]) - GREY[node]) < 40
            centre = _disc_centre(cache.images[row], xy, RADIUS * float(g.scale.max()))
            assert np.abs(centre - xy).max() < 0.3, (row, node, centre, xy)
    # and back to each video's own pixels
    back = cache.to_original(np.arange(len(cache)), cache.points)
    np.testing.assert_allclose(back, frames.points, atol=1e-3)
    # the portrait video is shrunk less than the landscape one: per-row scales differ
    assert len(np.unique(cache.scale[:, 0])) == 2


def test_training_and_inference_see_the_same_letterboxed_pixels(mixed_sizes):
    from napari_posetrack.core.inference.pipelines import LoadedModel
    from napari_posetrack.core.video import open_video

    labels = mixed_sizes
    frames = tdata.labelled_frames(labels)
    cache = tdata.build_frame_cache(labels, frames, input_size=INPUT_SIZE, stride=16)
    cfg = TrainingConfig()
    cfg.model.pipeline = "single_instance"
    cfg.data.input_size = list(INPUT_SIZE)
    cfg.data.channels = "grayscale"
    network = torch.nn.Identity()
    network.max_stride = 16
    model = LoadedModel(cfg, SKELETON, network, torch.device("cpu"))
    for row, (video, frame) in enumerate(frames.pairs):
        with open_video(labels.videos[video]) as reader:
            pixels = reader.frames([frame])
        seen = model.prepare(pixels)
        expected = torch.from_numpy(cache.images[row]).permute(2, 0, 1).float() / 255.0
        assert torch.equal(seen[0], expected)


# --------------------------------------------------------------------------- errors in original pixels


def test_pixel_errors_are_in_each_samples_original_pixels():
    from napari_posetrack.core.training.pipelines import make_pipeline

    cfg = TrainingConfig()
    cfg.model.pipeline = "single_instance"
    cfg.data.input_size = [64, 64]
    cfg.model.heads.confmaps.output_stride = 2
    pipe = make_pipeline(cfg, SKELETON)
    # two samples, one shrunk by 4 and one by 2 (anisotropic by a rounding pixel): the same error of
    # (6, 8) input pixels is (24, 32) -> 40 original pixels in the first and ~20 in the second
    scale = torch.tensor([[0.25, 0.25], [0.5, 0.49]])
    truth = torch.tensor([[10.0, 12.0], [20.0, 30.0], [40.0, 8.0]])
    keypoints = truth.expand(2, 1, 3, 2).clone()
    peaks = truth + torch.tensor([6.0, 8.0])  # on the stride-2 grid: argmax finds them exactly
    maps = torch.zeros(2, 3, 32, 32)
    cells = (peaks / 2).long()
    maps[:, torch.arange(3), cells[:, 1], cells[:, 0]] = 1.0
    errors = pipe.pixel_errors({"confmaps": maps}, keypoints, scale).reshape(2, 3)
    expected = torch.hypot(6 / scale[:, 0], 8 / scale[:, 1])
    torch.testing.assert_close(errors, expected[:, None].expand(2, 3))
    # without scales (a caller that has none) the uniform input scaling applies: here 1
    torch.testing.assert_close(pipe.pixel_errors({"confmaps": maps}, keypoints).reshape(2, 3),
                               torch.full((2, 3), 10.0))


def test_batches_carry_each_rows_scale(mixed_sizes):
    frames = tdata.labelled_frames(mixed_sizes)
    cache = tdata.build_frame_cache(mixed_sizes, frames, input_size=INPUT_SIZE, stride=16)
    ds = tdata.FrameBatchDataset(cache, np.arange(len(cache)))
    batch = ds[[0, N_FRAMES]]
    np.testing.assert_allclose(batch["scale"].numpy(), cache.scale[[0, N_FRAMES]], rtol=1e-6)


# --------------------------------------------------------------------------- a real run


def letterbox_config(runs, *, max_stride: int = 16) -> TrainingConfig:
    cfg = TrainingConfig()
    cfg.model.pipeline = "single_instance"
    cfg.data.input_size = list(INPUT_SIZE)
    cfg.data.validation_fraction = 0.5
    cfg.model.unet.filters, cfg.model.unet.max_stride = 8, max_stride
    cfg.model.heads.confmaps.sigma, cfg.model.heads.confmaps.output_stride = 2.0, 2
    cfg.optimization.batch_size = 4
    cfg.optimization.epochs = 2
    cfg.optimization.batches_per_epoch = cfg.optimization.min_batches_per_epoch = 3
    cfg.optimization.initial_learning_rate = 1e-3
    cfg.optimization.augmentation.rotation_probability = 0.0
    cfg.outputs.runs_folder = str(runs)
    return cfg


def _by_hand(net, image: np.ndarray, resize: bool) -> tuple[np.ndarray, np.ndarray]:
    """Argmax peaks of ``net`` on ``image`` (H, W) uint8, placed with OpenCV and mapped back by hand.

    Returns the peaks in the image's own pixels and the ``(x0, y0, x1, y1)`` the network input covers.
    """
    import cv2

    height, width = image.shape
    if resize:
        factor = min(INPUT_SIZE[0] / height, INPUT_SIZE[1] / width)
        h, w = round(height * factor), round(width * factor)
        top, left = (INPUT_SIZE[0] - h) // 2, (INPUT_SIZE[1] - w) // 2
        canvas = np.zeros(INPUT_SIZE, np.uint8)
        canvas[top : top + h, left : left + w] = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
    else:
        h, w, top, left = height, width, 0, 0
        canvas = np.zeros((-(-height // 16) * 16, -(-width // 16) * 16), np.uint8)
        canvas[:height, :width] = image
    with torch.no_grad():
        maps = net(torch.from_numpy(canvas)[None, None].float() / 255.0)["confmaps"][0]
    cells = maps.reshape(len(maps), -1).argmax(dim=-1).numpy()
    peaks = np.stack([cells % maps.shape[-1], cells // maps.shape[-1]], axis=-1) * 2.0  # output stride 2

    def back(xy: np.ndarray) -> np.ndarray:  # pixel centres, as OpenCV resizes
        return np.stack([(xy[..., 0] - left + 0.5) * width / w - 0.5, (xy[..., 1] - top + 0.5) * height / h - 0.5], -1)

    covers = back(np.array([[-0.5, -0.5], [canvas.shape[1] - 0.5, canvas.shape[0] - 0.5]])).ravel()
    return back(peaks), covers


def test_a_letterboxed_run_trains_and_predicts_in_each_videos_pixels(mixed_sizes, tmp_path):
    import cv2

    from napari_posetrack.core.inference.pipelines import InferenceOptions, load_pipeline
    from napari_posetrack.core.inference.predictor import predict_frames
    from napari_posetrack.core.training.run import load_run, train
    from napari_posetrack.core.training.trainer import read_metrics

    run = train(letterbox_config(tmp_path / "runs"), mixed_sizes, device="cpu")
    records = read_metrics(run / "metrics.jsonl")
    assert sum(r["event"] == "batch" for r in records) == 6
    logged = [r["val_mean_pixel_error"] for r in records if r["event"] == "epoch"]
    config, _, net = load_run(run, checkpoint="last")  # the weights the last validation used
    assert config.data.input_size == list(INPUT_SIZE)

    def image(video: int, frame: int) -> np.ndarray:
        return cv2.imread(mixed_sizes.videos[video].path[frame], cv2.IMREAD_GRAYSCALE)

    # the logged validation error is the mean distance in each video's own pixels, frame by frame
    frames = tdata.labelled_frames(mixed_sizes)
    split = tdata.load_split(run / "split.json", frames)
    pairs = frames.pairs[split.validation]
    assert set(pairs[:, 0]) == {0, 1}  # both image sizes are validated on
    distances = [np.linalg.norm(_by_hand(net, image(v, f), True)[0] - frames.points[i, 0], axis=-1)
                 for i, (v, f) in zip(split.validation, pairs)]
    assert logged[-1] == pytest.approx(float(np.mean(distances)), rel=1e-4)

    for resize in (True, False):
        options = InferenceOptions(device="cpu", peak_threshold=0.0, refinement="none", overlap="none")
        pipeline = load_pipeline([run], options)
        pipeline.model.resize_input = resize
        for v in range(len(SIZES)):
            got = predict_frames(pipeline, mixed_sizes.videos[v], np.arange(N_FRAMES))
            assert got["frames"].tolist() == list(range(N_FRAMES)) and got["points"].shape == (N_FRAMES, 3, 2)
            for f in (0, N_FRAMES - 1):
                expected, (x0, y0, x1, y1) = _by_hand(net, image(v, f), resize)
                np.testing.assert_allclose(got["points"][f], expected, atol=1e-3)
                # loose: a model this young is not accurate, but its points are in this video's pixels
                assert np.all((got["points"][f] >= [x0, y0]) & (got["points"][f] <= [x1, y1]))


def test_the_training_preview_shows_letterboxed_inputs(mixed_sizes, tmp_path):
    from napari_posetrack.core.training.preview import training_preview

    preview = training_preview(letterbox_config(tmp_path), mixed_sizes, n_samples=4, seed=1)
    assert preview.images.shape == (4, *INPUT_SIZE)
    assert preview.confmaps.shape == (4, 3, INPUT_SIZE[0] // 2, INPUT_SIZE[1] // 2)


def test_an_input_size_off_the_stride_names_the_field_and_the_fix(mixed_sizes, tmp_path):
    from napari_posetrack.core.training.run import train

    cfg = letterbox_config(tmp_path / "runs")
    cfg.data.input_size = [100, 64]
    with pytest.raises(ConfigError, match=r"data\.input_size: \[100, 64\] is not a multiple of the model's max "
                                          r"stride \(16\); use \[112, 64\]"):
        train(cfg, mixed_sizes, device="cpu")
    assert not (tmp_path / "runs").exists()  # refused before any run folder was made
