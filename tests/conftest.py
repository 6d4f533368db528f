"""Shared fixtures: where the real data lives (../shared/data, or $POSETRACK_DATA)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Under pytest-xdist each worker is one of the cores: torch (and OpenMP in ONNX Runtime/OpenVINO) would
# otherwise start a thread per core in every worker and the workers would fight over the same cores.
# Set before any test imports torch; subprocesses the tests start inherit it.
if "PYTEST_XDIST_WORKER" in os.environ:
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

ROOT = Path(__file__).resolve().parents[1]


def data_dir() -> Path:
    """The real-data folder: ``$POSETRACK_DATA`` if set, else ``../shared/data`` beside the project."""
    env = os.environ.get("POSETRACK_DATA")
    return Path(env) if env else ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def data() -> Path:
    """Path of the real-data folder; tests using it skip only when the folder is absent."""
    d = data_dir()
    if not d.is_dir():
        pytest.skip(f"real data folder {d} is absent (set POSETRACK_DATA)")
    return d


@pytest.fixture(scope="session")
def flies(data: Path) -> Path:
    return data / "sleap-flies"


@pytest.fixture(scope="session")
def screenshot_dir() -> Path:
    """``screenshots/`` at the repository root (git-ignored): widget pictures for reviewers and docs."""
    out = ROOT / "screenshots"
    out.mkdir(exist_ok=True)
    return out


@pytest.fixture(scope="session")
def small_sample(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The generated sample at test size: 2 animals, 40 frames of 128 x 128 (video + labels)."""
    from napari_posetrack.core.sample import write_sample

    return write_sample(tmp_path_factory.mktemp("sample"), n_animals=2, n_frames=40, size=(128, 128), seed=3)


@pytest.fixture(scope="session")
def single_instance_run(small_sample: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A single-instance run (alone in its runs folder) trained for two steps on one animal, on CPU."""
    import numpy as np

    from napari_posetrack.core.config import baseline_profile
    from napari_posetrack.core.io import load_labels
    from napari_posetrack.core.training.run import train

    labels = load_labels(small_sample["labels"])
    one = labels.subset(np.flatnonzero((labels.instances.track == 0) & (labels.instances.frame < 16)))
    cfg = baseline_profile("single")
    cfg.model.unet.filters, cfg.model.unet.max_stride = 8, 8
    cfg.optimization.epochs = 1
    cfg.optimization.batches_per_epoch = cfg.optimization.min_batches_per_epoch = 2
    cfg.outputs.runs_folder = str(tmp_path_factory.mktemp("runs"))
    return train(cfg, one, device="cpu")


# --------------------------------------------------------------------------- napari's full collections
class _YoungGenerationGC:
    """Stands in for the ``gc`` module inside napari's canvas: a young-generation collection only."""

    @staticmethod
    def collect(generation: int = 2) -> int:
        import gc

        return gc.collect(0)


@pytest.fixture(autouse=True)
def _napari_layer_removal_without_full_collection(request: pytest.FixtureRequest, monkeypatch) -> None:
    """napari runs a full ``gc.collect()`` after every layer removal outside a batch (a fix for a
    Windows OpenGL driver race). With torch, napari and the test session loaded each one takes about
    0.2 s: 15% of the GUI tests' time. Under Xvfb's software OpenGL the race cannot happen, so GUI
    tests let napari collect the young generation only; the product is unchanged."""
    if request.node.get_closest_marker("gui") is None:
        return
    import napari._vispy.canvas as canvas

    monkeypatch.setattr(canvas, "gc", _YoungGenerationGC())


# --------------------------------------------------------------------------- heaviest files first
# pytest-xdist's loadfile hands whole files to whichever worker is free, in collection order (with
# --no-loadscope-reorder; its default orders files by number of tests, which puts the one-test
# learning files last). Sending the longest files first keeps the two workers busy to the end
# instead of one finishing a 70 s file while the other idles. tests/durations.json holds seconds
# per file from a full run (tests/update_durations.py writes it); a file it lacks counts as short.
_DURATIONS = Path(__file__).with_name("durations.json")


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list) -> None:
    import json

    try:
        seconds = json.loads(_DURATIONS.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    # stable: each file's tests stay together and in their own order
    items.sort(key=lambda item: -float(seconds.get(item.nodeid.split("::", 1)[0], 0.0)))


# --------------------------------------------------------------------------- fault matrix
# tests/reliability's rows arrive on the reports (user properties): here, in the root conftest, so the
# xdist controller, which loads no sub-folder conftest, prints the matrix too.
_MATRIX_ROWS: list[tuple[str, str, str, str]] = []
_OUTCOMES: dict[str, str] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" or report.outcome != "passed":
        _OUTCOMES[report.nodeid] = report.outcome
    if report.when == "call":
        for name, value in report.user_properties:
            if name == "fault_matrix":
                area, case, outcome = value
                _MATRIX_ROWS.append((area, case, outcome, report.nodeid))


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    if not _MATRIX_ROWS:
        return
    terminalreporter.section("fault matrix (tests/reliability)")
    rows = sorted(_MATRIX_ROWS, key=lambda r: r[3])
    area_width = max(len(r[0]) for r in rows)
    case_width = max(len(r[1]) for r in rows)
    for area, case, outcome, nodeid in rows:
        status = _OUTCOMES.get(nodeid, "?")
        text = outcome if len(outcome) <= 160 else outcome[:157] + "..."
        terminalreporter.write_line(f"{status:7} | {area:{area_width}} | {case:{case_width}} | {text}")
