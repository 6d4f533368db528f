"""kill -9 at seeded random moments during a save, ``posetrack predict`` and ``posetrack train``.

Each case runs the real command in a child process, kills its process group with SIGKILL a
random (seeded) time after the interesting phase began, and checks what a user finds afterwards:
the target file is either the previous file, byte for byte, or the complete new one; a rerun of
``posetrack predict`` gives exactly what an uninterrupted run gives; ``posetrack train --resume``
continues from the last checkpoint and ends where an uninterrupted run ends.
"""

from __future__ import annotations

import random
import warnings
from pathlib import Path

import numpy as np
import pytest
from faults import child_env, digest, posetrack, run_and_kill, run_ok, stray_temporaries, timed_run

from napari_posetrack.core.io.slp import load_slp, save_slp
from napari_posetrack.core.labels import PREDICTED, Labels, Skeleton, Video, assert_labels_equal

SEED = 20240611
MOMENTS = 4  # kill moments per command (seeded; spread over the phase by the random draw)


def quiet_load(path: Path) -> Labels:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the generated videos are not next to the files
        return load_slp(path)


def moments(key: str, span_s: float, n: int = MOMENTS) -> list[float]:
    """``n`` kill delays over ``span_s``, one drawn uniformly in each ``n``-th of it (seeded per
    command, so reruns kill alike; stratified, so the moments cover the whole phase)."""
    rng = random.Random(f"{SEED}:{key}")
    return [span_s * (i + rng.random()) / n for i in range(n)]


# =========================================================================== save


@pytest.fixture(scope="module")
def save_case(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A labels file big enough that writing it takes a while, an older file, and a timed save."""
    folder = tmp_path_factory.mktemp("kill-save")
    sk = Skeleton([f"n{i}" for i in range(16)])
    big = Labels(sk, videos=[Video("gone.mp4", n_frames=40_000, shape=(64, 64, 1))])
    n = 80_000
    rng = np.random.default_rng(0)
    big.add_track("a")
    big.add_instances(
        np.zeros(n, int),
        np.arange(n) // 2,
        rng.uniform(0, 64, (n, 16, 2)),
        kind=PREDICTED,
        score=rng.uniform(0, 1, n),
        point_scores=rng.uniform(0, 1, (n, 16)),
        track=np.zeros(n, int),
    )
    source = folder / "big.slp"
    save_slp(big, source)
    old = Labels(sk, videos=[Video("old.mp4", n_frames=10, shape=(64, 64, 1))])
    old.add_instances(0, 3, np.ones((16, 2)))
    old_file = folder / "old.slp"
    save_slp(old, old_file)
    target = folder / "timing.slp"
    env = child_env(folder)
    before, during = timed_run(
        posetrack("convert", source, target), env, lambda: bool(stray_temporaries(folder, target.name))
    )
    return {
        "folder": folder,
        "source": source,
        "old": old_file,
        "expected": quiet_load(source),
        "env": env,
        "save_s": during,
        "start_s": before,
    }


@pytest.mark.parametrize("moment", range(MOMENTS))
def test_kill_during_save_leaves_the_old_file_or_the_new_one(save_case, moment, matrix, tmp_path):
    target = tmp_path / "labels.slp"
    target.write_bytes(save_case["old"].read_bytes())
    old = digest(target)
    delay = moments("save", save_case["save_s"])[moment]
    cmd = posetrack("convert", save_case["source"], target)
    k = run_and_kill(cmd, save_case["env"], lambda: bool(stray_temporaries(tmp_path, target.name)), delay)
    strays = stray_temporaries(tmp_path, target.name)
    if digest(target) == old:
        found = "the previous file, byte for byte"
    else:
        assert_labels_equal(quiet_load(target), save_case["expected"], check_ids=True)
        found = "the complete new file"
    # a killed writer cannot remove its temporary file; the next save is not disturbed by it
    run_ok(cmd, save_case["env"])
    assert_labels_equal(quiet_load(target), save_case["expected"], check_ids=True)
    what = f"killed {k.at_s:.2f} s into the save" if k.killed else "finished before the kill"
    matrix(
        "kill -9",
        f"posetrack convert (atomic .slp save), moment {moment + 1}/{MOMENTS}",
        f"{what} (save takes {save_case['save_s']:.2f} s): {found}; "
        f"{len(strays)} stray temporary file(s); saving again works",
    )


# =========================================================================== predict


PREDICT_FRAMES = 60


@pytest.fixture(scope="module")
def predict_case(tmp_path_factory: pytest.TempPathFactory, single_instance_run: Path) -> dict:
    """A short generated video, the tiny trained run and the predictions of an uninterrupted run."""
    from napari_posetrack.core.sample import write_sample

    folder = tmp_path_factory.mktemp("kill-predict")
    video = Path(write_sample(folder, n_animals=2, n_frames=PREDICT_FRAMES, size=(128, 128), seed=5)["video"])
    env = child_env(folder)
    baseline = folder / "baseline.slp"
    journal = baseline.with_name(f".{baseline.name}.video0.journal.h5")
    _, during = timed_run(predict_cmd(video, single_instance_run, baseline), env, journal.exists)
    assert not journal.exists()
    return {
        "video": video,
        "run": single_instance_run,
        "env": env,
        "expected": quiet_load(baseline),
        "predict_s": during,
    }


def predict_cmd(video: Path, run: Path, out: Path) -> list[str]:
    return posetrack(
        "predict", video, "-m", run, "-o", out, "--device", "cpu", "--batch-size", "4", "--quiet"
    )


def journalled_frames(journal: Path) -> str:
    import h5py

    if not journal.exists():
        return "no journal"
    try:
        with h5py.File(journal, "r") as f:
            return f"{len(f['frames'])} frames in the journal"
    except (OSError, KeyError) as exc:
        return f"journal unreadable ({exc})"


@pytest.mark.slow
@pytest.mark.parametrize("moment", range(3))
def test_kill_during_predict_then_rerun_equals_an_uninterrupted_run(predict_case, moment, matrix, tmp_path):
    out = tmp_path / "predictions.slp"
    save_slp(Labels(Skeleton(["a"]), videos=[Video("old.mp4")]), out)  # an earlier file at the output path
    old = digest(out)
    journal = out.with_name(f".{out.name}.video0.journal.h5")
    cmd = predict_cmd(predict_case["video"], predict_case["run"], out)
    delay = moments("predict", 1.1 * predict_case["predict_s"], 3)[moment]
    k = run_and_kill(cmd, predict_case["env"], journal.exists, delay)
    in_journal = journalled_frames(journal)
    if digest(out) == old:
        found = "previous output intact"
    else:
        assert_labels_equal(quiet_load(out), predict_case["expected"])
        found = "output complete"
    run_ok(cmd, predict_case["env"])
    assert_labels_equal(quiet_load(out), predict_case["expected"], atol=0.0)
    assert not journal.exists()
    what = f"killed {k.at_s:.2f} s into predicting" if k.killed else "finished before the kill"
    rerun = "resumed from the journal" if "frames in the journal" in in_journal else "started over"
    matrix(
        "kill -9",
        f"posetrack predict ({PREDICT_FRAMES} frames, batch 4), moment {moment + 1}/3",
        f"{what} ({in_journal}): {found}; the rerun {rerun} and equals the uninterrupted run exactly",
    )


# =========================================================================== train


TRAIN_EPOCHS, TRAIN_BATCHES = 4, 2


def train_cmd(labels: str, runs: Path) -> list[str]:
    sets = [
        "model.unet.filters=8",
        "model.unet.max_stride=8",
        f"optimization.epochs={TRAIN_EPOCHS}",
        f"optimization.batches_per_epoch={TRAIN_BATCHES}",
        f"optimization.min_batches_per_epoch={TRAIN_BATCHES}",
        "optimization.batch_size=2",
    ]
    args: list[object] = ["train", "--profile", "single", labels]
    for s in sets:
        args += ["--set", s]
    return posetrack(*args, "--runs-folder", runs, "--device", "cpu", "--quiet")


def metrics(run: Path) -> list[dict]:
    from napari_posetrack.core.training.trainer import read_metrics

    return read_metrics(run / "metrics.jsonl")


def an_epoch_ended(runs: Path) -> bool:
    return any('"event": "epoch"' in p.read_text() for p in runs.glob("*/metrics.jsonl"))


def weights(path: Path) -> dict:
    from napari_posetrack.core.models.runs import load_checkpoint_file

    return load_checkpoint_file(path, map_location="cpu")


@pytest.fixture(scope="module")
def train_case(tmp_path_factory: pytest.TempPathFactory, small_sample: dict[str, str]) -> dict:
    folder = tmp_path_factory.mktemp("kill-train")
    env = child_env(folder)
    runs = folder / "baseline"
    timed_run(train_cmd(small_sample["labels"], runs), env, lambda: an_epoch_ended(runs))
    (run,) = runs.iterdir()
    epochs = [r for r in metrics(run) if r["event"] == "epoch"]
    epoch_s = float(np.median(np.diff([r["elapsed"] for r in epochs])))
    return {
        "labels": small_sample["labels"],
        "env": env,
        "final": weights(run / "last.ckpt"),
        "epoch_s": epoch_s,
    }


@pytest.mark.slow
@pytest.mark.parametrize("moment", range(2))
def test_kill_during_train_then_resume_continues_from_the_last_checkpoint(
    train_case, moment, matrix, tmp_path
):
    import torch

    runs = tmp_path / "runs"
    delay = moments("train", (TRAIN_EPOCHS - 2) * train_case["epoch_s"], 2)[moment]
    k = run_and_kill(
        train_cmd(train_case["labels"], runs), train_case["env"], lambda: an_epoch_ended(runs), delay
    )
    (run,) = runs.iterdir()
    checkpoint = weights(run / "last.ckpt")  # written atomically: always loadable
    step = int(checkpoint["global_step"])
    run_ok(posetrack("train", "--resume", run, "--device", "cpu", "--quiet"), train_case["env"])
    records = metrics(run)
    start = [r for r in records if r["event"] == "start"][-1]
    end = records[-1]
    assert start["resumed"] is True and start["step"] == step
    assert (
        end["event"] == "end" and end["reason"] == "completed" and end["step"] == TRAIN_EPOCHS * TRAIN_BATCHES
    )
    final = weights(run / "last.ckpt")
    same = all(torch.equal(final["model"][name], t) for name, t in train_case["final"]["model"].items())
    assert same, "a resumed run must end with the weights of an uninterrupted run"
    what = f"killed {k.at_s:.2f} s after the first epoch" if k.killed else "finished before the kill"
    matrix(
        "kill -9",
        f"posetrack train ({TRAIN_EPOCHS} epochs x {TRAIN_BATCHES} batches), moment {moment + 1}/2",
        f"{what}: last.ckpt loadable at step {step}; --resume started at step {step}, completed "
        f"{TRAIN_EPOCHS * TRAIN_BATCHES} steps, weights equal to an uninterrupted run",
    )
