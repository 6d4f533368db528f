"""Bad input through the ``posetrack`` commands: a clear error naming the file and the problem,
and the file the command would have replaced left as it was.

Videos go through ``posetrack predict`` (into an existing output), labels files, DeepLabCut
tables and skeletons through ``posetrack convert`` (into an existing output), training configs
through ``posetrack train`` (into a runs folder that already holds a run).
"""

from __future__ import annotations

import json
import shutil
import struct
import warnings
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest
from faults import digest

from napari_posetrack.core.cli import main
from napari_posetrack.core.io.slp import save_slp
from napari_posetrack.core.labels import Labels, Skeleton, Video


def run_cli(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str]:
    """``posetrack ARGV`` in this process; returns (exit status, stderr)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the error is under test, not warnings on the way there
        code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


def existing_output(path: Path) -> str:
    """Put an earlier labels file at ``path``; returns its digest."""
    save_slp(Labels(Skeleton(["a", "b"]), videos=[Video("earlier.mp4")]), path)
    return digest(path)


def assert_refused(
    capsys: pytest.CaptureFixture[str],
    argv: list[object],
    bad: Path,
    problem: str,
    protected: Path,
) -> str:
    """Run, expect exit 1 with one error line naming ``bad`` and ``problem``; ``protected`` unchanged."""
    before = digest(protected)
    code, err = run_cli(capsys, *argv)
    line = err.strip().splitlines()[-1] if err.strip() else ""
    assert code == 1, err
    assert bad.name in line and problem in line, line
    assert digest(protected) == before, f"{protected} changed"
    # the matrix shows the message with the file's folder left out
    return line.split(": error: ", 1)[-1].replace(str(bad.parent) + "/", "")


# =========================================================================== videos


def remove_box(data: bytes, box: bytes) -> bytes:
    """An MP4 without its top-level ``box`` (e.g. ``moov``, the index a crashed recorder never wrote)."""
    pos = 0
    while pos + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        if kind == box:
            return data[:pos] + data[pos + size :]
        pos += size
    raise AssertionError(f"no {box!r} box")


VIDEO_CASES: dict[str, tuple[Callable[[Path, Path], Path], str]] = {
    # name: (make the bad file from (good video, folder), expected problem)
    "zero-byte .mp4": (lambda v, d: write(d / "empty.mp4", b""), "not a readable video file"),
    "truncated inside the header": (
        lambda v, d: write(d / "head.mp4", v.read_bytes()[:2048]),
        "not a readable video file",
    ),
    "truncated, index at the end (as recorders write)": (
        lambda v, d: write(d / "cut.mp4", v.read_bytes()[: v.stat().st_size // 2]),
        "not a readable video file",
    ),
    "moov-less (index box removed)": (
        lambda v, d: write(d / "nomoov.mp4", remove_box(v.read_bytes(), b"moov")),
        "not a readable video file",
    ),
    "text file named .mp4": (
        lambda v, d: write(d / "notes.mp4", b"not a video\n" * 10),
        "not a readable video file",
    ),
    "labels file named .mp4": (
        lambda v, d: write(d / "labels.mp4", (d / "earlier.slp").read_bytes()),
        "not a readable video file",
    ),
    "video named .slp": (lambda v, d: write(d / "video.slp", v.read_bytes()), "not an HDF5 file"),
    "video named .dat": (lambda v, d: write(d / "video.dat", v.read_bytes()), "unknown labels format '.dat'"),
}


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("case", list(VIDEO_CASES))
def test_bad_videos(case, capsys, matrix, tmp_path, small_sample, single_instance_run):
    out = tmp_path / "predictions.slp"
    existing_output(out)
    shutil.copy(out, tmp_path / "earlier.slp")
    make, problem = VIDEO_CASES[case]
    bad = make(Path(small_sample["video"]), tmp_path)
    argv = ["predict", bad, "-m", single_instance_run, "-o", out, "--device", "cpu", "--quiet"]
    message = assert_refused(capsys, argv, bad, problem, out)
    matrix("video", case, f"refused: {message}; earlier output intact")


def test_a_truncated_faststart_video_is_read_up_to_the_damage(
    capsys, matrix, tmp_path, flies, single_instance_run
):
    """A recording cut short whose index comes first: its readable frames are used, with a warning."""
    from napari_posetrack.core.io import load_labels

    data = (flies / "centered_pair_low_quality.mp4").read_bytes()
    bad = write(tmp_path / "cut_short.mp4", data[: len(data) * 3 // 100])
    out = tmp_path / "predictions.slp"
    existing_output(out)
    with pytest.warns(
        UserWarning, match=r"cut_short\.mp4: the file is truncated or damaged; only its first (\d+)"
    ) as rec:
        code = main(
            [
                str(a)
                for a in [
                    "predict",
                    bad,
                    "-m",
                    single_instance_run,
                    "-o",
                    out,
                    "--device",
                    "cpu",
                    "--quiet",
                    "--max-instances",
                    "1",
                ]
            ]
        )
    capsys.readouterr()
    assert code == 0
    warning = next(str(w.message) for w in rec if "truncated" in str(w.message)).replace(
        str(tmp_path) + "/", ""
    )
    readable = int(warning.split("only its first ")[1].split()[0])
    labels = load_labels(out, search_paths=[tmp_path])
    assert 0 < readable < 1100 and labels.videos[0].n_frames == readable
    assert labels.instances.frame.max() < readable
    matrix(
        "video",
        "truncated, index first (faststart)",
        f"read up to the damage with a warning: '{warning.split(' To recover')[0]}'; predictions for those "
        "frames replace the output",
    )


# =========================================================================== .slp files


def truncated(fraction: float) -> Callable[[Path, Path], Path]:
    def make(src: Path, folder: Path) -> Path:
        data = src.read_bytes()
        keep = len(data) - 1 if fraction == 1.0 else 8 if fraction == 0.0 else int(len(data) * fraction)
        return write(folder / f"cut_{keep}.slp", data[:keep])

    return make


def without(dataset: str) -> Callable[[Path, Path], Path]:
    def make(src: Path, folder: Path) -> Path:
        path = folder / f"no_{dataset}.slp"
        shutil.copy(src, path)
        with h5py.File(path, "r+") as f:
            del f[dataset]
        return path

    return make


SLP_CASES: dict[str, tuple[str, Callable[[Path, Path], Path], str]] = {
    # name: (source file, make the bad file, expected problem)
    "zero-byte .slp": ("clip.slp", lambda s, d: write(d / "empty.slp", b""), "not an HDF5 file"),
    "truncated after the 8-byte signature": ("clip.slp", truncated(0.0), "truncated or corrupt"),
    "truncated at 10%": ("clip.slp", truncated(0.1), "truncated or corrupt"),
    "truncated at 50%": ("clip.slp", truncated(0.5), "truncated or corrupt"),
    "truncated at 90%": ("clip.slp", truncated(0.9), "truncated or corrupt"),
    "last byte missing": ("clip.slp", truncated(1.0), "truncated or corrupt"),
    "/metadata removed": ("clip.slp", without("metadata"), "no /metadata group"),
    "/frames removed": ("clip.slp", without("frames"), "no /frames table"),
    "/instances removed": ("clip.slp", without("instances"), "no /instances table"),
    "/points removed": ("clip.slp", without("points"), "no /points table"),
    "/pred_points removed": ("clip.predictions.slp", without("pred_points"), "no /pred_points table"),
    "/videos_json removed": ("clip.slp", without("videos_json"), "/videos_json lists 0 videos"),
    "/tracks_json removed": ("clip.slp", without("tracks_json"), "but the file has 0"),
}


@pytest.mark.parametrize("case", list(SLP_CASES))
def test_bad_slp_files(case, capsys, matrix, tmp_path, flies):
    source, make, problem = SLP_CASES[case]
    bad = make(flies / source, tmp_path)
    out = tmp_path / "converted.slp"
    existing_output(out)
    message = assert_refused(capsys, ["convert", bad, out], bad, problem, out)
    matrix(".slp", case, f"refused: {message}; earlier output intact")


# =========================================================================== DeepLabCut tables


def dlc_csv(edit: Callable[[list[str]], list[str]], name: str) -> Callable[[Path, Path], Path]:
    def make(src: Path, folder: Path) -> Path:
        lines = src.read_text().splitlines(keepends=True)
        return write(folder / f"CollectedData_{name}.csv", "".join(edit(lines)).encode())

    return make


def dlc_h5(columns: object, name: str) -> Callable[[Path, Path], Path]:
    def make(src: Path, folder: Path) -> Path:
        import pandas as pd

        frame = pd.DataFrame(np.zeros((2, 4)), index=["img0.png", "img1.png"], columns=columns)
        path = folder / f"CollectedData_{name}.h5"
        frame.to_hdf(path, key="df_with_missing", mode="w")
        return path

    return make


def _levels(names: list[str]):
    import pandas as pd

    return pd.MultiIndex.from_product([["me"], ["snout", "tail"], ["x", "y"]], names=names)


DLC_CASES: dict[str, tuple[Callable[[Path, Path], Path], str]] = {
    "CSV without the bodyparts row": (
        dlc_csv(lambda ls: [ls[0], *ls[2:]], "no_bodyparts"),
        "expected header rows",
    ),
    "CSV coords row with a column missing": (
        dlc_csv(lambda ls: [*ls[:2], ls[2].rsplit(",", 1)[0] + "\n", *ls[3:]], "short_coords"),
        "the 'coords' header row must hold x and y",
    ),
    "CSV coords row naming z": (
        dlc_csv(lambda ls: [*ls[:2], ls[2].replace(",y,", ",z,", 1), *ls[3:]], "z_coords"),
        "the 'coords' header row must hold x and y",
    ),
    "CSV header only (scorer row)": (dlc_csv(lambda ls: ls[:1], "header_only"), "expected header rows"),
    "H5 with a flat column header": (dlc_h5(["a", "b", "c", "d"], "flat"), "no DeepLabCut column header"),
    "H5 with wrong header level names": (
        dlc_h5(_levels(["scorer", "parts", "axis"]), "levels"),
        "expected scorer, [individuals,] bodyparts, coords",
    ),
}


@pytest.mark.parametrize("case", list(DLC_CASES))
def test_bad_deeplabcut_tables(case, capsys, matrix, tmp_path, data):
    pytest.importorskip("pandas")
    if case.startswith("H5"):
        pytest.importorskip("tables")
    make, problem = DLC_CASES[case]
    bad = make(data / "dlc-openfield/labeled-data/m4s1/CollectedData_Pranav.csv", tmp_path)
    out = tmp_path / "converted.slp"
    existing_output(out)
    message = assert_refused(capsys, ["convert", bad, out], bad, problem, out)
    matrix("DeepLabCut", case, f"refused: {message}; earlier output intact")


# =========================================================================== skeleton JSON


def skeleton_doc() -> dict:
    from napari_posetrack.core.io.skeleton_json import encode_skeleton_graph

    sk = Skeleton(["head", "thorax", "abdomen"], [("thorax", "head"), ("thorax", "abdomen")])
    return {"description": None, "nx_graph": encode_skeleton_graph(sk), "preview_image": None}


def undeclared_node(doc: dict) -> dict:
    doc["nx_graph"]["links"][1]["target"] = {
        "py/object": "sleap.skeleton.Node",
        "py/state": {"py/tuple": ["tail", 1.0]},
    }
    doc["nx_graph"]["nodes"] = doc["nx_graph"]["nodes"][:2]
    return doc


def dangling_reference(doc: dict) -> dict:
    doc["nx_graph"]["nodes"].append({"id": {"py/id": 42}})
    return doc


SKELETON_CASES = {
    "edge to a node the node list lacks": (undeclared_node, "no node named 'tail'"),
    "node list naming an unknown object": (dangling_reference, "py/id 42 does not refer to a node"),
}


@pytest.mark.parametrize("case", list(SKELETON_CASES))
def test_skeleton_json_with_unknown_nodes(case, capsys, matrix, tmp_path):
    edit, problem = SKELETON_CASES[case]
    bad = tmp_path / "skeleton.json"
    bad.write_text(json.dumps(edit(skeleton_doc())))
    out = tmp_path / "converted.slp"
    existing_output(out)
    message = assert_refused(capsys, ["convert", bad, out], bad, problem, out)
    matrix("skeleton JSON", case, f"refused: {message}; earlier output intact")


# =========================================================================== training configs


def config_text() -> str:
    """The single-instance baseline config as YAML, as ``posetrack train`` writes it."""
    import tempfile

    from napari_posetrack.core.config import baseline_profile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.yaml"
        baseline_profile("single").to_yaml(path)
        return path.read_text()


CONFIG_CASES: dict[str, tuple[Callable[[str], str], str]] = {
    "unknown nested key": (
        lambda t: t.replace("optimization:\n", "optimization:\n  learning_rat: 0.01\n", 1),
        "unknown config field 'optimization.learning_rat'",
    ),
    "unknown top-level section": (lambda t: t + "mystery: {a: 1}\n", "unknown config field 'mystery'"),
    "text where a number goes": (
        lambda t: _replace_value(t, "batch_size", "eight"),
        "optimization.batch_size: expected an integer, got 'eight'",
    ),
    "list where a number goes": (
        lambda t: _replace_value(t, "epochs", "[1, 2]"),
        "optimization.epochs: expected an integer, got [1, 2]",
    ),
    "not YAML": (lambda t: "model: [unclosed\n", "not valid YAML"),
}


def _replace_value(text: str, key: str, value: str) -> str:
    lines = text.splitlines(keepends=True)
    i = next(i for i, line in enumerate(lines) if line.strip().startswith(f"{key}:"))
    indent = lines[i][: len(lines[i]) - len(lines[i].lstrip())]
    lines[i] = f"{indent}{key}: {value}\n"
    return "".join(lines)


def snapshot(folder: Path) -> dict[str, str | None]:
    return {str(p.relative_to(folder)): digest(p) for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def runs_with_a_run(tmp_path: Path, single_instance_run: Path) -> Path:
    runs = tmp_path / "runs"
    shutil.copytree(single_instance_run, runs / single_instance_run.name)
    return runs


@pytest.mark.parametrize("case", list(CONFIG_CASES))
def test_bad_training_configs(case, capsys, matrix, tmp_path, small_sample, runs_with_a_run):
    edit, problem = CONFIG_CASES[case]
    bad = tmp_path / "config.yaml"
    bad.write_text(edit(config_text()))
    before = snapshot(runs_with_a_run)
    message = assert_refused(
        capsys,
        ["train", bad, small_sample["labels"], "--runs-folder", runs_with_a_run, "--device", "cpu"],
        bad,
        problem,
        bad,
    )
    assert snapshot(runs_with_a_run) == before  # no new run folder, the earlier run untouched
    matrix("config", f"{case} (file)", f"refused: {message}; config file and runs folder untouched")


@pytest.mark.parametrize(
    ("override", "problem"),
    [
        ("optimization.learning_rat=0.1", "unknown config field 'optimization.learning_rat'"),
        ("optimization.epochs=many", "optimization.epochs: expected an integer, got 'many'"),
    ],
)
def test_bad_config_overrides(override, problem, capsys, matrix, small_sample, runs_with_a_run):
    before = snapshot(runs_with_a_run)
    code, err = run_cli(
        capsys,
        "train",
        "--profile",
        "single",
        small_sample["labels"],
        "--set",
        override,
        "--runs-folder",
        runs_with_a_run,
        "--device",
        "cpu",
    )
    assert code == 1 and problem in err, err
    assert snapshot(runs_with_a_run) == before
    message = err.strip().splitlines()[-1].split(": error: ", 1)[-1]
    matrix("config", f"--set {override}", f"refused, naming the field: {message}; runs folder untouched")


def test_a_run_whose_config_was_broken_is_not_resumed(capsys, matrix, runs_with_a_run):
    (run,) = runs_with_a_run.iterdir()
    config = run / "training_config.yaml"
    config.write_text(_replace_value(config.read_text(), "batch_size", "eight"))
    checkpoint = digest(run / "last.ckpt")
    message = assert_refused(
        capsys,
        ["train", "--resume", run, "--device", "cpu"],
        config,
        "expected an integer, got 'eight'",
        run / "last.ckpt",
    )
    assert digest(run / "last.ckpt") == checkpoint
    matrix(
        "config", "wrong type in a run's saved config (--resume)", f"refused: {message}; last.ckpt untouched"
    )
