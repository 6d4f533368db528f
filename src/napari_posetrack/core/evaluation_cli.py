"""``posetrack evaluate GT PRED [--json OUT]``: pose and identity metrics as a table and JSON."""

from __future__ import annotations

import argparse
import json
import math
from typing import Any

from .errors import atomic_write


def add_evaluate_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``evaluate`` subcommand on an argparse ``subparsers`` object."""
    p = subparsers.add_parser(
        "evaluate",
        help="score predictions against ground truth (poses and identities)",
        description="Pose accuracy (distances, PCK, OKS mAP, visibility) and tracking (ID switches, IDF1, MOTA).",
    )
    p.add_argument("gt", nargs="?", help="ground-truth labels file")
    p.add_argument("pred", nargs="?", help="predicted labels file")
    p.add_argument(
        "--runs",
        default=None,
        help="instead of GT PRED: compare every model in this runs folder on its own validation frames",
    )
    p.add_argument("--labels", default=None, help="with --runs: the labels the models were trained on")
    p.add_argument("--device", default="auto", help="with --runs: where to predict (auto, cpu, cuda)")
    p.add_argument("--json", dest="json_out", default=None, help="also write all metrics to this JSON file")
    p.add_argument(
        "--node", default=None, help="node that places animals for tracking metrics (default centroid)"
    )
    p.add_argument(
        "--max-dist", type=float, default=50.0, help="tracking match distance in pixels (default 50)"
    )
    p.add_argument(
        "--match-by", choices=("oks", "distance"), default="oks", help="pose pairing (default oks)"
    )
    p.add_argument("--no-tracking", action="store_true", help="skip tracking metrics")
    p.set_defaults(func=run_evaluate)
    return p


def _fmt(x: Any) -> str:
    if isinstance(x, float):
        return "nan" if math.isnan(x) else f"{x:.4g}"
    return str(x)


def format_report(result: dict[str, Any]) -> str:
    """A plain-text table of the main numbers of :func:`run_evaluate`'s result."""
    lines: list[str] = []
    poses = result["poses"]
    lines.append(
        f"instances: {poses['n_gt_instances']} ground truth, {poses['n_pred_instances']} predicted, "
        f"{poses['n_matched']} matched"
    )
    lines.append(f"{'node':<16}{'mean':>9}{'median':>9}{'p90':>9}{'p95':>9}")
    rows = dict(poses["distance"]["per_node"])
    rows["(all)"] = poses["distance"]["all"]
    for name, st in rows.items():
        lines.append(f"{name:<16}" + "".join(f"{_fmt(st[k]):>9}" for k in ("mean", "median", "p90", "p95")))
    lines.append("PCK  " + "  ".join(f"@{k}px {_fmt(v)}" for k, v in poses["pck"].items()))
    oks = poses["oks"]
    lines.append(f"OKS  mean {_fmt(oks['mean'])}  mAP {_fmt(oks['mAP'])}  mAR {_fmt(oks['mAR'])}")
    vis = poses["visibility"]
    lines.append(f"visibility  precision {_fmt(vis['precision'])}  recall {_fmt(vis['recall'])}")
    tr = result.get("tracking")
    if tr is not None:
        lines.append(
            f"tracking ({tr['node'] or 'centroid'}, {tr['max_dist']:g} px): ID switches {tr['id_switches']} "
            f"({_fmt(tr['switches_per_1000_frames'])}/1000 frames)  IDF1 {_fmt(tr['idf1'])}  "
            f"MOTA {_fmt(tr['mota'])}  fragments {tr['fragments']}"
        )
    return "\n".join(lines)


def run_evaluate(args: argparse.Namespace) -> int:
    """Load both files, evaluate, print the table, write JSON when asked. Returns the exit status."""
    from .evaluation import evaluate_poses, evaluate_tracking
    from .io import load_labels

    if args.runs:
        return _run_compare(args)
    if not args.gt or not args.pred:
        raise ValueError("give GT and PRED labels files, or --runs RUNS_DIR")
    gt = load_labels(args.gt)
    pred = load_labels(args.pred)
    result: dict[str, Any] = {"gt": str(args.gt), "pred": str(args.pred)}
    result["poses"] = evaluate_poses(gt, pred, match_by=args.match_by)
    tracked = (gt.instances.track >= 0).any() and (pred.instances.track >= 0).any()
    if not args.no_tracking and tracked:
        result["tracking"] = evaluate_tracking(gt, pred, node=args.node, max_dist=args.max_dist)
    print(format_report(result))
    if args.json_out:
        with atomic_write(args.json_out) as tmp:
            tmp.write_text(json.dumps(result, indent=2, default=_json_default))
    return 0


def _run_compare(args: argparse.Namespace) -> int:
    """``--runs``: score every model of a runs folder on its validation split; table + JSON."""
    from .inference.pipelines import InferenceOptions
    from .tools.compare_models import compare_models, format_comparison

    rows = compare_models(args.runs, labels=args.labels, options=InferenceOptions(device=args.device))
    print(format_comparison(rows))
    if args.json_out:
        with atomic_write(args.json_out) as tmp:
            tmp.write_text(json.dumps(rows, indent=2, default=_json_default))
    return 0


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")
