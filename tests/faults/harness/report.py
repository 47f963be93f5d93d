"""The reliability table: one row per scenario run, printed at the end of the session."""

from __future__ import annotations

from dataclasses import fields

from .integrity import Tally

COLUMNS = [
    ("scenario", "scenario"),
    ("backend", "backend"),
    ("submitted", "submitted"),
    ("succeeded", "succeeded"),
    ("cancelled", "cancelled"),
    ("failed", "failed"),
    ("lost", "lost"),
    ("duplicated_epochs", "dup. epochs"),
    ("missing_epochs", "missing epochs"),
    ("wrong_points", "points ≠ ref."),
    ("weight_mismatches", "weights ≠ ref."),
    ("max_attempt", "max attempt"),
]
assert {name for name, _ in COLUMNS} == {f.name for f in fields(Tally)}


def _order(tally: Tally) -> tuple[int, str, str]:
    """Numbered scenarios first, in their order; then the others by name."""
    number, _, _ = tally.scenario.partition(" ")
    return (int(number) if number.isdigit() else 100, tally.scenario, tally.backend)


def markdown_table(tallies: list[Tally]) -> str:
    """A Markdown table, one row per scenario run, numbered scenarios in order."""
    header = "| " + " | ".join(title for _, title in COLUMNS) + " |"
    rule = "|" + "|".join("---" for _ in COLUMNS) + "|"
    rows = [
        "| " + " | ".join(str(getattr(tally, name)) for name, _ in COLUMNS) + " |"
        for tally in sorted(tallies, key=_order)
    ]
    return "\n".join([header, rule, *rows])
