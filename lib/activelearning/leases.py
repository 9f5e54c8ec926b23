"""Leases on studies handed out by ``next_sample``: while a client holds one, no other client is
given that study.

A client holds at most one lease: asking again hands back the old one and takes a new one (the
annotator skipped it). A lease ends when a ``final`` label of its study is saved, or after
``duration_s``. Leases live in one JSON file (written atomically, under a process-wide lock and
an ``fcntl`` lock on its folder), so they survive a restart and hold across worker processes;
looking at the leases writes nothing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from lib.atomic import locked_folder, read_json, write_json

#: How long a study stays with the annotator it was given to (seconds).
DEFAULT_LEASE_S = 3600.0


@dataclass(frozen=True)
class Lease:
    image_id: str
    client_id: str
    expires_at: float  # time.time() seconds


class LeaseBook:
    """The leases of one server, kept in ``path``."""

    def __init__(self, path: str | Path, duration_s: float = DEFAULT_LEASE_S,
                 clock: Callable[[], float] = time.time) -> None:
        if duration_s <= 0:
            raise ValueError(f"a lease must last more than 0 s, got {duration_s}")
        self.path, self.duration_s, self.clock = Path(path), float(duration_s), clock
        self._lock = threading.Lock()

    def take(self, client_id: str, candidates: Sequence[str],
             pick: Callable[[list[str]], str | None]) -> Lease | None:
        """Lease to ``client_id`` the study ``pick`` chooses among ``candidates`` that no other
        client holds; ``client_id``'s earlier lease ends. None when nothing is left to pick."""
        with self._leases() as leases:
            leases.pop(next((i for i, lease in leases.items() if lease.client_id == client_id), ""), None)
            free = [c for c in candidates if c not in leases]
            chosen = pick(free) if free else None
            if chosen is None:
                return None
            lease = Lease(chosen, client_id, self.clock() + self.duration_s)
            leases[chosen] = lease
            return lease

    def held_by_others(self, client_id: str | None) -> set[str]:
        """Studies leased to anyone but ``client_id``."""
        with self._leases() as leases:
            return {i for i, lease in leases.items() if lease.client_id != client_id}

    def release(self, image_id: str) -> bool:
        """End the lease on ``image_id`` (its final label was saved); True if there was one."""
        with self._leases() as leases:
            return leases.pop(image_id, None) is not None

    def current(self) -> list[Lease]:
        with self._leases() as leases:
            return sorted(leases.values(), key=lambda lease: lease.expires_at)

    @contextmanager
    def _leases(self) -> Iterator[dict[str, Lease]]:
        """The unexpired leases, under both locks; changes are written back on exit."""
        with self._lock, locked_folder(self.path.parent):  # creates the folder
            now = self.clock()
            stored = read_json(self.path).get("leases", [])
            leases = {r["image_id"]: Lease(**r) for r in stored if float(r["expires_at"]) > now}
            before = dict(leases)
            yield leases
            if leases != before or len(stored) != len(before):
                write_json(self.path, {"leases": [asdict(lease) for lease in leases.values()]})
