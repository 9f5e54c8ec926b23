"""Assigning volumes already in the scene to t1n, t1c, t2w and t2f by their names.

Each sequence has a list of patterns (editable in the module); a pattern matches a name when
all its words appear, in order, among the name's words ("t1 post" matches "AX_T1_POST_GD").
Sequences are assigned in the order t2f, t1c, t2w, t1n (so "T2-FLAIR" is not taken for a T2,
nor "T1 post" for the pre-contrast T1), each taking the first unassigned name that its
earliest pattern matches. A name is used once; a sequence that nothing matches is reported.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

SEQUENCES: tuple[str, ...] = ("t1n", "t1c", "t2w", "t2f")
ASSIGNMENT_ORDER: tuple[str, ...] = ("t2f", "t1c", "t2w", "t1n")
DEFAULT_PATTERNS: dict[str, tuple[str, ...]] = {
    "t2f": ("t2f", "flair", "dark fluid", "tirm"),
    "t1c": ("t1c", "t1ce", "t1gd", "t1 post", "t1 gd", "t1 ce", "t1 km", "t1 contrast", "post", "gd"),
    "t2w": ("t2w", "t2"),
    "t1n": ("t1n", "t1 pre", "t1 native", "t1w", "t1", "pre"),
}


@dataclass(frozen=True)
class Assignment:
    """``volumes``: sequence -> name of the assigned volume; ``missing``: sequences with none."""

    volumes: dict[str, str]
    missing: tuple[str, ...]

    @property
    def complete(self) -> bool:
        return not self.missing


def words(name: str) -> list[str]:
    """Lower-case words of a volume name: letters and digits, split at anything else."""
    return [w for w in re.split(r"[^a-z0-9]+", name.lower()) if w]


def matches(pattern: str, name: str) -> bool:
    """All the pattern's words appear among the name's words, in order."""
    wanted, have = words(pattern), words(name)
    position = 0
    for word in wanted:
        try:
            position = have.index(word, position) + 1
        except ValueError:
            return False
    return bool(wanted)


def assign(names: Sequence[str], patterns: Mapping[str, Sequence[str]] = DEFAULT_PATTERNS) -> Assignment:
    """Assign ``names`` (volumes in the scene) to the four sequences (see the module docstring)."""
    free = list(names)
    volumes: dict[str, str] = {}
    for sequence in ASSIGNMENT_ORDER:
        for pattern in patterns.get(sequence, ()):
            found = next((n for n in free if matches(pattern, n)), None)
            if found is not None:
                volumes[sequence] = found
                free.remove(found)
                break
    return Assignment({s: volumes[s] for s in SEQUENCES if s in volumes},
                      tuple(s for s in SEQUENCES if s not in volumes))


def parse_patterns(text: str) -> dict[str, tuple[str, ...]]:
    """Patterns as the module's text field holds them: ``t1c: t1c, post, gd; t2f: flair``.
    Sequences not mentioned keep their defaults."""
    patterns = dict(DEFAULT_PATTERNS)
    for clause in filter(None, (c.strip() for c in text.split(";"))):
        sequence, _, values = clause.partition(":")
        sequence = sequence.strip().lower()
        if sequence not in SEQUENCES or not values.strip():
            raise ValueError(f"'{clause}' is not '<t1n|t1c|t2w|t2f>: pattern, pattern, ...'")
        patterns[sequence] = tuple(v.strip() for v in values.split(",") if v.strip())
    return patterns


def format_patterns(patterns: Mapping[str, Sequence[str]]) -> str:
    return "; ".join(f"{s}: {', '.join(patterns[s])}" for s in SEQUENCES if s in patterns)
