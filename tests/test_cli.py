"""The ``posetrack`` command line: info, convert, sample, errors, and registering commands."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from napari_posetrack.core import cli
from napari_posetrack.core.io import load_labels
from napari_posetrack.core.labels import assert_labels_equal


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_info_labels_json(capsys, flies):
    code, out, err = run(capsys, "info", flies / "clip.slp", "--json")
    assert code == 0, err
    facts = json.loads(out)
    assert facts["type"] == "labels"
    assert len(facts["skeleton"]["nodes"]) == 13 and len(facts["skeleton"]["edges"]) == 12
    (video,) = facts["videos"]
    assert video["frames"] == 1500 and video["missing"] is False and video["user_instances"] == 3000
    assert facts["instances"]["user"] == 3000 and facts["instances"]["predicted"] == 0
    assert facts["frames"]["labelled"] == 1500
    assert facts["tracks"] == [{"name": "female", "instances": 1500}, {"name": "male", "instances": 1500}]


def test_info_labels_text_and_missing_video(capsys, flies, tmp_path):
    moved = tmp_path / "moved.slp"
    shutil.copy(flies / "minimal_instance.slp", moved)
    code, out, _ = run(capsys, "info", moved)
    assert code == 0
    assert "MISSING" in out and "2 user" in out and "skeleton:" in out
    # with a folder to search, the moved video is found
    code, out, _ = run(capsys, "info", moved, "--video-search", flies, "--json")
    facts = json.loads(out)
    assert facts["videos"][0]["missing"] is False
    assert facts["videos"][0]["path"].endswith("centered_pair_low_quality.mp4")


def test_info_predictions(capsys, flies):
    _code, out, _ = run(capsys, "info", flies / "centered_pair_predictions.slp", "--json")
    facts = json.loads(out)
    assert facts["instances"]["predicted"] == 2274 and facts["instances"]["user"] == 0
    assert len(facts["tracks"]) == 27


def test_info_video(capsys, flies):
    code, out, err = run(capsys, "info", flies / "clip.mp4", "--json")
    assert code == 0, err
    facts = json.loads(out)
    assert facts["frames"] == 1500 and (facts["width"], facts["height"]) == (1024, 1024)
    assert facts["fps"] == pytest.approx(25.0)
    assert facts["codec"] == "h264" and facts["keyframe_interval"] == 250
    code, out, _ = run(capsys, "info", flies / "clip.mp4")
    assert "keyframe interval: 250 frames" in out and "codec: h264" in out


def test_convert_slp_dlc_analysis_tidy(capsys, flies, data, tmp_path):
    # slp -> slp keeps everything
    code, out, err = run(capsys, "convert", flies / "clip.slp", tmp_path / "copy.slp")
    assert code == 0, err
    assert_labels_equal(load_labels(flies / "clip.slp"), load_labels(tmp_path / "copy.slp"))
    # DeepLabCut h5 -> DeepLabCut csv (by the CollectedData name) -> slp
    table = data / "dlc-openfield" / "labeled-data" / "m4s1" / "CollectedData_Pranav.h5"
    dlc_csv = tmp_path / "labeled-data" / "m4s1" / "CollectedData_Pranav.csv"
    assert run(capsys, "convert", table, dlc_csv)[0] == 0
    assert dlc_csv.read_text().startswith("scorer")
    assert run(capsys, "convert", dlc_csv, tmp_path / "dlc.slp")[0] == 0
    assert_labels_equal(load_labels(table), load_labels(tmp_path / "dlc.slp"))
    # predictions -> SLEAP analysis HDF5 (told apart from DLC by content when read back)
    code, out, err = run(capsys, "convert", flies / "clip.predictions.slp", tmp_path / "preds.h5")
    assert code == 0, err and "(analysis)" in out
    back = load_labels(tmp_path / "preds.h5")
    assert back.n_instances == 2948 and [t.name for t in back.tracks] == ["female", "male"]
    # tidy CSV export
    assert run(capsys, "convert", flies / "clip.2node.slp", tmp_path / "tidy.csv")[0] == 0
    lines = (tmp_path / "tidy.csv").read_text().splitlines()
    assert lines[0].split(",")[:5] == ["video", "frame", "time", "track", "node"]
    assert len(lines) == 1 + 1500 * 2 * 2
    # the skeleton alone, as a SLEAP template
    assert run(capsys, "convert", flies / "clip.slp", tmp_path / "fly.json")[0] == 0
    assert load_labels(tmp_path / "fly.json").skeleton.edges == load_labels(flies / "clip.slp").skeleton.edges


def test_convert_with_video_search(capsys, flies, tmp_path):
    moved = tmp_path / "moved.slp"
    shutil.copy(flies / "minimal_instance.slp", moved)
    code, _, err = run(capsys, "convert", moved, tmp_path / "fixed.slp", "--video-search", flies)
    assert code == 0, err
    fixed = load_labels(tmp_path / "fixed.slp")
    assert fixed.missing_videos() == []
    assert fixed.videos[0].filename.endswith("centered_pair_low_quality.mp4")


def test_sample_then_info(capsys, tmp_path):
    code, out, err = run(capsys, "sample", tmp_path / "s", "--frames", "12", "--animals", "2")
    assert code == 0, err
    assert (tmp_path / "s" / "sample.slp").is_file() and (tmp_path / "s" / "sample.mp4").is_file()
    code, out, _ = run(capsys, "info", tmp_path / "s" / "sample.slp", "--json")
    facts = json.loads(out)
    assert facts["videos"][0]["frames"] == 12 and len(facts["tracks"]) == 2
    assert facts["instances"]["user"] == 24


@pytest.mark.parametrize(
    "argv, message",
    [
        (["info", "{tmp}/absent.slp"], "absent.slp"),
        (["convert", "{tmp}/broken.slp", "{tmp}/out.slp"], "broken.slp"),
        (["convert", "{flies}/clip.slp", "{tmp}/out.xyz"], "out.xyz"),
        (["info", "{tmp}/broken.mp4"], "broken.mp4"),
        (["convert", "{flies}/clip.predictions.slp", "{flies}/clip.predictions.slp"], "output is the input"),
    ],
)
def test_bad_input_is_one_line_and_exit_1(capsys, flies, tmp_path, argv, message):
    (tmp_path / "broken.slp").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    (tmp_path / "broken.mp4").write_bytes(b"not a video at all" * 10)
    argv = [a.format(tmp=tmp_path, flies=flies) for a in argv]
    code, _out, err = run(capsys, *argv)
    assert code == 1
    assert len(err.strip().splitlines()) == 1 and message in err and "error" in err
    assert not (tmp_path / "out.slp").exists()


def test_usage_errors_exit_2(capsys):
    assert run(capsys, "frobnicate")[0] == 2
    code, _, err = run(capsys)
    assert code == 2 and "info" in err and "convert" in err
    code, out, _ = run(capsys, "--version")
    assert code == 0 and "posetrack" in out


def add_echo_parser(subparsers):
    """A command registered the way other modules register theirs."""
    p = subparsers.add_parser("echo")
    p.add_argument("word")
    p.set_defaults(func=lambda args: print(args.word.upper()) or 0)


def test_other_modules_register_commands(capsys, monkeypatch):
    monkeypatch.setattr(cli, "EXTERNAL_PARSERS", [f"{__name__}:add_echo_parser"])
    code, out, _ = run(capsys, "echo", "hi")
    assert code == 0 and out.strip() == "HI"


def test_entry_point_process(tmp_path):
    """The installed ``posetrack`` script: a real process, one stderr line, status 1."""
    script = shutil.which("posetrack", path=str(__import__("pathlib").Path(sys.executable).parent))
    assert script is not None
    done = subprocess.run(
        [script, "info", str(tmp_path / "nope.slp")], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"posetrack info: error: {tmp_path / 'nope.slp'}: no such file"
    ]
