"""Helpers of the fault-injection suite: run ``posetrack`` in a child process and kill it with -9."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

POLL_S = 0.002


def posetrack(*args: object) -> list[str]:
    """The command line of ``posetrack ARGS`` with this interpreter (no reliance on PATH)."""
    return [sys.executable, "-m", "napari_posetrack.core.cli", *(str(a) for a in args)]


def child_env(tmp: Path) -> dict[str, str]:
    """The child's environment: a private video cache, no GPU, warnings shown once."""
    env = dict(os.environ)
    env["POSETRACK_VIDEO_CACHE"] = str(tmp / "video-cache")
    env["CUDA_VISIBLE_DEVICES"] = ""
    return env


def digest(path: Path) -> str | None:
    """SHA-256 of a file (``None`` when absent): what 'intact' is checked against."""
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


@dataclass
class Killed:
    """How a child ended: killed at ``at_s`` after it got ready, or finished on its own first."""

    killed: bool
    ready_s: float
    at_s: float
    returncode: int | None


def run_and_kill(
    cmd: Sequence[str],
    env: dict[str, str],
    ready: Callable[[], bool],
    delay_s: float,
    *,
    timeout_s: float = 300.0,
) -> Killed:
    """Start ``cmd``, wait until ``ready()`` holds, wait ``delay_s`` more, then SIGKILL it.

    The child runs in its own process group and the whole group is killed (nothing it started
    survives). When the child exits before that moment, nothing is killed.
    """
    started = time.monotonic()
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    try:
        while not ready():
            if proc.poll() is not None:
                return Killed(False, time.monotonic() - started, 0.0, proc.returncode)
            if time.monotonic() - started > timeout_s:
                raise TimeoutError(f"{cmd}: not ready after {timeout_s} s")
            time.sleep(POLL_S)
        ready_at = time.monotonic()
        deadline = ready_at + delay_s
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return Killed(False, ready_at - started, time.monotonic() - ready_at, proc.returncode)
            time.sleep(min(POLL_S, max(deadline - time.monotonic(), 0)))
        if proc.poll() is not None:
            return Killed(False, ready_at - started, delay_s, proc.returncode)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        return Killed(True, ready_at - started, time.monotonic() - ready_at, proc.returncode)
    finally:
        if proc.poll() is None:  # a failed wait: never leave the child behind
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        if proc.stderr is not None:
            proc.stderr.close()


def timed_run(cmd: Sequence[str], env: dict[str, str], start: Callable[[], bool]) -> tuple[float, float]:
    """Run ``cmd`` to the end; returns (seconds until ``start()`` first held, seconds after that)."""
    began = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    seen = None
    while proc.poll() is None:
        if seen is None and start():
            seen = time.monotonic()
        time.sleep(POLL_S)
    err = proc.stderr.read().decode() if proc.stderr is not None else ""
    if proc.stderr is not None:
        proc.stderr.close()
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}): {err}")
    end = time.monotonic()
    seen = seen if seen is not None else end
    return seen - began, end - seen


def run_ok(cmd: Sequence[str], env: dict[str, str], timeout_s: float = 600.0) -> subprocess.CompletedProcess:
    """Run ``cmd`` to the end and insist that it succeeded."""
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout_s, check=False)
    assert done.returncode == 0, f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr}"
    return done


def stray_temporaries(folder: Path, name: str) -> list[str]:
    """Temporary files an atomic write of ``name`` left in ``folder`` (a killed writer cannot clean up)."""
    return sorted(p.name for p in folder.glob(f".{name}.*"))
