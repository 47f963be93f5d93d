"""The multi-host table (docs/scaling.md): which hosts ran the jobs, and did every epoch
land once. One row per scenario, printed at the end of the session."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

from tests.faults.harness.integrity import Tally

from .cluster import Claim


@dataclass
class Row:
    scenario: str
    jobs: int
    succeeded: int
    hosts_used: int  # distinct hosts that claimed any of the jobs
    handovers: int  # jobs claimed by more than one host
    duplicated_epochs: int
    missing_epochs: int
    wrong_points: int  # stored losses differing bit for bit from an uninterrupted run
    weight_mismatches: int
    stale_writes: str = "–"  # rows of the job written by the cut-off host after the handover
    stale_run: str = "–"  # how the cut-off host's run ended

    @classmethod
    def of(cls, scenario: str, tally: Tally, claims: Sequence[Claim]) -> Row:
        hosts_by_job: dict[str, set[str]] = {}
        for claim in claims:
            hosts_by_job.setdefault(claim.job_id, set()).add(claim.host)
        return cls(
            scenario=scenario,
            jobs=tally.submitted,
            succeeded=tally.succeeded,
            hosts_used=len({claim.host for claim in claims}),
            handovers=sum(len(hosts) > 1 for hosts in hosts_by_job.values()),
            duplicated_epochs=tally.duplicated_epochs,
            missing_epochs=tally.missing_epochs,
            wrong_points=tally.wrong_points,
            weight_mismatches=tally.weight_mismatches,
        )


TITLES = {
    "duplicated_epochs": "dup. epochs",
    "missing_epochs": "missing epochs",
    "wrong_points": "points ≠ ref.",
    "weight_mismatches": "weights ≠ ref.",
    "stale_writes": "rows written by the cut-off host after the handover",
}


def markdown(rows: Sequence[Row]) -> str:
    names = [f.name for f in fields(Row)]
    header = "| " + " | ".join(TITLES.get(n, n.replace("_", " ")) for n in names) + " |"
    rule = "|" + "|".join("---" for _ in names) + "|"
    lines = ["| " + " | ".join(str(getattr(row, n)) for n in names) + " |" for row in rows]
    return "\n".join([header, rule, *lines])
