"""What a tracking run did, in numbers and in words: the summary ``posetrack track`` prints.

:class:`TrackingSummary` counts the tracks, the instances placed on them and the instances
rejected (by reason), says how the online pass and the stitcher got there, and lists the least
certain decisions: the joins of tracklets where swapping two identities came closest to the
chosen assignment, and the instances placed after stitching whose runner-up identity came close.
Margins are in the units of the stitcher's link costs (negative log-likelihoods): about 0.5 is a
one-sigma difference, 2 a two-sigma one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ..labels import REJECTION_REASONS

N_UNCERTAIN = 5
"""Least certain decisions a summary keeps."""


@dataclass(frozen=True)
class Decision:
    """One decision of the tracker and how much more its best alternative would have cost."""

    video: str
    frame: int
    what: str
    margin: float

    def describe(self) -> str:
        return f"{self.video} frame {self.frame}: {self.what} ({self.margin:+.2f})"


@dataclass
class TrackingSummary:
    """Counts and the least certain decisions of one tracking run (see the module docs)."""

    videos: list[str] = field(default_factory=list)
    tracks: list[str] = field(default_factory=list)
    kind: str = "predicted"
    n_instances: int = 0
    n_assigned: int = 0
    rejected: dict[int, int] = field(default_factory=dict)  # reason code -> instances
    n_tracklets: int = 0
    n_stitched: int = 0
    n_filled: int = 0
    n_forced: int = 0
    stitch: bool = True
    uncertain: list[Decision] = field(default_factory=list)

    @property
    def n_rejected(self) -> int:
        return int(sum(self.rejected.values()))

    def add_decisions(self, decisions: list[Decision]) -> None:
        """Keep the :data:`N_UNCERTAIN` least certain of the decisions seen so far."""
        self.uncertain = sorted([*self.uncertain, *decisions], key=lambda d: (d.margin, d.video, d.frame))[
            :N_UNCERTAIN
        ]

    def lines(self) -> list[str]:
        """The summary as lines of text."""
        videos = ", ".join(self.videos) or "none"
        head = (
            f"tracked {self.n_instances} {self.kind} instances in {len(self.videos)} "
            f"video{'s' * (len(self.videos) != 1)} ({videos}) into {len(self.tracks)} "
            f"track{'s' * (len(self.tracks) != 1)}"
        )
        out = [head, f"  on a track: {self.n_assigned}; rejected: {self.n_rejected}"]
        for code, count in sorted(self.rejected.items()):
            name, why = REJECTION_REASONS[code]
            out.append(f"    {count} {name}: {why}")
        if self.stitch:
            out.append(
                f"  online pass: {self.n_tracklets} tracklets; stitching put {self.n_stitched} of them "
                "on identities"
            )
        else:
            out.append(f"  online pass: {self.n_tracklets} tracks started")
        if self.n_filled:
            out.append(
                f"  placed afterwards: {self.n_filled} instances ({self.n_forced} on the only free track of "
                "their frame)"
            )
        if self.uncertain:
            out.append(
                "  least certain decisions (in brackets: how much more the alternative costs; "
                "lower = closer call):"
            )
            out.extend(f"    {d.describe()}" for d in self.uncertain)
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: rejections by reason name, decisions as dicts."""
        d = asdict(self)
        d["rejected"] = {REJECTION_REASONS[k][0]: v for k, v in sorted(self.rejected.items())}
        return d
