"""One training at a time for a model folder, also across server restarts.

The lock is a file holding the trainer's process id and start time, created exclusively. A
lock whose process is gone (a server killed with its trainer, a machine restart) is stale: it
is reported and taken over; a live one refuses a second trainer with :class:`ConflictError`.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lib.atomic import locked_folder
from lib.errors import ConflictError

logger = logging.getLogger(__name__)


def _alive(pid: int) -> bool:
    """The process exists and is not a zombie (a killed trainer nobody has reaped yet)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    status = Path(f"/proc/{pid}/status")
    try:
        return "\tZ" not in next(line for line in status.read_text().splitlines() if line.startswith("State:"))
    except (OSError, StopIteration):  # no /proc (not Linux): the signal test is all there is
        return True


class TrainerLock:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def holder(self) -> dict[str, Any] | None:
        """``{"pid", "started"}`` of the live trainer holding the lock, or None."""
        try:
            held = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return held if isinstance(held, dict) and _alive(int(held.get("pid", -1))) else None

    def check_free(self) -> None:
        """:class:`ConflictError` when a trainer is running."""
        held = self.holder()
        if held is not None:
            raise ConflictError(f"a training is running already (process {held['pid']}, started "
                                f"{held.get('started', '?')}); stop it first")

    def wait_released(self, timeout_s: float, poll_s: float = 0.1) -> bool:
        """Wait until no live trainer holds the lock (a killed one can take a moment to exit);
        False when it is still held after ``timeout_s`` seconds."""
        deadline = time.monotonic() + timeout_s
        while self.holder() is not None:
            if time.monotonic() >= deadline:
                return False
            time.sleep(poll_s)
        return True

    @contextmanager
    def hold(self) -> Iterator[None]:
        """Hold the lock for this process while the body runs; a stale lock is taken over."""
        record = json.dumps({"pid": os.getpid(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
        with locked_folder(self.path.parent):  # the model registry's lock: a serve sees this lock or none
            self._create(record)
        try:
            yield
        finally:
            self.path.unlink(missing_ok=True)

    def _create(self, record: str) -> None:
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                self.check_free()
                logger.warning("taking over a stale training lock %s (%s)", self.path, self.path.read_text()[:200])
                self.path.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(record)
            break
        else:
            raise ConflictError(f"cannot take the training lock {self.path}")
