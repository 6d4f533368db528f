"""Does our training step cost more than the network itself? (issue #13, the training gap to sleap-nn)

Builds the side-by-side benchmark's model (``vs_sleapnn.ours_config``: centroid, centered instance or
bottom-up UNet) and trains it on ``clip.slp`` through our trainer, but at the first step it takes the
prepared batch (augmented inputs and targets) and times, interleaved, on that same batch and model:

* ``A``: the trainer's own calls (``Trainer._forward``, ``Trainer._loss``, the grad scaler, the optimizer);
* ``B``: a bare step: ``model(x)``, mean squared error, ``backward``, ``optimizer.step``;
* ``C``: the bare step on uniform random inputs of the same shape;
* ``D``: the bare step with ``torch.set_flush_denormal(True)``.

Medians of 3 steps each (after one warm-up), wall and process seconds for forward and backward.
Nothing is written except a throwaway run folder in a temporary directory.

Run: ``.venv/bin/python bench/train_step_overhead.py [--model centroid] [--threads 2]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))

DATA = Path(os.environ.get("POSETRACK_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def _timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t0, time.process_time() - c0


def main() -> None:
    import torch

    import napari_posetrack.core.training.trainer as trainer_module
    import vs_sleapnn
    from napari_posetrack.core.training.data import to_device
    from napari_posetrack.core.training.run import train

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="centroid", choices=["centroid", "centered_instance", "bottomup"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results: dict[str, list[tuple[float, ...]]] = {"A trainer": [], "B bare": [], "C bare, random inputs": [],
                                                   "D bare, flush denormals": []}

    def measure(self: Any, batch: dict[str, Any]) -> None:
        self.train_model.train()
        inputs, targets, _ = self.pipeline.prepare(to_device(batch, self.device), training=True,
                                                   generator=self.generator)
        opt, model = self.optimizer, self.train_model

        def ours() -> tuple[float, ...]:
            opt.zero_grad(set_to_none=True)
            outputs, fw, fc = _timed(lambda: self._forward(model, inputs))
            loss, _ = self._loss(outputs, targets)
            _, bw, bc = _timed(lambda: self.scaler.scale(loss).backward())
            self.scaler.step(opt)
            self.scaler.update()
            return fw, bw, fc, bc

        def bare(x: Any = inputs) -> tuple[float, ...]:
            opt.zero_grad(set_to_none=True)
            outputs, fw, fc = _timed(lambda: model(x))
            loss = sum(((outputs[k] - targets[k]) ** 2).mean() for k in outputs)
            _, bw, bc = _timed(lambda: loss.backward())
            opt.step()
            return fw, bw, fc, bc

        def flushed() -> tuple[float, ...]:
            torch.set_flush_denormal(True)
            try:
                return bare()
            finally:
                torch.set_flush_denormal(False)

        noise = torch.rand_like(inputs)
        ours(), bare()
        for _ in range(args.repeats):
            results["A trainer"].append(ours())
            results["B bare"].append(bare())
            results["C bare, random inputs"].append(bare(noise))
            results["D bare, flush denormals"].append(flushed())
        print(f"{args.model}: inputs {tuple(inputs.shape)}, {args.threads} threads, median of {args.repeats}")
        print("| step | forward s | backward s | forward CPU s | backward CPU s |\n|---|---|---|---|---|")
        for name, rows in results.items():
            m = [statistics.median(c) for c in zip(*rows)]
            print(f"| {name} | {m[0]:.2f} | {m[1]:.2f} | {m[2]:.2f} | {m[3]:.2f} |")
        raise SystemExit(0)

    trainer_module.Trainer.train_step = measure
    with tempfile.TemporaryDirectory() as runs:
        cfg = vs_sleapnn.ours_config(args.model, 3, Path(runs), args.model)
        train(cfg, DATA / "sleap-flies" / "clip.slp", device="cpu")


if __name__ == "__main__":
    main()
