"""The audit trail: an append-only log of who did what to which study and label version.

One JSON object per line in ``<folder>/audit.jsonl``: ``ts`` (UTC, ISO 8601), ``user``,
``client`` (address and the client's name when it sends one), ``action`` (label.save,
label.amend, label.remove, image.add, image.remove, train.start, train.stop, model.publish,
report.approve, ...), ``study`` (the image id: no other patient identifier is written),
``tag``, ``version`` and ``detail``. Lines are appended with ``O_APPEND`` and fsynced under a
lock, so concurrent writers (server threads and processes) never interleave or lose a line;
the server never rewrites or truncates the file.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

FILENAME = "audit.jsonl"


@dataclass(frozen=True)
class AuditEvent:
    user: str
    action: str
    study: str | None = None
    tag: str | None = None
    version: int | None = None
    client: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    ts: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))


class AuditLog:
    """Append-only JSON lines in ``folder`` (see the module docstring)."""

    def __init__(self, folder: str | Path) -> None:
        self.path = Path(folder) / FILENAME
        self._lock = threading.Lock()

    def record(self, event: AuditEvent) -> None:
        fields = {k: v for k, v in asdict(event).items() if v not in (None, {})}
        line = (json.dumps(fields, default=str) + "\n").encode()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)  # other server processes on the same folder
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)

    def events(self, study: str | None = None, user: str | None = None, action: str | None = None,
               limit: int = 1000) -> list[dict[str, Any]]:
        """The newest ``limit`` events, optionally of one study, user or action (prefix), oldest first."""
        wanted = [e for e in self._read()
                  if (study is None or e.get("study") == study) and (user is None or e.get("user") == user)
                  and (action is None or str(e.get("action", "")).startswith(action))]
        return wanted[-limit:]

    def _read(self) -> Iterator[dict[str, Any]]:
        if not self.path.exists():
            return
        with open(self.path, encoding="utf-8") as fh:
            for line in fh:
                try:
                    yield json.loads(line)
                except json.JSONDecodeError:  # a line cut by a crash mid-write: skipped, not fatal
                    continue
