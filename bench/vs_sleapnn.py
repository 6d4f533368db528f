"""Side by side with sleap-nn 0.3.5: inference, training, re-tracking and memory, in one run.

Both tools run as subprocesses on this machine, interleaved (ours, sleap-nn, ours, sleap-nn, ... for
``--repeats``), with the same thread count, on the same frames of ``sleap-flies/clip.mp4`` and the same
labelled frames of ``clip.slp``. Ours runs through the ``posetrack`` CLI of this venv, sleap-nn through
its own venv (``bash bench/install_sleapnn.sh``): its ``sleap-nn predict`` CLI, and for training a small
driver that calls its ``ModelTrainer`` with one extra Lightning callback that stamps the end of every
step (the rest of its training path is untouched).

Models of the same size in both tools (UNet, 3x3 convolutions, bilinear upsampling, middle block, 2
convolutions per block; parameter counts are printed and must agree within 1%):

* top-down: centroid UNet filters 32, rate 1.5, max stride 32, output stride 2, sigma 2.5, frames
  scaled by 0.5; centered instance on 192x192 crops, filters 32, rate 1.5, max stride 16, output
  stride 2, sigma 2.5;
* bottom-up: UNet filters 32, rate 1.5, max stride 16, frames scaled by 0.5, confidence maps output
  stride 4 (sigma 2.5), part affinity fields output stride 8 (sigma 15).

Each model is trained for ``--steps`` steps of batch 4 on the first ``--train-frames`` labelled frames
(10% held out for validation by both), rotation +-15 degrees as the only augmentation, Adam 1e-4.
sleap-nn's step budget is read back from the ``training_config.yaml`` it resolves (its
``min_train_steps_per_epoch`` would otherwise raise the budget to 200 steps).

Measures (ratios are speeds ours / sleap-nn: above 1 means we are faster; for memory sleap-nn / ours:
above 1 means we use less):

* inference end to end: ``--frames`` frames of clip.mp4 (decode, resize, network, peaks, grouping,
  writing the .slp), batch 4, max 2 instances. "steady" frames/s = (N - 4) / (wall of N frames - wall
  of 4 frames), which removes start-up and model loading; "whole command" = N / wall of N frames.
  Ours with ``--backend torch`` and with each other CPU backend in ``--backends``; "best" is our fastest.
  The trained models here are barely trained, so thresholds are set for equal work: top-down keeps
  every peak (threshold -1e9) so both crop the 2 strongest centroids and locate all 13 nodes in each
  crop; bottom-up uses, for each tool, the threshold that leaves about 4 peaks per node on its own maps
  (measured on the first frames by a probe of each tool's model). Points found per frame are printed.
* training samples/s: steps 2 to S, between the end of step 1 and the end of step S (both include
  getting the next batch, augmentation, targets, forward, backward, optimiser), and the whole command
  (start-up, label loading, frame caching, S steps, validation, checkpoints).
* re-tracking ``clip.predictions.slp`` with its tracks removed and its frames repeated
  ``--track-tile`` times in a row (5: 14,740 instances; one pass is under a second of work for our
  tracker, lost in start-up), max 2 tracks, each tool's default tracker otherwise (sleap-nn needs
  ``--candidates_method local_queues`` for ``--max_tracks``): instances/s steady (that file minus a
  file of its first 10 frames) and whole command.
* peak memory: the maximum resident set size of each full-length subprocess (``wait4`` rusage).

    bash bench/install_sleapnn.sh /tmp/vs_sleapnn/venv
    python bench/vs_sleapnn.py --sleapnn-venv /tmp/vs_sleapnn/venv [--frames 100] [--steps 20]
        [--repeats 3] [--threads 2] [--only topdown,bottomup,training,tracking,memory]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("POSETRACK_DATA", ROOT.parent / "shared" / "data"))
SLEAPNN_VERSION = "0.3.5"
BATCH = 4
MAX_INSTANCES = 2
BU_PEAKS_PER_NODE = 4
ONLY = ("topdown", "bottomup", "training", "tracking", "memory")

MODELS: dict[str, dict[str, Any]] = {
    "centroid": {
        "filters": 32,
        "filters_rate": 1.5,
        "max_stride": 32,
        "output_stride": 2,
        "sigma": 2.5,
        "scale": 0.5,
    },
    "centered_instance": {
        "filters": 32,
        "filters_rate": 1.5,
        "max_stride": 16,
        "output_stride": 2,
        "sigma": 2.5,
        "scale": 1.0,
        "crop": 192,
    },
    "bottomup": {
        "filters": 32,
        "filters_rate": 1.5,
        "max_stride": 16,
        "output_stride": 4,
        "sigma": 2.5,
        "scale": 0.5,
        "paf_stride": 8,
        "paf_sigma": 15.0,
    },
}


# --------------------------------------------------------------------------- subprocesses


@dataclass
class Proc:
    wall: float
    max_rss_mib: float
    log: Path


class ToolError(RuntimeError):
    pass


def run(cmd: list[str], log: Path, env: dict[str, str], cwd: Path | None = None) -> Proc:
    """Run ``cmd`` with output to ``log``; wall time and the child's own peak RSS (wait4)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as out:
        out.write("$ " + shlex.join(cmd) + "\n")
        out.flush()
        start = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd)
        _, status, usage = os.wait4(p.pid, 0)
        wall = time.perf_counter() - start
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        tail = "".join(log.read_text(errors="replace").splitlines(True)[-25:])
        raise ToolError(f"command failed ({p.returncode}): {shlex.join(cmd)}\n--- {log} (end) ---\n{tail}")
    return Proc(wall, usage.ru_maxrss / 1024.0, log)  # ru_maxrss is KiB on Linux


def child_env(threads: int) -> dict[str, str]:
    env = dict(os.environ)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
        env[name] = str(threads)
    env["CUDA_VISIBLE_DEVICES"] = ""  # CPU for both, even on a machine with a GPU
    env["WANDB_MODE"] = "disabled"
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("PYTHONPATH", None)
    return env


# --------------------------------------------------------------------------- snippets run by each venv

SN_PREPARE_DATA = r"""
import copy, sys, sleap_io as sio
src, train_out, k, preds_src, preds_out, short_out, short_frames, tile = sys.argv[1:9]
k, short_frames, tile = int(k), int(short_frames), int(tile)
labels = sio.load_slp(src)
lfs = sorted((lf for lf in labels.labeled_frames if lf.user_instances), key=lambda lf: lf.frame_idx)[:k]
sio.Labels(labeled_frames=lfs, videos=labels.videos, skeletons=labels.skeletons).save(train_out, embed=False)
preds = sio.load_slp(preds_src)
for lf in preds.labeled_frames:
    for inst in lf.instances:
        inst.track = None
preds.tracks = []
# the file repeated `tile` times one after the other (frame indices shifted), so that the tracking
# itself, not the start-up, is what a whole command measures
span = max(lf.frame_idx for lf in preds.labeled_frames) + 1
shared = {id(o): o for o in [*preds.videos, *preds.skeletons]}
tiled = []
for t in range(tile):
    for lf in preds.labeled_frames:
        c = copy.deepcopy(lf, dict(shared))
        c.frame_idx = lf.frame_idx + t * span
        tiled.append(c)
sio.Labels(labeled_frames=tiled, videos=preds.videos, skeletons=preds.skeletons).save(preds_out, embed=False)
short = sio.Labels(
    labeled_frames=[lf for lf in preds.labeled_frames if lf.frame_idx < short_frames],
    videos=preds.videos, skeletons=preds.skeletons,
)
short.save(short_out, embed=False)
n = lambda lfs: sum(len(lf.instances) for lf in lfs)
print("train frames", len(lfs), "| retrack instances", n(tiled), f"({tile} x the file)", "| short", n(short.labeled_frames))
"""

SN_TRAIN = r"""
import json, sys, time
t0 = time.perf_counter()
import lightning as L
from omegaconf import OmegaConf
from sleap_nn.training.model_trainer import ModelTrainer
config_path, out_path = sys.argv[1:3]
stamps = []

class StepClock(L.Callback):
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        stamps.append(time.perf_counter() - t0)

setup = ModelTrainer._setup_loggers_callbacks

def with_clock(self, *args, **kwargs):
    loggers, callbacks = setup(self, *args, **kwargs)
    return loggers, list(callbacks) + [StepClock()]

ModelTrainer._setup_loggers_callbacks = with_clock
trainer = ModelTrainer.get_model_trainer_from_config(OmegaConf.load(config_path))
trainer.train()
json.dump({"stamps": stamps, "total": time.perf_counter() - t0}, open(out_path, "w"))
"""

KTH_PEAK = r"""
def kth_peak_threshold(maps, k):
    # the value of the k-th strongest local maximum of each map (median over frames and nodes)
    import torch
    pooled = torch.nn.functional.max_pool2d(maps, 3, stride=1, padding=1)
    peaks = torch.where(maps == pooled, maps, torch.full_like(maps, float("-inf"))).flatten(2)
    return float(peaks.topk(k, dim=-1).values[..., -1].median())
"""

SN_PROBE = (
    KTH_PEAK
    + r"""
import sys, numpy as np, torch, sleap_io as sio
from sleap_nn.inference.loaders import _load_lightning_module
from sleap_nn.training.lightning_modules import BottomUpLightningModule
run_dir, video, n, k = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
module, cfg, _ = _load_lightning_module(BottomUpLightningModule, run_dir, model_type="bottomup", device="cpu")
scale = float(cfg.data_config.preprocessing.scale)
v = sio.load_video(video)
frames = np.stack([np.asarray(v[i]) for i in range(n)])[..., :1]  # grayscale content
x = torch.from_numpy(frames).permute(0, 3, 1, 2).float()
x = torch.nn.functional.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)
with torch.inference_mode():
    maps = module(x.unsqueeze(1))["MultiInstanceConfmapsHead"]
print(kth_peak_threshold(maps.float(), k))
"""
)

OURS_PROBE = (
    KTH_PEAK
    + r"""
import sys, numpy as np, torch
from napari_posetrack.core.inference.pipelines import LoadedModel
from napari_posetrack.core.video import open_video
run_dir, video, n, k = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
model = LoadedModel.from_run(run_dir, torch.device("cpu"))
with open_video(video) as reader:
    frames = reader.frames(np.arange(n))
maps = model(model.prepare(frames))["confmaps"]
print(kth_peak_threshold(maps.float(), k))
"""
)


# --------------------------------------------------------------------------- configs


def ours_config(kind: str, steps: int, runs: Path, name: str) -> Any:
    from napari_posetrack.core.config import ConfmapHeadConfig, PAFHeadConfig, TrainingConfig, UNetConfig

    m = MODELS[kind]
    cfg = TrainingConfig()
    cfg.model.pipeline = kind
    cfg.model.backbone = "unet"
    cfg.model.unet = UNetConfig(
        max_stride=m["max_stride"],
        filters=m["filters"],
        filters_rate=m["filters_rate"],
        middle_block=True,
        up_interpolate=True,
        convs_per_block=2,
    )
    head = ConfmapHeadConfig(sigma=m["sigma"], output_stride=m["output_stride"])
    if kind == "centroid":
        cfg.model.heads.centroids = head
    else:
        cfg.model.heads.confmaps = head
    if kind == "bottomup":
        cfg.model.heads.pafs = PAFHeadConfig(sigma=m["paf_sigma"], output_stride=m["paf_stride"])
    cfg.data.input_scaling = m["scale"]
    cfg.data.crop_size = m.get("crop")
    cfg.data.channels = "grayscale"
    cfg.data.validation_fraction = 0.1
    cfg.data.seed = 0
    o = cfg.optimization
    o.batch_size = BATCH
    o.epochs = 1
    o.batches_per_epoch = steps
    o.initial_learning_rate = 1e-4
    o.optimizer = "adam"
    a = o.augmentation
    a.rotation_probability, a.rotation_min_angle, a.rotation_max_angle = 1.0, -15.0, 15.0
    cfg.outputs.runs_folder = str(runs)
    cfg.outputs.run_name = name
    cfg.outputs.keep = "best"
    return cfg


def sleapnn_config(kind: str, steps: int, train_slp: Path, runs: Path, name: str) -> dict[str, Any]:
    m = MODELS[kind]
    if kind == "bottomup":
        heads = {
            "bottomup": {
                "confmaps": {"sigma": m["sigma"], "output_stride": m["output_stride"], "loss_weight": 1.0},
                "pafs": {"sigma": m["paf_sigma"], "output_stride": m["paf_stride"], "loss_weight": 1.0},
            }
        }
    else:
        heads = {
            kind: {
                "confmaps": {"anchor_part": None, "sigma": m["sigma"], "output_stride": m["output_stride"]}
            }
        }
    preprocessing: dict[str, Any] = {
        "ensure_grayscale": True,
        "ensure_rgb": False,
        "scale": float(m["scale"]),
    }
    if "crop" in m:
        preprocessing["crop_size"] = m["crop"]
    return {
        "data_config": {
            "train_labels_path": [str(train_slp)],
            "val_labels_path": None,
            "validation_fraction": 0.1,
            "user_instances_only": True,
            "data_pipeline_fw": "torch_dataset_cache_img_memory",
            "preprocessing": preprocessing,
            "use_augmentations_train": True,
            "augmentation_config": {
                "intensity": None,
                "geometric": {
                    "rotation_min": -15.0,
                    "rotation_max": 15.0,
                    "rotation_p": 1.0,
                    "scale_min": 1.0,
                    "scale_max": 1.0,
                    "scale_p": 0.0,
                    "translate_width": 0.0,
                    "translate_height": 0.0,
                    "translate_p": 0.0,
                    "affine_p": 0.0,
                    "erase_p": 0.0,
                    "mixup_p": 0.0,
                    "flip_p": 0.0,
                },
            },
        },
        "model_config": {
            "backbone_config": {
                "unet": {
                    "in_channels": 1,
                    "kernel_size": 3,
                    "filters": m["filters"],
                    "filters_rate": float(m["filters_rate"]),
                    "max_stride": m["max_stride"],
                    "stem_stride": None,
                    "middle_block": True,
                    "up_interpolate": True,
                    "stacks": 1,
                    "convs_per_block": 2,
                    "output_stride": m["output_stride"],
                }
            },
            "head_configs": heads,
        },
        "trainer_config": {
            "train_data_loader": {"batch_size": BATCH, "shuffle": True, "num_workers": 0},
            "val_data_loader": {"batch_size": BATCH, "shuffle": False, "num_workers": 0},
            "model_ckpt": {"save_top_k": 1, "save_last": False},
            "trainer_devices": 1,
            "trainer_accelerator": "cpu",
            "enable_progress_bar": False,
            "min_train_steps_per_epoch": steps,
            "train_steps_per_epoch": steps,
            "visualize_preds_during_training": False,
            "max_epochs": 1,
            "seed": 0,
            "use_wandb": False,
            "save_ckpt": True,
            "ckpt_dir": str(runs),
            "run_name": name,
            "optimizer_name": "Adam",
            "optimizer": {"lr": 1e-4, "amsgrad": False},
        },
    }


# --------------------------------------------------------------------------- the bench


@dataclass
class Samples:
    values: list[float] = field(default_factory=list)

    def add(self, v: float) -> None:
        self.values.append(v)

    @property
    def median(self) -> float:
        finite = [v for v in self.values if not math.isnan(v)]
        return statistics.median(finite) if finite else float("nan")


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.work = Path(args.work).resolve()
        self.venv = Path(args.sleapnn_venv).resolve()
        self.sn_python = str(self.venv / "bin" / "python")
        self.sn_cli = str(self.venv / "bin" / "sleap-nn")
        posetrack = Path(sys.executable).parent / "posetrack"
        self.ours_cli = (
            [str(posetrack)]
            if posetrack.exists()
            else [
                sys.executable,
                "-c",
                "import sys; from napari_posetrack.core.cli import main; sys.exit(main())",
            ]
        )
        self.env = child_env(args.threads)
        # our commands import the same source as this script (an editable install would follow the
        # working tree, which may change during a run of an hour): run the bench from a clean clone with
        # PYTHONPATH=CLONE/src to measure a commit
        import napari_posetrack

        self.ours_src = Path(napari_posetrack.__file__).resolve().parents[1]
        self.ours_env = dict(self.env, PYTHONPATH=str(self.ours_src))
        flies = Path(args.data) / "sleap-flies"
        self.video = flies / "clip.mp4"
        self.labels = flies / "clip.slp"
        self.predictions = flies / "clip.predictions.slp"
        missing = [p for p in (self.video, self.labels, self.predictions) if not p.exists()]
        if missing:
            sys.exit(f"missing {missing[0]}: give the shared data folder with --data or POSETRACK_DATA")
        self.results: dict[str, dict[str, Samples]] = {}
        self.memory: dict[str, dict[str, Samples]] = {}
        self.notes: list[str] = []
        self.details: list[str] = []
        self.models: dict[str, dict[str, Path]] = {"ours": {}, "sleap-nn": {}}
        self.run_counter = 0

    # -- helpers ---------------------------------------------------------------------------------------
    def record(
        self, measure: str, tool: str, value: float, rss: float | None = None, mem_label: str | None = None
    ) -> None:
        self.results.setdefault(measure, {}).setdefault(tool, Samples()).add(value)
        if rss is not None:
            self.memory.setdefault(mem_label or measure, {}).setdefault(tool, Samples()).add(rss)

    def log(self, name: str) -> Path:
        self.run_counter += 1
        return self.work / "logs" / f"{self.run_counter:03d}_{name}.log"

    def say(self, text: str) -> None:
        print(text, flush=True)

    # -- setup -----------------------------------------------------------------------------------------
    def check_sleapnn(self) -> str:
        if not Path(self.sn_python).exists():
            sys.exit(f"no sleap-nn venv at {self.venv}: run  bash bench/install_sleapnn.sh {self.venv}")
        out = subprocess.run(
            [
                self.sn_python,
                "-c",
                (
                    "import importlib.metadata as m, torch; "
                    "print(m.version('sleap-nn'), m.version('sleap-io'), torch.__version__)"
                ),
            ],
            capture_output=True,
            text=True,
            env=self.env,
            check=False,
        )
        if out.returncode != 0:
            sys.exit(f"sleap-nn does not import in {self.venv}:\n{out.stderr}")
        version, sio_version, torch_version = out.stdout.split()
        if version != SLEAPNN_VERSION:
            self.notes.append(f"sleap-nn is {version}, not the {SLEAPNN_VERSION} this bench was written for")
        return f"sleap-nn {version} (sleap-io {sio_version}, torch {torch_version})"

    def prepare_data(self) -> None:
        self.train_slp = self.work / "train.slp"
        self.retrack_slp = self.work / "retrack.slp"
        self.retrack_short_slp = self.work / "retrack_short.slp"
        p = run(
            [
                self.sn_python,
                "-c",
                SN_PREPARE_DATA,
                str(self.labels),
                str(self.train_slp),
                str(self.args.train_frames),
                str(self.predictions),
                str(self.retrack_slp),
                str(self.retrack_short_slp),
                str(self.args.track_short_frames),
                str(self.args.track_tile),
            ],
            self.log("prepare_data"),
            self.env,
        )
        self.say("data: " + p.log.read_text().splitlines()[-1])

    # -- training ----------------------------------------------------------------------------------------
    def train_ours(self, kind: str, name: str) -> tuple[Path, dict[str, Any]]:
        runs = self.work / "runs_ours"
        cfg = ours_config(kind, self.args.steps, runs, name)
        cfg_path = self.work / "configs" / f"ours_{name}.yaml"
        cfg_path.parent.mkdir(parents=True, exist_ok=True)
        cfg.to_yaml(cfg_path)
        run_dir = runs / name
        if run_dir.exists():
            shutil.rmtree(run_dir)
        p = run(
            [*self.ours_cli, "train", str(cfg_path), str(self.train_slp), "--device", "cpu", "--quiet"],
            self.log(f"train_ours_{name}"),
            self.ours_env,
        )
        records = [
            json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()
        ]
        stamps = [r["elapsed"] for r in records if r["event"] == "batch"]
        from napari_posetrack.core.config import TrainingConfig

        resolved = TrainingConfig.from_file(run_dir / "training_config.yaml")
        info = {
            "stamps": stamps,
            "wall": p.wall,
            "rss": p.max_rss_mib,
            "budget": f"epochs {resolved.optimization.epochs} x batches_per_epoch "
            f"{resolved.optimization.batches_per_epoch}, batch {resolved.optimization.batch_size}",
            "params": self.ours_params(run_dir, resolved),
        }
        return run_dir, info

    def ours_params(self, run_dir: Path, cfg: Any) -> int:
        import torch  # noqa: F401

        from napari_posetrack.core.io.slp import load_slp
        from napari_posetrack.core.models import build_model

        skeleton = load_slp(self.train_slp).skeleton
        model = build_model(cfg, skeleton, in_channels=1)
        return int(sum(p.numel() for p in model.parameters()))

    def train_sleapnn(self, kind: str, name: str) -> tuple[Path, dict[str, Any]]:
        import yaml

        runs = self.work / "runs_sleapnn"
        cfg_path = self.work / "configs" / f"sleapnn_{name}.yaml"
        cfg_path.parent.mkdir(parents=True, exist_ok=True)
        cfg_path.write_text(
            yaml.safe_dump(sleapnn_config(kind, self.args.steps, self.train_slp, runs, name), sort_keys=False)
        )
        run_dir = runs / name
        if run_dir.exists():
            shutil.rmtree(run_dir)
        out = self.work / "configs" / f"sleapnn_{name}.timing.json"
        p = run(
            [self.sn_python, "-c", SN_TRAIN, str(cfg_path), str(out)],
            self.log(f"train_sleapnn_{name}"),
            self.env,
        )
        timing = json.loads(out.read_text())
        resolved = yaml.safe_load((run_dir / "training_config.yaml").read_text())
        tc = resolved["trainer_config"]
        info = {
            "stamps": timing["stamps"],
            "wall": p.wall,
            "rss": p.max_rss_mib,
            "budget": f"max_epochs {tc['max_epochs']} x train_steps_per_epoch {tc['train_steps_per_epoch']} "
            f"(min_train_steps_per_epoch {tc['min_train_steps_per_epoch']}), "
            f"batch {tc['train_data_loader']['batch_size']}",
            "params": int(resolved["model_config"].get("total_params") or 0),
        }
        if tc["train_steps_per_epoch"] != self.args.steps or tc["max_epochs"] != 1:
            self.notes.append(f"sleap-nn resolved a different budget for {name}: {info['budget']}")
        return run_dir, info

    def training(self, kinds: list[str], timed: bool) -> None:
        for kind in kinds:
            for r in range(self.args.repeats if timed else 1):
                infos = {}
                for tool, fn in (("ours", self.train_ours), ("sleap-nn", self.train_sleapnn)):
                    name = f"{kind}_r{r}"
                    run_dir, info = fn(kind, name)
                    infos[tool] = info
                    if r == 0:
                        self.models[tool][kind] = run_dir
                    s = info["stamps"]
                    if len(s) != self.args.steps:
                        self.notes.append(f"{tool} {kind}: {len(s)} steps ran, asked {self.args.steps}")
                    if timed:
                        per_step = (s[-1] - s[0]) / (len(s) - 1) if len(s) > 1 else float("nan")
                        samples_per_s = BATCH / per_step
                        self.record(
                            f"training {kind}: samples/s, steps 2..S",
                            tool,
                            samples_per_s,
                            info["rss"],
                            f"training {kind}",
                        )
                        self.record(
                            f"training {kind}: samples/s, whole command", tool, BATCH * len(s) / info["wall"]
                        )
                        self.say(
                            f"  train {kind:<17} {tool:<8} r{r}: {samples_per_s:6.2f} samples/s (steps 2..{len(s)}), "
                            f"whole command {info['wall']:6.1f} s, peak RSS {info['rss']:6.0f} MiB"
                        )
                if r == 0:
                    po, ps = infos["ours"]["params"], infos["sleap-nn"]["params"]
                    line = (
                        f"{kind}: parameters ours {po:,}, sleap-nn {ps:,} ({(po - ps) / ps:+.2%}); budget ours "
                        f"{infos['ours']['budget']}; sleap-nn {infos['sleap-nn']['budget']}"
                    )
                    self.details.append(line)
                    self.say("  " + line)
                    if ps and abs(po - ps) / ps > 0.01:
                        self.notes.append(
                            f"{kind}: parameter counts differ by more than 1% ({po:,} vs {ps:,})"
                        )

    # -- inference -------------------------------------------------------------------------------------
    def export_ours(self, run_dir: Path) -> None:
        if (run_dir / "model.onnx").exists():
            return
        run([*self.ours_cli, "export", str(run_dir)], self.log(f"export_{run_dir.name}"), self.ours_env)

    def probe_thresholds(self) -> dict[str, float]:
        n = str(BATCH)
        k = str(BU_PEAKS_PER_NODE)
        out = {}
        for tool, cmd in (
            (
                "ours",
                [
                    sys.executable,
                    "-c",
                    OURS_PROBE,
                    str(self.models["ours"]["bottomup"]),
                    str(self.video),
                    n,
                    k,
                ],
            ),
            (
                "sleap-nn",
                [
                    self.sn_python,
                    "-c",
                    SN_PROBE,
                    str(self.models["sleap-nn"]["bottomup"]),
                    str(self.video),
                    n,
                    k,
                ],
            ),
        ):
            p = run(cmd, self.log(f"probe_{tool}"), self.ours_env if tool == "ours" else self.env)
            out[tool] = float(p.log.read_text().strip().splitlines()[-1])
        return out

    def count_points(self, slp: Path) -> tuple[float, float]:
        """Predicted instances per frame and points found per frame in an output file (a sanity check)."""
        import numpy as np

        from napari_posetrack.core.io.slp import load_slp

        try:
            points = load_slp(slp).instances.points
        except Exception as exc:  # noqa: BLE001 - only a sanity figure
            self.notes.append(f"could not count points in {slp.name}: {exc}")
            return float("nan"), float("nan")
        return len(points) / self.args.frames, int(np.isfinite(points[..., 0]).sum()) / self.args.frames

    def ours_predict(self, runs: list[Path], frames: int, backend: str, threshold: float, out: Path) -> Proc:
        models = [arg for r in runs for arg in ("-m", str(r))]
        cmd = [
            *self.ours_cli,
            "predict",
            str(self.video),
            *models,
            "-o",
            str(out),
            "--frames",
            f"0-{frames - 1}",
            "--batch-size",
            str(BATCH),
            "--device",
            "cpu",
            "--backend",
            backend,
            "--max-instances",
            str(MAX_INSTANCES),
            f"--peak-threshold={threshold}",
            "--overlap",
            "none",
            "--quiet",
        ]
        return run(cmd, self.log(f"predict_ours_{backend}_{frames}"), self.ours_env)

    def sleapnn_predict(self, runs: list[Path], frames: int, threshold: float, out: Path) -> Proc:
        cmd = [
            self.sn_cli,
            "predict",
            "-i",
            str(self.video),
            "-o",
            str(out),
            "--frames",
            f"0-{frames - 1}",
            "--batch_size",
            str(BATCH),
            "--device",
            "cpu",
            "--max_instances",
            str(MAX_INSTANCES),
            f"--peak_threshold={threshold}",
        ]
        for r in runs:
            cmd += ["-m", str(r)]
        return run(cmd, self.log(f"predict_sleapnn_{frames}"), self.env)

    def inference(self, pipeline: str, backends: list[str], thresholds: dict[str, float]) -> None:
        kinds = ["centroid", "centered_instance"] if pipeline == "topdown" else ["bottomup"]
        n, short = self.args.frames, BATCH
        outs = self.work / "predictions"
        outs.mkdir(parents=True, exist_ok=True)
        counted: dict[str, float] = {}
        for r in range(self.args.repeats):
            for tool in [*(f"ours {b}" for b in backends), "sleap-nn"]:
                if tool == "sleap-nn":
                    runs = [self.models["sleap-nn"][k] for k in kinds]
                    thr = thresholds["sleap-nn"]
                    full = self.sleapnn_predict(runs, n, thr, outs / f"{pipeline}_sleapnn.slp")
                    head = self.sleapnn_predict(runs, short, thr, outs / f"{pipeline}_sleapnn_short.slp")
                    out = outs / f"{pipeline}_sleapnn.slp"
                else:
                    backend = tool.split()[1]
                    runs = [self.models["ours"][k] for k in kinds]
                    thr = thresholds["ours"]
                    out = outs / f"{pipeline}_ours_{backend}.slp"
                    full = self.ours_predict(runs, n, backend, thr, out)
                    head = self.ours_predict(
                        runs, short, backend, thr, outs / f"{pipeline}_ours_{backend}_short.slp"
                    )
                steady = steady_rate(n - short, full.wall, head.wall)
                self.record(
                    f"{pipeline} inference: frames/s steady",
                    tool,
                    steady,
                    full.max_rss_mib,
                    f"{pipeline} inference, {n} frames",
                )
                self.record(f"{pipeline} inference: frames/s whole command", tool, n / full.wall)
                self.say(
                    f"  {pipeline:<8} {tool:<18} r{r}: steady {steady:6.2f} frames/s, whole command {full.wall:6.1f} s "
                    f"({n} frames), {short} frames {head.wall:5.1f} s, peak RSS {full.max_rss_mib:6.0f} MiB"
                )
                if tool not in counted:
                    inst, pts = self.count_points(out)
                    counted[tool] = pts
                    self.details.append(
                        f"{pipeline} {tool}: {inst:.2f} instances and {pts:.1f} points per frame "
                        f"(peak threshold {thr:.4g})"
                    )
        ours_pts, sn_pts = counted.get("ours torch", float("nan")), counted.get("sleap-nn", float("nan"))
        if not abs(ours_pts - sn_pts) <= 0.5:
            self.notes.append(
                f"{pipeline}: the tools output different numbers of points per frame (ours {ours_pts:.1f}, sleap-nn "
                f"{sn_pts:.1f}): with models this little trained the grouping links few peaks and each tool keeps "
                "or drops the leftovers its own way; peak finding and the scoring of every candidate connection "
                "still ran on about the same number of peaks in both"
                if pipeline == "bottomup"
                else f"{pipeline}: the tools output different numbers of points per frame (ours {ours_pts:.1f}, sleap-nn "
                f"{sn_pts:.1f}); the work compared is not the same"
            )

    # -- tracking ----------------------------------------------------------------------------------------
    def tracking(self) -> None:
        outs = self.work / "tracked"
        outs.mkdir(parents=True, exist_ok=True)
        n_full, n_short = self.instance_counts()
        for r in range(self.args.repeats):
            for tool in ("ours", "sleap-nn"):
                walls = []
                for src in (self.retrack_slp, self.retrack_short_slp):
                    out = outs / f"{tool}_{src.stem}.slp"
                    if tool == "ours":
                        cmd = [
                            *self.ours_cli,
                            "track",
                            str(src),
                            "-o",
                            str(out),
                            "--max-tracks",
                            str(MAX_INSTANCES),
                            "--quiet",
                        ]
                    else:
                        cmd = [
                            self.sn_cli,
                            "predict",
                            "-i",
                            str(src),
                            "-o",
                            str(out),
                            "--tracking",
                            "--candidates_method",
                            "local_queues",
                            "--max_tracks",
                            str(MAX_INSTANCES),
                        ]
                    p = run(cmd, self.log(f"track_{tool}_{src.stem}"), self.ours_env if tool == "ours" else self.env)
                    walls.append(p)
                full, short = walls
                steady = steady_rate(n_full - n_short, full.wall, short.wall)
                if math.isnan(steady):
                    self.notes.append(
                        f"re-tracking {tool} r{r}: the full file took {full.wall:.2f} s and the short one "
                        f"{short.wall:.2f} s; the difference is within start-up noise, so no steady rate "
                        "(the whole-command rate stands)"
                    )
                self.record("re-tracking: instances/s steady", tool, steady, full.max_rss_mib, "re-tracking")
                self.record("re-tracking: instances/s whole command", tool, n_full / full.wall)
                self.say(
                    f"  re-tracking {tool:<8} r{r}: steady {steady:8.0f} instances/s, whole command {full.wall:5.1f} s "
                    f"({n_full} instances), short file {short.wall:5.1f} s, peak RSS {full.max_rss_mib:6.0f} MiB"
                )
        for tool in ("ours", "sleap-nn"):
            self.details.append(f"re-tracking {tool}: {self.track_count(outs / f'{tool}_retrack.slp')}")

    def instance_counts(self) -> tuple[int, int]:
        from napari_posetrack.core.io.slp import load_slp

        return tuple(len(load_slp(p).instances) for p in (self.retrack_slp, self.retrack_short_slp))  # type: ignore[return-value]

    def track_count(self, slp: Path) -> str:
        try:
            from napari_posetrack.core.io.slp import load_slp

            labels = load_slp(slp)
            return f"{len(labels.tracks)} tracks"
        except Exception as exc:  # noqa: BLE001 - only a sanity figure
            return f"(could not read: {exc})"


def steady_rate(extra_items: int, full_wall: float, short_wall: float) -> float:
    """Items per second of the extra work, or NaN when the difference is lost in start-up noise."""
    delta = full_wall - short_wall
    return extra_items / delta if delta > 0.05 * full_wall else float("nan")


# --------------------------------------------------------------------------- report


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        load = "?"
    mem = ""
    try:
        kb = int(
            next(
                line for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")
            ).split()[1]
        )
        mem = f", {kb / 2**20:.0f} GiB"
    except (OSError, StopIteration, ValueError):
        pass
    return f"{cpu}, {os.cpu_count()} logical CPUs{mem}, load average {load}"


def ratio(a: float, b: float) -> str:
    return "n/a" if math.isnan(a) or math.isnan(b) or b == 0 else f"{a / b:.2f}x"


def fmt(v: float) -> str:
    if math.isnan(v):
        return "n/a"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def report(bench: Bench, header: list[str], backends: list[str]) -> str:
    lines = [*header, ""]
    lines.append("| measure | ours | sleap-nn | ratio ours / sleap-nn (speed: >1 = we are faster) |")
    lines.append("|---|---|---|---|")
    for measure, by_tool in bench.results.items():
        sn = by_tool.get("sleap-nn", Samples()).median
        if "ours" in by_tool:
            ours = by_tool["ours"].median
            lines.append(f"| {measure} | {fmt(ours)} | {fmt(sn)} | **{ratio(ours, sn)}** |")
            continue
        for b in backends:
            if f"ours {b}" in by_tool:
                ours = by_tool[f"ours {b}"].median
                lines.append(
                    f"| {measure}, ours --backend {b} | {fmt(ours)} | {fmt(sn)} | {ratio(ours, sn)} |"
                )
        present = [b for b in backends if f"ours {b}" in by_tool]
        if len(present) > 1:
            best = max(
                present,
                key=lambda b: (
                    -math.inf if math.isnan(by_tool[f"ours {b}"].median) else by_tool[f"ours {b}"].median
                ),
            )
            ours = by_tool[f"ours {best}"].median
            lines.append(
                f"| {measure}, ours best ({best}) | {fmt(ours)} | {fmt(sn)} | **{ratio(ours, sn)}** |"
            )
        elif present:
            lines[-1] = lines[-1].replace(f"| {ratio(ours, sn)} |", f"| **{ratio(ours, sn)}** |")
    if bench.memory:
        lines += [
            "",
            "| peak RSS of the command (MiB) | ours | sleap-nn | ratio sleap-nn / ours (>1 = we use less) |",
            "|---|---|---|---|",
        ]
        for label, by_tool in bench.memory.items():
            sn = by_tool.get("sleap-nn", Samples()).median
            for tool, samples in by_tool.items():
                if tool == "sleap-nn":
                    continue
                name = label if tool == "ours" else f"{label}, {tool}"
                lines.append(f"| {name} | {samples.median:.0f} | {sn:.0f} | {ratio(sn, samples.median)} |")
    if bench.details:
        lines += ["", "Checks:", *(f"- {d}" for d in bench.details)]
    if bench.notes:
        lines += ["", "Notes:", *(f"- {n}" for n in bench.notes)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog=textwrap.dedent(__doc__.split("\n", 2)[2]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--sleapnn-venv", default="/tmp/vs_sleapnn/venv", help="venv made by bench/install_sleapnn.sh"
    )
    parser.add_argument(
        "--frames", type=int, default=100, help="frames of clip.mp4 per inference run (default 100)"
    )
    parser.add_argument(
        "--steps", type=int, default=20, help="training steps of batch 4 per model (default 20)"
    )
    parser.add_argument(
        "--train-frames", type=int, default=32, help="labelled frames trained on (default 32)"
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="interleaved repeats; medians are reported (default 3)"
    )
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for both tools (default 2)")
    parser.add_argument(
        "--only", default=",".join(ONLY), help=f"comma list of {', '.join(ONLY)} (default all)"
    )
    parser.add_argument(
        "--backends",
        default="torch,onnxruntime,openvino",
        help="our backends to run (default torch,onnxruntime,openvino; missing ones are skipped)",
    )
    parser.add_argument(
        "--track-short-frames",
        type=int,
        default=10,
        help="frames of the short re-tracking file subtracted for the steady rate (default 10)",
    )
    parser.add_argument(
        "--track-tile",
        type=int,
        default=5,
        help="re-track clip.predictions.slp repeated this many times in a row (default 5: 14,740 instances)",
    )
    parser.add_argument(
        "--data", default=str(DATA), help="shared data folder (default ../shared/data beside the repository)"
    )
    parser.add_argument("--work", default="/tmp/vs_sleapnn/work", help="scratch folder (runs, logs, outputs)")
    parser.add_argument("--keep-work", action="store_true", help="do not empty the scratch folder first")
    args = parser.parse_args()
    only = [o.strip() for o in args.only.split(",") if o.strip()]
    bad = [o for o in only if o not in ONLY]
    if bad:
        parser.error(f"--only: unknown {', '.join(bad)}; use {', '.join(ONLY)}")
    if args.steps < 2 or args.frames <= BATCH:
        parser.error(f"--steps must be >= 2 and --frames > {BATCH}")
    if only == ["memory"]:  # memory alone: one pass of everything, memory table only
        only = ["topdown", "bottomup", "training", "tracking"]
        args.repeats = 1

    bench = Bench(args)
    if bench.work.exists() and not args.keep_work:
        shutil.rmtree(bench.work)
    bench.work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    sn_version = bench.check_sleapnn()
    import importlib.metadata as md

    import torch

    backends = []
    for b in [b.strip() for b in args.backends.split(",") if b.strip()]:
        module = {"onnxruntime": "onnxruntime", "openvino": "openvino"}.get(b)
        if module is not None:
            try:
                __import__(module)
            except ImportError:
                bench.notes.append(f"--backend {b} skipped: {module} is not installed in our venv")
                continue
        backends.append(b)
    header = [
        f"Machine: {machine()}; {args.threads} threads for both tools (OMP/MKL_NUM_THREADS), CPU only.",
        (
            f"Ours: napari-posetrack {md.version('napari-posetrack')} (torch {torch.__version__}, Python "
            f"{platform.python_version()}); {sn_version}."
        ),
        f"Command: python bench/vs_sleapnn.py {shlex.join(sys.argv[1:])}",
        (
            f"Inference: frames 0-{args.frames - 1} of clip.mp4 (1024x1024), batch {BATCH}, max {MAX_INSTANCES} "
            f"instances; training: {args.steps} steps of batch {BATCH} on the first {args.train_frames} labelled "
            f"frames of clip.slp; medians of {args.repeats} interleaved repeats."
        ),
    ]
    for line in header:
        bench.say(line)
    bench.prepare_data()

    need = []
    if "topdown" in only:
        need += ["centroid", "centered_instance"]
    if "bottomup" in only:
        need += ["bottomup"]
    if "training" in only:
        bench.say("training (interleaved ours / sleap-nn):")
        bench.training(["centroid", "centered_instance", "bottomup"], timed=True)
    elif need:
        bench.say("training the models for inference (not timed):")
        bench.training(need, timed=False)
    if need and any(b != "torch" for b in backends):
        for kind in need:
            try:
                bench.export_ours(bench.models["ours"][kind])
            except ToolError as exc:
                bench.notes.append(f"export failed, ONNX backends skipped: {str(exc).splitlines()[0]}")
                backends = [b for b in backends if b == "torch"]
                break
    if "topdown" in only:
        bench.say("top-down inference (interleaved):")
        bench.inference("topdown", backends, {"ours": -1e9, "sleap-nn": -1e9})
    if "bottomup" in only:
        thresholds = bench.probe_thresholds()
        bench.say(
            f"bottom-up peak thresholds ({BU_PEAKS_PER_NODE} peaks per node on the first {BATCH} frames): "
            f"ours {thresholds['ours']:.4g}, sleap-nn {thresholds['sleap-nn']:.4g}"
        )
        bench.say("bottom-up inference (interleaved):")
        bench.inference("bottomup", backends, thresholds)
    if "tracking" in only:
        bench.say("re-tracking (interleaved):")
        bench.tracking()
    if args.only.strip() == "memory":
        bench.results = {}
    header.append(f"Run time: {(time.perf_counter() - started) / 60:.1f} min; logs in {bench.work / 'logs'}.")
    text = report(bench, header, backends)
    print("\n" + text)
    (bench.work / "report.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
