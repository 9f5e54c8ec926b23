"""A train/validation split that stays fixed as labelled cases are added.

A case, once assigned, never moves: the assignment is recorded in a JSON file next to the
model and only new cases are assigned. A new case goes to validation when a stable hash
of its id falls under ``val_fraction`` (so the assignment does not depend on the order in
which cases arrive), or when validation would otherwise be empty; training is never left
empty.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

from lib.atomic import write_json

TRAIN, VALIDATION = "train", "validation"


def _hash_fraction(case_id: str) -> float:
    digest = hashlib.sha256(case_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


class FixedSplit:
    """Persistent case -> ``"train"`` | ``"validation"`` assignment stored at ``path``."""

    def __init__(self, path: str | Path, val_fraction: float = 0.2) -> None:
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
        self.path = Path(path)
        self.val_fraction = val_fraction
        self.assignment: dict[str, str] = {}
        if self.path.exists():
            recorded = json.loads(self.path.read_text(encoding="utf-8"))
            self.assignment = {str(k): str(v) for k, v in recorded["assignment"].items()}

    def assign(self, case_ids: Iterable[str]) -> dict[str, str]:
        """Assign the cases not yet recorded, save, and return the assignment of ``case_ids``."""
        ids = sorted(set(case_ids))
        new = [c for c in ids if c not in self.assignment]
        for case_id in new:
            self.assignment[case_id] = VALIDATION if _hash_fraction(case_id) < self.val_fraction else TRAIN
        # a first training case, then a first validation case, are taken from the new ones
        # only, so no recorded case moves
        if new and TRAIN not in self.assignment.values():
            self.assignment[max(new, key=_hash_fraction)] = TRAIN
        if new and VALIDATION not in self.assignment.values() and len(self.assignment) >= 2:
            self.assignment[min(new, key=_hash_fraction)] = VALIDATION
        if new:
            self._save()
        return {c: self.assignment[c] for c in ids}

    def _save(self) -> None:
        write_json(self.path, {"val_fraction": self.val_fraction, "assignment": dict(sorted(self.assignment.items()))})
